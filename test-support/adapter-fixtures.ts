// Real servers on 127.0.0.1 for the adapter tests: recording backends, a refused port, a client.
import { createHash } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach } from 'vitest';

export interface Hit {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  bodyLength: number;
  bodySha256: string;
}

export interface TestBackend {
  id: string;
  address: string;
  /** Requests that reached this backend, in order. */
  hits: Hit[];
  server: Server;
  close(): Promise<void>;
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/** A node:http backend that records every request and answers with its id (and `x-backend`). */
export async function startBackend(id: string): Promise<TestBackend> {
  const hits: Hit[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      hits.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyLength: body.length, bodySha256: sha256(body) });
      res.writeHead(200, { 'content-type': 'text/plain', 'x-backend': id });
      res.end(id);
    });
  });
  // A WebSocket-style upgrade that echoes: enough to see bytes cross the proxy both ways.
  server.on('upgrade', (req, socket) => {
    hits.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyLength: 0, bodySha256: '' });
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
    socket.pipe(socket);
  });
  await listen(server);
  return {
    id,
    address: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    hits,
    server,
    close: () => closeServer(server),
  };
}

export type Cleanup = () => Promise<void> | void;

/**
 * A list the calling test file pushes cleanups onto: after each test they run, last pushed first
 * (a proxy closes before the backends it forwards to).
 */
export function cleanupsAfterEach(): Cleanup[] {
  const cleanups: Cleanup[] = [];
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!();
  });
  return cleanups;
}

/** `n` recording backends with ids `b0`, `b1`…, each closed by `cleanups`. */
export async function startBackends(n: number, cleanups: Cleanup[]): Promise<TestBackend[]> {
  const list: TestBackend[] = [];
  for (let i = 0; i < n; i++) {
    const backend = await startBackend(`b${i}`);
    cleanups.push(() => backend.close());
    list.push(backend);
  }
  return list;
}

/** Balancer options: round robin over `list` (ids and addresses only), so tests can predict the spread. */
export function roundRobin(list: readonly { id: string; address: string }[]): { algorithm: 'round-robin'; backends: { id: string; address: string }[] } {
  return { algorithm: 'round-robin', backends: list.map(({ id, address }) => ({ id, address })) };
}

/** A loopback port with nothing listening: connections to it are refused. */
export async function refusedAddress(): Promise<string> {
  const server = createServer();
  await listen(server);
  const port = (server.address() as AddressInfo).port;
  await closeServer(server);
  return `http://127.0.0.1:${port}`;
}

export async function listen(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}

export interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** One request without keep-alive, so no client socket outlives the test. */
export function send(base: string, path: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    // `path` goes out verbatim (a URL object would read `//api//x` as a host).
    const { hostname, port } = new URL(base);
    const req = httpRequest({ hostname, port, path, method: options.method ?? 'GET', headers: options.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Open an `Upgrade: echo` connection, send `message`, resolve with what came back. */
export function upgradeEcho(base: string, path: string, message: string): Promise<{ status: number; echoed: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(new URL(path, base), { headers: { connection: 'Upgrade', upgrade: 'echo' }, agent: false });
    req.on('upgrade', (res, socket) => {
      socket.write(message);
      socket.once('data', (data: Buffer) => {
        socket.destroy();
        resolve({ status: res.statusCode ?? 0, echoed: data.toString() });
      });
    });
    req.on('response', (res) => {
      res.resume();
      resolve({ status: res.statusCode ?? 0, echoed: '' });
    });
    req.on('error', reject);
    req.end();
  });
}

export const sha256Of = sha256;

/** Sockets, servers and timers alive now: compared before and after a test to find leaks. */
export function liveHandles(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap' || r === 'Timeout').length;
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
