/**
 * The `fulcrum` config keys for HTTP/2: a frontend's `http2` and a pool's `upstreamProtocol` and
 * `grpc`, end to end through `startFulcrum` with real grpc-js peers and an HTTP/1.1 client.
 */
import { request } from 'node:http';
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

  it('refuses http2 on a node-engine frontend and bad HTTP/2 limits, naming the key', () => {
    const pools = { web: { backends: [{ id: 'a', address: 'http://127.0.0.1:1' }] } };
    expect(() => validateConfig({ frontends: [{ port: 0, engine: 'node', http2: true }], pools })).toThrow(/frontends\[0\]\.http2/);
    expect(() => validateConfig({ frontends: [{ port: 0, http2: { maxConcurrentStreams: 0 } }], pools })).toThrow(
      /frontends\[0\]\.http2\.maxConcurrentStreams/,
    );
    expect(() => validateConfig({ frontends: [{ port: 0 }], pools: { web: { ...pools.web, upstreamProtocol: 'h3' } } })).toThrow(/upstreamProtocol/);
  });
});
