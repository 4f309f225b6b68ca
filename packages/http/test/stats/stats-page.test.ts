import { createLoadBalancer, isInvalidOptionError } from '@fulcrum/core';
import type { LoadBalancer } from '@fulcrum/core';
import { FakeClock } from '@fulcrum/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { statsPage } from '../../src/stats';
import type { StatsHandler, StatsJson, StatsPageOptions } from '../../src/stats';
import { heldRequest, request, serve } from './http-client';
import { DURATION_BOUNDS_MS, trafficOf } from '../../src/stats/traffic';
import type { TestServer } from './http-client';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function pool(name: string, ids: string[], clock = new FakeClock(1_700_000_000_000)): LoadBalancer {
  const lb = createLoadBalancer({
    name,
    clock,
    algorithm: 'round-robin',
    backends: ids.map((id, i) => ({ id, address: i < 254 ? `http://10.0.0.${i + 1}:8080` : `http://10.1.${i >> 8}.${i & 255}:8080` })),
  });
  cleanups.push(() => lb.close());
  return lb;
}

async function mount(stats: StatsHandler): Promise<TestServer> {
  const server = await serve((req, res) => stats(req, res));
  cleanups.push(
    () => server.close(),
    () => stats.close(),
  );
  return server;
}

describe('statsPage JSON', () => {
  it('returns every pool snapshot and the recent transitions at ?format=json', async () => {
    const web = pool('web', ['b1', 'b2']);
    const api = pool('api', ['a1']);
    const stats = statsPage({ web, api });
    const server = await mount(stats);
    web.maintain('b1');
    web.acquire()?.release({ ok: true, durationMs: 5 });

    const reply = await request(`${server.url}/?format=json`);
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('application/json; charset=utf-8');
    expect(reply.headers['cache-control']).toBe('no-store');
    const data = JSON.parse(reply.body) as StatsJson;
    expect(Object.keys(data.pools)).toEqual(['web', 'api']);
    expect(data.pools.web).toEqual(JSON.parse(JSON.stringify(web.snapshot())));
    expect(data.pools.web?.backends.map((b) => [b.id, b.state, b.requests])).toEqual([
      ['b1', 'maintenance', 0],
      ['b2', 'up', 1],
    ]);
    expect(data.events).toEqual([{ seq: 1, at: 1_700_000_000_000, pool: 'web', type: 'state', backend: 'b1', from: 'up', to: 'maintenance', cause: 'admin' }]);
  });

  it('shows a single load balancer under its own name', async () => {
    const server = await mount(statsPage(pool('edge', ['e1'])));
    const data = JSON.parse((await request(`${server.url}/stats?format=json&x=1`)).body) as StatsJson;
    expect(Object.keys(data.pools)).toEqual(['edge']);
  });

  it('records state, ejection, restore, add, remove and panic events', async () => {
    const clock = new FakeClock(1000);
    const lb = createLoadBalancer({
      name: 'web',
      clock,
      panicThreshold: 0.5,
      outlier: { consecutiveFailures: 1, baseEjectionMs: 5000, intervalMs: 1000 },
      backends: [
        { id: 'b1', address: 'http://10.0.0.1:80' },
        { id: 'b2', address: 'http://10.0.0.2:80' },
      ],
    });
    cleanups.push(() => lb.close());
    const server = await mount(statsPage(lb));
    lb.add({ id: 'b3', address: 'http://10.0.0.3:80' });
    const lease = lb.acquire({ exclude: ['b2', 'b3'] });
    expect(lease?.backend.id).toBe('b1');
    lease?.release({ ok: false, error: 'reset' });
    lb.maintain('b2');
    lb.maintain('b3');
    await clock.advance(6000);
    await lb.remove('b3');
    const events = (JSON.parse((await request(`${server.url}/?format=json`)).body) as StatsJson).events;
    const types = events.map((e) => e.type);
    expect(types).toContain('added');
    expect(types).toContain('ejected');
    expect(types).toContain('restored');
    expect(types).toContain('removed');
    expect(types).toContain('panic');
    expect(events.map((e) => e.seq)).toEqual(events.map((_e, i) => i + 1));
    const ejected = events.find((e) => e.type === 'ejected');
    expect(ejected).toMatchObject({ pool: 'web', backend: 'b1', cause: 'consecutive-failures', at: 1000, until: 6000 });
  });

  it('keeps only the last historySize transitions, oldest first', async () => {
    const lb = pool('web', ['b1']);
    const server = await mount(statsPage(lb, { historySize: 3 }));
    for (let i = 0; i < 4; i += 1) {
      lb.maintain('b1');
      lb.ready('b1');
    }
    const events = (JSON.parse((await request(`${server.url}/?format=json`)).body) as StatsJson).events;
    expect(events.map((e) => e.seq)).toEqual([6, 7, 8]);
    expect(events.map((e) => (e.type === 'state' ? e.to : e.type))).toEqual(['up', 'maintenance', 'up']);
  });

  it('stops listening to the load balancers on close()', async () => {
    const lb = pool('web', ['b1']);
    // The traffic counters listen for the load balancer's whole life (a proxy records into them
    // too); the page's own transitions log is what close() ends.
    trafficOf(lb);
    const events = ['state', 'ejected', 'restored', 'added', 'removed', 'panic'] as const;
    const before = events.map((event) => lb.listenerCount(event));
    const stats = statsPage(lb);
    expect(lb.listenerCount('state')).toBe(before[0]! + 1);
    stats.close();
    expect(events.map((event) => lb.listenerCount(event))).toEqual(before);
    const server = await mount(stats);
    lb.maintain('b1');
    const data = JSON.parse((await request(`${server.url}/?format=json`)).body) as StatsJson;
    expect(data.events).toEqual([]);
    expect(data.pools.web?.backends[0]?.state).toBe('maintenance');
  });

  it('treats a pool named __proto__ as a pool like any other', async () => {
    const server = await mount(statsPage({ ['__proto__']: pool('p', ['b1']), web: pool('web', ['w1']) } as unknown as Record<string, LoadBalancer>));
    const data = JSON.parse((await request(`${server.url}/?format=json`)).body) as StatsJson;
    expect(Object.keys(data.pools).sort()).toEqual(['__proto__', 'web'].sort());
  });
});

describe('statsPage HTML', () => {
  it('serves a self-contained page with a strict CSP and an escaped title', async () => {
    const server = await mount(statsPage(pool('web', ['b1']), { title: '</title><script>alert(1)</script>', refreshMs: 2500 }));
    const reply = await request(`${server.url}/fulcrum`);
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('text/html; charset=utf-8');
    const csp = reply.headers['content-security-policy'] ?? '';
    expect(csp).toContain("default-src 'none'");
    expect(csp).toMatch(/script-src 'sha256-[A-Za-z0-9+/=]+'/);
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).toContain("connect-src 'self'");
    expect(reply.headers['x-content-type-options']).toBe('nosniff');
    expect(reply.body).toContain('<title>&#60;/title&#62;&#60;script&#62;alert(1)&#60;/script&#62;</title>');
    expect(reply.body).not.toContain('<script>alert(1)');
    expect(reply.body).toContain('data-refresh-ms="2500"');
    // No external assets: no src= or href= except the empty data: favicon.
    expect(reply.body.match(/\b(?:src|href)=/g)).toEqual(['href=']);
    expect(reply.body).toContain('<link rel="icon" href="data:,">');
  });

  it('carries the admin path for the admin controls, and nothing of it without the option', async () => {
    const plain = await mount(statsPage(pool('web', ['b1'])));
    const plainPage = (await request(`${plain.url}/`)).body;
    expect(plainPage).toContain('<body data-refresh-ms="1000">');
    const withAdmin = await mount(statsPage(pool('web', ['b1']), { admin: { path: '/fulcrum/admin/' } }));
    const reply = await request(`${withAdmin.url}/`);
    expect(reply.body).toContain('<body data-refresh-ms="1000" data-admin-path="/fulcrum/admin">');
    // One script for both pages: the admin controls do not loosen the policy.
    expect(reply.headers['content-security-policy']).toBe((await request(`${plain.url}/`)).headers['content-security-policy']);
    expect(reply.headers['content-security-policy']).toContain("connect-src 'self'");
    const root = await mount(statsPage(pool('web', ['b1']), { admin: { path: '/' } }));
    expect((await request(`${root.url}/`)).body).toContain('data-admin-path=""');
  });

  it('answers HEAD with the headers only, and other methods with 405', async () => {
    const server = await mount(statsPage(pool('web', ['b1'])));
    const get = await request(`${server.url}/`);
    const head = await request(`${server.url}/`, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(get.body)));
    for (const method of ['POST', 'PUT', 'DELETE']) {
      const reply = await request(`${server.url}/?format=json`, method);
      expect(reply.status).toBe(405);
      expect(reply.headers.allow).toBe('GET, HEAD');
    }
  });

  it('refuses an unknown format with 400', async () => {
    const server = await mount(statsPage(pool('web', ['b1'])));
    expect((await request(`${server.url}/?format=xml`)).status).toBe(400);
    expect((await request(`${server.url}/?format=html`)).status).toBe(200);
  });
});

describe('statsPage options', () => {
  const lb = (): LoadBalancer => pool('web', ['b1']);
  it.each<[string, StatsPageOptions | unknown]>([
    ['statsPage.title', { title: '' }],
    ['statsPage.title', { title: 7 }],
    ['statsPage.refreshMs', { refreshMs: 50 }],
    ['statsPage.refreshMs', { refreshMs: 1000.5 }],
    ['statsPage.historySize', { historySize: 0 }],
    ['statsPage.historySize', { historySize: 100_000 }],
    ['statsPage.refresh', { refresh: 1000 }],
    ['statsPage.options', 'fast'],
    ['statsPage.admin', { admin: '/admin' }],
    ['statsPage.admin.token', { admin: { path: '/admin', token: 'secret-secret-secret' } }],
    ['statsPage.admin.path', { admin: { path: 'admin' } }],
    ['statsPage.admin.path', { admin: { path: '//evil.example/admin' } }],
    ['statsPage.admin.path', { admin: { path: 'https://evil.example/admin' } }],
    ['statsPage.admin.path', { admin: { path: '/admin"><script>' } }],
    ['statsPage.admin.path', { admin: { path: '/admin?x=1' } }],
  ])('refuses %s in %j', (path, options) => {
    let thrown: unknown;
    try {
      statsPage(lb(), options as StatsPageOptions);
    } catch (error) {
      thrown = error;
    }
    expect(isInvalidOptionError(thrown)).toBe(true);
    expect((thrown as { path: string }).path).toBe(path);
  });

  it.each<[string, unknown]>([
    ['statsPage(source)', {}],
    ['statsPage(source)', null],
    ['statsPage(source)', [pool('web', ['b1'])]],
    ['statsPage(source)["web"]', { web: { snapshot: 1 } }],
  ])('refuses a source that is not a load balancer or pools (%s)', (path, source) => {
    let thrown: unknown;
    try {
      statsPage(source as LoadBalancer);
    } catch (error) {
      thrown = error;
    }
    expect(isInvalidOptionError(thrown)).toBe(true);
    expect((thrown as { path: string }).path).toBe(path);
  });
});

describe('statsPage failures', () => {
  it('answers 500 without details when a snapshot throws, and the server keeps serving', async () => {
    let broken = true;
    const real = pool('web', ['b1']);
    const flaky = {
      name: 'flaky',
      on: () => flaky,
      off: () => flaky,
      snapshot: () => {
        if (broken) throw new Error('secret internals at 10.0.0.9');
        return real.snapshot();
      },
    } as unknown as LoadBalancer;
    const server = await mount(statsPage(flaky));
    const reply = await request(`${server.url}/?format=json`);
    expect(reply.status).toBe(500);
    expect(reply.body).toBe('stats unavailable\n');
    broken = false;
    expect((await request(`${server.url}/?format=json`)).status).toBe(200);
  });
});

describe('statsPage JSON of a huge source', () => {
  const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `b${i}`);

  it('streams a 40,000-backend pool in slices: a pool snapshotted after the client held the stream shows a change made meanwhile', async () => {
    const huge = pool('huge', ids(40_000));
    const web = pool('web', ['w1']);
    const server = await mount(statsPage({ huge, web }));
    const held = await heldRequest(`${server.url}/?format=json`);
    expect(held.status).toBe(200);
    expect(held.headers['content-length']).toBeUndefined();
    // ~11 MB in all; the reader holds after its first chunk, and the web pool is snapshotted only
    // when the huge one has been written. One-step rendering would show w1 up.
    web.maintain('w1');
    const data = JSON.parse(await held.resume()) as StatsJson;
    expect(data.pools.huge?.backends).toHaveLength(40_000);
    expect(data.pools.huge?.backends[39_999]).toMatchObject({ id: 'b39999', state: 'up' });
    expect(data.pools.web?.backends[0]).toMatchObject({ id: 'w1', state: 'maintenance' });
    // The transitions are those recorded when the request arrived.
    expect(data.events).toEqual([]);
  }, 60_000);

  it('streams exactly the one-step JSON when nothing changes, odd pool names included', async () => {
    const big = pool('big', ids(2500));
    const odd = pool('x', ['y']);
    const server = await mount(statsPage({ big, '"odd"\n</script>': odd }));
    const reply = await request(`${server.url}/?format=json`);
    expect(reply.headers['transfer-encoding']).toBe('chunked');
    const traffic = { big: trafficOf(big).toJSON(), '"odd"\n</script>': trafficOf(odd).toJSON() };
    expect(reply.body).toBe(
      JSON.stringify({
        pools: { big: big.snapshot(), '"odd"\n</script>': odd.snapshot() },
        events: [],
        traffic,
        durationBoundsMs: DURATION_BOUNDS_MS,
        protocol: { pools: {}, frontends: {} },
        workers: 1,
      }),
    );
  });
});
