// @fulcrum/fastify-adapter against a real Fastify 5 app on 127.0.0.1 in front of real node:http backends.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isFulcrumError } from '@fulcrum/core';
import { fulcrum, type FulcrumPluginOptions } from '@fulcrum/fastify-adapter';
import Fastify, { type FastifyInstance } from 'fastify';
import { describe, expect, it } from 'vitest';
import {
  cleanupsAfterEach,
  closeServer,
  listen,
  liveHandles,
  refusedAddress,
  roundRobin,
  send,
  sha256Of,
  startBackends,
  upgradeEcho,
} from '../../../test-support/adapter-fixtures';
import { waitFor } from '../../../test-support/wait-for';

const SECRET = 'fastify-adapter-test-secret-0123456789abcdef';
const cleanups = cleanupsAfterEach();

/** A Fastify app on 127.0.0.1:0, closed after the test. */
async function serve(build: (app: FastifyInstance) => unknown): Promise<{ app: FastifyInstance; url: string }> {
  const app = Fastify();
  cleanups.push(() => app.close());
  await build(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, url: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` };
}

describe('the fulcrum plugin', () => {
  it('spreads requests over every backend of the pool', async () => {
    const list = await startBackends(3, cleanups);
    const { url } = await serve((app) => app.register(fulcrum, { balancer: roundRobin(list) }));
    const seen: string[] = [];
    for (let i = 0; i < 9; i++) seen.push((await send(url, `/x/${i}`)).body);
    expect(seen.sort()).toEqual(['b0', 'b0', 'b0', 'b1', 'b1', 'b1', 'b2', 'b2', 'b2']);
  });

  it('strips the prefix, keeping the raw path and query, and leaves other paths alone', async () => {
    const [backend] = await startBackends(1, cleanups);
    const completed: string[] = [];
    const { url } = await serve((app) => {
      app.addHook('onResponse', async (request) => void completed.push(`${request.originalUrl} -> ${request.url}`));
      app.register(fulcrum, { prefix: '/api', balancer: roundRobin([backend!]) });
      app.get('/apix', async () => 'app');
    });
    for (const path of ['/api/users/7?expand=1&x=%2F', '/api/a%20b/', '/api', '/api/', '/api?q=1']) {
      expect((await send(url, path)).status).toBe(200);
    }
    expect((await send(url, '/apix')).body).toBe('app');
    expect((await send(url, '/elsewhere')).status).toBe(404);
    expect(backend!.hits.map((h) => h.url)).toEqual(['/users/7?expand=1&x=%2F', '/a%20b/', '/', '/', '/?q=1']);
    // Hooks after the hijack still tell the client's URL from the forwarded one.
    expect(completed[0]).toBe('/api/users/7?expand=1&x=%2F -> /users/7?expand=1&x=%2F');
  });

  it('replaces the prefix with rewritePrefix, or keeps it when they are equal', async () => {
    const list = await startBackends(2, cleanups);
    const { url } = await serve((app) => {
      app.register(async (scope) => {
        scope.register(fulcrum, { prefix: '/api', rewritePrefix: '/v2', balancer: roundRobin([list[0]!]) });
      });
      app.register(async (scope) => {
        scope.register(fulcrum, { prefix: '/keep', rewritePrefix: '/keep', balancer: roundRobin([list[1]!]) });
      });
    });
    await send(url, '/api/users?x=1');
    await send(url, '/api');
    await send(url, '/keep/items');
    expect(list[0]!.hits.map((h) => h.url)).toEqual(['/v2/users?x=1', '/v2']);
    expect(list[1]!.hits.map((h) => h.url)).toEqual(['/keep/items']);
  });

  it('strips the prefixes of enclosing plugins too', async () => {
    const [backend] = await startBackends(1, cleanups);
    const { url } = await serve((app) => {
      app.register(
        async (v1) => {
          v1.register(fulcrum, { prefix: '/api', balancer: roundRobin([backend!]) });
        },
        { prefix: '/v1' },
      );
    });
    expect((await send(url, '/v1/api/items')).status).toBe(200);
    expect((await send(url, '/api/items')).status).toBe(404);
    expect(backend!.hits.map((h) => h.url)).toEqual(['/items']);
  });

  it('follows the router options on case and duplicate slashes', async () => {
    const [backend] = await startBackends(1, cleanups);
    const app = Fastify({ routerOptions: { caseSensitive: false, ignoreDuplicateSlashes: true } });
    cleanups.push(() => app.close());
    app.register(fulcrum, { prefix: '/api', balancer: roundRobin([backend!]) });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    expect((await send(url, '/API/Users')).status).toBe(200);
    expect((await send(url, '//api//x')).status).toBe(200);
    expect(backend!.hits.map((h) => h.url)).toEqual(['/Users', '/x']);
  });

  it('delivers request bodies untouched: 1 MB binary, invalid JSON, no content type', async () => {
    const [backend] = await startBackends(1, cleanups);
    const { url } = await serve((app) => {
      app.register(fulcrum, { prefix: '/api', balancer: roundRobin([backend!]) });
      app.post('/local', async (request) => ({ parsed: request.body }));
    });
    const big = randomBytes(1024 * 1024);
    const upload = await send(url, '/api/upload', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: big });
    expect(upload.status).toBe(200);
    // Fastify would answer 400 to this JSON; the backend must see the bytes as sent.
    const broken = '{"a":1,';
    expect((await send(url, '/api/json', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: broken })).status).toBe(200);
    expect((await send(url, '/api/raw', { method: 'POST', body: 'plain bytes' })).status).toBe(200);
    expect(backend!.hits).toMatchObject([
      { method: 'POST', url: '/upload', bodyLength: big.length, bodySha256: sha256Of(big) },
      { method: 'PUT', url: '/json', bodyLength: broken.length, bodySha256: sha256Of(Buffer.from(broken)) },
      { method: 'POST', url: '/raw', bodyLength: 11, bodySha256: sha256Of(Buffer.from('plain bytes')) },
    ]);
    // The pass-through parser is scoped to the proxy routes: the app still parses its own JSON.
    const local = await send(url, '/local', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    expect(JSON.parse(local.body)).toEqual({ parsed: { a: 1 } });
  });

  it('keeps a client on its backend with the signed sticky cookie', async () => {
    const list = await startBackends(3, cleanups);
    const { url } = await serve((app) => app.register(fulcrum, { prefix: '/app', balancer: roundRobin(list), stickiness: { cookie: { secrets: [SECRET] } } }));
    const first = await send(url, '/app/');
    const cookie = String(first.headers['set-cookie']?.[0]).split(';')[0]!;
    expect(cookie).toMatch(/^fulcrum_srv=/);
    for (let i = 0; i < 12; i++) expect((await send(url, `/app/page/${i}`, { headers: { cookie } })).body).toBe(first.body);
    const others = new Set<string>();
    for (let i = 0; i < 3; i++) others.add((await send(url, '/app/')).body);
    expect(others.size).toBe(3);
  });

  it('retries a GET refused by one backend on another and answers 200', async () => {
    const [alive] = await startBackends(1, cleanups);
    const dead = { id: 'dead', address: await refusedAddress() };
    const { url } = await serve((app) => app.register(fulcrum, { prefix: '/api', balancer: roundRobin([dead, alive!]) }));
    for (let i = 0; i < 6; i++) {
      const reply = await send(url, `/api/r${i}`);
      expect(reply.status).toBe(200);
      expect(reply.body).toBe('b0');
    }
    expect(alive!.hits).toHaveLength(6);
  });

  it('serves the stats page, its JSON and Prometheus metrics outside the prefix', async () => {
    const list = await startBackends(2, cleanups);
    const { url } = await serve((app) =>
      app.register(fulcrum, { prefix: '/api', balancer: roundRobin(list), stats: { path: '/fulcrum', title: 'edge-1' }, metrics: { path: '/metrics' } }),
    );
    await send(url, '/api/hello');
    const json = await send(url, '/fulcrum?format=json');
    expect(json.status).toBe(200);
    const data = JSON.parse(json.body) as { pools: Record<string, { backends: { id: string; requests: number }[] }> };
    expect(data.pools['default']!.backends.map((b) => b.id).sort()).toEqual(['b0', 'b1']);
    expect(data.pools['default']!.backends.reduce((sum, b) => sum + b.requests, 0)).toBe(1);
    const html = await send(url, '/fulcrum');
    expect(html.headers['content-type']).toMatch(/text\/html/);
    expect(html.body).toContain('edge-1');
    const head = await send(url, '/fulcrum', { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    const text = await send(url, '/metrics');
    expect(text.body).toMatch(/fulcrum_backend_requests_total\{pool="default",backend="b\d"\} 1/);
  });

  it('decorates fastify.fulcrum with the load balancer and the proxy, once per context', async () => {
    const [backend] = await startBackends(1, cleanups);
    const { app, url } = await serve((app) => {
      app.register(fulcrum, { prefix: '/api', balancer: roundRobin([backend!]) });
      app.get('/drain', async () => {
        app.fulcrum.lb.drain('b0');
        return app.fulcrum.lb.snapshot().backends[0]!.state;
      });
    });
    expect(app.fulcrum.proxy.lb).toBe(app.fulcrum.lb);
    expect((await send(url, '/drain')).body).toBe('draining');

    // A second pool in the same context, or beneath it, would shadow the first.
    const twice = Fastify();
    twice.register(fulcrum, { balancer: roundRobin([backend!]) });
    twice.register(async (scope) => scope.register(fulcrum, { prefix: '/b', balancer: roundRobin([backend!]) }));
    await expect(twice.ready()).rejects.toThrow(/already exists/);
    await twice.close();
  });

  it('forwards WebSocket upgrades through fastify.fulcrum.proxy.upgrade', async () => {
    const [backend] = await startBackends(1, cleanups);
    const { app, url } = await serve((app) => app.register(fulcrum, { balancer: roundRobin([backend!]) }));
    app.server.on('upgrade', app.fulcrum.proxy.upgrade);
    expect(await upgradeEcho(url, '/ws/chat', 'ping')).toEqual({ status: 101, echoed: 'ping' });
  });

  it('answers 500 rather than hanging when the proxy fails after the hijack', async () => {
    const [backend] = await startBackends(1, cleanups);
    const reported: unknown[] = [];
    const app = Fastify();
    cleanups.push(() => app.close());
    app.addHook('onRequest', async (request) => {
      // Simulate a fault inside the proxy: reading the raw headers throws.
      Object.defineProperty(request.raw, 'rawHeaders', {
        get: () => {
          throw new Error('broken request');
        },
      });
    });
    app.register(fulcrum, { balancer: roundRobin([backend!]), onError: (error) => void reported.push(error) });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const reply = await send(`http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, '/x');
    expect(reply.status).toBe(500);
    expect(reply.body).toBe('Internal Server Error\n');
    expect(String(reported[0])).toMatch(/broken request/);
    expect(backend!.hits).toHaveLength(0);
  });

  it('forwards headers an onRequest hook set on the request', async () => {
    const [backend] = await startBackends(1, cleanups);
    const { url } = await serve((app) => {
      app.addHook('onRequest', async (request) => {
        request.headers['x-user'] = 'alice';
        request.headers.authorization = 'Bearer internal';
        delete request.headers.cookie;
      });
      app.register(fulcrum, { balancer: roundRobin([backend!]) });
    });
    await send(url, '/x', { headers: { authorization: 'Basic Y2xpZW50', cookie: 'sid=1' } });
    expect(backend!.hits[0]!.headers['x-user']).toBe('alice');
    expect(backend!.hits[0]!.headers.authorization).toBe('Bearer internal');
    expect(backend!.hits[0]!.headers.cookie).toBeUndefined();
  });

  it('rewrites request and response headers with rewriteRequestHeaders / rewriteHeaders, given the FastifyRequest', async () => {
    const [backend] = await startBackends(1, cleanups);
    const seen: string[] = [];
    const { url } = await serve((app) => {
      app.decorateRequest('tenant', 'acme');
      app.register(fulcrum, {
        balancer: roundRobin([backend!]),
        rewriteRequestHeaders: (request, headers) => {
          seen.push(request.url);
          // A subset without the forwarding headers: those stay, they are the proxy's.
          return { host: headers.host!, 'x-tenant': (request as unknown as { tenant: string }).tenant };
        },
        rewriteHeaders: (headers, request) => ({ ...headers, 'x-path': request.url, 'x-backend': [] }),
      });
    });
    const reply = await send(url, '/orders?id=1', { headers: { 'x-secret': 's' } });
    expect(reply.status).toBe(200);
    const hit = backend!.hits[0]!.headers;
    expect(hit['x-tenant']).toBe('acme');
    expect(hit['x-secret']).toBeUndefined();
    expect(hit['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen).toEqual(['/orders?id=1']);
    expect(reply.headers['x-path']).toBe('/orders?id=1');
    expect(reply.headers['x-backend']).toBeUndefined();
  });

  it('refuses a CR/LF a rewrite puts in a header: 500, nothing forwarded', async () => {
    const [backend] = await startBackends(1, cleanups);
    const { url } = await serve((app) =>
      app.register(fulcrum, { balancer: roundRobin([backend!]), rewriteRequestHeaders: (_request, headers) => ({ ...headers, 'x-user': 'a\r\nx-admin: 1' }) }),
    );
    expect((await send(url, '/x')).status).toBe(500);
    expect(backend!.hits).toHaveLength(0);
  });

  it('rejects bad options at registration, naming the option', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ rewriteRequestHeaders: {} }, /^rewriteRequestHeaders: /],
      [{ rewriteHeaders: 'x' }, /^rewriteHeaders: /],
      [{ prefix: '/t/:tenant' }, /^prefix: /],
      [{ prefix: 'api' }, /^prefix: /],
      [{ rewritePrefix: 7 }, /^rewritePrefix: /],
      [{ stats: { path: 'fulcrum' } }, /^stats\.path: /],
      [{ stats: { path: '/s', refreshMs: 5 } }, /statsPage\.refreshMs/],
      [{ metrics: true }, /^metrics: /],
      [{ retries: 2 }, /^retries: /],
    ];
    for (const [extra, message] of cases) {
      const app = Fastify();
      app.register(fulcrum, { balancer: { backends: [] }, ...extra } as FulcrumPluginOptions);
      const error = await app.ready().then(
        () => undefined,
        (e: unknown) => e,
      );
      await app.close();
      expect(isFulcrumError(error, 'FULCRUM_INVALID_OPTION')).toBe(true);
      expect((error as Error).message).toMatch(message);
    }
  });

  it('closes the proxy with Fastify and leaves no sockets, servers or timers behind', async () => {
    const before = liveHandles();
    const list = await startBackends(2, cleanups);
    const app = Fastify();
    app.register(fulcrum, { prefix: '/api', balancer: roundRobin(list), stickiness: { cookie: { secrets: [SECRET] } }, stats: { path: '/fulcrum' } });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
    for (let i = 0; i < 6; i++) expect((await send(url, '/api/x')).status).toBe(200);
    expect((await send(url, '/fulcrum?format=json')).status).toBe(200);
    const proxy = app.fulcrum.proxy;
    await app.close();
    // Closed by the onClose hook: served on its own, it now refuses every request.
    const bare = createServer(proxy);
    const refused = await send(await listen(bare), '/x');
    await closeServer(bare);
    expect(refused.status).toBe(503);
    while (cleanups.length > 0) await cleanups.pop()!();
    // Closed handles leave the list once their close callbacks have run.
    await waitFor(() => liveHandles() <= before, { what: 'the handles to be closed' });
  });
});
