/**
 * What the raw-socket engine (`createProxyServer`) guarantees beyond the shared behaviour suite:
 * HTTP/1.1 framing over real sockets (pipelining, Expect, 1xx, HEAD/204/304, HTTP/1.0 clients),
 * backpressure, its own backend pools, upgrades only after a 101, and the hardening of issue #19
 * (deadlines swept at ≤ 1 s, connection caps, strict heads, 431, TLS renegotiation refused).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { ConnectionLimit, createProxyServer, type AccessLogEntry, type ProxyServer, type ProxyServerOptions } from '@fulcrum/http';
import { certDir, type CertDir } from '../tls/certs';
import { send, startBackend, type BackendHandler, type TestBackend } from '../proxy/helpers';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function backend(id: string, handler?: BackendHandler): Promise<TestBackend> {
  const b = await startBackend(id, handler);
  cleanups.push(() => b.close());
  return b;
}

async function server(options: ProxyServerOptions): Promise<{ proxy: ProxyServer; port: number; url: string }> {
  const proxy = createProxyServer(options);
  await proxy.listen(0);
  cleanups.push(() => proxy.close(0));
  const port = proxy.address()!.port;
  return { proxy, port, url: `http://127.0.0.1:${port}` };
}

function single(b: { id: string; address: string }, extra: Partial<ProxyServerOptions> = {}): ProxyServerOptions {
  return { balancer: { backends: [{ id: b.id, address: b.address }] }, ...extra };
}

/** A raw client: sends `bytes`, collects what comes back until `done(text)` or the socket closes. */
interface RawReply {
  text: string;
  closed: boolean;
  socket: Socket;
}

function rawClient(port: number, bytes: string | Buffer, done: (text: string) => boolean = () => false, limitMs = 5000): Promise<RawReply> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    cleanups.push(() => void socket.destroy());
    let text = '';
    let settled = false;
    const finish = (closed: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ text, closed, socket });
    };
    const timer = setTimeout(() => finish(false), limitMs);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (done(text)) finish(false);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => finish(true));
    if (bytes.length > 0) socket.write(bytes);
  });
}

/** Resolves when `socket` closes, with the ms it took from now. */
function closedWithin(socket: Socket): Promise<number> {
  const start = Date.now();
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve(0);
    socket.once('close', () => resolve(Date.now() - start));
  });
}

function count(text: string, pattern: RegExp): number {
  return (text.match(pattern) ?? []).length;
}

describe('HTTP/1.1 on the wire', () => {
  it('answers pipelined requests in order even when a later one is served first', async () => {
    const b = await backend('b', (req, res) => {
      // /slow answers after /fast has been answered by the backend.
      const wait = req.url === '/slow' ? 80 : 0;
      setTimeout(() => res.end(`body${req.url}`), wait);
    });
    const { port } = await server(single(b, { balancer: { backends: [{ id: 'b', address: b.address }] }, connectionsPerBackend: 4 }));
    const reply = await rawClient(
      port,
      'GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\nGET /last HTTP/1.1\r\nHost: x\r\n\r\n',
      (text) => text.includes('body/last'),
    );
    const order = [...reply.text.matchAll(/body(\/(?:slow|fast|last))/g)].map((m) => m[1]);
    expect(order).toEqual(['/slow', '/fast', '/last']);
    expect(count(reply.text, /HTTP\/1\.1 200 /g)).toBe(3);
  });

  it('answers Expect: 100-continue itself and never forwards the expectation', async () => {
    const b = await backend('b', (req, res, body) => res.end(`${req.headers.expect ?? 'none'}:${body}`));
    const { port } = await server(single(b));
    const socket = connect({ host: '127.0.0.1', port });
    cleanups.push(() => void socket.destroy());
    let text = '';
    const gotContinue = new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (text.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) resolve();
      });
    });
    socket.write('PUT /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n');
    await gotContinue;
    const done = new Promise<void>((resolve) => socket.on('data', () => text.endsWith('none:hello') && resolve()));
    socket.write('hello');
    await done;
    expect(text).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
  });

  it('relays a backend 1xx (103 Early Hints) and then its final answer, and counts no failure', async () => {
    const b = await backend('b', (_req, res) => {
      res.writeEarlyHints({ link: '</style.css>; rel=preload' });
      res.end('final');
    });
    const { port, proxy } = await server(single(b));
    for (let i = 0; i < 3; i++) {
      const reply = await rawClient(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', (text) => text.endsWith('final'));
      expect(reply.text).toMatch(/^HTTP\/1\.1 103 Early Hints\r\n[\s\S]*[Ll]ink: <\/style\.css>; rel=preload\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    }
    expect(proxy.lb.snapshot().backends[0]).toMatchObject({ failures: 0, inflight: 0 });
  });

  it('relays a 304 with its Content-Length and no body, and keeps the connection usable', async () => {
    const b = await backend('b', (req, res) => {
      if (req.url === '/304') {
        res.writeHead(304, { 'content-length': '1234', etag: '"v1"' });
        res.end();
      } else res.end('after');
    });
    const { port } = await server(single(b));
    const reply = await rawClient(port, 'GET /304 HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n', (text) => text.endsWith('after'));
    expect(reply.text).toMatch(/^HTTP\/1\.1 304 Not Modified\r\n[\s\S]*[Cc]ontent-[Ll]ength: 1234\r\n[\s\S]*\r\n\r\nHTTP\/1\.1 200 OK/);
  });

  it('serves HTTP/1.0 clients: close-delimited when the backend streams, keep-alive when asked and framed', async () => {
    const b = await backend('b', (req, res) => {
      if (req.url === '/stream') {
        res.write('part1,');
        res.end('part2');
      } else res.end('fixed');
    });
    const { port } = await server(single(b));
    const streamed = await rawClient(port, 'GET /stream HTTP/1.0\r\n\r\n');
    expect(streamed.closed, streamed.text).toBe(true);
    expect(streamed.text).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(streamed.text).not.toMatch(/transfer-encoding/i);
    expect(JSON.stringify(streamed.text)).toMatch(/part1,part2"$/);
    const kept = await rawClient(port, 'GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /b HTTP/1.0\r\n\r\n', (text) => count(text, /fixed/g) === 2);
    expect(count(kept.text, /HTTP\/1\.1 200 OK/g)).toBe(2);
    // Each answer says what happens to the connection: kept after the first, closed after the second.
    const [first, second] = kept.text.split(/(?=HTTP\/1\.1 200 OK)/);
    expect(first).toMatch(/\r\nconnection: keep-alive\r\n/i);
    expect(first).not.toMatch(/connection: close/i);
    expect(second).toMatch(/\r\nconnection: close\r\n/i);
  });

  it('re-frames a chunked request body it holds as a Content-Length one, and a streamed one as chunked', async () => {
    const b = await backend('b', (req, res, body) =>
      res.end(`${req.headers['content-length'] ?? '-'}|${req.headers['transfer-encoding'] ?? '-'}|${body.length}`),
    );
    const { port } = await server(single(b, { maxReplayBytes: 1024 }));
    const small = await rawClient(
      port,
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nTrailer: t\r\n\r\n',
      (t) => t.includes('|5'),
    );
    expect(small.text.endsWith('5|-|5')).toBe(true);
    const chunk = 'z'.repeat(1500);
    const large = await rawClient(
      port,
      `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${(1500).toString(16)}\r\n${chunk}\r\n0\r\n\r\n`,
      (t) => t.includes('|1500'),
    );
    expect(large.text).toMatch(/-\|chunked\|1500/);
  });

  it('sends the rest of an upload the backend answered early, keeping both connections usable', async () => {
    // Like bench/proxy/backend.mjs: the answer goes out before the body was read.
    const b = await backend('b');
    b.server.removeAllListeners('request');
    b.server.on('request', (req, res) => {
      let size = 0;
      req.on('data', (chunk: Buffer) => (size += chunk.length));
      req.on('end', () => b.hits.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: String(size) }));
      res.end('early');
    });
    let connections = 0;
    b.server.on('connection', () => connections++);
    const { port } = await server(single(b, { maxReplayBytes: 1024 }));
    const body = 'u'.repeat(300_000);
    const upload = `POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    const reply = await rawClient(port, `${upload}${upload}GET /after HTTP/1.1\r\nHost: x\r\n\r\n`, (text) => count(text, /early/g) === 3);
    expect(count(reply.text, /HTTP\/1\.1 200 OK/g)).toBe(3);
    expect(reply.closed).toBe(false);
    await expect.poll(() => b.hits.length).toBe(3);
    expect(b.hits.map((h) => h.body)).toEqual(['300000', '300000', '0']);
    expect(connections).toBe(1);
  });

  it('reuses keep-alive connections to a backend instead of opening one per request', async () => {
    const b = await backend('b');
    let connections = 0;
    b.server.on('connection', () => connections++);
    const { url } = await server(single(b));
    for (let i = 0; i < 10; i++) expect((await send(url)).status).toBe(200);
    expect(connections).toBe(1);
  });

  it('never opens more backend connections than the backend allows', async () => {
    let open = 0;
    let peak = 0;
    const b = await backend('b', (_req, res) => setTimeout(() => res.end('ok'), 20));
    b.server.on('connection', (socket) => {
      open++;
      peak = Math.max(peak, open);
      socket.on('close', () => open--);
    });
    const { url } = await server({ balancer: { backends: [{ id: 'b', address: b.address, maxConnections: 2 }] } });
    const replies = await Promise.all(Array.from({ length: 12 }, () => send(url)));
    expect(replies.every((r) => r.status === 200)).toBe(true);
    expect(peak).toBeLessThanOrEqual(2);
  });

  it('answers 502 and discards the connection when a backend sends a malformed head', async () => {
    const evil = createServer();
    evil.on('connection', (socket) => socket.on('data', () => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc')));
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => evil.close(() => resolve())));
    const address = `http://127.0.0.1:${(evil.address() as AddressInfo).port}`;
    const { url } = await server(single({ id: 'evil', address }));
    const reply = await send(url);
    expect(reply.status).toBe(502);
    expect(reply.body).toBe('Bad Gateway\n');
  });
});

describe('backpressure', () => {
  it('stops reading a backend while the client is not reading', async () => {
    let written = 0;
    let stalled = false;
    const piece = Buffer.alloc(64 * 1024, 'x');
    let release: () => void = () => undefined;
    const backendStalled = new Promise<void>((resolve) => (release = resolve));
    const b = await backend('b', (_req, res) => {
      res.writeHead(200, { 'content-length': String(64 * 1024 * 1024) });
      const pump = (): void => {
        while (written < 64 * 1024 * 1024) {
          written += piece.length;
          if (!res.write(piece)) {
            stalled = true;
            release();
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const { port } = await server(single(b));
    const socket = connect({ host: '127.0.0.1', port });
    cleanups.push(() => void socket.destroy());
    socket.pause();
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    await backendStalled;
    // Let the socket buffers on the way settle: the backend writes until every one of them is full.
    for (let last = -1; written !== last;) {
      last = written;
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    // The backend is held back because the proxy stopped reading it: far less than the 64 MiB it
    // would have pushed into a proxy that buffered for a client that does not read.
    expect(stalled).toBe(true);
    expect(written).toBeLessThan(32 * 1024 * 1024);
    // And nothing is lost: once the client reads, the whole body arrives.
    let received = 0;
    const whole = new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        received += chunk.length;
        if (received >= 64 * 1024 * 1024) resolve();
      });
    });
    socket.resume();
    await whole;
    expect(written).toBe(64 * 1024 * 1024);
  });
});

describe('bytes through a reused read buffer', () => {
  it('delivers every byte of large bodies intact to a client that stalls, Content-Length and chunked', async () => {
    const { createHash, randomBytes } = await import('node:crypto');
    const payload = randomBytes(8 * 1024 * 1024);
    const digest = createHash('sha256').update(payload).digest('hex');
    let stalled: () => void = () => undefined;
    const b = await backend('b', (req, res) => {
      if (req.url === '/length') res.writeHead(200, { 'content-length': String(payload.length) });
      let offset = 0;
      const pump = (): void => {
        while (offset < payload.length) {
          const piece = payload.subarray(offset, offset + 48_000);
          offset += piece.length;
          if (!res.write(piece)) {
            stalled();
            res.once('drain', pump);
            return;
          }
        }
        res.end();
      };
      pump();
    });
    const { port } = await server(single(b));
    for (const path of ['/length', '/chunked']) {
      const socket = connect({ host: '127.0.0.1', port });
      cleanups.push(() => void socket.destroy());
      socket.pause();
      const backendStalled = new Promise<void>((resolve) => (stalled = resolve));
      socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      // The proxy's socket to the client fills up while the client does not read: its writes queue,
      // which is when a reused read buffer must not be overwritten.
      await backendStalled;
      const chunks: Buffer[] = [];
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.resume();
      await new Promise((resolve) => socket.once('close', resolve));
      const text = Buffer.concat(chunks);
      const bodyStart = text.indexOf('\r\n\r\n') + 4;
      let body = text.subarray(bodyStart);
      if (path === '/chunked') {
        const parts: Buffer[] = [];
        for (let at = 0; ;) {
          const lineEnd = body.indexOf('\r\n', at);
          const size = parseInt(body.toString('latin1', at, lineEnd), 16);
          if (size === 0) break;
          parts.push(body.subarray(lineEnd + 2, lineEnd + 2 + size));
          at = lineEnd + 2 + size + 2;
        }
        body = Buffer.concat(parts);
      }
      expect(body.length, path).toBe(payload.length);
      expect(createHash('sha256').update(body).digest('hex'), path).toBe(digest);
    }
  });
});

describe('upgrades', () => {
  let ws: { server: Server; port: number };
  beforeAll(async () => {
    const httpServer = createServer((req, res) => res.end(`plain:${req.url}:${req.headers['x-forwarded-for']}`));
    const wss = new WebSocketServer({ noServer: true });
    httpServer.on('upgrade', (req: IncomingMessage, socket, head) => {
      if (req.url === '/refuse') {
        socket.end('HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nno-ws\r\n');
        return;
      }
      if (req.url === '/silent') return;
      wss.handleUpgrade(req, socket, head, (client) => client.on('message', (data) => client.send(`echo:${data.toString()}`)));
    });
    await new Promise<void>((resolve) => httpServer.listen(0, '127.0.0.1', resolve));
    ws = { server: httpServer, port: (httpServer.address() as AddressInfo).port };
  });
  afterAll(() => {
    ws.server.closeAllConnections();
    ws.server.close();
  });

  it('tunnels only after the backend answered 101, and logs the upgrade', async () => {
    const log: AccessLogEntry[] = [];
    const { port } = await server(single({ id: 'ws', address: `http://127.0.0.1:${ws.port}` }, { accessLog: (e) => log.push(e) }));
    const client = new WebSocket(`ws://127.0.0.1:${port}/chat`);
    await new Promise<void>((resolve, reject) => {
      client.once('open', () => resolve());
      client.once('error', reject);
    });
    const echoed = await new Promise<string>((resolve) => {
      client.once('message', (data) => resolve(data.toString()));
      client.send('hi');
    });
    expect(echoed).toBe('echo:hi');
    await new Promise<void>((resolve) => {
      client.once('close', () => resolve());
      client.close();
    });
    await expect.poll(() => log.length).toBe(1);
    expect(log[0]).toMatchObject({ status: 101, termination: 'ok', backendId: 'ws', path: '/chat' });
  });

  it('relays a refused upgrade as an ordinary response and parses the next request itself', async () => {
    // issue #19 finding 1: the request after a refused upgrade must go through the proxy, not a tunnel.
    const log: AccessLogEntry[] = [];
    const { port } = await server(single({ id: 'ws', address: `http://127.0.0.1:${ws.port}` }, { accessLog: (e) => log.push(e) }));
    const reply = await rawClient(
      port,
      'GET /refuse HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n',
      (text) => text.includes('plain:/second'),
    );
    expect(reply.text).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*no-ws/);
    // The second request reached the backend as a request of its own, with the proxy's X-Forwarded-For.
    expect(reply.text).toContain('plain:/second:127.0.0.1');
    expect(log.map((e) => e.path)).toEqual(['/refuse', '/second']);
  });

  it('gives up on an upgrade the backend never answers (504) and releases its lease', async () => {
    const { port, proxy } = await server(single({ id: 'ws', address: `http://127.0.0.1:${ws.port}` }, { timeouts: { headersMs: 300 } }));
    const reply = await rawClient(port, 'GET /silent HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', (text) =>
      text.includes('\r\n\r\n'),
    );
    expect(reply.text).toMatch(/^HTTP\/1\.1 504 /);
    expect(proxy.lb.snapshot().backends[0]!.inflight).toBe(0);
  });

  it('counts open tunnels against maxConnections and closes an idle tunnel after tunnelIdleMs', async () => {
    const { port, proxy } = await server({
      balancer: { backends: [{ id: 'ws', address: `http://127.0.0.1:${ws.port}`, maxConnections: 1 }] },
      maxQueue: 0,
      tunnelIdleMs: 300,
    });
    const first = new WebSocket(`ws://127.0.0.1:${port}/a`);
    await new Promise<void>((resolve, reject) => {
      first.once('open', () => resolve());
      first.once('error', reject);
    });
    expect(proxy.lb.snapshot().backends[0]!.inflight).toBe(1);
    const second = new WebSocket(`ws://127.0.0.1:${port}/b`);
    const status = await new Promise<number>((resolve) => {
      second.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      second.once('open', () => resolve(101));
    });
    expect(status).toBe(503);
    const closedAfter = await new Promise<number>((resolve) => {
      const start = Date.now();
      first.once('close', () => resolve(Date.now() - start));
    });
    expect(closedAfter).toBeLessThan(1500);
    await expect.poll(() => proxy.lb.snapshot().backends[0]!.inflight).toBe(0);
  });
});

describe('slow and excess clients (issue #19)', () => {
  it('answers 408 and destroys a connection whose head does not complete in headersTimeoutMs', async () => {
    const b = await backend('b');
    const { port } = await server(single(b, { headersTimeoutMs: 300 }));
    const started = Date.now();
    const reply = await rawClient(port, 'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    expect(reply.closed).toBe(true);
    expect(reply.text).toMatch(/^HTTP\/1\.1 408 /);
    // 300 ms + at most one 500 ms sweep + the 1 s linger, never Node's 30 s check.
    expect(Date.now() - started).toBeLessThan(2500);
    expect(b.hits).toHaveLength(0);
  });

  it('closes an idle keep-alive connection after keepAliveTimeoutMs', async () => {
    const b = await backend('b');
    const { port } = await server(single(b, { keepAliveTimeoutMs: 300 }));
    const reply = await rawClient(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', (text) => text.endsWith('b'));
    const tookMs = await closedWithin(reply.socket);
    expect(tookMs).toBeLessThan(1500);
  });

  it('closes connections past the listener maxConnections at once, and serves again when they go', async () => {
    const b = await backend('b');
    const { port, url, proxy } = await server(single(b, { maxConnections: 2 }));
    const held = [connect({ host: '127.0.0.1', port }), connect({ host: '127.0.0.1', port })];
    for (const s of held) cleanups.push(() => void s.destroy());
    await Promise.all(held.map((s) => new Promise((resolve) => s.once('connect', resolve))));
    await expect.poll(() => proxy.connections).toBe(2);
    const refused = await rawClient(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(refused.closed).toBe(true);
    expect(refused.text).toBe('');
    for (const s of held) s.destroy();
    await expect.poll(() => proxy.connections).toBe(0);
    expect((await send(url)).status).toBe(200);
  });

  it('shares a ConnectionLimit between listeners', async () => {
    const b = await backend('b');
    const limit = new ConnectionLimit(1);
    const one = await server(single(b, { connectionLimit: limit }));
    const two = await server(single(b, { connectionLimit: limit }));
    const held = connect({ host: '127.0.0.1', port: one.port });
    cleanups.push(() => void held.destroy());
    await new Promise((resolve) => held.once('connect', resolve));
    await expect.poll(() => limit.open).toBe(1);
    const refused = await rawClient(two.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    expect(refused.closed).toBe(true);
    expect(refused.text).toBe('');
  });

  it('answers 431 to more header fields than maxHeaders and forwards nothing truncated', async () => {
    const b = await backend('b');
    const { port } = await server(single(b, { trustedProxies: ['loopback'] }));
    const padding = Array.from({ length: 1100 }, (_, i) => `X-Pad-${i}: v\r\n`).join('');
    const reply = await rawClient(port, `GET / HTTP/1.1\r\nHost: x\r\n${padding}X-Forwarded-For: 9.9.9.9\r\n\r\n`);
    expect(reply.text).toMatch(/^HTTP\/1\.1 431 /);
    expect(reply.closed).toBe(true);
    expect(b.hits).toHaveLength(0);
  });

  it('refuses two Host headers, an HTTP/0.9 line, a fragment and an absolute-form target with 400', async () => {
    const b = await backend('b');
    const { port } = await server(single(b));
    for (const bytes of [
      'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
      'GET /\r\n\r\n',
      'GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n',
      'GET http://evil/ HTTP/1.1\r\nHost: a\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n',
    ]) {
      const reply = await rawClient(port, bytes);
      expect(reply.text, JSON.stringify(bytes)).toMatch(/^HTTP\/1\.1 (400|422) /);
      expect(reply.closed).toBe(true);
    }
    expect(b.hits).toHaveLength(0);
  });

  it('forwards the path of an absolute-form target when allowAbsoluteForm is on', async () => {
    const b = await backend('b', (req, res) => res.end(req.url));
    const { port } = await server(single(b, { allowAbsoluteForm: true }));
    const reply = await rawClient(port, 'GET http://a.example/p?q=1 HTTP/1.1\r\nHost: a.example\r\n\r\n', (text) => text.endsWith('/p?q=1'));
    expect(reply.text).toMatch(/^HTTP\/1\.1 200 /);
  });

  it('refuses bad listener options with the option named', () => {
    expect(() => createProxyServer({ balancer: { backends: [] }, maxHeaders: 0 })).toThrow(/^maxHeaders:/);
    expect(() => createProxyServer({ balancer: { backends: [] }, headersTimeoutMs: -1 })).toThrow(/^headersTimeoutMs:/);
    expect(() => createProxyServer({ balancer: { backends: [] }, connectionLimit: 3 as never })).toThrow(/^connectionLimit:/);
    expect(() => createProxyServer({ balancer: { backends: [] }, retries: 3 } as never)).toThrow(/^retries:/);
  });
});

describe('TLS listeners', () => {
  let certs: CertDir;
  beforeAll(() => {
    certs = certDir();
  });
  afterAll(() => certs.remove());

  it('terminates TLS, marks the request https and refuses client renegotiation', async () => {
    const b = await backend('b', (req, res) => res.end(String(req.headers['x-forwarded-proto'])));
    const cert = certs.make('proxy', 'localhost', ['localhost']);
    const { port } = await server(single(b, { tls: { cert: cert.cert, key: cert.key, maxVersion: 'TLSv1.2' } }));
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca: cert.cert, checkServerIdentity: () => undefined, maxVersion: 'TLSv1.2' });
    cleanups.push(() => void socket.destroy());
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => resolve());
      socket.once('error', reject);
    });
    let text = '';
    await new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        text += chunk.toString('latin1');
        if (text.endsWith('https')) resolve();
      });
      socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
    });
    expect(text).toMatch(/^HTTP\/1\.1 200 OK/);
    const outcome = await new Promise<string>((resolve) => {
      socket.once('close', () => resolve('closed'));
      socket.once('error', () => resolve('refused'));
      const started = socket.renegotiate({}, (error) => resolve(error ? 'refused' : 'renegotiated'));
      if (!started) resolve('refused');
    });
    expect(outcome).not.toBe('renegotiated');
  });
});
