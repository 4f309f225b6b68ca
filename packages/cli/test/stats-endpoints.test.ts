// Where the standalone proxy serves its stats page and metrics (#19 item 8): off the public
// frontends unless one opts in, on the admin listener or one of their own, optionally behind a token
// or a password, and never holding up proxied traffic while a huge pool renders.
import { afterEach, describe, expect, it } from 'vitest';
import { isInvalidOptionError } from '@fulcrum/core';
import { startFulcrum, validateConfig, type FulcrumInstance } from '../src';
import { heldRequest, request } from '../../http/test/stats/http-client';
import { TOKEN, get, startBackend, until } from './helpers';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function backend(): Promise<Awaited<ReturnType<typeof startBackend>>> {
  const b = await startBackend('b1');
  cleanups.push(() => b.close());
  return b;
}

async function start(config: unknown): Promise<FulcrumInstance & { port: number }> {
  const instance = await startFulcrum(config, { logger: () => undefined });
  cleanups.push(() => instance.close(1000));
  return Object.assign(instance, { port: instance.addresses().frontends[0]!.port });
}

const PASSWORD = 'a-stats-password-1234';
const METRICS_TOKEN = 'metrics-token-0123456789';
const basic = (user: string, password: string): string => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('fulcrum: stats and metrics stay off the public frontends', () => {
  it('serves them on the admin listener by default, and proxies their paths on the frontends', async () => {
    const b1 = await backend();
    const fulcrum = await start({
      frontends: [{ port: 0, host: '127.0.0.1' }],
      pools: { web: { backends: [{ id: 'b1', address: b1.url }] } },
      stats: { path: '/fulcrum' },
      metrics: { path: '/metrics' },
      admin: { port: 0, host: '127.0.0.1', token: TOKEN },
    });
    // On the frontend these are ordinary paths of the application.
    expect((await get(fulcrum.port, '/fulcrum')).body).toBe('b1');
    expect((await get(fulcrum.port, '/fulcrum?format=json')).body).toBe('b1');
    expect((await get(fulcrum.port, '/metrics')).body).toBe('b1');
    const admin = fulcrum.addresses().admin!.port;
    expect(fulcrum.addresses().stats!.port).toBe(admin);
    expect(fulcrum.addresses().metrics!.port).toBe(admin);
    const page = await get(admin, '/fulcrum');
    expect(page.status).toBe(200);
    // Same origin as the admin API: the page's buttons call it at the root.
    expect(page.body).toContain('data-admin-path=""');
    expect(JSON.parse((await get(admin, '/fulcrum?format=json')).body).pools.web.backends[0].id).toBe('b1');
    expect((await get(admin, '/metrics')).body).toContain('fulcrum_backend_up{pool="web",backend="b1"} 1');
    // The admin API still answers on its listener, with its own token.
    expect((await get(admin, '/state')).status).toBe(401);
    expect((await get(admin, '/state', { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
  });

  it('serves them on a frontend only when it opts in, and on a listener of their own', async () => {
    const b1 = await backend();
    const fulcrum = await start({
      frontends: [
        { port: 0, host: '127.0.0.1', stats: true },
        { port: 0, host: '127.0.0.2' },
      ],
      pools: { web: { backends: [{ id: 'b1', address: b1.url }] } },
      stats: { path: '/fulcrum', port: 0 },
      metrics: { path: '/metrics', port: 0, host: '127.0.0.1' },
    });
    const [opted, plain] = fulcrum.addresses().frontends.map((a) => a.port) as [number, number];
    expect((await get(opted, '/fulcrum')).body).toContain('<!doctype html>');
    expect((await get(opted, '/metrics')).body).toBe('b1');
    expect((await request(`http://127.0.0.2:${plain}/fulcrum`)).body).toBe('b1');
    const own = fulcrum.addresses().stats!;
    expect(own.address).toBe('127.0.0.1');
    expect((await get(own.port, '/fulcrum')).status).toBe(200);
    expect((await get(own.port, '/anything')).status).toBe(404);
    expect((await get(fulcrum.addresses().metrics!.port, '/metrics')).body).toContain('fulcrum_pool_backends{pool="web"} 1');
    expect(fulcrum.addresses().admin).toBeUndefined();
  });

  it('asks for HTTP Basic credentials on the stats page and a bearer token on the metrics, wherever they are served', async () => {
    const b1 = await backend();
    const fulcrum = await startFulcrum(
      {
        frontends: [{ port: 0, host: '127.0.0.1', stats: true, metrics: true }],
        pools: { web: { backends: [{ id: 'b1', address: b1.url }] } },
        stats: { path: '/fulcrum', port: 0, auth: { username: 'ops', password: '$env:STATS_PASSWORD' } },
        metrics: { path: '/metrics', port: 0, auth: { token: METRICS_TOKEN } },
      },
      { logger: () => undefined, env: { STATS_PASSWORD: PASSWORD } },
    );
    cleanups.push(() => fulcrum.close(1000));
    const frontend = fulcrum.addresses().frontends[0]!.port;
    for (const port of [frontend, fulcrum.addresses().stats!.port]) {
      const none = await get(port, '/fulcrum?format=json');
      expect(none.status).toBe(401);
      expect(none.headers['www-authenticate']).toBe('Basic realm="fulcrum-stats", charset="UTF-8"');
      expect(none.body).not.toContain('b1');
      expect((await get(port, '/fulcrum', { headers: { authorization: basic('ops', `${PASSWORD}x`) } })).status).toBe(401);
      expect((await get(port, '/fulcrum', { headers: { authorization: basic('root', PASSWORD) } })).status).toBe(401);
      expect((await get(port, '/fulcrum', { headers: { authorization: `Bearer ${PASSWORD}` } })).status).toBe(401);
      expect((await get(port, '/fulcrum', { headers: { authorization: 'Basic %%%' } })).status).toBe(401);
      const ok = await get(port, '/fulcrum?format=json', { headers: { authorization: basic('ops', PASSWORD) } });
      expect(ok.status).toBe(200);
      expect(JSON.parse(ok.body).pools.web.backends[0].id).toBe('b1');
    }
    for (const port of [frontend, fulcrum.addresses().metrics!.port]) {
      const none = await get(port, '/metrics');
      expect(none.status).toBe(401);
      expect(none.headers['www-authenticate']).toBe('Bearer realm="fulcrum-metrics"');
      expect((await get(port, '/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN.slice(0, -1)}` } })).status).toBe(401);
      const ok = await get(port, '/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      expect(ok.body).toContain('fulcrum_backend_up{pool="web",backend="b1"} 1');
    }
    // Everything else on the frontend is still the application's.
    expect((await get(frontend, '/')).body).toBe('b1');
  });

  it('moves them between listeners on reload', async () => {
    const b1 = await backend();
    const config = (stats: object, frontendStats: boolean) => ({
      frontends: [{ port: 0, host: '127.0.0.1', stats: frontendStats }],
      pools: { web: { backends: [{ id: 'b1', address: b1.url }] } },
      stats: { path: '/fulcrum', ...stats },
    });
    const fulcrum = await start(config({}, true));
    expect((await get(fulcrum.port, '/fulcrum')).status).toBe(200);
    expect(fulcrum.addresses().stats).toBeUndefined();
    await fulcrum.reload(config({ port: 0 }, false));
    expect((await get(fulcrum.port, '/fulcrum')).body).toBe('b1');
    const own = fulcrum.addresses().stats!.port;
    expect((await get(own, '/fulcrum')).status).toBe(200);
    await fulcrum.reload(config({}, true));
    expect(fulcrum.addresses().stats).toBeUndefined();
    await expect(get(own, '/fulcrum')).rejects.toThrow(/ECONNREFUSED/);
  });
});

describe('fulcrum: where stats and metrics may be served (validation)', () => {
  const base = (extra: Record<string, unknown>, frontend: Record<string, unknown> = {}) => ({
    frontends: [{ port: 8080, ...frontend }],
    pools: { web: { backends: [] } },
    ...extra,
  });
  it.each([
    ['stats with nowhere to be served', base({ stats: { path: '/fulcrum' } }), 'stats', 'has no listener'],
    ['metrics with nowhere to be served', base({ metrics: { path: '/metrics' } }), 'metrics', 'has no listener'],
    ['a frontend opting in to stats that are not configured', base({}, { stats: true }), 'frontends[0].stats', 'needs the top-level "stats"'],
    ['a non-boolean opt-in', base({ stats: { path: '/s' } }, { stats: 'yes' }), 'frontends[0].stats', 'must be true or false'],
    ['stats on a frontend port', base({ stats: { path: '/s', port: 8080 } }), 'stats.port', 'must differ from frontends[0].port'],
    ['a host without a port', base({ stats: { path: '/s', host: '0.0.0.0' } }, { stats: true }), 'stats.host', 'needs "port"'],
    ['stats hiding the admin API', base({ stats: { path: '/pools' }, admin: { port: 9000, token: TOKEN } }), 'stats.path', 'must not hide the admin API'],
    [
      'metrics at the root of the admin listener',
      base({ metrics: { path: '/' }, admin: { port: 9000, token: TOKEN } }),
      'metrics.path',
      'must not hide the admin API',
    ],
    ['a short token', base({ metrics: { path: '/m', port: 9100, auth: { token: 'short' } } }), 'metrics.auth.token', 'at least 16 characters'],
    [
      'a user name with a colon',
      base({ stats: { path: '/s', port: 9100, auth: { username: 'a:b', password: PASSWORD } } }),
      'stats.auth.username',
      'without ":"',
    ],
    [
      'a token and a password',
      base({ stats: { path: '/s', port: 9100, auth: { token: METRICS_TOKEN, username: 'a', password: PASSWORD } } }),
      'stats.auth',
      'not both',
    ],
    ['stats on a redirect frontend', base({ stats: { path: '/s' } }, { stats: true, redirectToHttps: {} }), 'frontends[0].stats', 'redirectToHttps'],
  ])('refuses %s', (_what, config, path, message) => {
    let caught: unknown;
    try {
      validateConfig(config, { env: {} });
    } catch (error) {
      caught = error;
    }
    expect(isInvalidOptionError(caught)).toBe(true);
    expect((caught as { path: string }).path).toBe(path);
    expect((caught as Error).message).toContain(message);
  });

  it('never echoes a password or token in its error', () => {
    let caught: unknown;
    try {
      validateConfig(base({ stats: { path: '/s', port: 9100, auth: { username: 'ops', password: 'short-secret' } } }), { env: {} });
    } catch (error) {
      caught = error;
    }
    expect((caught as Error).message).not.toContain('short-secret');
  });
});

describe('fulcrum: a huge metrics render does not hold up proxied traffic', () => {
  it('completes a proxied request while a 40,000-backend pool is being rendered, and the render shows it', async () => {
    const b1 = await backend();
    const huge = Array.from({ length: 40_000 }, (_, i) => ({ id: `h${i}`, address: `http://10.${i >> 16}.${(i >> 8) & 255}.${i & 255}:8080` }));
    const fulcrum = await start({
      frontends: [{ port: 0, host: '127.0.0.1' }],
      // `huge` is listed first: every metric family renders its 40,000 samples before web's one.
      pools: { huge: { backends: huge }, web: { backends: [{ id: 'b1', address: b1.url }] } },
      routes: [{ pool: 'web' }],
      metrics: { path: '/metrics', port: 0 },
    });
    const metrics = await heldRequest(`http://127.0.0.1:${fulcrum.addresses().metrics!.port}/metrics`);
    expect(metrics.status).toBe(200);
    // The metrics client holds its stream after the first chunk: the render is in progress and
    // cannot finish. A proxied request gets through meanwhile.
    const proxied = await get(fulcrum.port, '/');
    expect(proxied.body).toBe('b1');
    await until(() => fulcrum.pool('web')!.get('b1')!.requests === 1, 'the proxied request to be counted');
    const text = await metrics.resume();
    // requests_total comes after ~17 MB of the huge pool's samples: rendered after the proxied
    // request completed. A render made in one step before it (the old way) would say 0.
    expect(text).toContain('\nfulcrum_backend_requests_total{pool="web",backend="b1"} 1\n');
    expect(text).toContain('\nfulcrum_backend_up{pool="huge",backend="h39999"} 1\n');
    expect(text).toContain('\nfulcrum_pool_panic{pool="web"} 0\n');
    // The traffic families follow, and the worker gauge ends a complete answer.
    expect(text).toContain('\nfulcrum_pool_requests_total{pool="web"} 1\n');
    expect(text.endsWith('fulcrum_workers 1\n')).toBe(true);
  }, 60_000);
});

describe('fulcrum: the stats and admin listeners bound slow clients', () => {
  it('closes a connection that never finishes its request head, after server.headersTimeoutMs', async () => {
    const b1 = await backend();
    const fulcrum = await start({
      frontends: [{ port: 0, host: '127.0.0.1' }],
      pools: { web: { backends: [{ id: 'b1', address: b1.url }] } },
      stats: { path: '/fulcrum', port: 0 },
      server: { headersTimeoutMs: 500, requestTimeoutMs: 1000 },
    });
    const { connect } = await import('node:net');
    const socket = connect(fulcrum.addresses().stats!.port, '127.0.0.1');
    const received: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => received.push(chunk));
    socket.on('error', () => undefined);
    await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
    // A slowloris: a request line and one header, then nothing.
    socket.write('GET /fulcrum HTTP/1.1\r\nhost: x\r\n');
    await new Promise<void>((resolve) => socket.once('close', () => resolve()));
    expect(Buffer.concat(received).toString('latin1')).toMatch(/^HTTP\/1\.1 408 /);
  });
});
