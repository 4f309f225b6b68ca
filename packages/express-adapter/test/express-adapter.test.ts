// @fulcrum/express-adapter against a real Express 5 app on 127.0.0.1 in front of real node:http backends.
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { isFulcrumError } from '@fulcrum/core';
import { metrics, proxy, stats, type ExpressProxyOptions, type ProxyMiddleware } from '@fulcrum/express-adapter';
import express, { type ErrorRequestHandler, type Express, type RequestHandler } from 'express';
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

const SECRET = 'express-adapter-test-secret-0123456789abcdef';
const cleanups = cleanupsAfterEach();

/** An Express app on a real server, with the proxy (and its server) closed after the test. */
async function serve(build: (app: Express) => ProxyMiddleware | undefined): Promise<{ url: string; server: Server; errors: unknown[] }> {
  const app = express();
  const errors: unknown[] = [];
  const middleware = build(app);
  const onError: ErrorRequestHandler = (error, _req, res, _next) => {
    errors.push(error);
    res.status(500).type('text').send('handled by the app');
  };
  app.use(onError);
  const server = createServer(app);
  if (middleware) server.on('upgrade', middleware.upgrade);
  const url = await listen(server);
  cleanups.push(async () => {
    await closeServer(server);
    await middleware?.close();
  });
  return { url, server, errors };
}

describe('proxy()', () => {
  it('spreads requests over every backend of the pool', async () => {
    const list = await startBackends(3, cleanups);
    const { url } = await serve((app) => {
      const mw = proxy({ balancer: roundRobin(list) });
      app.use(mw);
      return mw;
    });
    const seen: string[] = [];
    for (let i = 0; i < 9; i++) seen.push((await send(url, '/x')).body);
    expect(seen.sort()).toEqual(['b0', 'b0', 'b0', 'b1', 'b1', 'b1', 'b2', 'b2', 'b2']);
  });

  it('forwards headers middleware set before the proxy (an auth step replacing Authorization)', async () => {
    const [backend] = await startBackends(1, cleanups);
    const { url } = await serve((app) => {
      const mw = proxy({
        balancer: roundRobin([backend!]),
        on: { proxyReq: (proxyReq, req) => void proxyReq.setHeader('x-from-hook', String(req.headers['x-user'])) },
      });
      app.use((req, _res, next) => {
        req.headers['x-user'] = 'alice';
        req.headers.authorization = 'Bearer internal';
        next();
      });
      app.use(mw);
      return mw;
    });
    await send(url, '/x', { headers: { authorization: 'Basic Y2xpZW50' } });
    const hit = backend!.hits[0]!.headers;
    expect(hit['x-user']).toBe('alice');
    expect(hit.authorization).toBe('Bearer internal');
    expect(hit['x-from-hook']).toBe('alice');
  });

  it('forwards the path after the mount point, query included', async () => {
    const [backend] = await startBackends(1, cleanups);
    const { url } = await serve((app) => {
      const mw = proxy({ balancer: roundRobin([backend!]) });
      app.use('/api', mw);
      return mw;
    });
    expect((await send(url, '/api/users/7?expand=1&x=%2F')).status).toBe(200);
    expect((await send(url, '/api')).status).toBe(200);
    expect((await send(url, '/api?q=1')).status).toBe(200);
    expect((await send(url, '/other')).status).toBe(404);
    expect(backend!.hits.map((h) => h.url)).toEqual(['/users/7?expand=1&x=%2F', '/', '/?q=1']);
  });

  it('strips every mount path of nested routers', async () => {
    const [backend] = await startBackends(1, cleanups);
    const { url } = await serve((app) => {
      const router = express.Router();
      const mw = proxy({ balancer: roundRobin([backend!]) });
      router.use('/api', mw);
      app.use('/v1', router);
      return mw;
    });
    await send(url, '/v1/api/items');
    expect(backend!.hits.map((h) => h.url)).toEqual(['/items']);
  });

  it('forwards the path as the client sent it with keepMountPath', async () => {
    const [backend] = await startBackends(1, cleanups);
    const { url } = await serve((app) => {
      const mw = proxy({ balancer: roundRobin([backend!]), keepMountPath: true });
      app.use('/v1', express.Router().use('/api', mw));
      return mw;
    });
    await send(url, '/v1/api/items?page=2');
    expect(backend!.hits.map((h) => h.url)).toEqual(['/v1/api/items?page=2']);
  });

  it('delivers a 1 MB POST body intact while body parsers serve other routes', async () => {
    const [backend] = await startBackends(1, cleanups);
    const { url } = await serve((app) => {
      const mw = proxy({ balancer: roundRobin([backend!]) });
      app.use('/api', mw);
      app.use(express.json(), express.raw({ type: '*/*', limit: '2mb' }));
      app.post('/local', (req, res) => res.json({ parsed: req.body }));
      return mw;
    });
    const body = randomBytes(1024 * 1024);
    const reply = await send(url, '/api/upload', { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body });
    expect(reply.status).toBe(200);
    expect(backend!.hits).toHaveLength(1);
    expect(backend!.hits[0]).toMatchObject({ method: 'POST', url: '/upload', bodyLength: body.length, bodySha256: sha256Of(body) });
    const local = await send(url, '/local', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    expect(JSON.parse(local.body)).toEqual({ parsed: { a: 1 } });
  });

  it('hands a body already drained by a parser to next(err) instead of hanging', async () => {
    const [backend] = await startBackends(1, cleanups);
    const { url, errors } = await serve((app) => {
      const mw = proxy({ balancer: roundRobin([backend!]) });
      app.use(express.json());
      app.use('/api', mw);
      return mw;
    });
    const reply = await send(url, '/api/x', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    expect(reply.status).toBe(500);
    expect(reply.body).toBe('handled by the app');
    expect(String(errors[0])).toMatch(/body was already read/);
    expect(backend!.hits).toHaveLength(0);
    // A bodyless request through the same stack is not affected.
    expect((await send(url, '/api/y')).body).toBe('b0');
  });

  it('answers a fault inside the proxy with 500 itself and reports it to onError', async () => {
    const [backend] = await startBackends(1, cleanups);
    const reported: unknown[] = [];
    const { url, errors } = await serve((app) => {
      const mw = proxy({ balancer: roundRobin([backend!]), keepMountPath: true, onError: (error) => void reported.push(error) });
      const sabotage: RequestHandler = (req, _res, next) => {
        // Simulate a fault inside the proxy: reading the raw headers throws.
        Object.defineProperty(req, 'rawHeaders', {
          get: () => {
            throw new Error('broken request');
          },
        });
        next();
      };
      app.use('/api', sabotage, mw);
      return mw;
    });
    const reply = await send(url, '/api/x');
    expect(reply.status).toBe(500);
    expect(reply.body).toBe('Internal Server Error\n');
    expect(String(reported[0])).toMatch(/broken request/);
    expect(errors).toEqual([]);
    expect(backend!.hits).toHaveLength(0);
  });

  it('keeps a client on its backend with the signed sticky cookie', async () => {
    const list = await startBackends(3, cleanups);
    const { url } = await serve((app) => {
      const mw = proxy({ balancer: roundRobin(list), stickiness: { cookie: { secrets: [SECRET] } } });
      app.use('/app', mw);
      return mw;
    });
    const first = await send(url, '/app/');
    const setCookie = first.headers['set-cookie'];
    expect(setCookie).toBeDefined();
    const cookie = String(setCookie![0]).split(';')[0]!;
    expect(cookie).toMatch(/^fulcrum_srv=/);
    for (let i = 0; i < 12; i++) {
      const reply = await send(url, `/app/page/${i}`, { headers: { cookie } });
      expect(reply.body).toBe(first.body);
    }
    // Without the cookie, round robin moves on.
    const others = new Set<string>();
    for (let i = 0; i < 3; i++) others.add((await send(url, '/app/')).body);
    expect(others.size).toBe(3);
  });

  it('retries a GET refused by one backend on another and answers 200', async () => {
    const [alive] = await startBackends(1, cleanups);
    const dead = { id: 'dead', address: await refusedAddress() };
    const { url } = await serve((app) => {
      const mw = proxy({ balancer: roundRobin([dead, alive!]) });
      app.use('/api', mw);
      return mw;
    });
    for (let i = 0; i < 6; i++) {
      const reply = await send(url, `/api/r${i}`);
      expect(reply.status).toBe(200);
      expect(reply.body).toBe('b0');
    }
    expect(alive!.hits).toHaveLength(6);
  });

  it('answers an unreachable pool itself (502), without the backend address, not through next(err)', async () => {
    const dead = { id: 'dead', address: await refusedAddress() };
    const { url, errors } = await serve((app) => {
      const mw = proxy({ balancer: roundRobin([dead]), attempts: 1 });
      app.use('/api', mw);
      return mw;
    });
    const reply = await send(url, '/api/x');
    expect(reply.status).toBe(502);
    expect(reply.body).not.toContain('127.0.0.1');
    expect(errors).toEqual([]);
  });

  it('forwards WebSocket upgrades through server.on("upgrade", mw.upgrade)', async () => {
    const [backend] = await startBackends(1, cleanups);
    const { url } = await serve((app) => {
      const mw = proxy({ balancer: roundRobin([backend!]) });
      app.use('/ws', mw);
      return mw;
    });
    const result = await upgradeEcho(url, '/ws/chat', 'ping');
    expect(result).toEqual({ status: 101, echoed: 'ping' });
    // Upgrades bypass Express: the backend sees the path as sent.
    expect(backend!.hits.map((h) => h.url)).toEqual(['/ws/chat']);
  });

  it('validates its own option and hands the rest to createProxy', () => {
    const options = { balancer: { backends: [] }, keepMountPath: 'yes' } as unknown as ExpressProxyOptions;
    expect(() => proxy(options)).toThrow(/keepMountPath: must be true or false/);
    try {
      proxy({ balancer: { backends: [] }, retries: 2 } as unknown as ExpressProxyOptions);
      expect.unreachable();
    } catch (error) {
      expect(isFulcrumError(error, 'FULCRUM_INVALID_OPTION')).toBe(true);
      expect(String(error)).toMatch(/retries/);
    }
    expect(() => proxy(undefined as unknown as ExpressProxyOptions)).toThrow(/options: must be an object/);
  });

  it('leaves no sockets, servers or timers behind once closed', async () => {
    const before = liveHandles();
    const list = await startBackends(2, cleanups);
    const mw = proxy({ balancer: roundRobin(list), stickiness: { cookie: { secrets: [SECRET] } } });
    const page = stats(mw.lb);
    const app = express().use('/fulcrum', page).use('/api', mw);
    const server = createServer(app);
    const url = await listen(server);
    for (let i = 0; i < 6; i++) expect((await send(url, '/api/x')).status).toBe(200);
    expect((await send(url, '/fulcrum?format=json')).status).toBe(200);
    await closeServer(server);
    await mw.close();
    page.close();
    while (cleanups.length > 0) await cleanups.pop()!();
    // Closed handles leave the list once their close callbacks have run.
    await waitFor(() => liveHandles() <= before, { what: 'the handles to be closed' });
  });
});

describe('stats() and metrics()', () => {
  it('serve the page, its JSON relative to the mount, and Prometheus text', async () => {
    const list = await startBackends(2, cleanups);
    let page: ReturnType<typeof stats> | undefined;
    const { url } = await serve((app) => {
      const mw = proxy({ balancer: roundRobin(list) });
      page = stats({ web: mw.lb }, { title: 'edge-1' });
      app.use('/admin/fulcrum', page);
      app.use('/admin/metrics', metrics(mw.lb));
      app.use('/', mw);
      return mw;
    });
    cleanups.push(() => page?.close());
    await send(url, '/hello');

    const json = await send(url, '/admin/fulcrum?format=json');
    expect(json.status).toBe(200);
    expect(json.headers['content-type']).toMatch(/application\/json/);
    const data = JSON.parse(json.body) as { pools: Record<string, { backends: { id: string; requests: number }[] }> };
    expect(data.pools['web']!.backends.map((b) => b.id).sort()).toEqual(['b0', 'b1']);
    expect(data.pools['web']!.backends.reduce((sum, b) => sum + b.requests, 0)).toBe(1);

    const html = await send(url, '/admin/fulcrum');
    expect(html.headers['content-type']).toMatch(/text\/html/);
    expect(html.body).toContain('edge-1');

    const text = await send(url, '/admin/metrics');
    expect(text.headers['content-type']).toMatch(/version=0\.0\.4/);
    expect(text.body).toMatch(/fulcrum_backend_up\{pool="default",backend="b0"\} 1/);

    expect((await send(url, '/admin/fulcrum', { method: 'POST' })).status).toBe(405);
    // Nothing under the stats mount reached the proxy.
    expect(list[0]!.hits.length + list[1]!.hits.length).toBe(1);
  });
});
