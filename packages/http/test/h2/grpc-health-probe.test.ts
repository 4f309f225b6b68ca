/**
 * `grpcHealthProbe` against real grpc-js servers implementing `grpc.health.v1.Health/Check` (the
 * service defined here with grpc-js's own definition objects and a deliberately plain protobuf
 * codec, independent of the probe's), and the HTTP/2 and gRPC counters with promtool's checker.
 */
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { createLoadBalancer, type Probe, type ProbeResult } from '@fulcrum/core';
import { createProxyServer, grpcHealthProbe, protocolStats, renderProtocolMetrics, type ProtocolStats } from '@fulcrum/http';
import { decodeHealthCheckResponse, encodeHealthCheckRequest } from '../../src/probes/grpc-health-probe';
import { echoClient, failure, grpc, startEchoBackend, unary } from './grpc-fixtures';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** HealthCheckRequest's one field, read the plain way. */
function readService(bytes: Buffer): string {
  if (bytes.length === 0) return '';
  expect(bytes[0]).toBe(0x0a);
  return bytes.subarray(2, 2 + bytes[1]!).toString('utf8');
}

/** A server whose health service answers `statuses[service]` (1 SERVING, 2 NOT_SERVING); unknown services get NOT_FOUND. */
async function healthServer(statuses: Record<string, number>): Promise<{ address: string; asked: string[]; kill(): void }> {
  const asked: string[] = [];
  const backend = await startEchoBackend('h', (server) => {
    server.addService(
      {
        check: {
          path: '/grpc.health.v1.Health/Check',
          requestStream: false,
          responseStream: false,
          requestSerialize: (value: Buffer) => value,
          requestDeserialize: (bytes: Buffer) => bytes,
          responseSerialize: (value: Buffer) => value,
          responseDeserialize: (bytes: Buffer) => bytes,
        },
      },
      {
        check: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          const service = readService(call.request);
          asked.push(service);
          const status = statuses[service];
          if (status === undefined) callback({ code: grpc.status.NOT_FOUND, details: 'unknown service' });
          else callback(null, status === 0 ? Buffer.alloc(0) : Buffer.from([0x08, status]));
        },
      },
    );
  });
  cleanups.push(() => backend.kill());
  return { address: backend.address, asked, kill: () => backend.kill() };
}

const backendAt = (address: string) => ({ id: 'x', address }) as never;
/** A probe's answer as the object it always is for these probes. */
const check = async (probe: Probe, address: string): Promise<ProbeResult> => (await probe(backendAt(address), new AbortController().signal)) as ProbeResult;

describe('grpcHealthProbe', () => {
  it('encodes HealthCheckRequest and decodes HealthCheckResponse as protobuf does', () => {
    expect(encodeHealthCheckRequest('')).toEqual(Buffer.from([0, 0, 0, 0, 0]));
    expect(encodeHealthCheckRequest('pkg.Svc')).toEqual(Buffer.concat([Buffer.from([0, 0, 0, 0, 9, 0x0a, 7]), Buffer.from('pkg.Svc')]));
    expect(decodeHealthCheckResponse(Buffer.from([0, 0, 0, 0, 2, 0x08, 1]))).toBe(1);
    expect(decodeHealthCheckResponse(Buffer.from([0, 0, 0, 0, 0]))).toBe(0);
    // An unknown length-delimited field is skipped.
    expect(decodeHealthCheckResponse(Buffer.from([0, 0, 0, 0, 5, 0x12, 1, 0x41, 0x08, 2]))).toBe(2);
    expect(decodeHealthCheckResponse(Buffer.from([1, 0, 0, 0, 2, 0x08, 1]))).toBeUndefined();
    expect(decodeHealthCheckResponse(Buffer.from([0, 0, 0, 0, 3, 0x08, 1]))).toBeUndefined();
  });

  it('passes a SERVING service and fails NOT_SERVING, unknown and absent ones, per service name', async () => {
    const server = await healthServer({ '': 1, 'pkg.Up': 1, 'pkg.Down': 2 });
    expect(await check(grpcHealthProbe(), server.address)).toEqual({ ok: true, detail: 'SERVING' });
    expect((await check(grpcHealthProbe({ service: 'pkg.Up' }), server.address)).ok).toBe(true);
    expect(await check(grpcHealthProbe({ service: 'pkg.Down' }), server.address)).toEqual({ ok: false, detail: 'NOT_SERVING' });
    const unknown = await check(grpcHealthProbe({ service: 'pkg.Nope' }), server.address);
    expect(unknown.ok).toBe(false);
    expect(unknown.detail).toContain('grpc-status 5');
    expect(server.asked).toEqual(['', 'pkg.Up', 'pkg.Down', 'pkg.Nope']);
  });

  it('fails a server without the health service (UNIMPLEMENTED) and a dead one, without its address in the detail', async () => {
    const plain = await startEchoBackend('p');
    cleanups.push(() => plain.kill());
    const unimplemented = await check(grpcHealthProbe(), plain.address);
    expect(unimplemented).toMatchObject({ ok: false });
    expect(unimplemented.detail).toContain('grpc-status 12');
    plain.kill();
    const dead = await check(grpcHealthProbe({ timeoutMs: 2000 }), plain.address);
    expect(dead.ok).toBe(false);
    expect(dead.detail).not.toContain(String(plain.port));
  });

  it('takes a backend down and up again through the load balancer', async () => {
    const statuses: Record<string, number> = { '': 1 };
    const server = await healthServer(statuses);
    const lb = createLoadBalancer({
      backends: [{ id: 'g', address: server.address }],
      health: { probe: grpcHealthProbe(), intervalMs: 20, fastIntervalMs: 20, downIntervalMs: 20, timeoutMs: 2000, rise: 1, fall: 1 },
    });
    cleanups.push(() => lb.close());
    const { waitFor } = await import('../../../../test-support/wait-for');
    await waitFor(() => server.asked.length > 0 && lb.backends[0]!.state === 'up', { what: 'the first check' });
    statuses[''] = 2;
    await waitFor(() => lb.backends[0]!.state === 'down', { what: 'the backend marked down' });
    statuses[''] = 1;
    await waitFor(() => lb.backends[0]!.state === 'up', { what: 'the backend back up' });
  });

  it('refuses bad options with the option path', () => {
    expect(() => grpcHealthProbe({ service: 3 as unknown as string })).toThrow(/grpcHealthProbe\.service/);
    expect(() => grpcHealthProbe({ timeoutMs: -1 })).toThrow(/grpcHealthProbe\.timeoutMs/);
    expect(() => grpcHealthProbe({ metadata: { 'grpc-timeout': '1S' } })).toThrow(/grpcHealthProbe\.metadata/);
  });
});

describe('HTTP/2 and gRPC counters', () => {
  it('counts streams and gRPC statuses, and renders them as metrics promtool accepts', async () => {
    const backend = await startEchoBackend('b');
    cleanups.push(() => backend.kill());
    const lb = createLoadBalancer({ backends: [{ id: 'b', address: backend.address }] });
    cleanups.push(() => lb.close());
    const proxy = createProxyServer({ balancer: lb, upstreamProtocol: 'h2', http2: { h2c: true } });
    await proxy.listen(0);
    cleanups.push(() => proxy.close(0));
    const client = echoClient(`127.0.0.1:${proxy.address()!.port}`);
    cleanups.push(() => client.close());
    await unary(client, { text: 'a' });
    await unary(client, { text: 'b' });
    await failure(unary(client, { fail: grpc.status.NOT_FOUND }));
    const stats: ProtocolStats = protocolStats(proxy);
    expect(stats).toEqual({ h2Streams: 3, h1ToH2Requests: 0, grpcStatuses: { 0: 2, 5: 1 } });
    const text = renderProtocolMetrics(stats);
    expect(text).toContain('fulcrum_grpc_calls_total{grpc_status="5"} 1\n');
    let promtool = true;
    try {
      execFileSync('promtool', ['--version'], { stdio: 'ignore' });
    } catch {
      promtool = false;
    }
    if (promtool) execFileSync('promtool', ['check', 'metrics'], { input: text });
  });
});
