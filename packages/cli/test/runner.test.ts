import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startFulcrum, type FulcrumInstance } from '../src';
import { SECRET, TOKEN, get, roundRobin, startBackend, until } from './helpers';

const quiet = (): void => undefined;
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

type Backend = Awaited<ReturnType<typeof startBackend>>;

async function backends(n: number): Promise<[Backend, Backend, Backend]> {
  const list = await Promise.all(Array.from({ length: n }, (_, i) => startBackend(`b${i + 1}`)));
  for (const b of list) cleanups.push(() => b.close());
  return list as [Backend, Backend, Backend];
}

async function start(config: unknown, logs?: string[]): Promise<FulcrumInstance & { port: number }> {
  const instance = await startFulcrum(config, { logger: logs ? (level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields ?? {})}`) : quiet });
  cleanups.push(() => instance.close(1000));
  return Object.assign(instance, { port: instance.addresses().frontends[0]!.port });
}

function cookieOf(reply: { headers: Record<string, string | string[] | undefined> }): string {
  const set = reply.headers['set-cookie'];
  const first = Array.isArray(set) ? set[0]! : set!;
  return first.split(';')[0]!;
}

describe('startFulcrum: reload', () => {
  it('keeps health state and sticky clients of unchanged backends, and drains removed ones', async () => {
    const [b1, b2, b3] = await backends(3);
    const pool = (ids: (typeof b1)[]) => ({
      algorithm: 'round-robin',
      backends: ids.map((b, i) => ({ id: `b${[b1, b2, b3].indexOf(b) + 1}`, address: b.url, ...(i === 0 ? {} : {}) })),
      health: { path: '/health', intervalMs: 50, fastIntervalMs: 50, downIntervalMs: 50, rise: 1, fall: 1, timeoutMs: 500 },
      stickiness: { cookie: { secrets: [SECRET] } },
    });
    const config = (ids: (typeof b1)[]) => ({ frontends: [{ port: 0, host: '127.0.0.1' }], pools: { web: pool(ids) } });
    const fulcrum = await start(config([b1, b2]));
    b2.setSick(true);
    await until(() => fulcrum.pool('web')!.get('b2')!.state === 'down', 'b2 down');
    const first = await get(fulcrum.port, '/');
    expect(first.body).toBe('b1');
    const cookie = cookieOf(first);
    const b1Object = fulcrum.pool('web')!.get('b1');
    const lb = fulcrum.pool('web');

    await fulcrum.reload(config([b1, b2, b3]));
    expect(fulcrum.pool('web')).toBe(lb);
    expect(fulcrum.pool('web')!.get('b1')).toBe(b1Object);
    // b2 is still known to be down: no new probe had to fail first.
    expect(fulcrum.pool('web')!.get('b2')!.state).toBe('down');
    for (let i = 0; i < 4; i++) expect((await get(fulcrum.port, '/', { headers: { cookie } })).body).toBe('b1');

    await fulcrum.reload(config([b1, b3]));
    expect(fulcrum.pool('web')!.get('b2')).toBeUndefined();
    expect((await get(fulcrum.port, '/', { headers: { cookie } })).body).toBe('b1');
  });

  it('keeps the stick-table of header stickiness across a reload', async () => {
    const [b1, b2] = await backends(2);
    const config = (title: string) => ({
      frontends: [{ port: 0, host: '127.0.0.1', stats: true }],
      pools: {
        web: {
          ...roundRobin({ b1: b1.url, b2: b2.url }),
          stickiness: { header: 'x-user' },
        },
      },
      stats: { path: '/fulcrum', title },
    });
    const fulcrum = await start(config('before'));
    const as = (user: string) => get(fulcrum.port, '/', { headers: { 'x-user': user } });
    const alice = (await as('alice')).body;
    await fulcrum.reload(config('after'));
    // Newcomers take round-robin turns until the next turn is not alice's backend: a lost table
    // would then send her elsewhere.
    for (let i = 0; (await as(`newcomer-${i}`)).body !== alice; i++) expect(i).toBeLessThan(4);
    for (let i = 0; i < 3; i++) expect((await as('alice')).body).toBe(alice);
  });

  it('keeps running the old config when the new one is invalid', async () => {
    const [b1] = await backends(1);
    const fulcrum = await start({ frontends: [{ port: 0, host: '127.0.0.1' }], pools: { web: { backends: [{ id: 'b1', address: b1.url }] } } });
    await expect(
      fulcrum.reload({ frontends: [{ port: 0, host: '127.0.0.1' }], pools: { web: { backends: [{ id: 'b1', address: b1.url, weight: 'x' }] } } }),
    ).rejects.toThrow('pools.web.backends[0].weight: must be 0 or a finite number ≥ 0.01 and ≤ 1000000 (0 = no new unsticky traffic), got "x"');
    expect((await get(fulcrum.port, '/')).body).toBe('b1');
  });

  it('reloads from the file when it changes and logs a rejected edit', async () => {
    const [b1, b2] = await backends(2);
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-watch-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'fulcrum.json');
    const write = (address: string, weight: unknown = 1) =>
      writeFileSync(file, JSON.stringify({ frontends: [{ port: 0, host: '127.0.0.1' }], pools: { web: { backends: [{ id: 'one', address, weight }] } } }));
    write(b1.url);
    const logs: string[] = [];
    const instance = await startFulcrum(JSON.parse(readFileSync(file, 'utf8')), {
      configFile: file,
      watchDebounceMs: 30,
      logger: (l, m, f) => logs.push(`${l} ${m} ${JSON.stringify(f ?? {})}`),
    });
    cleanups.push(() => instance.close(1000));
    const port = instance.addresses().frontends[0]!.port;
    write(b1.url, 'heavy');
    await until(() => logs.some((l) => l.includes('config reload rejected')), 'the rejected reload');
    expect(logs.find((l) => l.includes('rejected'))).toContain('pools.web.backends[0].weight');
    expect((await get(port, '/')).body).toBe('b1');
    write(b2.url);
    await until(async () => (await get(port, '/')).body === 'b2', 'the new backend');
  });
});

describe('startFulcrum: admin API', () => {
  async function withAdmin() {
    const [b1, b2] = await backends(2);
    const fulcrum = await start({
      frontends: [{ port: 0, host: '127.0.0.1' }],
      pools: {
        blue: roundRobin({ b1: b1.url, b2: b2.url }),
        green: { backends: [{ id: 'g1', address: b2.url }] },
      },
      routes: [
        {
          name: 'main',
          split: [
            { pool: 'blue', weight: 100 },
            { pool: 'green', weight: 0 },
          ],
        },
      ],
      split: { cookie: false },
      admin: { port: 0, host: '127.0.0.1', token: TOKEN },
    });
    const admin = fulcrum.addresses().admin!.port;
    const call = (method: string, path: string, body?: unknown, token = TOKEN) =>
      get(admin, path, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    return { fulcrum, call, admin };
  }

  it('answers 401 without a token and with a wrong one', async () => {
    const { admin, call } = await withAdmin();
    const none = await get(admin, '/state');
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toContain('Bearer');
    expect((await call('GET', '/state', undefined, `${TOKEN}x`)).status).toBe(401);
    expect((await call('POST', '/pools/blue/backends/b1/drain', undefined, 'wrong')).status).toBe(401);
  });

  it('lists state, drains, sets weights, adds and removes backends, and changes a split', async () => {
    const { fulcrum, call } = await withAdmin();
    const state = JSON.parse((await call('GET', '/state')).body);
    expect(Object.keys(state.pools)).toEqual(['blue', 'green']);
    expect(state.splits.main).toEqual({ blue: 100, green: 0 });

    expect(JSON.parse((await call('POST', '/pools/blue/backends/b1/drain')).body)).toEqual({ id: 'b1', state: 'draining' });
    for (let i = 0; i < 3; i++) expect((await get(fulcrum.port, '/')).body).toBe('b2');
    expect(JSON.parse((await call('POST', '/pools/blue/backends/b1/maintenance')).body).state).toBe('maintenance');
    expect(JSON.parse((await call('POST', '/pools/blue/backends/b1/ready')).body).state).toBe('up');
    expect((await call('PUT', '/pools/blue/backends/b1/weight', { weight: 5 })).status).toBe(200);
    expect(fulcrum.pool('blue')!.get('b1')!.weight).toBe(5);
    const badWeight = await call('PUT', '/pools/blue/backends/b1/weight', { weight: -1 });
    expect(badWeight.status).toBe(400);
    expect(JSON.parse(badWeight.body).error).toContain('weight');

    expect((await call('POST', '/pools/blue/backends', { id: 'b3', address: 'http://127.0.0.1:1' })).status).toBe(201);
    expect(fulcrum.pool('blue')!.get('b3')).toBeDefined();
    expect((await call('DELETE', '/pools/blue/backends/b3')).status).toBe(202);
    await until(() => fulcrum.pool('blue')!.get('b3') === undefined, 'b3 removed');
    expect((await call('DELETE', '/pools/blue/backends/b3')).status).toBe(404);
    expect((await call('POST', '/pools/nope/backends/b1/drain')).status).toBe(404);

    expect((await call('PUT', '/routes/main/split', { blue: 0, green: 100 })).status).toBe(200);
    expect((await get(fulcrum.port, '/')).body).toBe('b2');
    expect(fulcrum.pool('green')!.get('g1')!.requests).toBe(1);
  });

  it('serves the admin API under a path of the frontends when it has no port', async () => {
    const [b1] = await backends(1);
    const fulcrum = await start({
      frontends: [{ port: 0, host: '127.0.0.1' }],
      pools: { web: { backends: [{ id: 'b1', address: b1.url }] } },
      admin: { path: '/_admin', token: TOKEN },
    });
    expect((await get(fulcrum.port, '/_admin/state')).status).toBe(401);
    expect((await get(fulcrum.port, '/_admin/state', { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    expect((await get(fulcrum.port, '/_adminx')).body).toBe('b1');
  });
});

describe('startFulcrum: the stats page and the admin API', () => {
  it('gives the stats page the admin path when the API is under a path, and no admin controls when it has its own port', async () => {
    const [b1] = await backends(1);
    const config = (admin: object) => ({
      frontends: [{ port: 0, host: '127.0.0.1', stats: true }],
      pools: { web: { backends: [{ id: 'b1', address: b1.url }] } },
      stats: { path: '/fulcrum' },
      admin: { token: TOKEN, ...admin },
    });
    const fulcrum = await start(config({ path: '/fulcrum/admin' }));
    expect((await get(fulcrum.port, '/fulcrum')).body).toContain('data-admin-path="/fulcrum/admin"');
    // The admin API under the stats path is the API, not the page.
    expect((await get(fulcrum.port, '/fulcrum/admin/state')).status).toBe(401);
    await fulcrum.reload(config({ port: 0, host: '127.0.0.1' }));
    const page = (await get(fulcrum.port, '/fulcrum')).body;
    expect(page).toContain('<body data-refresh-ms="1000">');
    expect(page).not.toContain(TOKEN);
  });
});

describe('startFulcrum: access logs and rate limits', () => {
  it('writes one JSON line per request for success, retry, failure and rate-limited requests', async () => {
    const [b1] = await backends(1);
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-log-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'access.log');
    const fulcrum = await start({
      frontends: [{ port: 0, host: '127.0.0.1' }],
      pools: {
        web: {
          algorithm: 'first',
          backends: [
            { id: 'dead', address: 'http://127.0.0.1:1' },
            { id: 'b1', address: b1.url },
          ],
        },
        broken: { backends: [{ id: 'gone', address: 'http://127.0.0.1:1' }], attempts: 1 },
      },
      routes: [
        { match: { pathPrefix: '/broken' }, pool: 'broken' },
        { match: { pathPrefix: '/limited' }, pool: 'web', rateLimit: { requests: 1, windowMs: 60_000 } },
        { pool: 'web' },
      ],
      accessLog: { path, flushMs: 10 },
    });
    expect((await get(fulcrum.port, '/ok')).status).toBe(200);
    expect((await get(fulcrum.port, '/broken')).status).toBe(502);
    expect((await get(fulcrum.port, '/limited')).status).toBe(200);
    const limited = await get(fulcrum.port, '/limited');
    expect(limited.status).toBe(429);
    expect(limited.headers['retry-after']).toBe('60');
    await until(() => readFileSync(path, 'utf8').split('\n').filter(Boolean).length >= 4, 'four log lines');
    const lines = readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const byPath = (p: string) => lines.filter((l) => l.path === p);
    // The 'first' algorithm tries the dead backend first: a connect failure, retried on b1.
    expect(byPath('/ok')[0]).toMatchObject({ level: 30, msg: 'request', status: 200, pool: 'web', backendId: 'b1', attempts: 2, termination: 'ok' });
    expect(typeof byPath('/ok')[0].time).toBe('number');
    expect(byPath('/broken')[0]).toMatchObject({ level: 50, status: 502, pool: 'broken', backendId: 'gone', attempts: 1, termination: 'upstream-failed' });
    expect(byPath('/limited')[1]).toMatchObject({ level: 40, status: 429, attempts: 0, termination: 'denied' });
  });

  it('counts concurrent requests per client and refuses those over the limit', async () => {
    const [b1] = await backends(1);
    const fulcrum = await start({
      frontends: [{ port: 0, host: '127.0.0.1' }],
      pools: { web: { backends: [{ id: 'b1', address: b1.url }], rateLimit: { concurrent: 3 } } },
    });
    const replies = await Promise.all(Array.from({ length: 8 }, () => get(fulcrum.port, '/slow')));
    const statuses = replies.map((r) => r.status).sort();
    expect(statuses.filter((s) => s === 200)).toHaveLength(3);
    expect(statuses.filter((s) => s === 429)).toHaveLength(5);
    // Every admitted request gave its slot back: the next ones get in again.
    const after = await Promise.all(Array.from({ length: 3 }, () => get(fulcrum.port, '/slow')));
    expect(after.map((r) => r.status)).toEqual([200, 200, 200]);
  });

  it('stops accepting on close and finishes the requests in flight', async () => {
    const [b1] = await backends(1);
    const fulcrum = await startFulcrum(
      { frontends: [{ port: 0, host: '127.0.0.1' }], pools: { web: { backends: [{ id: 'b1', address: b1.url }] } } },
      { logger: quiet },
    );
    const port = fulcrum.addresses().frontends[0]!.port;
    const inflight = get(port, '/slow');
    await until(() => b1.hits === 1, 'the request to reach the backend');
    const closed = fulcrum.close(5000);
    expect((await inflight).body).toBe('b1');
    await closed;
    await expect(get(port, '/')).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('startFulcrum: paths and cookies behind a TLS-terminating proxy', () => {
  it('answers 404 to an encoded dot segment by default and forwards it only with encodedDotSegments "pass"', async () => {
    const [b1] = await backends(1);
    const config = (encodedDotSegments?: 'pass') => ({
      frontends: [{ port: 0, host: '127.0.0.1' }],
      pools: { web: { backends: [{ id: 'b1', address: b1.url }] } },
      routes: [{ match: { pathPrefix: '/public' }, pool: 'web' }],
      ...(encodedDotSegments === undefined ? {} : { encodedDotSegments }),
    });
    const fulcrum = await start(config());
    expect((await get(fulcrum.port, '/public/ok')).status).toBe(200);
    const hits = b1.hits;
    for (const path of ['/public/..%2Fadmin', '/public/..%5Cadmin', '/public/..%3B/admin']) {
      expect((await get(fulcrum.port, path)).status).toBe(404);
    }
    expect(b1.hits).toBe(hits);
    await fulcrum.reload(config('pass'));
    expect((await get(fulcrum.port, '/public/..%2Fadmin')).status).toBe(200);
    expect(b1.hits).toBe(hits + 1);
  });

  it('refuses an encodedDotSegments that is neither "reject" nor "pass", and one without routes', async () => {
    const [b1] = await backends(1);
    const pools = { web: { backends: [{ id: 'b1', address: b1.url }] } };
    await expect(
      startFulcrum({ frontends: [{ port: 0, host: '127.0.0.1' }], pools, routes: [{ pool: 'web' }], encodedDotSegments: 'maybe' }, { logger: quiet }),
    ).rejects.toThrow(/encodedDotSegments/);
    await expect(startFulcrum({ frontends: [{ port: 0, host: '127.0.0.1' }], pools, encodedDotSegments: 'pass' }, { logger: quiet })).rejects.toThrow(
      /encodedDotSegments.*routes/,
    );
  });

  it('marks the split cookie Secure when a trusted proxy says X-Forwarded-Proto: https, and only then', async () => {
    const [b1, b2] = await backends(2);
    const config = (trustedProxies?: string[]) => ({
      frontends: [{ port: 0, host: '127.0.0.1' }],
      pools: { blue: { backends: [{ id: 'b1', address: b1.url }] }, green: { backends: [{ id: 'b2', address: b2.url }] } },
      routes: [
        {
          name: 'main',
          split: [
            { pool: 'blue', weight: 50 },
            { pool: 'green', weight: 50 },
          ],
        },
      ],
      split: { cookie: { secrets: [SECRET] } },
      ...(trustedProxies === undefined ? {} : { trustedProxies }),
    });
    const splitCookie = (reply: { headers: Record<string, string | string[] | undefined> }): string => {
      const set = reply.headers['set-cookie'];
      const list = Array.isArray(set) ? set : set === undefined ? [] : [set];
      expect(list).toHaveLength(1);
      return list[0]!;
    };
    const https = { 'x-forwarded-proto': 'https' };
    // Untrusted peer: its claim counts for nothing.
    const fulcrum = await start(config());
    expect(splitCookie(await get(fulcrum.port, '/', { headers: https }))).not.toMatch(/;\s*Secure/i);
    // The same peer, trusted: Secure, and a plain-HTTP request from it still gets none.
    await fulcrum.reload(config(['127.0.0.1/32']));
    expect(splitCookie(await get(fulcrum.port, '/', { headers: https }))).toMatch(/;\s*Secure/i);
    expect(splitCookie(await get(fulcrum.port, '/', { headers: { 'x-forwarded-proto': 'http' } }))).not.toMatch(/;\s*Secure/i);
  });
});

describe('startFulcrum: engines', () => {
  it('serves frontends with the raw engine by default and with node:http when "engine": "node"', async () => {
    const [b1] = await backends(1);
    const fulcrum = await start({
      // Two hosts: frontends are keyed by host:port, and port 0 would make them one.
      frontends: [
        { port: 0, host: '127.0.0.1', metrics: true },
        { port: 0, host: '127.0.0.2', engine: 'node' },
      ],
      pools: { web: { backends: [{ id: 'b1', address: b1.url }] } },
      metrics: { path: '/metrics' },
    });
    const [raw, node] = fulcrum.addresses().frontends.map((a) => a.port) as [number, number];
    expect((await get(raw, '/')).status).toBe(200);
    expect((await get(node, '/', {}, '127.0.0.2')).status).toBe(200);
    // 101 header fields: over the limit of both engines (431), never a truncated head forwarded.
    const many: Record<string, string> = {};
    for (let i = 0; i < 101; i++) many[`x-field-${i}`] = 'v';
    expect((await get(raw, '/', { headers: many })).status).toBe(431);
    expect((await get(node, '/', { headers: many }, '127.0.0.2')).status).toBe(431);
    expect(b1.hits).toBe(2);
    // Fulcrum's own pages on a raw frontend are served by node:http on the same port.
    const metrics = await get(raw, '/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('fulcrum_');
  });

  it('applies each pool its own stickiness on both engines, through one proxy', async () => {
    const [a1, a2] = await backends(2);
    const [b1, b2] = await backends(2);
    const fulcrum = await start({
      frontends: [
        { port: 0, host: '127.0.0.1' },
        { port: 0, host: '127.0.0.2', engine: 'node' },
      ],
      pools: {
        a: {
          ...roundRobin({ a1: a1.url, a2: a2.url }),
          stickiness: { cookie: { name: 'srv_a', secrets: [SECRET] } },
        },
        b: {
          ...roundRobin({ b1: b1.url, b2: b2.url }),
          stickiness: { header: 'x-user' },
          attempts: 1,
        },
      },
      routes: [{ match: { pathPrefix: '/a' }, pool: 'a' }, { pool: 'b' }],
    });
    const [raw, node] = fulcrum.addresses().frontends.map((a) => a.port) as [number, number];
    for (const [port, host] of [
      [raw, '127.0.0.1'],
      [node, '127.0.0.2'],
    ] as const) {
      const first = await get(port, '/a', {}, host);
      const cookie = cookieOf(first);
      expect(cookie).toMatch(/^srv_a=/);
      for (let i = 0; i < 3; i++) expect((await get(port, '/a', { headers: { cookie } }, host)).body).toBe(first.body);
      // Pool b sets no cookie and keeps a user by header.
      const alice = await get(port, '/x', { headers: { 'x-user': `alice-${port}` } }, host);
      expect(alice.headers['set-cookie']).toBeUndefined();
      for (let i = 0; i < 3; i++) expect((await get(port, '/x', { headers: { 'x-user': `alice-${port}` } }, host)).body).toBe(alice.body);
    }
  });

  it('refuses an unknown engine with the path named', async () => {
    await expect(
      startFulcrum(
        { frontends: [{ port: 0, engine: 'fast' }], pools: { web: { backends: [{ id: 'b1', address: 'http://127.0.0.1:1' }] } } },
        { logger: quiet },
      ),
    ).rejects.toThrow(/^frontends\[0\]\.engine:/);
  });
});
