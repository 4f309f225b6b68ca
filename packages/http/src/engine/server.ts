/**
 * `createProxyServer`: the raw-socket HTTP/1.1 engine — a standalone listener that owns its bytes.
 * `node:http`'s server objects and undici cost about two thirds of `createProxy`'s CPU per request
 * (bench/README.md); this engine parses heads itself (`parser.ts`), writes each response head and
 * its first body bytes in one socket write, and keeps its own keep-alive pools to the backends.
 * Every decision — routing, admission, affinity, hashing, retries and their budget, the queue,
 * lease outcomes, the access log — goes through the same code as `createProxy` (`ProxyEngine`), so
 * the two engines behave alike; one behaviour suite runs against both.
 *
 * Connections are capped per listener (`maxConnections`) and across listeners (`connectionLimit`):
 * the excess is closed at accept. Client deadlines (head, keep-alive idle, body, tunnel) are swept
 * every 500 ms. TLS listeners refuse client-initiated renegotiation and bound the handshake by
 * `headersTimeoutMs`.
 */
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import type { Backend, LoadBalancer } from '@fulcrum/core';
import type { IncomingMessage } from 'node:http';
import { ProxyEngine } from '../proxy/proxy';
import type { RouteDecision } from '../proxy/options';
import { BackendPool } from './backend-pool';
import { ClientConnection, type ListenerContext } from './connection';
import { splitServerOptions, type NormalizedListenerOptions, type ProxyServerOptions } from './options';
import type { RequestView } from './request-view';

/** A running raw-engine listener. */
export interface ProxyServer {
  /** Start listening; resolves once bound. `host` defaults to `'127.0.0.1'`, not every interface. */
  listen(port: number, host?: string): Promise<void>;
  /**
   * Stop: no new connections; idle keep-alive connections and tunnels close now, busy ones after
   * their response; after `graceMs` (default 10000) whatever is left is cut. Then queued requests
   * get 503, backend connections close, and a load balancer the server created is closed.
   */
  close(graceMs?: number): Promise<void>;
  /** The bound address, or `null` before `listen`. */
  address(): AddressInfo | null;
  /** Open client connections. */
  readonly connections: number;
  /** The load balancer of a single-pool server; with a router, the first pool's. */
  readonly lb: LoadBalancer;
  /** Every pool by name (`'default'` for a single `balancer`). */
  readonly pools: ReadonlyMap<string, LoadBalancer>;
}

/** How often client deadlines are checked, ms: every deadline holds to within this. */
const SWEEP_MS = 500;

class RawProxyServer implements ProxyServer, ListenerContext {
  readonly engine: ProxyEngine;
  readonly listener: NormalizedListenerOptions;
  readonly maxHeadBytes: number;
  readonly maxHeaders: number;
  readonly #server: Server;
  readonly #clients = new Set<ClientConnection>();
  readonly #backendPools = new Map<Backend, BackendPool>();
  readonly #onRemoved: (backend: Backend) => void;
  #open = 0;
  #sweep: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;
  #allGone: (() => void) | undefined;

  constructor(options: ProxyServerOptions) {
    const { proxy, listener } = splitServerOptions(options);
    this.engine = new ProxyEngine(proxy);
    this.listener = listener;
    // Backend response heads get the same limits as client heads, with room for Set-Cookie lines.
    this.maxHeadBytes = Math.max(listener.maxHeadBytes, 65_536);
    this.maxHeaders = Math.max(listener.maxHeaders, 200);
    this.#onRemoved = (backend) => {
      const pool = this.#backendPools.get(backend);
      if (pool === undefined) return;
      this.#backendPools.delete(backend);
      pool.close();
    };
    for (const lb of this.engine.pools.values()) lb.on('removed', this.#onRemoved);
    const tls = listener.tls;
    const server = tls === undefined
      ? createNetServer({ allowHalfOpen: true, noDelay: true })
      : createTlsServer({ ...tls, allowHalfOpen: true, handshakeTimeout: listener.headersTimeoutMs } as Parameters<typeof createTlsServer>[0]);
    // Counted on the raw TCP socket, before any TLS work: the excess costs one accept and one close.
    server.on('connection', (socket: Socket) => {
      if (this.#closing !== undefined || this.#open >= listener.maxConnections || !listener.connectionLimit.tryAcquire()) {
        socket.destroy();
        return;
      }
      this.#open++;
      socket.once('close', () => {
        this.#open--;
        listener.connectionLimit.release();
        if (this.#open === 0) this.#allGone?.();
      });
      if (tls === undefined) this.#accept(socket);
    });
    if (tls !== undefined) {
      server.on('secureConnection', (socket: TLSSocket) => {
        // Client-initiated renegotiation is a CPU lever for an attacker; HAProxy and nginx refuse it.
        socket.disableRenegotiation();
        this.#accept(socket);
      });
      server.on('tlsClientError', (_error: Error, socket: TLSSocket) => socket.destroy());
    }
    server.on('error', (error) => this.engine.report(error, 'client'));
    this.#server = server;
  }

  get closing(): boolean {
    return this.#closing !== undefined;
  }

  get connections(): number {
    return this.#open;
  }

  get lb(): LoadBalancer {
    return this.engine.lb;
  }

  get pools(): ReadonlyMap<string, LoadBalancer> {
    return this.engine.pools;
  }

  #accept(socket: Socket): void {
    if (socket.destroyed) return;
    this.#clients.add(new ClientConnection(this, socket));
  }

  route(view: RequestView): RouteDecision | undefined {
    return this.engine.route(view as unknown as IncomingMessage);
  }

  pool(backend: Backend): BackendPool {
    let pool = this.#backendPools.get(backend);
    if (pool === undefined) {
      pool = new BackendPool(backend, {
        connectMs: this.engine.config.connectMs,
        headersMs: this.engine.config.headersMs,
        backendIdleMs: this.listener.backendIdleMs,
        connectionsPerBackend: this.engine.config.connectionsPerBackend,
        backendTls: this.engine.config.backendTls,
      });
      this.#backendPools.set(backend, pool);
    }
    return pool;
  }

  forget(connection: ClientConnection): void {
    this.#clients.delete(connection);
  }

  #sweepDeadlines = (): void => {
    const now = Date.now();
    for (const client of this.#clients) {
      if (client.deadline !== 0 && client.deadline <= now) client.expire();
    }
    for (const pool of this.#backendPools.values()) pool.sweep(now);
  };

  listen(port: number, host = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      this.#server.once('error', onError);
      this.#server.listen(port, host, () => {
        this.#server.off('error', onError);
        this.#sweep ??= setInterval(this.#sweepDeadlines, SWEEP_MS);
        this.#sweep.unref();
        resolve();
      });
    });
  }

  address(): AddressInfo | null {
    const address = this.#server.address();
    return typeof address === 'object' ? address : null;
  }

  close(graceMs = 10_000): Promise<void> {
    this.#closing ??= this.#shutdown(graceMs);
    return this.#closing;
  }

  async #shutdown(graceMs: number): Promise<void> {
    const stopped = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    // Queued requests get their 503 now; requests in progress run to their end.
    this.engine.queue.close();
    for (const client of this.#clients) client.shutdown();
    if (this.#open > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.#allGone = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    for (const client of this.#clients) client.socket.destroy();
    await stopped;
    if (this.#sweep !== undefined) clearInterval(this.#sweep);
    for (const lb of this.engine.pools.values()) lb.off('removed', this.#onRemoved);
    await this.engine.close();
    for (const pool of this.#backendPools.values()) pool.close();
    this.#backendPools.clear();
  }
}

/**
 * Create a standalone proxy listener on the raw-socket engine: `await server.listen(8080)`. Takes
 * every option of `createProxy` (see `ProxyOptions`) plus the listener's (`ProxyServerOptions`).
 */
export function createProxyServer(options: ProxyServerOptions): ProxyServer {
  return new RawProxyServer(options);
}
