import { createLoadBalancer } from '@fulcrum/core';
import { FakeClock } from '@fulcrum/core/testing';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DURATION_BOUNDS_MS, PoolTraffic, RateCounter, bucketOf, quantileOf, trafficOf } from '../../src/stats/traffic';
import { deferred, waitFor } from '../../../../test-support/wait-for';
import { ENGINES, closedPort, send, startBackend, startProxy, useEngine, type TestBackend, type TestProxy } from '../proxy/helpers';

describe('duration histograms', () => {
  it('puts a duration in the first bucket whose bound holds it, the open bucket past the last', () => {
    expect(bucketOf(0)).toBe(0);
    expect(bucketOf(1)).toBe(0);
    expect(bucketOf(1.01)).toBe(1);
    expect(bucketOf(100)).toBe(DURATION_BOUNDS_MS.indexOf(100));
    expect(bucketOf(30_001)).toBe(DURATION_BOUNDS_MS.length);
  });

  it('reads quantiles by linear interpolation inside the bucket, as histogram_quantile does', () => {
    const counts = new Array<number>(DURATION_BOUNDS_MS.length + 1).fill(0);
    // 100 samples in (75, 100] ms: the median is half-way through the bucket.
    counts[bucketOf(80)] = 100;
    expect(quantileOf(counts, 0.5)).toBeCloseTo(87.5, 6);
    expect(quantileOf(counts, 0.99)).toBeCloseTo(99.75, 6);
    // One slow sample in (1000, 2000] moves p99 only if it is 1 % or more of the samples.
    counts[bucketOf(1500)] = 2;
    expect(quantileOf(counts, 0.99)).toBeGreaterThan(1000);
    expect(quantileOf(new Array<number>(20).fill(0), 0.5)).toBe(0);
  });
});

describe('RateCounter (HAProxy freq_ctr)', () => {
  it('counts this second plus the share of the previous second still in the window', () => {
    const rate = new RateCounter();
    for (let i = 0; i < 10; i++) rate.hit(5_000 + i);
    expect(rate.rate(5_999)).toBe(10);
    // A quarter into the next second: three quarters of the previous second's 10 still count.
    expect(rate.rate(6_250)).toBe(8);
    rate.hit(6_250);
    expect(rate.rate(6_250)).toBe(9);
    expect(rate.rate(8_000)).toBe(0);
    expect(rate.max).toBe(10);
  });
});

describe('PoolTraffic and the load balancer events', () => {
  it('records the last check, state-change time and downtime from the load balancer, on its clock', async () => {
    const clock = new FakeClock(1_000_000);
    let healthy = true;
    const lb = createLoadBalancer({
      name: 'events',
      clock,
      backends: [{ id: 'a', address: 'http://127.0.0.1:1' }],
      health: {
        probe: async () => (healthy ? true : { ok: false, detail: 'HTTP 500' }),
        intervalMs: 1000,
        fastIntervalMs: 1000,
        downIntervalMs: 1000,
        rise: 1,
        fall: 1,
        jitter: 0,
      },
    });
    const traffic = new PoolTraffic(lb);
    const a = lb.get('a')!;
    healthy = false;
    await clock.advance(1_000);
    expect(a.state).toBe('down');
    let json = traffic.toJSON().backends['a']!;
    expect(json.lastCheck).toMatchObject({ ok: false, detail: 'HTTP 500' });
    expect(json.checksFailed).toBe(1);
    const downAt = json.lastChangeAt;
    // The failing check took it down: the change is stamped when that check ended.
    expect(downAt).toBe(json.lastCheck!.at);
    expect(downAt).toBeGreaterThan(1_000_000);
    await clock.advance(5_000);
    json = traffic.toJSON().backends['a']!;
    // Still down: the current outage counts.
    expect(json.downtimeMs).toBe(clock.now() - downAt);
    healthy = true;
    await clock.advance(1_000);
    expect(a.state).toBe('up');
    json = traffic.toJSON().backends['a']!;
    const downtime = json.downtimeMs;
    expect(downtime).toBeGreaterThanOrEqual(5_000);
    expect(json.lastCheck).toMatchObject({ ok: true });
    await clock.advance(10_000);
    // Up again: downtime stays what it was.
    expect(traffic.toJSON().backends['a']!.downtimeMs).toBe(downtime);
    lb.close();
  });

  it('keeps one second of history per slot and forgets slots older than the window', async () => {
    const clock = new FakeClock(10_000);
    const lb = createLoadBalancer({ name: 'series', clock, backends: [{ id: 'a', address: 'http://127.0.0.1:1' }] });
    const traffic = new PoolTraffic(lb);
    for (let i = 0; i < 3; i++) {
      traffic.started();
      traffic.ended(undefined, 'ok', 200, 0, 0, 40, 0);
    }
    traffic.started();
    traffic.ended(undefined, 'upstream-failed', 502, 0, 0, 5, 0);
    let series = traffic.series(clock.now());
    expect(series.requests.at(-1)).toBe(4);
    expect(series.errors.at(-1)).toBe(1);
    expect(quantileOf(series.latency.at(-1) as number[], 0.5)).toBeGreaterThan(30);
    await clock.advance(2_000);
    series = traffic.series(clock.now());
    expect(series.requests.slice(-3)).toEqual([4, 0, 0]);
    // 300 s later the slot is reused for another second and the old counts are gone.
    await clock.advance(300_000);
    traffic.started();
    traffic.ended(undefined, 'ok', 200, 0, 0, 1, 0);
    series = traffic.series(clock.now());
    expect(series.requests.reduce((a, b) => a + b, 0)).toBe(1);
    expect(traffic.requests).toBe(5);
    lb.close();
  });
});

describe.each(ENGINES)('traffic counted by the %s engine', (engine) => {
  beforeAll(() => useEngine(engine));
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });
  async function backend(id: string, handler?: Parameters<typeof startBackend>[1]): Promise<TestBackend> {
    const b = await startBackend(id, handler);
    closers.push(() => b.close());
    return b;
  }
  async function proxy(options: Parameters<typeof startProxy>[0]): Promise<TestProxy> {
    const p = await startProxy(options);
    closers.push(() => p.close());
    return p;
  }

  it('counts requests, responses by class, body bytes and durations per pool and backend', async () => {
    const ok = await backend('ok', (req, res) => {
      res.writeHead(req.url === '/missing' ? 404 : 200, { 'content-type': 'text/plain' });
      res.end('hello');
    });
    const p = await proxy({ balancer: { name: 'web', backends: [{ id: 'ok', address: ok.address }] } });
    expect((await send(p.url, { method: 'POST', body: 'twelve bytes' })).status).toBe(200);
    expect((await send(p.url, { path: '/missing' })).status).toBe(404);
    const json = trafficOf(p.proxy.lb).toJSON();
    expect(json).toMatchObject({ requests: 2, sessions: 0, sessionsMax: 1, bytesIn: 12, bytesOut: 10, errors: 0 });
    expect(json.responses).toEqual({ '1xx': 0, '2xx': 1, '3xx': 0, '4xx': 1, '5xx': 0, other: 0 });
    expect(json.duration.count).toBe(2);
    expect(json.rateMax).toBeGreaterThanOrEqual(1);
    const b = json.backends['ok']!;
    expect(b).toMatchObject({ sessionsMax: 1, bytesIn: 12, bytesOut: 10, connectionErrors: 0, retries: 0 });
    expect(b.responses['2xx'] + b.responses['4xx']).toBe(2);
    expect(b.duration.count).toBe(2);
    // The keep-alive connection to the backend stays open between the two requests.
    expect(b.connectionsOpened).toBeGreaterThanOrEqual(1);
    expect(b.connections).toBeGreaterThanOrEqual(1);
    expect(b.connections).toBeLessThanOrEqual(b.connectionsOpened);
    expect(json.series.requests.at(-1)! + json.series.requests.at(-2)!).toBe(2);
  });

  it('counts a refused connection recovered on another backend as a redispatch, not an error', async () => {
    const ok = await backend('ok');
    const dead = await closedPort();
    const p = await proxy({
      balancer: {
        name: 'retry',
        algorithm: 'round-robin',
        backends: [
          { id: 'dead', address: `http://127.0.0.1:${dead}` },
          { id: 'ok', address: ok.address },
        ],
      },
    });
    for (let i = 0; i < 4; i++) expect((await send(p.url)).status).toBe(200);
    const json = trafficOf(p.proxy.lb).toJSON();
    const d = json.backends['dead']!;
    // Every failed attempt went to the other backend (a redispatch, as HAProxy's wredis), and since
    // each was recovered, none is the request's connection error (HAProxy's econ).
    expect(d.redispatches).toBeGreaterThanOrEqual(1);
    expect(p.proxy.lb.get('dead')!.failures).toBe(d.redispatches);
    expect(d).toMatchObject({ retries: 0, connectionErrors: 0 });
    expect(json).toMatchObject({ requests: 4, errors: 0, retries: 0, redispatches: d.redispatches, connectionErrors: 0 });
    expect(json.responses['2xx']).toBe(4);
  });

  it('counts a request refused by the admission check as denied, and a 502 as an error', async () => {
    const dead = await closedPort();
    const p = await proxy({
      balancer: { name: 'denied', backends: [{ id: 'dead', address: `http://127.0.0.1:${dead}` }] },
      admission: (req) => (req.url === '/no' ? { admit: false, status: 429, message: 'Too Many Requests' } : { admit: true }),
    });
    expect((await send(p.url, { path: '/no' })).status).toBe(429);
    expect((await send(p.url, { path: '/yes' })).status).toBe(502);
    const json = trafficOf(p.proxy.lb).toJSON();
    expect(json).toMatchObject({ requests: 2, denied: 1, errors: 1, sessions: 0 });
    expect(json.responses).toMatchObject({ '4xx': 1, '5xx': 1 });
    expect(json.series.errors.reduce((a, b) => a + b, 0)).toBe(1);
  });

  it('shows a request waiting for a full backend in the queue, and how long it waited', async () => {
    const first = deferred();
    const release = deferred();
    const slow = await backend('slow', (req, res) => {
      first.resolve();
      void release.promise.then(() => res.end('done'));
    });
    const p = await proxy({ balancer: { name: 'queued', backends: [{ id: 'slow', address: slow.address, maxConnections: 1 }] }, maxQueue: 10 });
    const traffic = trafficOf(p.proxy.lb);
    const a = send(p.url, { path: '/a' });
    await first.promise;
    const b = send(p.url, { path: '/b' });
    await waitFor(() => traffic.queue === 1, { what: 'the second request to be queued' });
    expect(traffic.toJSON()).toMatchObject({ queue: 1, queueMax: 1, sessions: 2 });
    release.resolve();
    expect((await a).status).toBe(200);
    expect((await b).status).toBe(200);
    const json = traffic.toJSON();
    expect(json).toMatchObject({ queue: 0, queueMax: 1, sessions: 0, sessionsMax: 2 });
    expect(json.queueWait.count).toBe(1);
    expect(json.backends['slow']!.sessionsMax).toBe(1);
  });
});

describe('traffic counted for HTTP/2 streams', () => {
  it('counts an h2c request like an HTTP/1.1 one: session, 2xx, body bytes, duration', async () => {
    const { createProxyServer } = await import('../../src');
    const http2 = await import('node:http2');
    const backend = await startBackend('h');
    const server = createProxyServer({ balancer: { name: 'h2', backends: [{ id: 'h', address: backend.address }] }, http2: { h2c: true } });
    await server.listen(0, '127.0.0.1');
    const session = http2.connect(`http://127.0.0.1:${server.address()!.port}`);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const stream = session.request({ ':method': 'POST', ':path': '/' });
        let answer = 0;
        stream.on('response', (headers) => (answer = Number(headers[':status'])));
        stream.on('error', reject);
        stream.on('end', () => resolve(answer));
        stream.resume();
        stream.end('seven b');
      });
      expect(status).toBe(200);
      const json = trafficOf(server.lb).toJSON();
      expect(json).toMatchObject({ requests: 1, sessions: 0, bytesIn: 7, bytesOut: 1 });
      expect(json.responses['2xx']).toBe(1);
      expect(json.duration.count).toBe(1);
      expect(json.backends['h']!.responses['2xx']).toBe(1);
    } finally {
      session.close();
      await server.close(0);
      await backend.close();
    }
  });
});
