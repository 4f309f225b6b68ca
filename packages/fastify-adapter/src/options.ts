/**
 * The plugin's own options, validated once at registration and split from the proxy's: everything
 * this file does not know goes to `createProxy`, which validates it in turn (and names any unknown
 * key). Prefixes are normalised without a trailing slash so that joining them with the rest of a
 * URL never doubles one; parameters and wildcards are refused in a prefix because the prefix is cut
 * from the URL as text (see `prefix.ts`).
 */
import { InvalidOptionError } from '@fulcrum/core';
import type { ProxyOptions, StatsPageOptions } from '@fulcrum/http';
import type { FastifyRequest, RegisterOptions } from 'fastify';

/** Header records the rewrite hooks take and return: lower-case names, a list for repeated lines. */
export type HeaderRecord = Record<string, string | string[]>;

/** Options of `fastify.register(fulcrum, options)`: every `createProxy` option, plus these. */
export interface FulcrumPluginOptions extends ProxyOptions, RegisterOptions {
  /** Forward requests under this path (every method Fastify routes). Default `''`: everything. */
  prefix?: string;
  /** What replaces the prefix in the URL the backend sees. Default `''`: the prefix is stripped. */
  rewritePrefix?: string;
  /** Serve the live stats page (and `?format=json`) at `path`, outside the prefix. Default: no page. */
  stats?: StatsPageOptions & { path: string };
  /** Serve Prometheus metrics at `path`, outside the prefix. Default: none. */
  metrics?: { path: string };
  /**
   * @fastify/http-proxy's (`replyOptions`) hook: return the headers to send upstream for this
   * request. Called before each attempt, after `on.proxyReq`; what it may change is what
   * `on.proxyReq` may (not hop-by-hop, framing or forwarding headers — returning them unchanged is
   * fine). Default none.
   */
  rewriteRequestHeaders?: (request: FastifyRequest, headers: HeaderRecord) => HeaderRecord;
  /** @fastify/http-proxy's `rewriteHeaders`: return the response headers the client gets. After `on.proxyRes`. Default none. */
  rewriteHeaders?: (headers: HeaderRecord, request: FastifyRequest) => HeaderRecord;
}

export interface PluginConfig {
  prefix: string;
  rewritePrefix: string;
  stats: { path: string; page: StatsPageOptions } | undefined;
  metricsPath: string | undefined;
  /** Fastify's own register options, applied to the proxy routes' context. */
  register: Pick<RegisterOptions, 'logLevel' | 'logSerializers'>;
  proxy: ProxyOptions;
  rewriteRequestHeaders: FulcrumPluginOptions['rewriteRequestHeaders'];
  rewriteHeaders: FulcrumPluginOptions['rewriteHeaders'];
}

export function splitOptions(options: FulcrumPluginOptions): PluginConfig {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', options, 'must be an object with a balancer');
  const { prefix, rewritePrefix, stats, metrics, logLevel, logSerializers, rewriteRequestHeaders, rewriteHeaders, ...proxy } = options;
  if (rewriteRequestHeaders !== undefined && typeof rewriteRequestHeaders !== 'function')
    throw new InvalidOptionError('rewriteRequestHeaders', rewriteRequestHeaders, 'must be a function');
  if (rewriteHeaders !== undefined && typeof rewriteHeaders !== 'function')
    throw new InvalidOptionError('rewriteHeaders', rewriteHeaders, 'must be a function');
  let statsConfig: PluginConfig['stats'];
  if (stats !== undefined) {
    if (typeof stats !== 'object' || stats === null) throw new InvalidOptionError('stats', stats, 'must be an object with a path');
    const { path, ...page } = stats;
    statsConfig = { path: routePath('stats.path', path), page };
  }
  if (metrics !== undefined && (typeof metrics !== 'object' || metrics === null))
    throw new InvalidOptionError('metrics', metrics, 'must be an object with a path');
  return {
    prefix: urlPrefix('prefix', prefix),
    rewritePrefix: urlPrefix('rewritePrefix', rewritePrefix),
    stats: statsConfig,
    metricsPath: metrics === undefined ? undefined : routePath('metrics.path', metrics.path),
    register: {
      ...(logLevel === undefined ? {} : { logLevel }),
      ...(logSerializers === undefined ? {} : { logSerializers }),
    },
    proxy,
    rewriteRequestHeaders,
    rewriteHeaders,
  };
}

function urlPrefix(path: string, value: unknown): string {
  if (value === undefined) return '';
  if (typeof value !== 'string' || (value !== '' && !value.startsWith('/')) || /[:*?#\s]/.test(value)) {
    throw new InvalidOptionError(path, value, "must be '' or a path starting with '/', without parameters, wildcards or a query");
  }
  return value.replace(/\/+$/, '');
}

function routePath(path: string, value: unknown): string {
  if (typeof value !== 'string' || !value.startsWith('/') || /[:*?#\s]/.test(value)) {
    throw new InvalidOptionError(path, value, "must be a path starting with '/', without parameters, wildcards or a query");
  }
  return value;
}
