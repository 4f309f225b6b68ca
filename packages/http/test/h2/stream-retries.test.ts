/**
 * Retries on 502/503/504 and the body idle timeout inside HTTP/2 streams: the same options and the
 * same decisions (`retryOn`, the idempotency rule, Retry-After, `timeouts.idleMs`) as the HTTP/1.1
 * engines, with real `node:http2` clients and backends — plain HTTP/2 requests and gRPC calls
 * (which are retried only while uncommitted, or where a route marks their method idempotent).
 */
import { createServer as createHttpServer } from 'node:http';
import http2, { type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createLoadBalancer } from '@fulcrum/core';
import { createProxyServer, type AccessLogEntry, type ProxyServerOptions } from '@fulcrum/http';
import { waitFor } from '../../../../test-support/wait-for';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Backend {
  id: string;
  address: string;
  /** Streams it received. */
  streams: number;
  /** The request bodies it read, in order. */
  bodies: string[];
}

/** An h2c backend that hands every stream to `answer`, after reading its body. */
async function h2Backend(id: string, answer: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, backend: Backend) => void): Promise<Backend> {
  const backend: Backend = { id, address: '', streams: 0, bodies: [] };
  const server = http2.createServer();
  const sessions = new Set<http2.Http2Session>();
  server.on('session', (session) => {
    sessions.add(session);
    session.once('close', () => sessions.delete(session));
  });
  server.on('stream', (stream, headers) => {
    backend.streams++;
    stream.on('error', () => undefined);
    let body = '';
    stream.on('data', (chunk: Buffer) => (body += chunk.toString('latin1')));
    stream.once('end', () => {
      backend.bodies.push(body);
      answer(stream, headers, backend);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const session of sessions) session.destroy();
        server.close(() => resolve());
      }),
  );
  return backend;
}

/** Answers `status` with its id in `x-backend` (and gRPC trailers for gRPC calls). */
function answering(status: number, extra: Record<string, string> = {}) {
  return (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, backend: Backend): void => {
    if (stream.destroyed) return;
    const grpc = headers['content-type'] === 'application/grpc';
    stream.respond(
      { ':status': status, 'x-backend': backend.id, ...(grpc ? { 'content-type': 'application/grpc' } : {}), ...extra },
      { waitForTrailers: grpc },
    );
    if (grpc) stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': status === 200 ? '0' : '14' }));
    stream.end(grpc ? Buffer.alloc(0) : `${backend.id}\n`);
  };
}

/** An HTTP/1.1 backend answering `status` with its id, after reading the body. */
async function h1Backend(id: string, status: number): Promise<Backend> {
  const backend: Backend = { id, address: '', streams: 0, bodies: [] };
  const server = createHttpServer((req, res) => {
    backend.streams++;
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString('latin1')));
    req.on('end', () => {
      backend.bodies.push(body);
      res.writeHead(status, { 'x-backend': id }).end(`${id}\n`);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  backend.address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return backend;
}

/** Backends in order: the balancer (`first`) always picks the first one it may, so a retry is visible. */
async function proxyTo(list: readonly Backend[], options: Partial<ProxyServerOptions> = {}): Promise<string> {
  const lb = createLoadBalancer({ algorithm: 'first', backends: list.map((b) => ({ id: b.id, address: b.address })) });
  cleanups.push(() => lb.close());
  const proxy = createProxyServer({ balancer: lb, upstreamProtocol: 'h2', http2: { h2c: true }, ...options });
  await proxy.listen(0, '127.0.0.1');
  cleanups.push(() => proxy.close(0));
  return `http://127.0.0.1:${proxy.address()!.port}`;
}

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  trailers: IncomingHttpHeaders | undefined;
  /** The stream's RST_STREAM code (0 when it ended normally). */
  rstCode: number;
}

async function request(origin: string, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<Answer> {
  const session = http2.connect(origin);
  session.on('error', () => undefined);
  cleanups.push(() => session.destroy());
  const stream = session.request({ ':method': method, ':path': path, ...headers }, { endStream: body === undefined });
  if (body !== undefined) stream.end(body);
  const answer: Answer = { status: 0, headers: {}, body: '', trailers: undefined, rstCode: 0 };
  stream.on('response', (h) => {
    answer.status = Number(h[':status']);
    answer.headers = h;
  });
  stream.on('data', (chunk: Buffer) => (answer.body += chunk.toString()));
  stream.on('trailers', (t) => (answer.trailers = t));
  stream.on('error', () => undefined);
  await new Promise<void>((resolve) => stream.once('close', resolve));
  answer.rstCode = stream.rstCode ?? 0;
  session.close();
  return answer;
}

/** One gRPC frame with an empty message. */
const GRPC_FRAME = Buffer.from([0, 0, 0, 0, 0]);
const GRPC_HEADERS = { 'content-type': 'application/grpc', te: 'trailers' };

describe('HTTP/2 streams: retries on 502/503/504', () => {
  it('retries a GET answered 503 on the next backend when retryOn lists status-503', async () => {
    const list = [await h2Backend('b0', answering(503)), await h2Backend('b1', answering(200))];
    const log: AccessLogEntry[] = [];
    const origin = await proxyTo(list, { retryOn: ['connect', 'reset', 'timeout', 'status-503'], accessLog: (entry) => log.push(entry) });
    const answer = await request(origin, 'GET', '/thing');
    expect(answer.status).toBe(200);
    expect(answer.headers['x-backend']).toBe('b1');
    expect(list.map((b) => b.streams)).toEqual([1, 1]);
    await waitFor(() => log.length === 1, { what: 'the access log entry' });
    expect(log[0]!.attempts).toBe(2);
  });

  it("waits for the only backend's Retry-After before retrying it, within the deadline", async () => {
    const arrivals: number[] = [];
    const only = await h2Backend('b0', (stream, headers, backend) => {
      arrivals.push(performance.now());
      answering(arrivals.length === 1 ? 503 : 200, arrivals.length === 1 ? { 'retry-after': '1' } : {})(stream, headers, backend);
    });
    const origin = await proxyTo([only], { retryOn: ['connect', 'reset', 'timeout', 'status-503'], timeouts: { totalMs: 5000 } });
    const answer = await request(origin, 'GET', '/thing');
    expect(answer.status).toBe(200);
    expect(only.streams).toBe(2);
    // A lower bound, not a speed claim: the retry must not come before the backend asked.
    expect(arrivals[1]! - arrivals[0]!).toBeGreaterThanOrEqual(950);
  });

  it('relays the 503 as it is when retryOn does not list it (the default)', async () => {
    const list = [await h2Backend('b0', answering(503)), await h2Backend('b1', answering(200))];
    const origin = await proxyTo(list);
    const answer = await request(origin, 'GET', '/thing');
    expect(answer.status).toBe(503);
    expect(answer.headers['x-backend']).toBe('b0');
    expect(list[1]!.streams).toBe(0);
  });

  it('never replays a POST that a backend answered 502', async () => {
    const list = [await h2Backend('b0', answering(502)), await h2Backend('b1', answering(200))];
    const origin = await proxyTo(list, { retryOn: ['status-502'] });
    const answer = await request(origin, 'POST', '/order', { 'content-type': 'text/plain' }, Buffer.from('one order'));
    expect(answer.status).toBe(502);
    expect(answer.body).toBe('b0\n');
    expect(list[1]!.streams).toBe(0);
  });

  it('replays a PUT body held for replay to the next backend after a 504', async () => {
    const list = [await h2Backend('b0', answering(504)), await h2Backend('b1', answering(200))];
    const origin = await proxyTo(list, { retryOn: ['status-504'] });
    const answer = await request(origin, 'PUT', '/doc', {}, Buffer.from('the document'));
    expect(answer.status).toBe(200);
    expect(list.map((b) => b.bodies)).toEqual([['the document'], ['the document']]);
  });

  it("retries an HTTP/2 client's GET answered 503 by an HTTP/1.1 backend on the next one", async () => {
    const list = [await h1Backend('b0', 503), await h1Backend('b1', 200)];
    const origin = await proxyTo(list, { upstreamProtocol: 'http1', retryOn: ['connect', 'reset', 'timeout', 'status-503'] });
    const answer = await request(origin, 'GET', '/thing');
    expect(answer.status).toBe(200);
    expect(answer.headers['x-backend']).toBe('b1');
    expect(list.map((b) => b.streams)).toEqual([1, 1]);
  });

  it('does not retry a gRPC call answered 503 once it reached a backend, whatever retryOn says', async () => {
    const list = [await h2Backend('b0', answering(503)), await h2Backend('b1', answering(200))];
    const origin = await proxyTo(list, { retryOn: ['status-503'], retryNonIdempotent: true });
    const answer = await request(origin, 'POST', '/fulcrum.test.Echo/Unary', GRPC_HEADERS, GRPC_FRAME);
    expect(answer.headers['x-backend']).toBe('b0');
    expect(list[1]!.streams).toBe(0);
  });

  it('retries a gRPC call answered 503 when a route marks its method idempotent', async () => {
    const list = [await h2Backend('b0', answering(503)), await h2Backend('b1', answering(200))];
    const origin = await proxyTo(list, { retryOn: ['status-503'], grpc: { idempotentMethods: ['/fulcrum.test.Echo/*'] } });
    const answer = await request(origin, 'POST', '/fulcrum.test.Echo/Unary', GRPC_HEADERS, GRPC_FRAME);
    expect(answer.status).toBe(200);
    expect(answer.headers['x-backend']).toBe('b1');
    expect(answer.trailers?.['grpc-status']).toBe('0');
  });
});

describe('HTTP/2 streams: the body idle timeout (timeouts.idleMs)', () => {
  /** Sends its head and one chunk, then nothing more. */
  const stalling = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void => {
    const grpc = headers['content-type'] === 'application/grpc';
    stream.respond({ ':status': 200, ...(grpc ? { 'content-type': 'application/grpc' } : {}) }, { waitForTrailers: grpc });
    stream.write(grpc ? GRPC_FRAME : 'partial');
  };

  it('cuts a plain HTTP/2 response whose backend stalls mid-body, so the client sees it truncated', async () => {
    const list = [await h2Backend('b0', stalling)];
    const log: AccessLogEntry[] = [];
    const origin = await proxyTo(list, { timeouts: { idleMs: 150 }, accessLog: (entry) => log.push(entry) });
    const answer = await request(origin, 'GET', '/slow');
    expect(answer.status).toBe(200);
    expect(answer.body).toBe('partial');
    expect(answer.rstCode).not.toBe(0);
    await waitFor(() => log.length === 1, { what: 'the access log entry' });
    expect(log[0]!.termination).toBe('upstream-truncated');
  });

  it('ends a gRPC call whose backend stalls mid-stream with UNAVAILABLE in its trailers', async () => {
    const list = [await h2Backend('b0', stalling)];
    const origin = await proxyTo(list, { timeouts: { idleMs: 150 } });
    const answer = await request(origin, 'POST', '/fulcrum.test.Echo/Stream', GRPC_HEADERS, GRPC_FRAME);
    expect(answer.status).toBe(200);
    expect(answer.trailers?.['grpc-status']).toBe('14');
  });
});
