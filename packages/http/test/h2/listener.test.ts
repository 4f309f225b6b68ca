/**
 * HTTP/2 listeners and protocol translation: ALPN (`h2` and `http/1.1` on one TLS port), h2c with
 * prior knowledge next to HTTP/1.1 on one plain port, HTTP/2 clients to HTTP/1.1 backends and
 * HTTP/1.1 clients to HTTP/2 backends, `createProxy` on a `node:http2` secure server with
 * `allowHTTP1`, and gRPC over TLS (ALPN) end to end.
 */
import { request as httpRequest, createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import http2, { type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { request as httpsRequest } from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLoadBalancer } from '@fulcrum/core';
import { createProxy, createProxyServer, type ProxyServerOptions } from '@fulcrum/http';
import { certDir, type CertDir, type TestCert } from '../tls/certs';
import { echoClient, grpc, startEchoBackend, unary } from './grpc-fixtures';

let certs: CertDir;
let cert: TestCert;
beforeAll(() => {
  certs = certDir();
  cert = certs.make('h2', 'localhost', ['localhost']);
});
afterAll(() => certs.remove());

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** An HTTP/1.1 backend that answers with what it saw. */
async function h1Backend(id: string): Promise<{ address: string; seen: IncomingMessage[] }> {
  const seen: IncomingMessage[] = [];
  const server: Server = createHttpServer((req, res) => {
    seen.push(req);
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      res.setHeader('x-backend', id);
      res.end(JSON.stringify({ backend: id, method: req.method, url: req.url, httpVersion: req.httpVersion, host: req.headers.host, body }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  cleanups.push(() => server.closeAllConnections());
  return { address: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

/**
 * An HTTP/2 (h2c) backend that answers with what it saw, and a trailer. With `holdUntil`, no
 * stream is answered before that many are open at once.
 */
async function h2Backend(
  id: string,
  options: { settings?: http2.Settings; holdUntil?: number } = {},
): Promise<{ address: string; streams: number; sessions: number; maxOpen: number }> {
  const state = { address: '', streams: 0, sessions: 0, maxOpen: 0 };
  let open = 0;
  const waiting: (() => void)[] = [];
  const server = http2.createServer({ settings: options.settings ?? {} });
  server.on('session', () => state.sessions++);
  server.on('stream', (stream, headers) => {
    state.streams++;
    open++;
    state.maxOpen = Math.max(state.maxOpen, open);
    stream.once('close', () => open--);
    let body = '';
    stream.on('data', (chunk: Buffer) => (body += chunk.toString()));
    stream.on('end', () => {
      const answer = (): void => {
        stream.respond({ ':status': 200, 'x-backend': id }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'x-trailer': `from ${id}` }));
        stream.end(JSON.stringify({ backend: id, method: headers[':method'], path: headers[':path'], authority: headers[':authority'], body }));
      };
      waiting.push(answer);
      if (options.holdUntil === undefined || state.streams >= options.holdUntil) for (const next of waiting.splice(0)) next();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(() => resolve(undefined))));
  state.address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

async function h2Get(
  session: ClientHttp2Session,
  path: string,
  body?: string,
): Promise<{ headers: IncomingHttpHeaders; body: string; trailers: IncomingHttpHeaders | undefined }> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ':method': body === undefined ? 'GET' : 'POST' }, { endStream: body === undefined });
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    let data = '';
    stream.on('response', (h) => (headers = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (chunk: Buffer) => (data += chunk.toString()));
    stream.on('end', () => resolve({ headers, body: data, trailers }));
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

async function server(options: ProxyServerOptions): Promise<number> {
  const proxy = createProxyServer(options);
  await proxy.listen(0);
  cleanups.push(() => proxy.close(0));
  return proxy.address()!.port;
}

function h1Get(
  port: number,
  path: string,
  tls: boolean,
  body?: string,
): Promise<{ status: number; headers: IncomingMessage['headers']; body: string; trailers: Record<string, string | undefined> }> {
  return new Promise((resolve, reject) => {
    const send = tls ? httpsRequest : httpRequest;
    const req = send({ host: '127.0.0.1', port, path, method: body === undefined ? 'GET' : 'POST', rejectUnauthorized: false, agent: false }, (res) => {
      let data = '';
      res.on('data', (chunk: Buffer) => (data += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: data, trailers: res.trailers }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('HTTP/2 listeners of createProxyServer', () => {
  it('offers h2 and http/1.1 by ALPN on one TLS port, and serves both', async () => {
    const backend = await h1Backend('a');
    const port = await server({ balancer: { backends: [{ id: 'a', address: backend.address }] }, tls: { cert: cert.cert, key: cert.key }, http2: true });
    const session = http2.connect(`https://localhost:${port}`, { rejectUnauthorized: false });
    cleanups.push(() => session.close());
    const viaH2 = await h2Get(session, '/over/h2?x=1', 'payload');
    expect(session.alpnProtocol).toBe('h2');
    expect(Number(viaH2.headers[':status'])).toBe(200);
    expect(viaH2.headers['x-backend']).toBe('a');
    // HTTP/2 → HTTP/1.1 translation: a request line, the :authority as Host, the body.
    expect(JSON.parse(viaH2.body)).toMatchObject({ method: 'POST', url: '/over/h2?x=1', httpVersion: '1.1', host: `localhost:${port}`, body: 'payload' });

    const viaH1 = await h1Get(port, '/over/h1', true);
    expect(viaH1.status).toBe(200);
    expect(JSON.parse(viaH1.body)).toMatchObject({ url: '/over/h1', httpVersion: '1.1' });
  });

  it('takes h2c with prior knowledge and HTTP/1.1 on one plain port when h2c is on', async () => {
    const backend = await h1Backend('a');
    const port = await server({ balancer: { backends: [{ id: 'a', address: backend.address }] }, http2: { h2c: true } });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => session.close());
    const results = await Promise.all([h2Get(session, '/one'), h2Get(session, '/two'), h1Get(port, '/three', false)]);
    expect(results.map((r) => JSON.parse(r.body).url)).toEqual(['/one', '/two', '/three']);
  });

  it('does not speak h2c on a plain port unless asked', async () => {
    const backend = await h1Backend('a');
    const port = await server({ balancer: { backends: [{ id: 'a', address: backend.address }] } });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    const failed = await new Promise<boolean>((resolve) => {
      session.on('error', () => resolve(true));
      session.on('close', () => resolve(true));
      const stream = session.request({ ':path': '/' });
      stream.on('error', () => resolve(true));
      stream.on('response', () => resolve(false));
    });
    session.destroy();
    expect(failed).toBe(true);
    expect(backend.seen.length).toBe(0);
  });

  it('forwards HTTP/1.1 clients to HTTP/2 backends, trailers relayed in the chunked coding', async () => {
    const backend = await h2Backend('h2a');
    const port = await server({ balancer: { backends: [{ id: 'h2a', address: backend.address }] }, upstreamProtocol: 'h2' });
    const first = await h1Get(port, '/to/h2', false, 'hello');
    expect(first.status).toBe(200);
    expect(JSON.parse(first.body)).toMatchObject({ method: 'POST', path: '/to/h2', authority: `127.0.0.1:${port}`, body: 'hello' });
    expect(first.trailers['x-trailer']).toBe('from h2a');
    const second = await h1Get(port, '/again', false);
    expect(JSON.parse(second.body)).toMatchObject({ method: 'GET', path: '/again' });
  });

  it("ends the backend stream exactly when the client's did, whatever the method (bodies on GET and DELETE, none on POST)", async () => {
    const backend = await h2Backend('h2a');
    const port = await server({ balancer: { backends: [{ id: 'h2a', address: backend.address }] }, upstreamProtocol: 'h2', http2: { h2c: true } });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => session.close());
    const send = (method: string, body: string | undefined): Promise<{ status: number; seen: { method: string; body: string } }> =>
      new Promise((resolve, reject) => {
        const stream = session.request({ ':path': '/m', ':method': method }, { endStream: body === undefined });
        let status = 0;
        let data = '';
        stream.on('response', (h) => (status = Number(h[':status'])));
        stream.on('data', (chunk: Buffer) => (data += chunk.toString()));
        stream.on('end', () => resolve({ status, seen: JSON.parse(data) as { method: string; body: string } }));
        stream.on('error', reject);
        if (body !== undefined) stream.end(body);
      });
    // Node's `request` ends a GET, HEAD or DELETE stream unless told otherwise and leaves others
    // open: each case below differs from that default in one direction or agrees with it.
    for (const [method, body] of [
      ['GET', 'a body on GET'],
      ['DELETE', 'a body on DELETE'],
      ['POST', undefined],
      ['PUT', undefined],
      ['GET', undefined],
      ['POST', 'a body on POST'],
      ['OPTIONS', 'a body on OPTIONS'],
    ] as const) {
      const { status, seen } = await send(method, body);
      expect(status).toBe(200);
      expect(seen).toMatchObject({ method, body: body ?? '' });
    }
  });

  it('multiplexes the streams to one HTTP/2 backend over one connection, each on its own lease', async () => {
    const backend = await h2Backend('h2a');
    const lb = createLoadBalancer({ backends: [{ id: 'h2a', address: backend.address }] });
    cleanups.push(() => lb.close());
    const port = await server({ balancer: lb, upstreamProtocol: 'h2', http2: { h2c: true } });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => session.close());
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => h2Get(session, `/s${i}`)));
    expect(results.every((r) => Number(r.headers[':status']) === 200)).toBe(true);
    expect(results.map((r) => r.trailers?.['x-trailer'])).toEqual(Array.from({ length: 20 }, () => 'from h2a'));
    expect(lb.backends[0]!.requests).toBe(20);
    expect(lb.backends[0]!.inflight).toBe(0);
    expect(backend.sessions).toBe(1);
  });

  it("sends each stream's forwarding fields to HTTP/2 backends, those of one client connection built once for every backend", async () => {
    const seen: IncomingHttpHeaders[] = [];
    const addresses: string[] = [];
    for (let i = 0; i < 2; i++) {
      const backend = http2.createServer();
      backend.on('stream', (stream, headers) => {
        seen.push(headers);
        stream.respond({ ':status': 200 });
        stream.end();
      });
      await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
      cleanups.push(() => new Promise((resolve) => backend.close(() => resolve(undefined))));
      addresses.push(`http://127.0.0.1:${(backend.address() as AddressInfo).port}`);
    }
    const port = await server({
      balancer: { algorithm: 'round-robin', backends: addresses.map((address, i) => ({ id: `b${i}`, address })) },
      upstreamProtocol: 'h2',
      http2: { h2c: true },
    });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => session.close());
    const send = (headers: http2.OutgoingHttpHeaders): Promise<number> =>
      new Promise((resolve, reject) => {
        const stream = session.request({ ':path': '/f', ...headers });
        stream.on('response', (h) => resolve(Number(h[':status'])));
        stream.on('error', reject);
        stream.resume();
      });
    for (let i = 0; i < 3; i++) expect(await send({ 'x-call': String(i) })).toBe(200);
    expect(await send({ 'x-forwarded-for': '203.0.113.9', te: 'trailers' })).toBe(200);
    const authority = `127.0.0.1:${port}`;
    const forwarding = {
      ':authority': authority,
      'x-forwarded-for': '127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': authority,
      forwarded: `for=127.0.0.1;proto=http;host="${authority}"`,
    };
    // Round robin: the calls went to both backends, each with the fields of its own request.
    expect(seen.map((h) => h['x-call'])).toEqual(['0', '1', '2', undefined]);
    for (const headers of seen.slice(0, 3)) expect(headers).toMatchObject(forwarding);
    expect(seen[3]).toMatchObject({ ...forwarding, 'x-forwarded-for': '203.0.113.9, 127.0.0.1', te: 'trailers' });
  });

  it("opens another backend connection only past the backend's SETTINGS_MAX_CONCURRENT_STREAMS", async () => {
    // The backend takes 4 streams per connection and answers none before 10 are open.
    const backend = await h2Backend('h2a', { settings: { maxConcurrentStreams: 4 }, holdUntil: 10 });
    const port = await server({ balancer: { backends: [{ id: 'h2a', address: backend.address }] }, upstreamProtocol: 'h2', http2: { h2c: true } });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => session.close());
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => h2Get(session, `/s${i}`)));
    expect(results.every((r) => Number(r.headers[':status']) === 200)).toBe(true);
    expect(backend.maxOpen).toBe(10);
    // 10 streams at 4 per connection, and no stream sent before the backend's SETTINGS said so.
    expect(backend.sessions).toBe(3);
  });

  it('speaks HTTP/2 over TLS (ALPN h2) to https:// backends, verifying them with backendTls', async () => {
    const seen: string[] = [];
    const backend = http2.createSecureServer({ cert: cert.cert, key: cert.key });
    backend.on('stream', (stream, headers) => {
      seen.push(`${String(headers[':scheme'])} ${String(headers[':path'])}`);
      stream.respond({ ':status': 200 });
      stream.end('secure backend');
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => backend.close(() => resolve(undefined))));
    const address = `https://localhost:${(backend.address() as AddressInfo).port}`;
    const port = await server({ balancer: { backends: [{ id: 's', address }] }, upstreamProtocol: 'h2', backendTls: { ca: cert.cert }, http2: { h2c: true } });
    const session = http2.connect(`http://127.0.0.1:${port}`);
    cleanups.push(() => session.close());
    const reply = await h2Get(session, '/tls/path');
    expect(Number(reply.headers[':status'])).toBe(200);
    expect(reply.body).toBe('secure backend');
    expect(seen).toEqual(['https /tls/path']);

    // Without the CA the backend's certificate is refused: 502, never an unverified connection.
    const strict = await server({ balancer: { backends: [{ id: 's', address }] }, upstreamProtocol: 'h2', http2: { h2c: true } });
    const other = http2.connect(`http://127.0.0.1:${strict}`);
    cleanups.push(() => other.close());
    const refused = await h2Get(other, '/tls/path');
    expect(Number(refused.headers[':status'])).toBe(502);
    expect(seen).toHaveLength(1);
  });

  it('carries gRPC over TLS (ALPN h2) to h2c backends', async () => {
    const backend = await startEchoBackend('g0');
    cleanups.push(() => backend.kill());
    const port = await server({
      balancer: { backends: [{ id: 'g0', address: backend.address }] },
      upstreamProtocol: 'h2',
      tls: { cert: cert.cert, key: cert.key },
      http2: true,
    });
    const client = echoClient(`localhost:${port}`, grpc.credentials.createSsl(Buffer.from(cert.cert)));
    cleanups.push(() => client.close());
    const { message, trailers } = await unary(client, { text: 'secure' });
    expect(message).toEqual({ backend: 'g0', text: 'secure' });
    expect(trailers.get('x-backend')).toEqual(['g0']);
  });
});

describe('createProxy on a node:http2 secure server with allowHTTP1', () => {
  async function mounted(options: Parameters<typeof createProxy>[0]): Promise<number> {
    const proxy = createProxy(options);
    const server = http2.createSecureServer(
      { cert: cert.cert, key: cert.key, allowHTTP1: true },
      proxy as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => server.close(() => resolve(undefined))));
    cleanups.push(() => proxy.close());
    return (server.address() as AddressInfo).port;
  }

  it('serves HTTP/2 and HTTP/1.1 clients to an HTTP/1.1 pool', async () => {
    const backend = await h1Backend('a');
    const port = await mounted({ balancer: { backends: [{ id: 'a', address: backend.address }] } });
    const session = http2.connect(`https://localhost:${port}`, { rejectUnauthorized: false });
    cleanups.push(() => session.close());
    const viaH2 = await h2Get(session, '/h2/path', 'body');
    expect(Number(viaH2.headers[':status'])).toBe(200);
    expect(JSON.parse(viaH2.body)).toMatchObject({ method: 'POST', url: '/h2/path', body: 'body' });
    const viaH1 = await h1Get(port, '/h1/path', true);
    expect(JSON.parse(viaH1.body)).toMatchObject({ url: '/h1/path' });
  });

  it('carries gRPC to an HTTP/2 pool', async () => {
    const list = [await startEchoBackend('g0'), await startEchoBackend('g1')];
    for (const b of list) cleanups.push(() => b.kill());
    const port = await mounted({
      balancer: { algorithm: 'round-robin', backends: list.map((b) => ({ id: b.id, address: b.address })) },
      upstreamProtocol: 'h2',
    });
    const client = echoClient(`localhost:${port}`, grpc.credentials.createSsl(Buffer.from(cert.cert)));
    cleanups.push(() => client.close());
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add((await unary(client, { text: `c${i}` })).message.backend!);
    expect(seen).toEqual(new Set(['g0', 'g1']));
  });
});
