/**
 * A raw-engine listener: the `net`/`tls` server, its client connections, their deadline sweep, the
 * connection caps, and one set of backend pools per proxy engine it dispatches to. `createProxyServer`
 * is one listener dispatching to one engine; the `fulcrum` CLI's frontends dispatch each request to
 * its pool's engine and hand the connections of its own pages (stats, metrics, admin) to a
 * `node:http` server.
 *
 * It offers the parts of `node:http`'s `Server` surface a runner uses (`listen`, `close`,
 * `closeIdleConnections`, `closeAllConnections`, `address`, `listening`, and the `headersTimeout` /
 * `keepAliveTimeout` settings), so one can stand in for the other.
 */
import { constants as cryptoConstants } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { Backend } from '@fulcrum/core';
import type { ProxyEngine } from '../proxy/proxy';
import type { RouteDecision } from '../proxy/options';
import { BackendPool } from './backend-pool';
import { ClientConnection, type Dispatch, type ListenerContext } from './connection';
import type { ExchangeContext } from './exchange';
import type { NormalizedListenerOptions } from './options';
import type { RequestView } from './request-view';
import { Http2Frontend, sniffH2c } from '../h2/frontend';
import { attachHttp2 } from '../h2/listener-hooks';

/** How often client deadlines and idle backend connections are checked, ms. */
const SWEEP_MS = 500;

/** One engine's backend pools on one listener. */
class EngineContext implements ExchangeContext {
  readonly engine: ProxyEngine;
  readonly maxHeadBytes: number;
  readonly maxHeaders: number;
  readonly #listener: NormalizedListenerOptions;
  readonly #pools = new Map<Backend, BackendPool>();
  readonly #onRemoved = (backend: Backend): void => {
    const pool = this.#pools.get(backend);
    if (pool === undefined) return;
    this.#pools.delete(backend);
    pool.close();
  };

  constructor(engine: ProxyEngine, listener: NormalizedListenerOptions) {
    this.engine = engine;
    this.#listener = listener;
    // Backend response heads get at least the client limits, with room for Set-Cookie lines.
    this.maxHeadBytes = Math.max(listener.maxHeadBytes, 65_536);
    this.maxHeaders = Math.max(listener.maxHeaders, 200);
    for (const lb of engine.pools.values()) lb.on('removed', this.#onRemoved);
  }

  pool(backend: Backend): BackendPool {
    let pool = this.#pools.get(backend);
    if (pool === undefined) {
      const config = this.engine.config;
      pool = new BackendPool(backend, {
        connectMs: config.connectMs,
        headersMs: config.headersMs,
        backendIdleMs: this.#listener.backendIdleMs,
        connectionsPerBackend: config.connectionsPerBackend,
        backendTls: config.backendTls,
      });
      this.#pools.set(backend, pool);
    }
    return pool;
  }

  sweep(now: number): void {
    for (const pool of this.#pools.values()) pool.sweep(now);
  }

  close(): void {
    for (const lb of this.engine.pools.values()) lb.off('removed', this.#onRemoved);
    for (const pool of this.#pools.values()) pool.close();
    this.#pools.clear();
  }
}

/** Where the listener sends a request: an engine and its route, or hand the connection off. */
export type RawDispatch =
  { readonly engine: ProxyEngine; readonly route: import('../proxy/options').RouteDecision | undefined; readonly onEnd?: () => void } | 'hand-off';

/** Options of a `RawListener`: validated listener options, the per-request dispatch, and the node:http server taking handed-off connections. */
export interface RawListenerOptions {
  readonly listener: NormalizedListenerOptions;
  dispatch(view: RequestView): RawDispatch;
  /** Takes handed-off connections. Required when `dispatch` may answer `'hand-off'`. */
  readonly fallback?: HttpServer;
  /** Errors of the listener itself (a router that threw, a failed accept). */
  report(error: unknown): void;
}

/**
 * The raw engine's listening socket (plain TCP or TLS) and its client connections: each request head
 * is parsed here and `dispatch` says which pool engine serves it, or hands the connection to the
 * `fallback` node:http server. `createProxyServer` is one engine behind one listener; the `fulcrum`
 * application puts one engine per pool behind each frontend's listener. `listen`, `close`,
 * `address` and the `server` are those of a node:net / node:tls server; `retire(engine)` releases
 * what the listener holds for an engine that will not be dispatched to again.
 */
export class RawListener extends EventEmitter implements ListenerContext {
  listener: NormalizedListenerOptions;
  readonly server: Server | TlsServer;
  readonly #options: RawListenerOptions;
  readonly #clients = new Set<ClientConnection>();
  readonly #contexts = new Map<ProxyEngine, EngineContext>();
  /** The engine of the last dispatch and its context: most listeners serve one engine (no map lookup per request). */
  #lastEngine: ProxyEngine | undefined;
  #lastContext: EngineContext | undefined;
  /** `dispatch`'s answer: one object, refilled per request (its caller reads it at once). */
  readonly #dispatched: { ctx: ExchangeContext; route: RouteDecision | undefined; onEnd: (() => void) | undefined } = {
    ctx: undefined as unknown as ExchangeContext,
    route: undefined,
    onEnd: undefined,
  };
  #open = 0;
  #sweep: NodeJS.Timeout | undefined;
  #closing = false;
  #closeWaiters: (() => void)[] = [];
  readonly #h2: Http2Frontend | undefined;

  constructor(options: RawListenerOptions) {
    super();
    this.#options = options;
    const listener = options.listener;
    this.listener = listener;
    const tls =
      listener.tls === undefined || listener.http2 === undefined || listener.tls.ALPNProtocols !== undefined
        ? listener.tls
        : // HTTP/2 by ALPN: h2 first, as every server that offers both does.
          { ...listener.tls, ALPNProtocols: ['h2', 'http/1.1'] };
    const server =
      tls === undefined
        ? createNetServer({ allowHalfOpen: true, noDelay: true })
        : createTlsServer({
            ...tls,
            // Client-initiated renegotiation is a CPU lever for an attacker; HAProxy and nginx refuse it.
            // OpenSSL answers it with a no_renegotiation alert and the connection goes on.
            secureOptions: (tls.secureOptions ?? 0) | cryptoConstants.SSL_OP_NO_RENEGOTIATION,
            allowHalfOpen: true,
            handshakeTimeout: listener.headersTimeoutMs,
          } as Parameters<typeof createTlsServer>[0]);
    // Counted on the raw TCP socket, before any TLS work: the excess costs one accept and one close.
    server.on('connection', (socket: Socket) => {
      const limits = this.listener;
      if (this.#closing || this.#open >= limits.maxConnections || !limits.connectionLimit.tryAcquire()) {
        socket.destroy();
        return;
      }
      this.#open++;
      const limit = limits.connectionLimit;
      socket.once('close', () => {
        this.#open--;
        limit.release();
        if (this.#open === 0) this.#allClosed();
      });
      if (tls === undefined) this.#accept(socket);
    });
    this.#h2 = listener.http2 === undefined ? undefined : attachHttp2(this, listener.http2, options);
    if (tls !== undefined) {
      server.on('secureConnection', (socket: TLSSocket) => {
        if (socket.alpnProtocol === 'h2' && this.#h2 !== undefined) this.#h2.accept(socket);
        else this.#accept(socket);
      });
      server.on('tlsClientError', (_error: Error, socket: TLSSocket) => socket.destroy());
    }
    server.on('error', (error) => this.emit('error', error));
    this.server = server;
  }

  get closing(): boolean {
    return this.#closing;
  }

  /** Open client connections. */
  get connections(): number {
    return this.#open;
  }

  get listening(): boolean {
    return this.server.listening;
  }

  /** `node:http`'s names, so a runner can set the deadlines of either kind of frontend. */
  set headersTimeout(ms: number) {
    if (ms > 0) this.listener = Object.freeze({ ...this.listener, headersTimeoutMs: ms });
    if (this.#options.fallback !== undefined) this.#options.fallback.headersTimeout = ms;
  }

  set keepAliveTimeout(ms: number) {
    if (ms > 0) this.listener = Object.freeze({ ...this.listener, keepAliveTimeoutMs: ms });
    if (this.#options.fallback !== undefined) this.#options.fallback.keepAliveTimeout = ms;
  }

  /** The per-listener cap, as `node:http`'s `server.maxConnections` (Infinity: the highest the engine takes). */
  set maxConnections(max: number) {
    const value = Number.isFinite(max) ? Math.max(1, Math.floor(max)) : 10_000_000;
    this.listener = Object.freeze({ ...this.listener, maxConnections: value });
  }

  /** For the handed-off connections; a proxied request body's pauses are bounded by the proxy's `timeouts.idleMs`. */
  set requestTimeout(ms: number) {
    if (this.#options.fallback !== undefined) this.#options.fallback.requestTimeout = ms;
  }

  #accept(socket: Socket): void {
    if (socket.destroyed) return;
    const h2 = this.#h2;
    if (h2 !== undefined && this.listener.http2?.h2c === true && !(socket as TLSSocket).encrypted) {
      // Prior knowledge: the HTTP/2 preface, or an HTTP/1.1 request line, decides.
      sniffH2c(socket, this.listener.headersTimeoutMs, (isH2) => {
        if (socket.destroyed) return;
        if (isH2) h2.accept(socket);
        else {
          this.#clients.add(new ClientConnection(this, socket));
          socket.resume();
        }
      });
      return;
    }
    this.#clients.add(new ClientConnection(this, socket));
  }

  #context(engine: ProxyEngine): EngineContext {
    if (engine === this.#lastEngine) return this.#lastContext!;
    let ctx = this.#contexts.get(engine);
    if (ctx === undefined) {
      ctx = new EngineContext(engine, this.listener);
      this.#contexts.set(engine, ctx);
    }
    this.#lastEngine = engine;
    this.#lastContext = ctx;
    return ctx;
  }

  /** Where a request goes, as the listener's owner decides it (HTTP/2 streams ask here too). */
  route(view: RequestView): RawDispatch | undefined {
    try {
      return this.#options.dispatch(view);
    } catch (error) {
      this.#options.report(error);
      return undefined;
    }
  }

  dispatch(view: RequestView): Dispatch {
    let target: RawDispatch;
    try {
      target = this.#options.dispatch(view);
    } catch (error) {
      this.#options.report(error);
      return 'hand-off';
    }
    if (target === 'hand-off') return this.#options.fallback === undefined ? 'hand-off' : target;
    const dispatched = this.#dispatched;
    dispatched.ctx = this.#context(target.engine);
    dispatched.route = target.route;
    dispatched.onEnd = target.onEnd;
    return dispatched;
  }

  handOff(socket: Socket): void {
    const fallback = this.#options.fallback;
    if (fallback === undefined) {
      socket.destroy();
      return;
    }
    fallback.emit('connection', socket);
    socket.resume();
  }

  forget(connection: ClientConnection): void {
    this.#clients.delete(connection);
  }

  /** A proxy engine is retired: close its backend pools here. */
  retire(engine: ProxyEngine): void {
    const ctx = this.#contexts.get(engine);
    if (ctx === undefined) return;
    this.#contexts.delete(engine);
    if (engine === this.#lastEngine) {
      this.#lastEngine = undefined;
      this.#lastContext = undefined;
    }
    ctx.close();
  }

  #sweepDeadlines = (): void => {
    const now = Date.now();
    for (const client of this.#clients) {
      if (client.deadline !== 0 && client.deadline <= now) client.expire();
    }
    for (const ctx of this.#contexts.values()) ctx.sweep(now);
  };

  listen(port: number, host: string, callback?: () => void): this {
    this.server.listen(port, host, () => this.#listening(callback));
    return this;
  }

  /**
   * Accept on a socket that is already listening — one another process handed over (`net`'s
   * `server.listen(handle)`) — instead of binding a port.
   */
  listenOn(handle: Server, callback?: () => void): this {
    this.server.listen(handle, () => this.#listening(callback));
    return this;
  }

  #listening(callback: (() => void) | undefined): void {
    this.#sweep ??= setInterval(this.#sweepDeadlines, SWEEP_MS);
    this.#sweep.unref();
    callback?.();
  }

  address(): AddressInfo | null {
    const address = this.server.address();
    return typeof address === 'object' ? address : null;
  }

  /**
   * Stop accepting. Idle keep-alive connections and tunnels close now, busy ones after their
   * response; `callback` runs once every connection is gone (as `node:http`'s `close`).
   */
  close(callback?: () => void): this {
    this.#closing = true;
    if (callback !== undefined) this.#closeWaiters.push(callback);
    if (this.server.listening) this.server.close();
    for (const client of this.#clients) client.shutdown();
    this.#h2?.close();
    this.#options.fallback?.closeIdleConnections();
    if (this.#open === 0) this.#allClosed();
    return this;
  }

  closeIdleConnections(): void {
    for (const client of this.#clients) if (client.idle) client.socket.destroy();
    this.#options.fallback?.closeIdleConnections();
  }

  closeAllConnections(): void {
    for (const client of this.#clients) client.socket.destroy();
    this.#h2?.destroyAll();
    this.#options.fallback?.closeAllConnections();
  }

  #allClosed(): void {
    if (!this.#closing) return;
    if (this.#sweep !== undefined) clearInterval(this.#sweep);
    this.#sweep = undefined;
    for (const ctx of this.#contexts.values()) ctx.close();
    this.#contexts.clear();
    this.#lastEngine = undefined;
    this.#lastContext = undefined;
    const waiters = this.#closeWaiters.splice(0);
    for (const waiter of waiters) waiter();
    this.emit('close');
  }
}
