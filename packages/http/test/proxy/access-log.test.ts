import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AccessLogEntry } from '@fulcrum/http';
import { useEngine, ENGINES, closedPort, send, startBackend, startProxy, type TestProxy } from './helpers';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function proxyWithLog(
  backends: { id: string; address: string }[],
  extra: Record<string, unknown> = {},
): Promise<{ p: TestProxy; log: AccessLogEntry[] }> {
  const log: AccessLogEntry[] = [];
  const p = await startProxy({ balancer: { backends, algorithm: 'first' }, accessLog: (entry) => log.push(entry), ...extra });
  cleanups.push(() => p.close());
  return { p, log };
}

describe.each(ENGINES)('the %s engine', (engine) => {
  beforeAll(() => useEngine(engine));

  describe('access log', () => {
    it('records a success with its backend, reason, attempt count, bytes and timings', async () => {
      const b = await startBackend('b0');
      cleanups.push(() => b.close());
      const { p, log } = await proxyWithLog([b]);
      await send(p.url, { path: '/hello?x=1' });
      expect(log).toHaveLength(1);
      expect(log[0]).toMatchObject({
        method: 'GET',
        path: '/hello?x=1',
        status: 200,
        pool: 'default',
        backendId: 'b0',
        reason: 'balanced',
        attempts: 1,
        clientIp: '127.0.0.1',
        bytesOut: 2,
        termination: 'ok',
      });
      expect(log[0]!.timings.totalMs).toBeGreaterThanOrEqual(log[0]!.timings.headMs!);
      expect(Date.parse(log[0]!.time)).not.toBeNaN();
    });

    it('records a retry: two attempts, the last backend, redispatched', async () => {
      const b = await startBackend('b1');
      cleanups.push(() => b.close());
      const { p, log } = await proxyWithLog([{ id: 'dead', address: `http://127.0.0.1:${await closedPort()}` }, b]);
      await send(p.url);
      expect(log[0]).toMatchObject({ status: 200, attempts: 2, backendId: 'b1', reason: 'redispatched', termination: 'ok' });
    });

    it('records a failure that the proxy ended', async () => {
      const { p, log } = await proxyWithLog([{ id: 'dead', address: `http://127.0.0.1:${await closedPort()}` }]);
      await send(p.url);
      expect(log[0]).toMatchObject({ status: 502, backendId: 'dead', termination: 'upstream-failed' });
      expect(log[0]!.attempts).toBeGreaterThanOrEqual(1);
    });

    it('records a request the admission check denied, with its headers sent', async () => {
      const b = await startBackend('b0');
      cleanups.push(() => b.close());
      let inflight = 0;
      let peak = 0;
      const { p, log } = await proxyWithLog([b], {
        admission: (req: { headers: Record<string, unknown> }) => {
          if (req.headers['x-deny'] !== undefined) return { admit: false, status: 429, message: 'Too Many Requests', headers: { 'retry-after': '3' } };
          inflight++;
          peak = Math.max(peak, inflight);
          return { admit: true, done: () => void inflight-- };
        },
      });
      const denied = await send(p.url, { headers: { 'x-deny': '1' } });
      expect(denied.status).toBe(429);
      expect(denied.headers['retry-after']).toBe('3');
      expect(b.hits).toHaveLength(0);
      await send(p.url);
      expect(inflight).toBe(0);
      expect(peak).toBe(1);
      expect(log.map((e) => e.termination)).toEqual(['denied', 'ok']);
      expect(log[0]).toMatchObject({ status: 429, attempts: 0 });
    });

    it('records no backend as no-backend, and a throwing logger breaks nothing', async () => {
      let calls = 0;
      const p = await startProxy({
        balancer: { backends: [] },
        accessLog: () => {
          calls++;
          throw new Error('disk full');
        },
      });
      cleanups.push(() => p.close());
      expect((await send(p.url)).status).toBe(503);
      expect((await send(p.url)).status).toBe(503);
      expect(calls).toBe(2);
    });
  });

  describe('misconfiguration', () => {
    it('answers 500 instead of hanging when something already consumed the request body', async () => {
      const b = await startBackend('b0');
      cleanups.push(() => b.close());
      const { createServer } = await import('node:http');
      const { createProxy } = await import('@fulcrum/http');
      const log: AccessLogEntry[] = [];
      const proxy = createProxy({ balancer: { backends: [b] }, accessLog: (e) => log.push(e) });
      const server = createServer((req, res) => {
        req.on('data', () => undefined);
        req.on('end', () => proxy(req, res));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      cleanups.push(async () => {
        await new Promise<void>((resolve) => server.close(() => resolve()));
        await proxy.close();
      });
      const { port } = server.address() as { port: number };
      const reply = await send(`http://127.0.0.1:${port}`, { method: 'POST', body: 'eaten' });
      expect(reply.status).toBe(500);
      expect(b.hits).toHaveLength(0);
      expect(log[0]!.termination).toBe('internal-error');
    });
  });
});
