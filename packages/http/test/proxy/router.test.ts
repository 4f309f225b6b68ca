import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { createRouter, type AccessLogEntry } from '@fulcrum/http';
import { useEngine, ENGINES, send, startBackend, startProxy, type TestBackend } from './helpers';

const SECRET = 'another-test-secret-long-enough-0123456789';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function backend(id: string): Promise<TestBackend> {
  const b = await startBackend(id, (req, res) => res.end(`${id} ${req.url}`));
  cleanups.push(() => b.close());
  return b;
}

describe.each(ENGINES)('the %s engine', (engine) => {
  beforeAll(() => useEngine(engine));

  describe('createProxy with a router', () => {
    it('routes by host and path prefix, rewrites the prefix, and answers 404 when nothing matches', async () => {
      const [web, api, admin] = [await backend('web'), await backend('api'), await backend('admin')];
      const router = createRouter({
        pools: {
          web: { backends: [{ id: 'web', address: web.address }] },
          api: { backends: [{ id: 'api', address: api.address }] },
          admin: { backends: [{ id: 'admin', address: admin.address }] },
        },
        routes: [
          { match: { host: 'admin.example.com' }, pool: 'admin' },
          { match: { pathPrefix: '/api' }, pool: 'api', rewritePrefix: '/' },
          { match: { host: '*.example.com' }, pool: 'web' },
        ],
      });
      const log: AccessLogEntry[] = [];
      const p = await startProxy({ router, accessLog: (e) => log.push(e) });
      cleanups.push(async () => {
        await p.close();
        await router.close();
      });
      expect((await send(p.url, { path: '/api/users?x=1', headers: { host: 'www.example.com' } })).body).toBe('api /users?x=1');
      expect((await send(p.url, { path: '/apix', headers: { host: 'www.example.com' } })).body).toBe('web /apix');
      expect((await send(p.url, { path: '/', headers: { host: 'ADMIN.example.com:8080' } })).body).toBe('admin /');
      const miss = await send(p.url, { path: '/', headers: { host: 'evilexample.com' } });
      expect(miss.status).toBe(404);
      expect(miss.body).toBe('Not Found\n');
      const bare = await send(p.url, { path: '/', headers: { host: 'example.com' } });
      expect(bare.status).toBe(404);
      expect(log.map((e) => `${e.pool}:${e.termination}`)).toEqual(['api:ok', 'web:ok', 'admin:ok', ':not-found', ':not-found']);
      expect(p.proxy.pools.size).toBe(3);
    });

    it('forwards no /public/..%5Cadmin, ..%2F or ..%3B request to any pool, and passes them only when configured', async () => {
      const seen: string[] = [];
      const b = await startBackend('pub', (req, res) => {
        seen.push(req.url!);
        res.end(`pub ${req.url}`);
      });
      cleanups.push(() => b.close());
      const routes = [{ match: { pathPrefix: '/public' }, pool: 'pub' }, { pool: 'pub' }];
      const pools = { pub: { backends: [{ id: 'pub', address: b.address }] } };
      const strict = createRouter({ pools, routes });
      const p = await startProxy({ router: strict });
      cleanups.push(async () => {
        await p.close();
        strict.close();
      });
      for (const path of ['/public/..%5Cadmin', '/public/..%2Fadmin', '/public/..%3B/admin', '/public/%2e%2e%5Cadmin']) {
        const reply = await send(p.url, { path });
        expect(reply.status, path).toBe(404);
      }
      expect(seen).toEqual([]);
      expect((await send(p.url, { path: '/public/a%2Fb' })).body).toBe('pub /public/a%2Fb');

      const lenient = createRouter({ pools, routes, encodedDotSegments: 'pass' });
      const q = await startProxy({ router: lenient });
      cleanups.push(async () => {
        await q.close();
        lenient.close();
      });
      expect((await send(q.url, { path: '/public/..%5Cadmin' })).body).toBe('pub /public/..%5Cadmin');
      expect(seen).toEqual(['/public/a%2Fb', '/public/..%5Cadmin']);
    });

    it('keeps a client on its side of a canary split and moves everyone on a rollback', async () => {
      const [blue, green] = [await backend('blue'), await backend('green')];
      const router = createRouter({
        pools: { blue: { backends: [{ id: 'blue', address: blue.address }] }, green: { backends: [{ id: 'green', address: green.address }] } },
        routes: [
          {
            name: 'site',
            split: [
              { pool: 'blue', weight: 50 },
              { pool: 'green', weight: 50 },
            ],
          },
        ],
        split: { cookie: { secrets: [SECRET] } },
      });
      const p = await startProxy({ router });
      cleanups.push(async () => {
        await p.close();
        await router.close();
      });
      const seen = new Set<string>();
      for (let client = 0; client < 12; client++) {
        const first = await send(p.url);
        const side = first.body.split(' ')[0]!;
        seen.add(side);
        const cookie = String(first.headers['set-cookie']).split(';')[0]!;
        for (let i = 0; i < 4; i++) expect((await send(p.url, { headers: { cookie } })).body.split(' ')[0]).toBe(side);
      }
      expect(seen).toEqual(new Set(['blue', 'green']));
      router.setSplit('site', [
        { pool: 'blue', weight: 100 },
        { pool: 'green', weight: 0 },
      ]);
      for (let client = 0; client < 6; client++) expect((await send(p.url)).body.split(' ')[0]).toBe('blue');
    });

    it('routes WebSocket upgrades like requests', async () => {
      const server = createServer();
      const wss = new WebSocketServer({ server });
      wss.on('connection', (socket, req) => socket.send(`hello from ${req.url}`));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      cleanups.push(
        () =>
          new Promise<void>((resolve) => {
            wss.close();
            server.closeAllConnections();
            server.close(() => resolve());
          }),
      );
      const port = (server.address() as AddressInfo).port;
      const router = createRouter({
        pools: { ws: { backends: [{ id: 'ws', address: `http://127.0.0.1:${port}` }] } },
        routes: [{ match: { pathPrefix: '/live' }, pool: 'ws', rewritePrefix: '/' }],
      });
      const p = await startProxy({ router });
      cleanups.push(async () => {
        await p.close();
        await router.close();
      });
      const client = new WebSocket(`ws://127.0.0.1:${p.port}/live/feed`);
      const message = await new Promise<string>((resolve, reject) => {
        client.once('message', (data) => resolve(data.toString()));
        client.once('error', reject);
      });
      expect(message).toBe('hello from /feed');
      client.close();
      const missing = new WebSocket(`ws://127.0.0.1:${p.port}/other`);
      const status = await new Promise<number>((resolve) => {
        missing.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        missing.once('error', () => resolve(-1));
      });
      expect(status).toBe(404);
    });

    it('refuses a router together with a balancer', async () => {
      const router = createRouter({ pools: { a: { backends: [] } }, routes: [{ pool: 'a' }] });
      cleanups.push(async () => router.close());
      const { createProxy } = await import('@fulcrum/http');
      expect(() => createProxy({ router, balancer: { backends: [] } })).toThrow(/^router:/);
    });
  });
});
