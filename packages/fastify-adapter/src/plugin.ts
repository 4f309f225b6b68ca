// The one declaration of `fastify.fulcrum`, shared by the ESM and CJS type entries (see tsup.config.ts).
// eslint-disable-next-line @typescript-eslint/triple-slash-reference
/// <reference path="../fastify.d.ts" />
/**
 * The Fastify plugin: `fastify.register(fulcrum, { prefix: '/api', ...proxyOptions })` forwards every
 * method under the prefix to Fulcrum's proxy — the shape of @fastify/http-proxy, on `createProxy`.
 *
 * The route handler hijacks the reply and hands the raw `req`/`res` to the proxy, so streaming,
 * backpressure, retries and error answers are the proxy's, not Fastify's serializer's. Fastify's
 * body parsing would consume the request stream first, so the proxy routes live in their own
 * encapsulated context whose only content-type parser leaves the stream untouched; the app's parsers
 * elsewhere are unaffected. The plugin itself is wrapped with fastify-plugin so that
 * `fastify.fulcrum` (`{ lb, proxy }`) is visible to the registering context, and the stats and
 * metrics routes sit there too, outside the prefix. The proxy is closed in `onClose`.
 */
import type { IncomingMessage } from 'node:http';
import { createProxy, prometheusHandler, statsPage, type ProxyHooks, type ProxyOptions, type StatsHandler } from '@fulcrum/http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fastifyPlugin from 'fastify-plugin';
import { splitOptions, type FulcrumPluginOptions, type PluginConfig } from './options';
import { forwardedUrl } from './prefix';

/**
 * What the plugin decorates `fastify.fulcrum` with: `{ lb, proxy }`. Its interface and the
 * `declare module 'fastify'` that adds it live in one types-only file (`fastify.d.ts`, referenced at
 * the top of this file) that the ESM and CJS type entries both load, so a project loading both sees
 * one declaration (no TS2717); the entries name it through Fastify's own (single) declaration.
 */
export type FulcrumDecoration = FastifyInstance['fulcrum'];

/**
 * @fastify/http-proxy's `rewriteRequestHeaders` / `rewriteHeaders` as `createProxy` hooks: the
 * record the function returns is applied as edits (removed names removed, new or changed ones set),
 * after the app's own `on` hooks; headers the proxy owns are kept when the record leaves them out.
 * `requests` maps the raw request back to its FastifyRequest.
 */
function withRewrites(config: PluginConfig, requests: WeakMap<IncomingMessage, FastifyRequest>): ProxyOptions {
  const { rewriteRequestHeaders, rewriteHeaders, proxy } = config;
  if (rewriteRequestHeaders === undefined && rewriteHeaders === undefined) return proxy;
  const on: ProxyHooks = { ...proxy.on };
  if (rewriteRequestHeaders !== undefined) {
    const first = on.proxyReq;
    on.proxyReq = (proxyReq, req) => {
      first?.(proxyReq, req);
      const before = proxyReq.getHeaders();
      const after = rewriteRequestHeaders(requests.get(req)!, { ...before });
      // Headers the proxy owns (forwarding, upgrade) stay whatever the function returned.
      for (const name of Object.keys(before)) if (!Object.hasOwn(after, name) && !proxyReq.proxyOwns(name)) proxyReq.removeHeader(name);
      for (const [name, value] of Object.entries(after)) if (!sameValue(before[name.toLowerCase()], value)) proxyReq.setHeader(name, value);
    };
  }
  if (rewriteHeaders !== undefined) {
    const first = on.proxyRes;
    on.proxyRes = (proxyRes, req) => {
      first?.(proxyRes, req);
      proxyRes.headers = rewriteHeaders({ ...proxyRes.headers }, requests.get(req)!);
    };
  }
  return { ...proxy, on };
}

function sameValue(a: string | string[] | undefined, b: string | string[]): boolean {
  if (typeof a === 'string' || a === undefined || typeof b === 'string') return a === b;
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

type RawHandler = (req: FastifyRequest['raw'], res: FastifyReply['raw']) => void;

async function plugin(fastify: FastifyInstance, options: FulcrumPluginOptions): Promise<void> {
  const config = splitOptions(options);
  if (fastify.hasDecorator('fulcrum')) {
    throw new Error(
      '@fulcrum/fastify-adapter: fastify.fulcrum already exists in this context or an enclosing one; register each pool in its own encapsulated context (fastify.register(async (scope) => scope.register(fulcrum, …)))',
    );
  }
  const requests = new WeakMap<IncomingMessage, FastifyRequest>();
  const proxy = createProxy(withRewrites(config, requests));
  let page: StatsHandler | undefined;
  try {
    page = config.stats === undefined ? undefined : statsPage(proxy.lb, config.stats.page);
  } catch (error) {
    await proxy.close();
    throw error;
  }
  fastify.decorate('fulcrum', Object.freeze({ lb: proxy.lb, proxy }));
  fastify.addHook('onClose', async () => {
    page?.close();
    await proxy.close();
  });
  if (config.stats !== undefined && page !== undefined) rawRoute(fastify, config.stats.path, page);
  if (config.metricsPath !== undefined) rawRoute(fastify, config.metricsPath, prometheusHandler(proxy.lb));

  fastify.register(
    async (scope) => {
      // The full prefix, enclosing plugins' included: that is what the raw URL starts with.
      const routePrefix = scope.prefix;
      scope.removeAllContentTypeParsers();
      scope.addContentTypeParser('*', (_request, _payload, done) => done(null));
      const forward = (request: FastifyRequest, reply: FastifyReply): void => {
        const raw: IncomingMessage & { originalUrl?: string } = request.raw;
        // As Fastify's own rewriteUrl does: `request.originalUrl` stays the client's URL for later
        // hooks (onResponse still runs), `request.url` becomes the one forwarded.
        raw.originalUrl ??= raw.url;
        raw.url = forwardedUrl(raw.url ?? '/', routePrefix, config.rewritePrefix);
        requests.set(raw, request);
        hijack(request, reply, proxy);
      };
      scope.all('/', forward);
      scope.all('/*', forward);
    },
    { prefix: config.prefix, ...config.register },
  );
}

/** A GET/HEAD route answered by a `node:http` handler (the stats page, the metrics). */
function rawRoute(fastify: FastifyInstance, url: string, handler: RawHandler): void {
  fastify.route({ method: ['GET', 'HEAD'], url, exposeHeadRoute: false, handler: (request, reply) => hijack(request, reply, handler) });
}

/**
 * Hand the raw request to `handler`. After `hijack()` Fastify's error handler can no longer answer,
 * so a handler that throws is logged here and the client gets a bare 500 (or a cut connection when
 * the response had begun) rather than a socket left hanging.
 */
function hijack(request: FastifyRequest, reply: FastifyReply, handler: RawHandler): void {
  reply.hijack();
  try {
    handler(request.raw, reply.raw);
  } catch (error) {
    request.log.error({ err: error }, '@fulcrum/fastify-adapter: handler failed');
    const res = reply.raw;
    if (res.headersSent) res.destroy();
    else res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8', 'content-length': 22 }).end('Internal Server Error\n');
  }
}

/**
 * The plugin. Register it once per encapsulation context:
 * `fastify.register(fulcrum, { prefix: '/api', balancer: { backends } })`.
 */
export const fulcrum = fastifyPlugin(plugin, { fastify: '5.x', name: '@fulcrum/fastify-adapter' });
