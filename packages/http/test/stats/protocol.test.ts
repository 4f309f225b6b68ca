/**
 * HTTP/2 and gRPC counters on the stats surfaces: real `@grpc/grpc-js` clients and a `node:http2`
 * client through a `createProxyServer` h2c listener to gRPC backends, then the stats page's JSON,
 * `prometheus()` (checked by promtool) and the per-listener counters show what happened.
 */
import { spawnSync } from 'node:child_process';
import http2 from 'node:http2';
import { afterEach, describe, expect, it } from 'vitest';
import { createLoadBalancer } from '@fulcrum/core';
import { createProxyServer, frontendProtocolStats, poolProtocolStats, prometheus, protocolStats, statsPage, type StatsJson } from '@fulcrum/http';
import { waitFor } from '../../../../test-support/wait-for';
import { echoClient, failure, grpc, startEchoBackend, unary } from '../h2/grpc-fixtures';
import { request, serve } from './http-client';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A gRPC message frame: uncompressed flag, 32-bit length, the JSON body the echo service reads. */
function grpcFrame(message: object): Buffer {
  const body = Buffer.from(JSON.stringify(message));
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

describe('stats: HTTP/2 and gRPC counters', () => {
  it('counts sessions, streams, client resets and gRPC statuses per listener and pool, on the page JSON and in promtool-clean metrics', async () => {
    const backends = [await startEchoBackend('g0'), await startEchoBackend('g1')];
    for (const b of backends) cleanups.push(() => b.kill());
    const lb = createLoadBalancer({ name: 'grpc', algorithm: 'round-robin', backends: backends.map((b) => ({ id: b.id, address: b.address })) });
    cleanups.push(() => lb.close());
    const proxy = createProxyServer({ balancer: lb, upstreamProtocol: 'h2', http2: { h2c: true } });
    await proxy.listen(0);
    cleanups.push(() => proxy.close(0));
    const page = statsPage({ grpc: lb }, { frontends: { edge: proxy } });
    cleanups.push(() => page.close());
    const pageServer = await serve(page);
    cleanups.push(() => pageServer.close());
    const metrics = prometheus({ grpc: lb }, { frontends: { edge: proxy } });

    // Three calls answered OK, two NOT_FOUND (5), over one grpc-js connection.
    const client = echoClient(`127.0.0.1:${proxy.address()!.port}`);
    cleanups.push(() => client.close());
    for (let i = 0; i < 3; i++) await unary(client, { text: `ok ${i}` });
    for (let i = 0; i < 2; i++) expect((await failure(unary(client, { fail: grpc.status.NOT_FOUND }))).code).toBe(grpc.status.NOT_FOUND);

    // A second connection (node:http2): a call the backend holds, reset by the client (RST_STREAM CANCEL).
    const session = http2.connect(`http://127.0.0.1:${proxy.address()!.port}`);
    cleanups.push(() => session.destroy());
    const stream = session.request({ ':method': 'POST', ':path': '/fulcrum.test.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('error', () => undefined);
    stream.end(grpcFrame({ hold: true }));
    await waitFor(() => backends.some((b) => b.held === 1), { what: 'the held call at a backend' });
    expect(frontendProtocolStats(proxy)).toMatchObject({ sessions: 2, sessionsTotal: 2, streams: 1, streamsTotal: 6, streamsReset: 0 });
    stream.close(http2.constants.NGHTTP2_CANCEL);
    await waitFor(() => frontendProtocolStats(proxy)?.streamsReset === 1 && frontendProtocolStats(proxy)?.streams === 0, { what: 'the reset counted' });
    for (const b of backends) b.release();

    const pool = poolProtocolStats(lb);
    expect(pool.h2Streams).toBe(6);
    expect(pool.grpcStatuses[0]).toBe(3);
    expect(pool.grpcStatuses[5]).toBe(2);
    // The engine's own view counts the same streams.
    expect(protocolStats(proxy).h2Streams).toBe(6);

    const json = JSON.parse((await request(`${pageServer.url}/?format=json`)).body) as StatsJson;
    expect(json.protocol.pools.grpc).toMatchObject({ h2Streams: 6, h1ToH2Requests: 0, grpcStatuses: { 0: 3, 5: 2 } });
    expect(json.protocol.frontends.edge).toMatchObject({ sessions: 2, sessionsTotal: 2, streams: 0, streamsTotal: 6, streamsRefused: 0, streamsReset: 1 });

    session.destroy();
    await waitFor(() => frontendProtocolStats(proxy)?.sessions === 1, { what: 'the closed session counted' });
    const text = metrics();
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    expect({ status: check.status, stdout: check.stdout, stderr: check.stderr }).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(text).toContain('fulcrum_pool_http2_streams_total{pool="grpc"} 6\n');
    expect(text).toContain('fulcrum_pool_grpc_calls_total{pool="grpc",grpc_status="0"} 3\n');
    expect(text).toContain('fulcrum_pool_grpc_calls_total{pool="grpc",grpc_status="5"} 2\n');
    expect(text).toContain('fulcrum_frontend_http2_sessions{frontend="edge"} 1\n');
    expect(text).toContain('fulcrum_frontend_http2_sessions_total{frontend="edge"} 2\n');
    expect(text).toContain('fulcrum_frontend_http2_streams_total{frontend="edge"} 6\n');
    expect(text).toContain('fulcrum_frontend_http2_reset_streams_total{frontend="edge"} 1\n');
    // The worker gauge stays last.
    expect(text.endsWith('fulcrum_workers 1\n')).toBe(true);
  });

  it('refuses a frontends option that is not listeners by name', () => {
    const lb = createLoadBalancer({ backends: [{ id: 'a', address: 'http://127.0.0.1:1' }] });
    cleanups.push(() => lb.close());
    expect(() => statsPage(lb, { frontends: 'edge' as never })).toThrow(/statsPage\.frontends/);
    expect(() => prometheus(lb, { frontends: { edge: 1 as never } })).toThrow(/prometheus\.options\.frontends\["edge"\]/);
  });
});
