import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createProxy, createProxyServer, type ProxyHandler, type ProxyOptions, type ProxyServerOptions } from '@fulcrum/http';

/**
 * The two engines one behaviour suite runs against: `createProxy` on a `node:http` server, and
 * `createProxyServer`'s raw-socket engine. Suites run `describe.each(ENGINES)` and pass the engine
 * to `startProxy`; a behaviour that differs is a bug or a documented, tested exception.
 */
export type Engine = 'node' | 'raw';
export const ENGINES: readonly Engine[] = ['node', 'raw'];

let defaultEngine: Engine = 'node';
/** The engine `startProxy` uses when none is passed: set by a `describe.each(ENGINES)` block's `beforeAll`. */
export function useEngine(engine: Engine): void {
  defaultEngine = engine;
}

export interface TestBackend {
  id: string;
  port: number;
  address: string;
  server: Server;
  /** Requests that reached this backend (method + url), in order. */
  hits: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[];
  close(): Promise<void>;
}

export type BackendHandler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

const defaultHandler =
  (id: string): BackendHandler =>
  (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'x-backend': id });
    res.end(id);
  };

/** A real HTTP backend on 127.0.0.1 that records what reached it. */
export async function startBackend(id: string, handler: BackendHandler = defaultHandler(id)): Promise<TestBackend> {
  const hits: TestBackend['hits'] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      hits.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      handler(req, res, body);
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    id,
    port,
    address: `http://127.0.0.1:${port}`,
    server,
    hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A port with nothing listening (connections are refused). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface TestProxy {
  /** The pools of the proxy under test (`createProxy`'s handler, or the raw server). */
  proxy: Pick<ProxyHandler, 'lb' | 'pools'>;
  engine: Engine;
  port: number;
  url: string;
  close(): Promise<void>;
}

/** A proxy on 127.0.0.1 with either engine (default: `createProxy` on `node:http`). */
export async function startProxy(options: ProxyOptions | ProxyServerOptions, engine: Engine = defaultEngine): Promise<TestProxy> {
  if (engine === 'raw') {
    const server = createProxyServer(options);
    await server.listen(0, '127.0.0.1');
    const port = server.address()!.port;
    return { proxy: server, engine, port, url: `http://127.0.0.1:${port}`, close: () => server.close(0) };
  }
  const proxy = createProxy(options);
  const server = createServer(proxy);
  server.on('upgrade', proxy.upgrade);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    proxy,
    engine,
    port,
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await proxy.close();
    },
  };
}

export interface Reply {
  status: number;
  headers: IncomingMessage['headers'];
  body: string;
}

/** One request with node:http (no keep-alive, so nothing lingers). */
export function send(
  url: string,
  options: { method?: string; path?: string; headers?: Record<string, string | string[]>; body?: string | Buffer; signal?: AbortSignal } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const target = new URL(options.path ?? '/', url);
    const req = httpRequest(
      target,
      { method: options.method ?? 'GET', headers: options.headers, agent: false, ...(options.signal ? { signal: options.signal } : {}) },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
