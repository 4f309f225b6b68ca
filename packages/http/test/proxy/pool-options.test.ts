// createRouter's per-pool proxy options (`PoolSpec`): each pool's stickiness, hashBy, retries and
// timeouts apply to the requests routed to it, under both engines, and a pool without options of
// its own keeps the proxy's.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { LoadBalancer, isInvalidOptionError } from '@fulcrum/core';
import { WebSocket, WebSocketServer } from 'ws';
import { createRouter, type ProxyOptions, type Router } from '@fulcrum/http';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ENGINES, closedPort, send, startBackend, startProxy, useEngine, type TestBackend, type TestProxy } from './helpers';

const SECRET = 'a-cookie-secret-of-at-least-32-bytes-long!!';
const cleanup: (() => unknown)[] = [];

afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function backend(id: string, handler?: Parameters<typeof startBackend>[1]): Promise<TestBackend> {
  const b = await startBackend(id, handler);
  cleanup.push(() => b.close());
  return b;
}

async function proxyWith(options: ProxyOptions): Promise<TestProxy> {
  const proxy = await startProxy(options);
  cleanup.push(() => proxy.close());
  return proxy;
}

function routerOf(pools: Parameters<typeof createRouter>[0]['pools']): Router {
  const router = createRouter({
    pools,
    routes: [
      { match: { pathPrefix: '/a' }, pool: 'a' },
      { match: { pathPrefix: '/b' }, pool: 'b' },
    ],
  });
  cleanup.push(() => router.close());
  return router;
}

const lbOf = (...backends: TestBackend[]) => {
  const lb = new LoadBalancer({ backends: backends.map((b) => ({ id: b.id, address: b.address })), algorithm: 'round-robin' });
  cleanup.push(() => lb.close());
  return lb;
};

describe('createRouter: per-pool options (validation)', () => {
  it('refuses an unknown key and a bad value of a pool, naming pools.<name>.<option>', () => {
    const lb = new LoadBalancer({ backends: [] });
    try {
      const attempt = (pool: Record<string, unknown>) => {
        try {
          createRouter({ pools: { a: { balancer: lb, ...pool } as never }, routes: [{ pool: 'a' }] }).close();
        } catch (error) {
          return error;
        }
        return undefined;
      };
      const unknown = attempt({ trustedProxies: ['10.0.0.0/8'] });
      expect(isInvalidOptionError(unknown) && (unknown as { path: string }).path).toBe('pools.a.trustedProxies');
      const bad = attempt({ timeouts: { connectMs: -1 } });
      expect(isInvalidOptionError(bad) && (bad as { path: string }).path).toBe('pools.a.timeouts.connectMs');
      const hash = attempt({ hashBy: 'nope' });
      expect(isInvalidOptionError(hash) && (hash as { path: string }).path).toBe('pools.a.hashBy');
      expect(attempt({ attempts: 2, stickiness: { header: 'x-user' } })).toBeUndefined();
    } finally {
      lb.close();
    }
  });
});

describe.each(ENGINES)('the %s engine', (engine) => {
  beforeAll(() => useEngine(engine));

  it('makes one pool sticky by cookie while the other is not', async () => {
    const [a1, a2, b1, b2] = [await backend('a1'), await backend('a2'), await backend('b1'), await backend('b2')];
    const router = routerOf({ a: { balancer: lbOf(a1, a2), stickiness: { cookie: { secrets: [SECRET], name: 'srv_a' } } }, b: lbOf(b1, b2) });
    const proxy = await proxyWith({ router });
    const first = await send(proxy.url, { path: '/a' });
    const cookie = String(first.headers['set-cookie']).split(';')[0]!;
    expect(cookie).toMatch(/^srv_a=/);
    for (let i = 0; i < 4; i++) expect((await send(proxy.url, { path: '/a', headers: { cookie } })).body).toBe(first.body);
    const pool = [await send(proxy.url, { path: '/b' }), await send(proxy.url, { path: '/b' })];
    expect(pool.map((r) => r.headers['set-cookie'])).toEqual([undefined, undefined]);
    expect(pool.map((r) => r.body).sort()).toEqual(['b1', 'b2']);
  });

  it('uses each pool its own hashBy, attempts and timeouts', async () => {
    const refused = await closedPort();
    const [a1, a2, b1] = [await backend('a1'), await backend('a2'), await backend('b1', (_req, res) => setTimeout(() => res.end('late'), 1500))];
    const dead = new LoadBalancer({
      backends: [
        { id: 'dead', address: `http://127.0.0.1:${refused}` },
        { id: 'a1', address: a1.address },
        { id: 'a2', address: a2.address },
      ],
      algorithm: 'ring-hash',
    });
    cleanup.push(() => dead.close());
    const router = routerOf({
      // Pool a: a header decides the backend, and one attempt only: a key on the dead backend fails.
      a: { balancer: dead, hashBy: { header: 'x-user' }, attempts: 1 },
      // Pool b: a response head later than 100 ms is a 504 here (undici's timers tick every 500 ms or
      // so, hence the backend's 1.5 s), while the proxy's default is 60 s.
      b: { balancer: lbOf(b1), timeouts: { headersMs: 100 }, attempts: 1 },
    });
    const proxy = await proxyWith({ router, attempts: 3 });
    const byUser = new Map<string, Set<string | number>>();
    for (let user = 0; user < 24; user++) {
      const seen = new Set<string | number>();
      for (let i = 0; i < 3; i++) {
        const reply = await send(proxy.url, { path: '/a', headers: { 'x-user': `u${user}` } });
        seen.add(reply.status === 200 ? reply.body : reply.status);
      }
      byUser.set(`u${user}`, seen);
    }
    // The same key always reaches the same place, and with one attempt the dead backend's keys fail.
    expect([...byUser.values()].every((seen) => seen.size === 1)).toBe(true);
    const outcomes = new Set([...byUser.values()].map((seen) => [...seen][0]));
    expect(outcomes.has(502)).toBe(true);
    expect(outcomes.has('a1') || outcomes.has('a2')).toBe(true);
    expect((await send(proxy.url, { path: '/b' })).status).toBe(504);
  });

  it("routes a WebSocket upgrade to its pool's engine: its hashBy picks the backend, the route's rewrite holds", async () => {
    const names: string[] = [];
    const ports: number[] = [];
    for (const name of ['w1', 'w2']) {
      const server = createServer();
      const wss = new WebSocketServer({ server });
      wss.on('connection', (socket, req) => socket.send(`${name} ${req.url}`));
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      cleanup.push(() => new Promise<void>((resolve) => (wss.close(), server.closeAllConnections(), server.close(() => resolve()))));
      names.push(name);
      ports.push((server.address() as AddressInfo).port);
    }
    const lb = new LoadBalancer({ backends: names.map((id, i) => ({ id, address: `http://127.0.0.1:${ports[i]}` })), algorithm: 'ring-hash' });
    cleanup.push(() => lb.close());
    const b1 = await backend('b1');
    const router = createRouter({
      pools: { live: { balancer: lb, hashBy: { header: 'x-room' } }, web: lbOf(b1) },
      routes: [{ match: { pathPrefix: '/live' }, pool: 'live', rewritePrefix: '/' }, { pool: 'web' }],
    });
    cleanup.push(() => router.close());
    const proxy = await proxyWith({ router });
    const hello = (room: string) =>
      new Promise<string>((resolve, reject) => {
        const client = new WebSocket(`ws://127.0.0.1:${proxy.port}/live/feed`, { headers: { 'x-room': room } });
        client.once('message', (data) => (resolve(data.toString()), client.close()));
        client.once('error', reject);
      });
    const byRoom = new Map<string, string>();
    for (let room = 0; room < 12; room++) byRoom.set(`r${room}`, await hello(`r${room}`));
    // The key decides: the same room again lands where it did, and both backends serve some rooms.
    for (const [room, first] of [...byRoom].slice(0, 4)) expect(await hello(room)).toBe(first);
    expect(new Set([...byRoom.values()])).toEqual(new Set(['w1 /feed', 'w2 /feed']));
  });

  it('keeps the proxy options for a pool without its own', async () => {
    const refused = await closedPort();
    const a1 = await backend('a1');
    const flaky = new LoadBalancer({
      backends: [
        { id: 'dead', address: `http://127.0.0.1:${refused}` },
        { id: 'a1', address: a1.address },
      ],
      algorithm: 'first',
    });
    cleanup.push(() => flaky.close());
    const b1 = await backend('b1');
    // Pool a inherits attempts: 3 from the proxy, so the refused first choice is retried on a1.
    const router = routerOf({ a: flaky, b: { balancer: lbOf(b1), attempts: 1 } });
    const proxy = await proxyWith({ router, attempts: 3 });
    expect((await send(proxy.url, { path: '/a' })).body).toBe('a1');
    expect((await send(proxy.url, { path: '/b' })).body).toBe('b1');
  });
});
