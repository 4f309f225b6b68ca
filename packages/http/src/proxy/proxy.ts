/**
 * `createProxy`: an HTTP reverse proxy on undici — the layer-7 load balancer of HAProxy's and nginx's
 * shape, as a `(req, res)` handler for `node:http` / `node:https` servers.
 *
 * One undici `Pool` per backend keeps connections alive; request and response bodies stream through
 * with backpressure (undici's dispatch controller pauses the upstream read while the client socket is
 * full). Per request: read the affinity (cookie, source IP, header, learned cookie) and the hash key,
 * ask the load balancer for a backend (`skipFull`, so a backend at its `maxConnections` is passed
 * over and, when all are, the request waits in a bounded queue), send the attempt, and on failure
 * decide — by the rules in `../retry/policy` and within the retry budget — whether another backend
 * may get it. Every attempt's outcome goes back through `Lease.release`, so passive health checks and
 * outlier ejection see the traffic.
 *
 * Failures never crash the process and never reveal a backend's address: the client gets 502 (the
 * backend failed), 503 (no backend, queue full or timed out) or 504 (timeout) with a short body, and
 * a response that fails after its head was sent is cut off (the client sees a truncated response,
 * which is the truth).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { InvalidOptionError, isInvalidOptionError, type Backend, type Lease, type LoadBalancer, type Outcome } from '@fulcrum/core';
import type { Dispatcher, Pool } from 'undici';
import { Stickiness, TrustedProxies, clientAddress, compileHashBy, isSecureRequest } from '../affinity';
import { RetryBudget } from '../retry/budget';
import { countConnection, trafficOf } from '../stats/traffic';
import { mayRetry, type AttemptFailure, type RetryState } from '../retry/policy';
import { readBody, hasBody, type RequestBody } from './body';
import { classifyError, closeAfterAnswer, isLocalExhaustion, reportError, sendError } from './errors';
import { hostOf, honouredRawHeaders, originOf, requestHeaders, responseHeaders, type ForwardingContext } from './headers';
import { runRequestHook, runResponseHook } from './hooks';
import {
  normalizeProxyOptions,
  resolveBalancer,
  resolvePools,
  type NormalizedProxyOptions,
  type ProxyOptions,
  type RequestRouter,
  type RouteDecision,
  type AccessLogEntry,
  type AdmissionVerdict,
  type Termination,
} from './options';
import { AttemptSource } from './attempt-source';
import { createBackendPool } from './pool';
import { WaitQueue } from './queue';
import { checkRequestHead } from './request-checks';
import { UpgradeProxy, serverOf } from './upgrade';
import { forwardHttp1ToHttp2, forwardHttp2Request } from '../h2/serve';

export interface ProxyHandler {
  (req: IncomingMessage, res: ServerResponse): void;
  /**
   * Forward a WebSocket (or h2c) upgrade: `server.on('upgrade', proxy.upgrade)`. The connection
   * becomes a tunnel only after the backend's `101`; any other answer is relayed as a response and
   * the connection goes back to the server `this` is (Node calls the listener with it), so its next
   * request is served like any other. Called with another `this`, the connection is closed instead.
   */
  upgrade(this: unknown, req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /**
   * Stop: new requests get 503, queued ones 503, upgraded connections are closed, keep-alive pools
   * close after their in-flight requests, and a load balancer the proxy created is closed.
   */
  close(): Promise<void>;
  /** The load balancer of a single-pool proxy; with a router, the first pool's. */
  readonly lb: LoadBalancer;
  /** Every pool by name (a single `balancer`'s is its `name`, `'default'` unless given). */
  readonly pools: ReadonlyMap<string, LoadBalancer>;
}

/** The `ProxyEngine` behind a `createProxy` handler, for the raw engine's listeners in the CLI. */
export const PROXY_ENGINE: unique symbol = Symbol('fulcrum.proxyEngine');

export class ProxyEngine {
  readonly lb: LoadBalancer;
  readonly pools: ReadonlyMap<string, LoadBalancer>;
  readonly router: RequestRouter | undefined;
  readonly config: NormalizedProxyOptions;
  readonly stickiness: Stickiness | undefined;
  readonly hashKey: ((req: IncomingMessage, clientIp: string) => string | undefined) | undefined;
  readonly trusted: TrustedProxies | undefined;
  readonly budget: RetryBudget;
  readonly queue: WaitQueue;
  readonly upgrades: UpgradeProxy;
  readonly #owned: LoadBalancer | undefined;
  readonly #pools = new Map<Backend, Pool>();
  /** Each backend's Host header value, parsed once from its address. */
  readonly #hosts = new Map<Backend, string>();
  readonly #onRemoved: (backend: Backend) => void;
  readonly #closers: (() => void)[] = [];
  /**
   * The engines of the router's pools that have options of their own (`PoolSpec`): each is a
   * single-pool engine with the proxy's options overridden by the pool's, routing through this
   * engine's router. Requests are handed to `engineFor(pool)` once routed.
   */
  readonly #poolEngines = new Map<string, ProxyEngine>();
  readonly #parent: ProxyEngine | undefined;
  /** The name of the single pool (without a router): its load balancer's. */
  readonly #poolName: string;
  closed = false;

  constructor(options: ProxyOptions, parent?: { engine: ProxyEngine; pool: string }) {
    this.config = normalizeProxyOptions(options);
    if (parent === undefined) {
      const { pools, router, owned } = resolvePools(options);
      this.pools = pools;
      this.router = router;
      this.#owned = owned;
    } else {
      // A pool's engine: its parent's router decides, this engine serves the one pool.
      this.pools = new Map([[parent.pool, resolveBalancer(options.balancer).lb]]);
      this.router = parent.engine.router;
      this.#owned = undefined;
      this.#parent = parent.engine;
    }
    const [first] = this.pools;
    if (first === undefined) throw new Error('a router without pools');
    this.#poolName = first[0];
    this.lb = first[1];
    this.trusted = options.trustedProxies === undefined ? undefined : new TrustedProxies(options.trustedProxies, 'trustedProxies');
    this.stickiness =
      options.stickiness === undefined
        ? undefined
        : new Stickiness(options.stickiness, { clock: this.lb.clock, ...(this.trusted ? { trustedProxies: this.trusted } : {}) });
    this.hashKey = options.hashBy === undefined ? undefined : compileHashBy(options.hashBy, 'hashBy');
    this.budget = new RetryBudget(this.config.budgetPercent, this.config.budgetMinConcurrency);
    this.queue = new WaitQueue(this.config.maxQueue, this.config.queueTimeoutMs, countQueued);
    this.upgrades = new UpgradeProxy(this);
    this.#onRemoved = (backend) => {
      this.#hosts.delete(backend);
      const pool = this.#pools.get(backend);
      if (pool === undefined) return;
      this.#pools.delete(backend);
      pool.close().catch(() => undefined);
    };
    for (const pool of this.pools.values()) {
      pool.on('removed', this.#onRemoved);
      // Counting starts now, so the stats see every state change and check from here on.
      trafficOf(pool);
    }
    const poolOptions = parent === undefined ? this.router?.poolOptions : undefined;
    if (poolOptions !== undefined && poolOptions.size > 0) {
      const { router: _router, balancer: _balancer, ...shared } = options;
      try {
        for (const [name, own] of poolOptions) {
          const lb = this.pools.get(name);
          if (lb === undefined) continue;
          try {
            this.#poolEngines.set(name, new ProxyEngine({ ...shared, ...own, balancer: lb }, { engine: this, pool: name }));
          } catch (error) {
            if (!isInvalidOptionError(error)) throw error;
            const invalid = error as InvalidOptionError;
            throw new InvalidOptionError(`router.pools.${name}.${invalid.path}`, invalid.value, invalid.expected, { cause: error });
          }
        }
      } catch (error) {
        void this.close();
        throw error;
      }
    }
  }

  /** The engine that serves a routed request of `pool`: the pool's own (`PoolSpec`), else this one. */
  engineFor(pool: string): ProxyEngine {
    if (this.#parent !== undefined) return this.#parent.engineFor(pool);
    return this.#poolEngines.get(pool) ?? this;
  }

  /** The pool and upstream path for a request; `undefined` when no route matches (404). */
  route(req: IncomingMessage): RouteDecision | undefined {
    if (this.router === undefined) return { pool: this.#poolName, lb: this.lb, path: req.url ?? '/' };
    const trusted = this.trusted;
    return this.router.match(req, isSecureRequest(req, trusted !== undefined && trusted.contains(req.socket.remoteAddress ?? '')));
  }

  /** The keep-alive pool of a backend, created on first use. */
  pool(backend: Backend): Pool {
    let pool = this.#pools.get(backend);
    if (pool === undefined) {
      pool = createBackendPool(backend, this.config);
      // Open connections, for the stats (undici's events; nothing per request).
      pool.on('connect', () => countConnection(backend, 1));
      pool.on('disconnect', () => countConnection(backend, -1));
      this.#pools.set(backend, pool);
    }
    return pool;
  }

  /** The backend's `host[:port]`, for the Host header when the client's is not kept. */
  hostFor(backend: Backend): string {
    let host = this.#hosts.get(backend);
    if (host === undefined) {
      host = hostOf(originOf(backend.address));
      this.#hosts.set(backend, host);
    }
    return host;
  }

  /**
   * The next attempt of a request, for both engines: a backend now, or a place in the wait queue
   * (every candidate at its `maxConnections`), or the refusal — closed, no backend at all, queue full,
   * queue timeout. The request is its own `AttemptSource`: no closure per attempt that finds a backend.
   */
  acquireOrQueue(lb: LoadBalancer, source: AttemptSource): void {
    if (source.settled) return;
    if (this.closed) return source.refuse(503, 'Service Unavailable', 'closed');
    const lease = source.acquireLease();
    if (lease !== undefined) return source.startAttempt(lease);
    if (lb.tier === 'none') return source.refuse(503, 'Service Unavailable: no backend available', 'no-backend');
    const queuedAt = performance.now();
    const unqueue = this.queue.add(
      {
        tryStart: () => {
          if (source.settled) return true;
          const queued = source.acquireLease();
          if (queued === undefined) return false;
          source.queueEnded(performance.now() - queuedAt);
          source.startAttempt(queued);
          return true;
        },
        expire: (reason) => {
          source.queueEnded(performance.now() - queuedAt);
          if (reason === 'timeout') source.refuse(503, 'Service Unavailable: queue timeout', 'queue-timeout');
          else source.refuse(503, 'Service Unavailable', 'closed');
        },
      },
      lb,
    );
    if (unqueue === undefined) return source.refuse(503, 'Service Unavailable: queue full', 'queue-full');
    source.queued(unqueue);
  }

  /** A request ended and freed a slot: let a queued one in. */
  released(): void {
    if (this.queue.length > 0) this.queue.wake();
  }

  /** Hand an access-log entry to the configured logger; a throwing logger never breaks a request. */
  log(entry: AccessLogEntry): void {
    try {
      this.config.accessLog?.(entry);
    } catch (error) {
      this.report(error, 'client');
    }
  }

  report(error: unknown, phase: 'upstream' | 'client' | 'upgrade', backendId?: string): void {
    reportError(this.config.onError, error, phase, backendId);
  }

  // ---- decisions both engines take the same way, per request -----------------------------------

  /**
   * An attempt's upstream headers: the client's lines through the proxy's hygiene, then `on.proxyReq`.
   * 400 when a client's header is unsafe; 500 when the hook threw or set something refused (reported).
   */
  upstreamHeaders(
    req: IncomingMessage,
    raw: readonly string[],
    ctx: ForwardingContext,
    backendHost: string,
    path: string,
    backend: Backend,
    attempt: number,
  ): string[] | 400 | 500 {
    const headers = requestHeaders(raw, ctx, backendHost);
    if (headers === undefined) return 400;
    const hooks = this.config.hooks;
    if (hooks?.proxyReq === undefined) return headers;
    try {
      runRequestHook(hooks, headers, req, req.method ?? 'GET', path, backend, attempt);
    } catch (error) {
      this.report(error, 'client', backend.id);
      return 500;
    }
    return headers;
  }

  /** `on.proxyRes` over the client's response headers; `undefined` when it threw or was refused (reported). */
  responseHook(
    headers: Record<string, string | string[]>,
    req: IncomingMessage,
    status: number,
    backend: Backend,
  ): Record<string, string | string[]> | undefined {
    try {
      return runResponseHook(this.config.hooks!, headers, req, status, backend);
    } catch (error) {
      this.report(error, 'client', backend.id);
      return undefined;
    }
  }

  /** The admission check's verdict (`config.admission` must be set); a check that throws admits. */
  admit(req: IncomingMessage, clientIp: string, route: RouteDecision, phase: 'client' | 'upgrade'): AdmissionVerdict {
    try {
      return this.config.admission!(req, route.route === undefined ? { clientIp, pool: route.pool } : { clientIp, pool: route.pool, route: route.route });
    } catch (error) {
      this.report(error, phase);
      return ADMITTED;
    }
  }

  /** Call an admitted request's `done` (rate-limit slots and the like); one that throws is reported. */
  admissionEnded(done: (() => void) | undefined, phase: 'client' | 'upgrade'): void {
    if (done === undefined) return;
    try {
      done();
    } catch (error) {
      this.report(error, phase);
    }
  }

  /**
   * How long to wait before retrying after a backend's `Retry-After`: 0 when another backend is left
   * to try (the header speaks for the backend that sent it) or there is none; the asked delay when it
   * fits within `maxRetryAfterMs` and the request's deadline; else `PASS_THROUGH`, and the backend's
   * answer goes to the client as it is. `tried`: backends tried so far, the one answering included.
   */
  retryAfterWait(header: string | undefined, lb: LoadBalancer, tried: number, arrivedAt: number): number {
    const asked = parseRetryAfter(header, Date.now());
    if (asked === undefined || asked === 0) return 0;
    if (lb.eligibleCount > tried) return 0;
    const { maxRetryAfterMs, totalMs } = this.config;
    const remaining = totalMs > 0 ? totalMs - (performance.now() - arrivedAt) : Number.POSITIVE_INFINITY;
    return asked <= maxRetryAfterMs && asked < remaining ? asked : PASS_THROUGH;
  }

  /**
   * Whether a failed attempt on `backend` is retried: the rules of `../retry/policy`, then the retry
   * budget. `'charged'` means the retry holds a budget slot until the request ends
   * (`budget.release()`). A retried failure is not the request's error in the stats.
   */
  retryVerdict(failure: AttemptFailure, state: RetryState, lb: LoadBalancer, backend: Backend | undefined): 'refused' | 'free' | 'charged' {
    if (!mayRetry(failure, state, this.config)) return 'refused';
    const verdict = this.budget.charge(failure.kind);
    if (verdict !== 'refused' && backend !== undefined) trafficOf(lb).recovered(backend, failure.kind);
    return verdict;
  }

  // ---- what both engines count for the stats (../stats/traffic.ts); no allocation ----------------

  /**
   * A request of `lb`'s pool begins (after routing, before admission): it counts among the retry
   * budget's active requests and in the pool's traffic until `requestEnded`.
   */
  requestStarted(lb: LoadBalancer): void {
    this.budget.begin();
    trafficOf(lb).started();
  }

  /**
   * An attempt's lease was released with `outcome`: count it, then let a queued request in.
   * `tried`: the backends of the request's earlier, failed attempts (the last one is what this
   * attempt retried).
   */
  attemptEnded(lb: LoadBalancer, lease: Lease, outcome: Outcome, tried: readonly Backend[] | undefined): void {
    const backend = lease.backend;
    // `release` took the attempt off `inflight`: the concurrency it ran at is one more.
    trafficOf(lb).attemptEnded(backend, outcome, backend.inflight + 1, lease.startedAt, tried === undefined ? undefined : tried[tried.length - 1]);
    this.released();
  }

  /**
   * A request that `requestStarted` counted ended: how (`termination`, the status the client got,
   * 0 for none), its last backend, request and response body bytes, its total and queued time in ms.
   * Its `retrySlots` (retries it charged to the budget) go back to the budget.
   */
  requestEnded(
    lb: LoadBalancer,
    backend: Backend | undefined,
    termination: Termination,
    status: number,
    bytesIn: number,
    bytesOut: number,
    totalMs: number,
    queueMs: number,
    retrySlots: number,
  ): void {
    this.budget.end(retrySlots);
    trafficOf(lb).ended(backend, termination, status, bytesIn, bytesOut, totalMs, queueMs);
  }

  /**
   * The rest of every exchange's end, in the same order for all: its listener's `onEnd` (the CLI's
   * in-flight count; a throw is reported), then its admission's `done` (rate-limit slots).
   */
  requestClosed(onEnd: (() => void) | undefined, admissionDone: (() => void) | undefined): void {
    if (onEnd !== undefined) {
      try {
        onEnd();
      } catch (error) {
        this.report(error, 'client');
      }
    }
    this.admissionEnded(admissionDone, 'client');
  }

  /** Run `closer` when the engine closes (the HTTP/2 backend sessions register here). */
  onClose(closer: () => void): void {
    this.#closers.push(closer);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const closer of this.#closers.splice(0)) closer();
    const children = Promise.all([...this.#poolEngines.values()].map((engine) => engine.close()));
    this.queue.close();
    this.upgrades.close();
    for (const pool of this.pools.values()) pool.off('removed', this.#onRemoved);
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((pool) => pool.close().catch(() => undefined)));
    await this.stickiness?.close();
    await children;
    this.#owned?.close();
  }
}

/**
 * One client request through the proxy: its attempts, its retries, its response. Implements undici's
 * dispatch handler so response bytes go straight from the upstream socket to the client socket.
 */
class ProxiedRequest extends AttemptSource implements Dispatcher.DispatchHandler {
  readonly #engine: ProxyEngine;
  readonly #req: IncomingMessage;
  readonly #res: ServerResponse;
  readonly #route: RouteDecision;
  readonly #lb: LoadBalancer;
  readonly #clientIp: string;
  readonly #peerTrusted: boolean;
  readonly #hashKey: string | undefined;
  readonly #stickyId: string | undefined;
  readonly #secure: boolean;
  #body: RequestBody = NO_BODY;
  #tried: Backend[] | undefined;
  #attempts = 0;
  #lease: Lease | undefined;
  #controller: Dispatcher.DispatchController | undefined;
  #attemptStart = 0;
  #headLatency: number | undefined;
  #status = 0;
  #responseStarted = false;
  /** The response has no body (HEAD, 204, 304) and was ended with its head. */
  #bodiless = false;
  #finished = false;
  #clientGone = false;
  #retrying = false;
  #bodyUsed = false;
  #deadline: NodeJS.Timeout | undefined;
  readonly #arrivedAt = performance.now();
  readonly #arrivedWall = Date.now();
  #bytesOut = 0;
  /** The response's Content-Length when a body of that size follows; -1 otherwise. */
  #declaredLength = -1;
  #lastBackendId: string | undefined;
  /** The backend of the attempt in progress: a retry must avoid it even after its lease is released. */
  #current: Backend | undefined;
  #lastReason: string | undefined;
  #admissionDone: (() => void) | undefined;
  /** The client's header lines with the application's `req.headers` changes, built at the first attempt. */
  #rawHeaders: string[] | undefined;

  constructor(engine: ProxyEngine, req: IncomingMessage, res: ServerResponse, route: RouteDecision) {
    super();
    this.#engine = engine;
    this.#req = req;
    this.#res = res;
    this.#route = route;
    this.#lb = route.lb;
    const remote = req.socket.remoteAddress ?? '';
    this.#peerTrusted = engine.trusted?.contains(remote) ?? false;
    this.#clientIp = engine.trusted === undefined ? normalizeAddress(remote) : clientAddress(req, engine.trusted);
    this.#secure = (req.socket as TLSSocket).encrypted === true;
    this.#hashKey = engine.hashKey?.(req, this.#clientIp);
    this.#stickyId = engine.stickiness?.lookup(req, this.#clientIp, route.lb.clock.now());
  }

  start(): void {
    this.#engine.requestStarted(this.#lb);
    try {
      this.#begin();
    } catch (error) {
      // A bug must cost one request, never the process or the retry budget's count.
      this.#engine.report(error, 'client');
      this.#fail(500, 'Internal Server Error', 'internal-error');
    }
  }

  #begin(): void {
    const engine = this.#engine;
    if (!this.#route.path.startsWith('/')) {
      // Absolute-form and authority-form targets are for forward proxies; this one is not.
      this.#req.resume();
      return this.#fail(400, 'Bad Request', 'bad-request');
    }
    if (engine.config.admission !== undefined) {
      const verdict = engine.admit(this.#req, this.#clientIp, this.#route, 'client');
      if (!verdict.admit) {
        this.#req.resume();
        return this.#fail(verdict.status, verdict.message, 'denied', verdict.headers);
      }
      this.#admissionDone = verdict.done;
    }
    this.#res.on('close', this.#onClientClose);
    if (engine.config.totalMs > 0) {
      this.#deadline = setTimeout(() => this.#fail(504, 'Gateway Timeout', 'timeout'), engine.config.totalMs);
    }
    if (!hasBody(this.#req)) {
      this.#req.resume();
      this.#next();
      return;
    }
    if (this.#req.readableEnded) {
      // Something before the proxy (a body parser) consumed the body: forwarding would send an empty
      // one, waiting for it would hang. The server is misconfigured; say so.
      return this.#fail(500, 'Internal Server Error: the request body was already consumed', 'internal-error');
    }
    readBody(this.#req, engine.config.maxReplayBytes).then(
      (body) => {
        if (body === undefined || this.#clientGone) return;
        this.#body = body;
        this.#next();
      },
      (error: unknown) => {
        engine.report(error, 'client');
        this.#fail(400, 'Bad Request', 'bad-request');
      },
    );
  }

  #onClientClose = (): void => {
    if (this.#finished) return;
    // The client went away before the response was complete: stop the attempt, start no new one.
    this.#clientGone = true;
    this.leaveQueue();
    this.#controller?.abort(new ClientAbortedError());
    this.#releaseLease({ ok: true, error: 'aborted' });
    this.#end('client-aborted');
  };

  /** Acquire a backend (or wait for one) and send the next attempt. */
  #next(): void {
    this.#engine.acquireOrQueue(this.#lb, this);
  }

  // ---- AttemptSource (ProxyEngine.acquireOrQueue) ----
  get settled(): boolean {
    return this.#finished || this.#clientGone;
  }

  refuse(status: number, message: string, termination: Termination): void {
    this.#fail(status, message, termination);
  }

  /** A backend for the next attempt, or `undefined` when none is eligible or all are full. */
  acquireLease(): Lease | undefined {
    return this.#lb.acquire({ key: this.#hashKey, stickyBackendId: this.#stickyId, exclude: this.#tried, attempt: this.#attempts, skipFull: true });
  }

  startAttempt(lease: Lease): void {
    const engine = this.#engine;
    this.#lease = lease;
    this.#attempts++;
    this.#status = 0;
    this.#headLatency = undefined;
    this.#controller = undefined;
    const backend = lease.backend;
    this.#current = backend;
    this.#lastBackendId = backend.id;
    if (engine.config.accessLog !== undefined) this.#lastReason = lease.decision.reason;
    const pool = engine.pool(backend);
    const headers = engine.upstreamHeaders(
      this.#req,
      (this.#rawHeaders ??= honouredRawHeaders(this.#req)),
      {
        remoteAddress: normalizeAddress(this.#req.socket.remoteAddress ?? ''),
        encrypted: this.#secure,
        peerTrusted: this.#peerTrusted,
        preserveHost: engine.config.preserveHost,
        addForwarded: engine.config.forwardedHeaders,
      },
      engine.hostFor(backend),
      this.#route.path,
      backend,
      this.#attempts,
    );
    if (typeof headers === 'number') {
      this.#releaseLease({ ok: true });
      return headers === 400 ? this.#fail(400, 'Bad Request', 'bad-request') : this.#fail(500, 'Internal Server Error', 'internal-error');
    }
    let body: Dispatcher.DispatchOptions['body'] = null;
    if (this.#body.kind === 'buffered') body = this.#body.data;
    else if (this.#body.kind === 'stream') {
      body = this.#body.stream;
      this.#bodyUsed = true;
    }
    this.#attemptStart = performance.now();
    try {
      pool.dispatch({ path: this.#route.path, method: this.#req.method ?? 'GET', headers, body }, this);
    } catch (error) {
      this.onResponseError(undefined, error as Error);
    }
  }

  // ---- undici dispatch handler ----------------------------------------------------------------

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.#clientGone) controller.abort(new ClientAbortedError());
  }

  onResponseStart(
    controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
    statusMessage?: string,
  ): void {
    if (this.#clientGone || this.#finished) return controller.abort(new ClientAbortedError());
    if (statusCode < 200) {
      // An informational answer (102 Processing, 103 Early Hints): the final one follows. Early
      // hints are worth passing on (the client can start fetching); the others mean nothing to it.
      if (statusCode === 103 && !this.#responseStarted) this.#relayEarlyHints(headers);
      return;
    }
    this.#status = statusCode;
    this.#headLatency = performance.now() - this.#attemptStart;
    const length = headers['content-length'];
    // Only a body that will come: none follows a HEAD request or a 204/304, whatever the header says.
    this.#declaredLength =
      typeof length === 'string' && this.#req.method !== 'HEAD' && statusCode !== 204 && statusCode !== 304 && /^\d{1,15}$/.test(length) ? Number(length) : -1;
    const backend = this.#lease!.backend;
    if (statusCode >= 502 && statusCode <= 504) {
      const failure: AttemptFailure = { kind: 'status', status: statusCode, notSent: false };
      const wait = this.#retryAfterWait(headers['retry-after']);
      if (wait !== PASS_THROUGH && this.#shouldRetry(failure)) {
        this.retryDelayMs = wait;
        this.#retrying = true;
        controller.abort(new RetryingError());
        return;
      }
    }
    const res = this.#res;
    let outgoing = responseHeaders(headers);
    if (this.#engine.config.hooks?.proxyRes !== undefined) {
      const edited = this.#engine.responseHook(outgoing, this.#req, statusCode, backend);
      if (edited === undefined) {
        // The backend answered well; the hook failed. Drop the answer without blaming the backend.
        controller.abort(new ClientAbortedError());
        this.#releaseLease({ ok: true, status: statusCode, durationMs: this.#headLatency });
        return this.#fail(500, 'Internal Server Error', 'internal-error');
      }
      outgoing = edited;
    }
    const cookie = this.#engine.stickiness?.commit(
      this.#req,
      this.#clientIp,
      backend.id,
      toList(headers['set-cookie']),
      this.#secure || isSecureRequest(this.#req, this.#peerTrusted),
      this.#lb.clock.now(),
    );
    const added = cookie === undefined ? this.#route.setCookie : this.#route.setCookie === undefined ? cookie : undefined;
    if (cookie !== undefined || this.#route.setCookie !== undefined) {
      const mine = added !== undefined ? [added] : [cookie!, this.#route.setCookie!];
      const existing = outgoing['set-cookie'];
      outgoing['set-cookie'] = existing === undefined ? mine : [...toList(existing), ...mine];
    }
    this.#responseStarted = true;
    this.#clearDeadline();
    try {
      if (statusMessage) res.writeHead(statusCode, statusMessage, outgoing);
      else res.writeHead(statusCode, outgoing);
      if (this.#req.method === 'HEAD' || statusCode === 204 || statusCode === 304) {
        // No body follows, whatever Content-Length says (RFC 9110 §8.6 lets a 304 carry the
        // length of the representation): the response is complete now. undici may still fail the
        // exchange over that length; the client has its answer by then.
        this.#bodiless = true;
        res.end();
      }
    } catch (error) {
      this.#engine.report(error, 'client', backend.id);
      controller.abort(error as Error);
    }
  }

  /** Pass a 103's hints (Link and the like) to the client before the final response. */
  #relayEarlyHints(headers: Record<string, string | string[] | undefined>): void {
    const hints = responseHeaders(headers);
    delete hints['content-length'];
    if (hints.link === undefined) return;
    try {
      this.#res.writeEarlyHints(hints);
    } catch (error) {
      this.#engine.report(error, 'client', this.#lease?.backend.id);
    }
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#retrying) return;
    this.#bytesOut += chunk.length;
    if (this.#bytesOut === this.#declaredLength) {
      // The last bytes the backend announced: head, body and end leave in one write, now, rather
      // than a write that waits for the next tick and an end after it.
      this.#res.end(chunk);
      return;
    }
    if (!this.#res.write(chunk)) {
      controller.pause();
      this.#res.once('drain', () => controller.resume());
    }
  }

  onResponseEnd(): void {
    if (this.#retrying) return;
    const status = this.#status;
    this.#releaseLease({ ok: status < 500, status, durationMs: this.#headLatency ?? performance.now() - this.#attemptStart });
    if (!this.#res.writableEnded) this.#res.end();
    this.#end('ok');
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    if (error instanceof ClientAbortedError) return;
    const lease = this.#lease;
    const backendId = lease?.backend.id;
    if (error instanceof RetryingError || this.#retrying) {
      // A retryable status: the response was never shown to the client.
      this.#retrying = false;
      this.#releaseLease({ ok: false, status: this.#status, error: 'status', durationMs: this.#headLatency ?? 0 });
      return this.#retry();
    }
    if (this.#bodiless && (error as { code?: unknown }).code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH') {
      // A 304/204 (or HEAD answer) with a Content-Length: complete and correct, whatever undici says.
      this.#releaseLease({ ok: this.#status < 500, status: this.#status, durationMs: this.#headLatency ?? 0 });
      return this.#end('ok');
    }
    this.#engine.report(error, 'upstream', backendId);
    const failure = classifyError(error);
    const local = isLocalExhaustion(error);
    this.#releaseLease(local ? { ok: true, error: 'aborted' } : { ok: false, error: failure.kind, durationMs: performance.now() - this.#attemptStart });
    if (this.#responseStarted) {
      // Part of the response is out: the only honest thing left is to cut the connection.
      this.#res.destroy();
      return this.#end('upstream-truncated');
    }
    // Out of descriptors (or memory) here: the backend did nothing wrong — it was not counted
    // above, and there is no retry, since every other backend needs the same descriptor.
    if (local) return this.#fail(503, 'Service Unavailable', 'proxy-exhausted');
    if (failure.notSent && this.#body.kind === 'stream' && this.#bodyUsed) {
      // The stream was handed to undici: even with nothing sent, it may have been read from.
      failure.notSent = false;
    }
    if (this.#shouldRetry(failure)) return this.#retry();
    if (failure.kind === 'timeout') return this.#fail(504, 'Gateway Timeout', 'timeout');
    this.#fail(502, 'Bad Gateway', 'upstream-failed');
  }

  // ---- retries and endings ---------------------------------------------------------------------

  #retryAfterWait(header: string | string[] | undefined): number {
    return this.#engine.retryAfterWait(typeof header === 'string' ? header : header?.[0], this.#lb, (this.#tried?.length ?? 0) + 1, this.#arrivedAt);
  }

  #shouldRetry(failure: AttemptFailure): boolean {
    const replayable = this.#body.kind !== 'stream' || (!this.#bodyUsed && failure.notSent);
    return this.retryAllowed(
      this.#engine,
      failure,
      this.#req.method ?? 'GET',
      this.#attempts,
      this.#responseStarted,
      this.#clientGone,
      replayable,
      this.#lb,
      this.#current,
    );
  }

  #retry(): void {
    if (this.#current !== undefined) (this.#tried ??= []).push(this.#current);
    this.#current = undefined;
    this.#releaseLease({ ok: false });
    this.attemptAgain(this.#engine, this.#lb);
  }

  #releaseLease(outcome: { ok: boolean; status?: number; error?: AttemptFailure['kind']; durationMs?: number }): void {
    const lease = this.#lease;
    if (lease === undefined) return;
    this.#lease = undefined;
    lease.release(outcome);
    this.#engine.attemptEnded(this.#lb, lease, outcome, this.#tried);
  }

  #fail(status: number, message: string, termination: Termination, headers?: Readonly<Record<string, string>>): void {
    if (this.#finished) return;
    this.leaveQueue();
    if (this.#lease !== undefined) {
      this.#controller?.abort(new ClientAbortedError());
      this.#releaseLease({ ok: false, error: status === 504 ? 'timeout' : 'reset' });
    }
    if (!this.#clientGone) sendError(this.#res, status, message, headers);
    this.#end(termination, status);
  }

  /** Request body bytes: the replay buffer's, or the declared length of a streamed body. */
  #bytesIn(): number {
    const body = this.#body;
    if (body.kind === 'buffered') return body.data.length;
    return body.kind === 'stream' ? Number(this.#req.headers['content-length']) || 0 : 0;
  }

  #clearDeadline(): void {
    if (this.#deadline !== undefined) clearTimeout(this.#deadline);
    this.#deadline = undefined;
    this.cancelRetry();
  }

  #end(termination: Termination, status = this.#status): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#clearDeadline();
    this.#res.off('close', this.#onClientClose);
    this.countEnd(this.#engine, this.#lb, this.#current, termination, status, this.#bytesIn(), this.#bytesOut, performance.now() - this.#arrivedAt);
    const done = this.#admissionDone;
    this.#admissionDone = undefined;
    this.#engine.admissionEnded(done, 'client');
    const accessLog = this.#engine.config.accessLog;
    if (accessLog === undefined) return;
    this.#engine.log(
      accessLogEntry({
        arrivedWall: this.#arrivedWall,
        arrivedAt: this.#arrivedAt,
        method: this.#req.method ?? '',
        path: this.#req.url ?? '',
        status,
        termination,
        pool: this.#route.pool,
        attempts: this.#attempts,
        clientIp: this.#clientIp,
        bytesOut: this.#bytesOut,
        queueMs: this.queueMs,
        headMs: this.#headLatency,
        backendId: this.#lastBackendId,
        reason: this.#lastReason,
      }),
    );
  }
}

/** Connections whose last head was refused: closing, and serving nothing more. */
const refusedConnections = new WeakSet<object>();

const CLOSE: Readonly<Record<string, string>> = Object.freeze({ connection: 'close' });

const NO_BODY: RequestBody = Object.freeze({ kind: 'none' });

/** `retryAfterWait`'s answer when the wait is too long: do not retry, pass the answer through. */
export const PASS_THROUGH = -1;

const ADMITTED: AdmissionVerdict = Object.freeze({ admit: true as const });

/** The wait queue's observer: a request of a pool (its load balancer) entered or left the queue. */
function countQueued(owner: object, delta: 1 | -1): void {
  trafficOf(owner as LoadBalancer).queued(delta);
}

/** A `Retry-After` value (delay-seconds or an HTTP-date, RFC 9110 §10.2.3) in ms from `now`. */
export function parseRetryAfter(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d{1,9}$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (!Number.isFinite(at) || !/[a-z]/i.test(text)) return undefined;
  return Math.max(0, at - now);
}

/** Milliseconds to the microsecond, for access-log timings. */
export function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** What an exchange knows of a finished request: the facts of its access-log line. */
export interface RequestFacts {
  /** `Date.now()` when the request arrived (the line's `time`). */
  readonly arrivedWall: number;
  /** `performance.now()` when it arrived (for `totalMs`). */
  readonly arrivedAt: number;
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly termination: Termination;
  readonly pool: string;
  readonly attempts: number;
  readonly clientIp: string;
  readonly bytesOut: number;
  readonly queueMs: number;
  readonly headMs: number | undefined;
  readonly backendId: string | undefined;
  readonly reason: string | undefined;
}

/**
 * The access-log line of a finished request, the same for every exchange (`createProxy`'s, the raw
 * engine's, an HTTP/2 stream's). A request cut short (`client-aborted`, `upstream-truncated`) is
 * logged with status 0: what the client received was not that status's whole answer.
 */
export function accessLogEntry(facts: RequestFacts): AccessLogEntry {
  const termination = facts.termination;
  const entry: AccessLogEntry = {
    time: new Date(facts.arrivedWall).toISOString(),
    method: facts.method,
    path: facts.path,
    status: termination === 'client-aborted' || termination === 'upstream-truncated' ? 0 : facts.status,
    pool: facts.pool,
    attempts: facts.attempts,
    clientIp: facts.clientIp,
    bytesOut: facts.bytesOut,
    timings: {
      queueMs: round(facts.queueMs),
      ...(facts.headMs === undefined ? {} : { headMs: round(facts.headMs) }),
      totalMs: round(performance.now() - facts.arrivedAt),
    },
    termination,
  };
  if (facts.backendId !== undefined) entry.backendId = facts.backendId;
  if (facts.reason !== undefined) entry.reason = facts.reason;
  return entry;
}

/** Internal abort reason: the client went away (or the proxy is finishing the request itself). */
class ClientAbortedError extends Error {
  constructor() {
    super('client aborted');
  }
}

/** Internal abort reason: a retryable status; the attempt is dropped and the request sent again. */
class RetryingError extends Error {
  constructor() {
    super('retrying');
  }
}

function toList(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return typeof value === 'string' ? [value] : value;
}

/** `::ffff:10.0.0.1` → `10.0.0.1`, so IPv4 clients look the same on dual-stack sockets. */
export function normalizeAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
}

/** The access-log line of a request refused before it had a pool. */
function logRejected(engine: ProxyEngine, req: IncomingMessage, status: number, termination: Termination): void {
  if (engine.config.accessLog === undefined) return;
  engine.log({
    time: new Date().toISOString(),
    method: req.method ?? '',
    path: req.url ?? '',
    status,
    pool: '',
    attempts: 0,
    clientIp: normalizeAddress(req.socket.remoteAddress ?? ''),
    bytesOut: 0,
    timings: { queueMs: 0, totalMs: 0 },
    termination,
  });
}

/**
 * Create a reverse proxy. `http.createServer(proxy)` serves it; `server.on('upgrade', proxy.upgrade)`
 * forwards WebSockets. See `ProxyOptions` for every option and its default.
 */
export function createProxy(options: ProxyOptions): ProxyHandler {
  const engine = new ProxyEngine(options);
  const handler = ((req: IncomingMessage, res: ServerResponse) => serveRequest(engine, req, res)) as ProxyHandler;
  Object.defineProperties(handler, {
    upgrade: {
      // A plain function: Node calls 'upgrade' listeners with the server as `this`, and a refused
      // upgrade's connection goes back to that server for its next request.
      value: function upgrade(this: unknown, req: IncomingMessage, socket: Duplex, head: Buffer) {
        engine.upgrades.handle(req, socket, head, serverOf(this));
      },
    },
    close: { value: () => engine.close() },
    lb: { value: engine.lb, enumerable: true },
    pools: { value: engine.pools, enumerable: true },
    [PROXY_ENGINE]: { value: engine },
  });
  return handler;
}

/**
 * One request of a `node:http`, `node:https` or `node:http2` (compatibility API) server through an
 * engine: HTTP/2 requests, and requests to pools whose backends speak HTTP/2, go to the stream
 * exchange (`../h2`); the rest to `ProxiedRequest` over undici.
 */
export function serveRequest(engine: ProxyEngine, req: IncomingMessage, res: ServerResponse): void {
  if (req.httpVersionMajor === 2 && (req as unknown as { stream?: unknown }).stream !== undefined) {
    if (engine.closed) {
      req.resume();
      sendError(res, 503, 'Service Unavailable');
      logRejected(engine, req, 503, 'closed');
      return;
    }
    forwardHttp2Request(engine, req, res);
    return;
  }
  if (refusedConnections.has(req.socket)) {
    // A request pipelined behind a refused head: the connection is closing, and nothing on it
    // after the refusal is served (the client and the proxy may disagree about where it starts).
    req.resume();
    return;
  }
  if (engine.closed) {
    req.resume();
    sendError(res, 503, 'Service Unavailable');
    logRejected(engine, req, 503, 'closed');
    return;
  }
  let refusal;
  try {
    refusal = checkRequestHead(req, engine.config.maxHeaderCount);
  } catch (error) {
    // A bug (or a request object something broke) costs this request, never the process.
    engine.report(error, 'client');
    req.resume();
    sendError(res, 500, 'Internal Server Error');
    logRejected(engine, req, 500, 'internal-error');
    return;
  }
  if (refusal !== undefined) {
    // Nothing of a refused head is acted on; the connection closes after the answer, since the
    // client and the proxy may disagree about where this request ends.
    req.resume();
    const socket = req.socket;
    refusedConnections.add(socket);
    res.once('finish', () => closeAfterAnswer(socket));
    sendError(res, refusal.status, refusal.message, CLOSE);
    logRejected(engine, req, refusal.status, 'bad-request');
    return;
  }
  let route: RouteDecision | undefined;
  try {
    route = engine.route(req);
  } catch (error) {
    engine.report(error, 'client');
  }
  if (route === undefined) {
    req.resume();
    sendError(res, 404, 'Not Found');
    logRejected(engine, req, 404, 'not-found');
    return;
  }
  // A pool with options of its own (createRouter's PoolSpec) is served by its own engine.
  const target = engine.engineFor(route.pool);
  if (target.config.upstreamProtocol(route.pool) === 'h2') {
    forwardHttp1ToHttp2(target, req, res, route);
    return;
  }
  new ProxiedRequest(target, req, res, route).start();
}
