/**
 * Upgrade requests as an attacker uses them, over raw sockets: an upgrade the backend refuses must
 * not turn the connection into a blind pipe (the next request on it is routed, admitted, forwarded
 * with X-Forwarded-For and logged like any other), and a backend that never answers, or a tunnel
 * nobody uses, must not hold sockets past their timeouts or past the backend's maxConnections.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createRouter, type AccessLogEntry, type ProxyOptions } from '@fulcrum/http';
import { startBackend, startProxy, type TestBackend, type TestProxy } from '../proxy/helpers';
import { RawConnection, count, rawExchange } from './raw';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function backend(id: string): Promise<TestBackend> {
  const b = await startBackend(id);
  cleanups.push(() => b.close());
  return b;
}

async function proxyWith(options: ProxyOptions): Promise<TestProxy> {
  const p = await startProxy(options);
  cleanups.push(() => p.close());
  return p;
}

/** A backend that accepts TCP connections and never says a word; it counts what is open. */
async function silentBackend(): Promise<{ address: string; open: Set<Socket>; accepted: number; closed: Promise<void>[]; server: NetServer }> {
  const open = new Set<Socket>();
  const state = { accepted: 0, closed: [] as Promise<void>[] };
  const server = createNetServer((socket) => {
    state.accepted++;
    open.add(socket);
    state.closed.push(new Promise((resolve) => socket.once('close', () => resolve())));
    socket.on('close', () => open.delete(socket));
    socket.on('error', () => undefined);
    // Read (and ignore) what arrives, so the proxy's FIN is seen and the socket closes.
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  );
  const port = (server.address() as AddressInfo).port;
  return {
    address: `http://127.0.0.1:${port}`,
    open,
    server,
    get accepted() {
      return state.accepted;
    },
    get closed() {
      return state.closed;
    },
  };
}

/** A backend that switches protocols (101) and echoes what it gets, upper-cased. */
async function echoUpgradeBackend(): Promise<{ address: string; server: Server; sockets: Set<Duplex> }> {
  const sockets = new Set<Duplex>();
  const server = createHttpServer((_req, res) => res.end('plain'));
  server.on('upgrade', (_req: IncomingMessage, socket: Duplex) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    // Node's HTTP server keeps sockets half-open; this backend closes when the proxy does.
    socket.on('end', () => socket.destroy());
    socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
    socket.on('data', (chunk: Buffer) => socket.write(chunk.toString().toUpperCase()));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { address: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, sockets };
}

/** Wait (turn by turn of the event loop, no timer) until `condition` holds. */
function eventually(condition: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => (condition() ? resolve() : void setImmediate(check));
    check();
  });
}

const WEBSOCKET = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';
const H2C = 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n';

describe('an upgrade the backend refuses', () => {
  it.each([
    ['websocket', WEBSOCKET],
    ['h2c', H2C],
  ])('relays the refusal and routes, admits, forwards and logs the next request on the connection (%s)', async (_kind, upgradeHeaders) => {
    // The backends are plain HTTP servers: they answer the upgrade request with 200.
    const ws = await backend('ws');
    const api = await backend('api');
    const log: AccessLogEntry[] = [];
    const admitted: string[] = [];
    const router = createRouter({
      pools: { ws: { backends: [{ id: 'ws', address: ws.address }] }, api: { backends: [{ id: 'api', address: api.address }] } },
      routes: [{ match: { pathPrefix: '/ws' }, pool: 'ws' }, { pool: 'api' }],
    });
    const p = await proxyWith({
      router,
      accessLog: (entry) => log.push(entry),
      admission: (req) => {
        admitted.push(req.url ?? '');
        return { admit: true };
      },
    });
    const conn = await RawConnection.open(p.port);
    cleanups.push(() => conn.destroy());
    conn.write(`GET /ws/chat HTTP/1.1\r\nHost: proxy.test\r\n${upgradeHeaders}\r\nGET /api/second HTTP/1.1\r\nHost: proxy.test\r\n\r\n`);
    const text = await conn.until((t) => t.includes('x-backend: api') && count(t, '0\r\n\r\n') === 2);
    expect(text.startsWith('HTTP/1.1 200')).toBe(true);
    expect(ws.hits.map((h) => h.url)).toEqual(['/ws/chat']);
    // The second request went through the router to the other pool, with the proxy's headers.
    expect(api.hits.map((h) => h.url)).toEqual(['/api/second']);
    expect(api.hits[0]!.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(admitted).toEqual(['/ws/chat', '/api/second']);
    expect(log.map((e) => [e.path, e.status, e.pool, e.termination])).toEqual([
      ['/ws/chat', 200, 'ws', 'ok'],
      ['/api/second', 200, 'api', 'ok'],
    ]);
    expect(conn.closed).toBe(false);
  });

  it('sends an upgrade request with a body as an ordinary request, body intact, without Upgrade', async () => {
    const b = await backend('b');
    const p = await proxyWith({ balancer: { backends: [{ id: 'b', address: b.address }] } });
    const reply = await rawExchange(
      p.port,
      `POST /form HTTP/1.1\r\nHost: x\r\n${H2C}Content-Length: 5\r\n\r\nhelloGET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`,
    );
    expect(count(reply.text, 'HTTP/1.1 200')).toBe(2);
    // Pipelined requests are forwarded concurrently: they may reach the backend in either order.
    expect(b.hits.map((h) => [h.method, h.url, h.body, h.headers.upgrade]).sort()).toEqual([
      ['GET', '/next', '', undefined],
      ['POST', '/form', 'hello', undefined],
    ]);
  });

  it('refuses an upgrade the admission check denies, without contacting a backend', async () => {
    const b = await echoUpgradeBackend();
    const log: AccessLogEntry[] = [];
    const p = await proxyWith({
      balancer: { backends: [{ id: 'b', address: b.address }] },
      accessLog: (entry) => log.push(entry),
      admission: () => ({ admit: false, status: 429, message: 'Too Many Requests', headers: { 'retry-after': '1' } }),
    });
    const reply = await rawExchange(p.port, `GET /chat HTTP/1.1\r\nHost: x\r\n${WEBSOCKET}\r\n`);
    expect(reply.status).toBe(429);
    expect(reply.text).toContain('retry-after: 1');
    expect(reply.closedByServer).toBe(true);
    expect(b.sockets.size).toBe(0);
    expect(log.map((e) => [e.status, e.termination])).toEqual([[429, 'denied']]);
  });
});

describe('a refused upgrade whose response body stalls', () => {
  it('cuts the client connection after timeouts.idleMs and releases the backend', async () => {
    const stalled = new Set<Socket>();
    const server = createNetServer((socket) => {
      stalled.add(socket);
      socket.on('close', () => stalled.delete(socket));
      socket.on('error', () => undefined);
      socket.once('data', () => socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nab'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const p = await proxyWith({
      balancer: { backends: [{ id: 's', address: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }] },
      timeouts: { idleMs: 150 },
    });
    const conn = await RawConnection.open(p.port);
    conn.write(`GET /chat HTTP/1.1\r\nHost: x\r\n${WEBSOCKET}\r\n`);
    await conn.closedPromise();
    expect(conn.text).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*\r\n\r\nab$/);
    await eventually(() => stalled.size === 0 && p.proxy.lb.snapshot().backends[0]!.inflight === 0);
  });
});

describe('an upgrade the backend accepts', () => {
  it('tunnels only after the 101, relays both ways, holds the lease while open and logs it', async () => {
    const b = await echoUpgradeBackend();
    const log: AccessLogEntry[] = [];
    const p = await proxyWith({ balancer: { backends: [{ id: 'b', address: b.address }] }, accessLog: (entry) => log.push(entry) });
    const conn = await RawConnection.open(p.port);
    cleanups.push(() => conn.destroy());
    conn.write(`GET /chat HTTP/1.1\r\nHost: x\r\n${WEBSOCKET}\r\nhello`);
    const text = await conn.until((t) => t.includes('HELLO'));
    expect(text.startsWith('HTTP/1.1 101 Switching Protocols\r\n')).toBe(true);
    expect(p.proxy.lb.snapshot().backends[0]!.inflight).toBe(1);
    conn.destroy();
    await eventually(() => b.sockets.size === 0 && p.proxy.lb.snapshot().backends[0]!.inflight === 0);
    expect(log.map((e) => [e.status, e.termination, e.backendId])).toEqual([[101, 'ok', 'b']]);
  });

  it('closes a tunnel nobody uses after tunnelMs and releases the backend', async () => {
    const b = await echoUpgradeBackend();
    const p = await proxyWith({ balancer: { backends: [{ id: 'b', address: b.address }] }, upgradeTimeouts: { tunnelMs: 150 } });
    const conn = await RawConnection.open(p.port);
    conn.write(`GET /chat HTTP/1.1\r\nHost: x\r\n${WEBSOCKET}\r\n`);
    await conn.until((t) => t.includes('\r\n\r\n'));
    await conn.closedPromise();
    await eventually(() => p.proxy.lb.snapshot().backends[0]!.inflight === 0);
    expect(b.sockets.size).toBe(0);
  });
});

describe('a backend that accepts TCP and never answers an upgrade', () => {
  it('answers 504 after the handshake timeout and destroys both sockets', async () => {
    const silent = await silentBackend();
    const p = await proxyWith({ balancer: { backends: [{ id: 's', address: silent.address }] }, upgradeTimeouts: { handshakeMs: 150 } });
    const reply = await rawExchange(p.port, `GET /chat HTTP/1.1\r\nHost: x\r\n${WEBSOCKET}\r\n`, 5000);
    expect(reply.status).toBe(504);
    expect(reply.closedByServer).toBe(true);
    await Promise.all(silent.closed);
    expect(silent.open.size).toBe(0);
    expect(p.proxy.lb.snapshot().backends[0]!.inflight).toBe(0);
  });

  it('opens no more backend connections than maxConnections and refuses the excess when the queue is full', async () => {
    const silent = await silentBackend();
    const p = await proxyWith({
      balancer: { backends: [{ id: 's', address: silent.address, maxConnections: 2 }] },
      maxQueue: 0,
      upgradeTimeouts: { handshakeMs: 60_000 },
    });
    const conns = await Promise.all(Array.from({ length: 6 }, () => RawConnection.open(p.port)));
    for (const c of conns) cleanups.push(() => c.destroy());
    for (const c of conns) c.write(`GET /chat HTTP/1.1\r\nHost: x\r\n${WEBSOCKET}\r\n`);
    const refused = conns.map((c) => c.until((t) => t.startsWith('HTTP/1.1 503')).then(() => c.closedPromise()));
    // Four of the six are refused; which four depends on arrival order.
    await Promise.any(refused);
    await eventually(() => conns.filter((c) => c.closed).length === 4);
    expect(conns.filter((c) => c.text.startsWith('HTTP/1.1 503')).length).toBe(4);
    expect(p.proxy.lb.snapshot().backends[0]!.inflight).toBe(2);
    expect(silent.accepted).toBeLessThanOrEqual(2);
  });
});
