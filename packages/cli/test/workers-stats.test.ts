// `fulcrum --workers 2` with real processes: HTTP/2 streams and gRPC statuses through both workers,
// then the stats page's JSON and the metrics hold every worker's counts (summed, and per worker in
// their own families, promtool-checked), and an admin drain every worker applies is one event of
// the page's list, with the workers that recorded it.
import { spawnSync } from 'node:child_process';
import { request } from 'node:http';
import { writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleBin, type BinRun, type BundledBin } from './bin-bundle';
import { AUTH, TOKEN, get, logLines, portOf, roundRobin, until } from './helpers';

let bundled: BundledBin;

beforeAll(async () => {
  bundled = await bundleBin();
}, 60_000);

afterAll(() => bundled.remove());

/** An h2c backend answering every call as gRPC does: a trailers-only status, 5 (NOT_FOUND) for `/…/Fail`. */
async function grpcBackend(): Promise<{ address: string; close(): Promise<void> }> {
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    stream.resume();
    stream.on('end', () => {
      const status = String(headers[':path']).endsWith('/Fail') ? '5' : '0';
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': status }, { endStream: true });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** One gRPC-shaped call on `session`; resolves with its grpc-status. */
function call(session: http2.ClientHttp2Session, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers' });
    let status = '';
    stream.on('response', (headers) => (status = String(headers['grpc-status'] ?? '')));
    stream.on('trailers', (trailers) => (status = String(trailers['grpc-status'] ?? status)));
    stream.on('error', reject);
    stream.on('close', () => resolve(status));
    stream.resume();
    stream.end(Buffer.alloc(5));
  });
}

/** GET `path`, or undefined when no answer came within `ms` (the connection is then cut). */
function getWithin(port: number, path: string, ms: number): Promise<{ status: number; body: string } | undefined> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { connection: 'close' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') });
      });
      res.on('error', () => resolve(undefined));
    });
    const timer = setTimeout(() => {
      req.destroy();
      resolve(undefined);
    }, ms);
    req.on('error', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
    req.end();
  });
}

const sample = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

describe('fulcrum --workers: stats and metrics of every worker', () => {
  it('sums HTTP/2 and gRPC counters over the workers, shows each worker in its own series, and lists a change every worker applied once', async () => {
    const g1 = await grpcBackend();
    const g2 = await grpcBackend();
    const file = join(bundled.dir, `workers-stats-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        frontends: [{ port: 0, host: '127.0.0.1', http2: { h2c: true } }],
        pools: {
          grpc: {
            ...roundRobin({ g1: g1.address, g2: g2.address }),
            upstreamProtocol: 'h2',
          },
        },
        admin: { port: 0, host: '127.0.0.1', token: TOKEN },
        metrics: { path: '/metrics', port: 0, host: '127.0.0.1' },
        stats: { path: '/stats', port: 0, host: '127.0.0.1' },
      }),
    );
    const proxy: BinRun = bundled.run(['--config', file, '--workers', '2']);
    try {
      await until(() => logLines(proxy.out.stderr).some((l) => l.msg === 'fulcrum started'), 'the primary announcing its workers', 30_000);
      const started = logLines(proxy.out.stderr).find((l) => l.msg === 'fulcrum started')!;
      const port = portOf((started.frontends as string[])[0]);
      const metricsPort = portOf(started.metrics);
      const statsPort = portOf(started.stats);
      const admin = portOf(started.admin);
      const metrics = async (): Promise<string> => (await get(metricsPort, '/metrics')).body;

      // The kernel spreads new connections over the workers: open them until both have served streams.
      let ok = 0;
      let failed = 0;
      await until(
        async () => {
          const session = http2.connect(`http://127.0.0.1:${port}`);
          session.on('error', () => undefined);
          try {
            expect(await call(session, '/fulcrum.test.Echo/Unary')).toBe('0');
            expect(await call(session, '/fulcrum.test.Echo/Fail')).toBe('5');
            ok++;
            failed++;
          } finally {
            session.destroy();
          }
          const text = await metrics();
          return (
            (sample(text, 'fulcrum_worker_http2_streams_total{worker="1"}') ?? 0) > 0 &&
            (sample(text, 'fulcrum_worker_http2_streams_total{worker="2"}') ?? 0) > 0
          );
        },
        'HTTP/2 streams served by both workers',
        20_000,
      );

      const text = await metrics();
      const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      expect(check.error).toBeUndefined();
      expect({ status: check.status, stdout: check.stdout, stderr: check.stderr }).toEqual({ status: 0, stdout: '', stderr: '' });
      expect(sample(text, 'fulcrum_workers')).toBe(2);
      expect(sample(text, 'fulcrum_pool_grpc_calls_total{pool="grpc",grpc_status="0"}')).toBe(ok);
      expect(sample(text, 'fulcrum_pool_grpc_calls_total{pool="grpc",grpc_status="5"}')).toBe(failed);
      expect(sample(text, 'fulcrum_pool_http2_streams_total{pool="grpc"}')).toBe(ok + failed);
      expect(sample(text, 'fulcrum_frontend_http2_streams_total{frontend="127.0.0.1:0"}')).toBe(ok + failed);
      expect(sample(text, 'fulcrum_frontend_http2_sessions_total{frontend="127.0.0.1:0"}')).toBe(ok);
      // The traffic families are every worker's too.
      expect(sample(text, 'fulcrum_pool_requests_total{pool="grpc"}')).toBe(ok + failed);
      const perWorker = [1, 2].map((w) => sample(text, `fulcrum_worker_http2_streams_total{worker="${w}"}`)!);
      expect(perWorker[0]! + perWorker[1]!).toBe(ok + failed);
      const perWorkerRequests = [1, 2].map((w) => sample(text, `fulcrum_worker_pool_requests_total{worker="${w}",pool="grpc"}`)!);
      expect(perWorkerRequests[0]! + perWorkerRequests[1]!).toBe(ok + failed);

      // An admin drain through one worker is applied by both: one event, recorded by workers 1 and 2.
      expect((await get(admin, '/pools/grpc/backends/g1/drain', { method: 'POST', headers: AUTH })).status).toBe(200);
      type Json = {
        workers: number;
        events: { type: string; backend?: string; to?: string; worker?: number; workers?: number[] }[];
        traffic: Record<string, { requests: number }>;
        protocol: { pools: Record<string, { grpcStatuses: Record<string, number> }>; frontends: Record<string, { streamsTotal: number }> };
      };
      let json: Json | undefined;
      await until(async () => {
        json = JSON.parse((await get(statsPort, '/stats?format=json')).body) as Json;
        return json.events.some((e) => e.backend === 'g1' && e.to === 'draining' && e.workers?.length === 2);
      }, 'the drain recorded by both workers');
      const drains = json!.events.filter((e) => e.type === 'state' && e.backend === 'g1' && e.to === 'draining');
      expect(drains).toHaveLength(1);
      expect(drains[0]!.workers).toEqual([1, 2]);
      expect([1, 2]).toContain(drains[0]!.worker);
      expect(json!.workers).toBe(2);
      expect(json!.traffic.grpc!.requests).toBe(ok + failed);
      expect(json!.protocol.pools.grpc!.grpcStatuses).toEqual({ 0: ok, 5: failed });
      expect(json!.protocol.frontends['127.0.0.1:0']!.streamsTotal).toBe(ok + failed);
    } finally {
      if (proxy.child.exitCode === null) {
        proxy.child.kill('SIGTERM');
        await proxy.exited;
      }
      await g1.close();
      await g2.close();
    }
  }, 60_000);

  it('answers whole for a 40,000-backend pool, and without a stopped worker once the deadline passed: the page, the metrics and the log say which', async () => {
    const file = join(bundled.dir, `workers-huge-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(
      file,
      JSON.stringify({
        frontends: [{ port: 0, host: '127.0.0.1' }],
        // Nothing listens there, and nothing probes them: no health checks.
        pools: {
          huge: { backends: Array.from({ length: 40_000 }, (_, i) => ({ id: `b${i}`, address: `http://10.${i >> 16}.${(i >> 8) & 255}.${i & 255}:8080` })) },
        },
        metrics: { path: '/metrics', port: 0, host: '127.0.0.1' },
        stats: { path: '/stats', port: 0, host: '127.0.0.1' },
      }),
    );
    const proxy: BinRun = bundled.run(['--config', file, '--workers', '2']);
    let stopped: number | undefined;
    try {
      await until(() => logLines(proxy.out.stderr).some((l) => l.msg === 'fulcrum started'), 'the primary announcing its workers', 60_000);
      const started = logLines(proxy.out.stderr).find((l) => l.msg === 'fulcrum started')!;
      const metricsPort = portOf(started.metrics);
      const statsPort = portOf(started.stats);

      type Json = { workers: number; missingWorkers: number[]; pools: Record<string, { backends: { id: string }[] }> };
      const whole = await getWithin(statsPort, '/stats?format=json', 30_000);
      const json = JSON.parse(whole!.body) as Json;
      expect(json.pools.huge!.backends).toHaveLength(40_000);
      expect(json.pools.huge!.backends[39_999]!.id).toBe('b39999');
      expect(json.workers).toBe(2);
      expect(json.missingWorkers).toEqual([]);
      const text = (await getWithin(metricsPort, '/metrics', 30_000))!.body;
      expect(sample(text, 'fulcrum_workers')).toBe(2);
      expect(sample(text, 'fulcrum_workers_missing')).toBe(0);
      expect(text).toMatch(/^fulcrum_backend_up\{pool="huge",backend="b39999"\} 1$/m);
      const pid = Number(/^fulcrum_worker_info\{worker="2",pid="(\d+)"\} 1$/m.exec(text)![1]);

      process.kill(pid, 'SIGSTOP');
      stopped = pid;
      // A connection the stopped worker took would wait: it is cut and the scrape asked again, until
      // worker 1 answers — after the primary's deadline.
      const answered = async (port: number, path: string): Promise<string> => {
        let body: string | undefined;
        await until(
          async () => {
            const reply = await getWithin(port, path, 10_000);
            body = reply?.body;
            return reply !== undefined;
          },
          `${path} answered by worker 1`,
          60_000,
        );
        return body!;
      };
      const partial = await answered(metricsPort, '/metrics');
      expect(sample(partial, 'fulcrum_workers')).toBe(1);
      expect(sample(partial, 'fulcrum_workers_missing')).toBe(1);
      expect(partial).toContain('fulcrum_worker_info{worker="1",');
      expect(partial).not.toContain('fulcrum_worker_info{worker="2",');
      const page = JSON.parse(await answered(statsPort, '/stats?format=json')) as Json;
      expect(page.workers).toBe(1);
      expect(page.missingWorkers).toEqual([2]);
      expect(page.pools.huge!.backends).toHaveLength(40_000);
      const left = logLines(proxy.out.stderr).filter((l) => l.msg === 'workers left out of a stats answer: no report in time');
      expect(left.length).toBeGreaterThan(0);
      expect(left[0]!.workers).toEqual([2]);
    } finally {
      if (stopped !== undefined) process.kill(stopped, 'SIGCONT');
      if (proxy.child.exitCode === null) {
        proxy.child.kill('SIGTERM');
        await proxy.exited;
      }
    }
  }, 180_000);
});
