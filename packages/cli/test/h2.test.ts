/**
 * The `fulcrum` config keys for HTTP/2: a frontend's `http2` and a pool's `upstreamProtocol` and
 * `grpc`, end to end through `startFulcrum` with real grpc-js peers and an HTTP/1.1 client.
 */
import { request } from 'node:http';
import http2, { type IncomingHttpHeaders } from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { startFulcrum, validateConfig } from '@fulcrum/cli';
import { echoClient, failure, grpc, startEchoBackend, unary } from '../../http/test/h2/grpc-fixtures';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const quiet = (): void => undefined;

describe('fulcrum config: http2 frontends and h2 pools', () => {
  it('balances gRPC calls per call over an h2c frontend, and serves HTTP/1.1 clients on the same port', async () => {
    const list = [await startEchoBackend('g1'), await startEchoBackend('g2')];
    for (const b of list) cleanups.push(() => b.kill());
    const instance = await startFulcrum(
      {
        frontends: [{ port: 0, host: '127.0.0.1', http2: { h2c: true } }],
        pools: {
          grpc: {
            algorithm: 'round-robin',
            upstreamProtocol: 'h2',
            grpc: { failureStatuses: [14] },
            backends: list.map((b) => ({ id: b.id, address: b.address })),
          },
        },
      },
      { logger: quiet },
    );
    cleanups.push(() => instance.close(1000));
    const port = instance.addresses().frontends[0]!.port;
    const client = echoClient(`127.0.0.1:${port}`);
    cleanups.push(() => client.close());
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add((await unary(client, { text: `c${i}` })).message.backend!);
    expect(seen).toEqual(new Set(['g1', 'g2']));
    // A plain HTTP/1.1 request on the same port reaches a gRPC backend as an HTTP/2 request (which
    // it refuses as not gRPC: the point is that it got there, translated).
    const status = await new Promise<number>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path: '/fulcrum.test.Echo/Unary', method: 'POST', headers: { 'content-type': 'text/plain' } }, (res) => {
        res.resume();
        resolve(res.statusCode!);
      });
      req.on('error', reject);
      req.end('x');
    });
    expect(status).toBe(415);
    const error = await failure(unary(client, { fail: grpc.status.INTERNAL }));
    expect(error.code).toBe(grpc.status.INTERNAL);
  });

  it('serves the stats page, metrics and admin API a frontend opted into over HTTP/2 too, not only HTTP/1.1', async () => {
    const list = [await startEchoBackend('g1')];
    for (const b of list) cleanups.push(() => b.kill());
    const token = 'admin-token-0123456789abcdef';
    const instance = await startFulcrum(
      {
        frontends: [{ port: 0, host: '127.0.0.1', http2: { h2c: true }, stats: true, metrics: true }],
        pools: { grpc: { upstreamProtocol: 'h2', backends: list.map((b) => ({ id: b.id, address: b.address })) } },
        stats: { path: '/fulcrum' },
        metrics: { path: '/metrics' },
        admin: { token, path: '/admin' },
      },
      { logger: quiet },
    );
    cleanups.push(() => instance.close(1000));
    const session = http2.connect(`http://127.0.0.1:${instance.addresses().frontends[0]!.port}`);
    session.on('error', () => undefined);
    cleanups.push(() => session.destroy());
    const get = (path: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> =>
      new Promise((resolve, reject) => {
        const stream = session.request({ ':path': path, ...headers });
        let body = '';
        let head: IncomingHttpHeaders = {};
        stream.on('response', (h) => (head = h));
        stream.on('data', (chunk: Buffer) => (body += chunk.toString()));
        stream.on('end', () => resolve({ status: Number(head[':status']), headers: head, body }));
        stream.on('error', reject);
      });
    const stats = await get('/fulcrum?format=json');
    expect(stats.status).toBe(200);
    expect(stats.body).toContain('"g1"');
    const page = await get('/fulcrum');
    expect(page.body).toContain('<!doctype html>');
    const metrics = await get('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain('fulcrum_pool_backends{pool="grpc"} 1');
    expect((await get('/admin/state')).status).toBe(401);
    const state = await get('/admin/state', { authorization: `Bearer ${token}` });
    expect(state.status).toBe(200);
    expect(state.body).toContain('g1');
    // The same connection still reaches the pool: a gRPC call per stream, next to the pages.
    const client = echoClient(`127.0.0.1:${instance.addresses().frontends[0]!.port}`);
    cleanups.push(() => client.close());
    expect((await unary(client, { text: 'after the pages' })).message.backend).toBe('g1');
  });

  it('refuses http2 on a node-engine frontend and bad HTTP/2 limits, naming the key', () => {
    const pools = { web: { backends: [{ id: 'a', address: 'http://127.0.0.1:1' }] } };
    expect(() => validateConfig({ frontends: [{ port: 0, engine: 'node', http2: true }], pools })).toThrow(/frontends\[0\]\.http2/);
    expect(() => validateConfig({ frontends: [{ port: 0, http2: { maxConcurrentStreams: 0 } }], pools })).toThrow(
      /frontends\[0\]\.http2\.maxConcurrentStreams/,
    );
    expect(() => validateConfig({ frontends: [{ port: 0 }], pools: { web: { ...pools.web, upstreamProtocol: 'h3' } } })).toThrow(/upstreamProtocol/);
  });
});
