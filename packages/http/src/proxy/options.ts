/**
 * `createProxy` options: validated once into a frozen, fully defaulted config.
 *
 * Timeout defaults: connect 5 s (HAProxy's customary `timeout connect`: a backend that has not
 * accepted in 5 s is not going to serve this request well); response head 60 s and idle body 60 s
 * (nginx's `proxy_read_timeout`); no total deadline unless asked. Replay buffer 64 KiB: enough for
 * any form or JSON API call, small enough that 10,000 concurrent uploads cost at most 640 MB. Queue
 * 1024 waiters for 5 s: a short burst is absorbed, a sustained overload is refused fast.
 */
import { InvalidOptionError, LoadBalancer } from '@fulcrum/core';
import { MAX_TIMER_MS, checkKnownKeys, isPlainObject, optionalBoolean, optionalNumber } from '@fulcrum/core/validate';
import type { HashBy } from '../affinity';
import type { StickinessOptions } from '../affinity';
import { DEFAULT_MAX_HEADER_COUNT } from './request-checks';
import { RETRY_CONDITIONS, type RetryCondition } from '../retry/policy';
import { resolveBalancerOptions, type ProxyBalancerOptions } from '../probes/health-check';
import { normalizeHooks, type NormalizedHooks, type ProxyHooks } from './hooks';
import { normalizeGrpcOptions, type GrpcOptions, type NormalizedGrpcOptions } from '../h2/grpc';
import { normalizeUpstreamProtocol, type UpstreamProtocol } from '../h2/options';

export interface ProxyTimeouts {
  /** Establishing a connection to a backend, ms. Default 5000. */
  connectMs?: number;
  /** From sending the request to receiving the response head, ms. Default 60000. */
  headersMs?: number;
  /** Longest pause between two chunks of the response body, ms. Default 60000. */
  idleMs?: number;
  /** The whole request, all attempts included, until the response head; 0 = none. Default 0. */
  totalMs?: number;
}

/** What a router decides for one request: the pool, and the path to send upstream. */
export interface RouteDecision {
  /** The pool's name (for logs and stats). */
  pool: string;
  lb: LoadBalancer;
  /** Path and query to send upstream (rewritten when the route says so). */
  path: string;
  /** A cookie to add to the response (split stickiness). */
  setCookie?: string;
  /** The index of the route that matched (`createRouter`), for `admission` hooks. */
  route?: number;
}

/** Chooses a pool per request (`createRouter` builds one). */
export interface RequestRouter {
  /** `secure`: the client reached a trusted TLS-terminating proxy over HTTPS (`isSecureRequest`). */
  match(req: import('node:http').IncomingMessage, secure?: boolean): RouteDecision | undefined;
  readonly pools: ReadonlyMap<string, LoadBalancer>;
  /** Pools' own proxy options (`createRouter`'s `PoolSpec`s): their requests use these instead of the proxy's. */
  readonly poolOptions?: ReadonlyMap<string, Readonly<Partial<ProxyOptions>>>;
  close(): void | Promise<void>;
}

/** Who or what ended a request (HAProxy's termination states, in words). */
export type Termination =
  /** The backend answered and the response was delivered in full. */
  | 'ok'
  /** The client went away before the response was complete. */
  | 'client-aborted'
  /** The backend failed (refused, reset, bad answer) and no retry could save the request: 502. */
  | 'upstream-failed'
  /** The backend failed after the response head was sent: the client got a truncated response. */
  | 'upstream-truncated'
  /** A timeout ended the request: 504. */
  | 'timeout'
  /** No backend was eligible: 503. */
  | 'no-backend'
  /** Every backend was full and the queue was too: 503. */
  | 'queue-full'
  /** The request waited in the queue too long: 503. */
  | 'queue-timeout'
  /** The request was malformed (unsafe header, bad target): 400. */
  | 'bad-request'
  /** No route matched: 404. */
  | 'not-found'
  /** The proxy was closing: 503. */
  | 'closed'
  /** The admission check refused it (rate limit, concurrency limit). */
  | 'denied'
  /** The proxy itself failed (a bug, or a body something else already consumed): 500. */
  | 'internal-error'
  /**
   * The proxy ran out of descriptors or memory opening a backend connection (`EMFILE`, `ENFILE`,
   * `ENOBUFS`, `ENOMEM`): 503, and not counted against the backend.
   */
  | 'proxy-exhausted';

/** One line of the access log: what happened to a request and why. */
export interface AccessLogEntry {
  /** When the request arrived (ISO 8601). */
  time: string;
  method: string;
  /** The path as received (before any rewrite). */
  path: string;
  /** The status sent to the client; 0 when none was (aborted, truncated). */
  status: number;
  pool: string;
  /** The backend of the last attempt. */
  backendId?: string;
  /** Why that backend was chosen (`lease.decision.reason`). */
  reason?: string;
  /** Attempts made (0 when the request never reached a backend). */
  attempts: number;
  clientIp: string;
  /** Response body bytes sent to the client. */
  bytesOut: number;
  timings: {
    /** Time spent waiting for a backend slot. */
    queueMs: number;
    /** From sending the last attempt to its response head. */
    headMs?: number;
    /** From arrival to the end of the response. */
    totalMs: number;
  };
  termination: Termination;
  /** A gRPC call's status (from the backend's trailers, or the one the proxy answered with). */
  grpcStatus?: number;
}

/** The answer of an admission check (`admission` option): let the request in, or refuse it. */
export type AdmissionVerdict =
  | { admit: true; /** Called once when the request ends (e.g. to count concurrency down). */ done?: () => void }
  | { admit: false; status: number; message: string; headers?: Readonly<Record<string, string>> };

export interface ProxyOptions {
  /**
   * A load balancer, or the options to create one (the proxy then owns and closes it). Exactly one
   * of `balancer` and `router`. In the options, `backends` may hold bare addresses
   * (`'http://10.0.0.1:3000'`, id derived: see `backendIdOf`) and `health` may be written as in the
   * config file — `{ path: '/healthz', intervalMs: 2000 }` — and the proxy builds the `httpProbe`.
   */
  balancer?: LoadBalancer | ProxyBalancerOptions;
  /** Forwarding rules over several pools (`createRouter`); requests no route matches get 404. */
  router?: RequestRouter;
  /** Keep clients on one backend: signed cookie, source IP, header, or a learned app cookie. */
  stickiness?: StickinessOptions;
  /** The hash key for hashing balancers (ring-hash, maglev, rendezvous, bounded-load). */
  hashBy?: HashBy;
  /**
   * Addresses (CIDRs) of proxies in front of this one. Their `X-Forwarded-*` headers are kept and
   * extended, and the client address is read from `X-Forwarded-For` through them. Default none.
   */
  trustedProxies?: readonly string[];
  /** Attempts per request, the first included. Integer 1–10; default 3 (nginx tries every server; 3 bounds the tail). */
  attempts?: number;
  /** What may be retried for idempotent methods. Default `['connect', 'reset', 'timeout']` (nginx's `error timeout`). */
  retryOn?: readonly RetryCondition[];
  /** Also retry methods that are not idempotent (POST, PATCH) once they reached a backend. Default false. */
  retryNonIdempotent?: boolean;
  /** Retries in flight ≤ max(minConcurrency, percent % of requests in flight). Default 20 % and 3 (Envoy). */
  retryBudget?: { percent?: number; minConcurrency?: number };
  /**
   * How long a retry may wait for a backend that answered with `Retry-After` (and is the only one
   * left to try), ms. A longer wait — or one past `timeouts.totalMs` — is not waited: the backend's
   * answer goes to the client with its `Retry-After`. Default 10000.
   */
  maxRetryAfterMs?: number;
  /** Largest request body held for replay, bytes. Default 65536. */
  maxReplayBytes?: number;
  /** Requests waiting when every backend is at its maxConnections. Default 1024; 0 = refuse at once. */
  maxQueue?: number;
  /** How long a request may wait in the queue, ms. Default 5000. */
  queueTimeoutMs?: number;
  timeouts?: ProxyTimeouts;
  /** Keep-alive connections per backend when it has no maxConnections. Default 128. */
  connectionsPerBackend?: number;
  /** Forward the client's Host header (HAProxy) rather than the backend's (nginx). Default true. */
  preserveHost?: boolean;
  /** Add X-Forwarded-For/-Proto/-Host and Forwarded. Default true. */
  forwardedHeaders?: boolean;
  /** TLS options for https backends (e.g. `{ ca }` or `{ rejectUnauthorized: false }` for tests). */
  backendTls?: Readonly<Record<string, unknown>>;
  /** Called once per request with its access-log entry (format and write it as you like). Default none. */
  accessLog?: (entry: AccessLogEntry) => void;
  /**
   * Called before a request is forwarded, after routing: rate limits and concurrency limits plug in
   * here. A refusal is answered with its status, message and headers (e.g. 429 with Retry-After).
   */
  admission?: (req: import('node:http').IncomingMessage, info: { clientIp: string; pool: string; route?: number }) => AdmissionVerdict;
  /**
   * Header lines a request may carry; more are answered 431 and never forwarded or acted on. Must
   * stay below the server's `maxHeadersCount` (Node's default 2000), which drops the excess silently.
   * Integer 1–1000; default 100 (HAProxy's `tune.http.maxhdr` less one).
   */
  maxHeaderCount?: number;
  /**
   * Timeouts of upgraded connections (WebSockets, h2c): `handshakeMs` from the upgrade request to
   * the backend's answer (default `timeouts.headersMs`); `tunnelMs` with no byte in either direction
   * before the tunnel is closed (HAProxy's `timeout tunnel`; default 3600000, one hour).
   */
  upgradeTimeouts?: { handshakeMs?: number; tunnelMs?: number };
  /**
   * Hooks around each attempt, as in http-proxy-middleware: `proxyReq(proxyReq, req)` changes the
   * upstream request's headers (`proxyReq.setHeader('x-user', id)`), `proxyRes(proxyRes, req)` the
   * response's (`proxyRes.headers['x-served-by'] = 'edge'`). Synchronous. Hop-by-hop, framing and
   * (with `forwardedHeaders`) forwarding headers are the proxy's; a CR, LF or NUL in a value is
   * refused: the hook throws, nothing is forwarded, the client gets 500. Default none.
   */
  on?: ProxyHooks;
  /** Called with every upstream or client error the proxy handled (for logs). Never required. */
  onError?: (error: unknown, context: { phase: 'upstream' | 'client' | 'upgrade'; backendId?: string }) => void;
  /**
   * The protocol each pool speaks to its backends: `'http1'` (default) or `'h2'` (HTTP/2 over TLS
   * for `https://` backends, h2c with prior knowledge for `http://` ones). One value for every
   * pool, or an object of pool name → protocol (`'default'` names a single `balancer`'s pool).
   * gRPC backends need `'h2'`.
   */
  upstreamProtocol?: UpstreamProtocol | Readonly<Record<string, UpstreamProtocol>>;
  /** gRPC calls: which statuses are backend failures, which methods may be retried. See `GrpcOptions`. */
  grpc?: GrpcOptions;
}

export interface NormalizedProxyOptions {
  readonly attempts: number;
  readonly retryOn: ReadonlySet<RetryCondition>;
  readonly retryNonIdempotent: boolean;
  readonly budgetPercent: number;
  readonly budgetMinConcurrency: number;
  readonly maxReplayBytes: number;
  readonly maxRetryAfterMs: number;
  readonly maxQueue: number;
  readonly queueTimeoutMs: number;
  readonly connectMs: number;
  readonly headersMs: number;
  readonly idleMs: number;
  readonly totalMs: number;
  readonly connectionsPerBackend: number;
  readonly preserveHost: boolean;
  readonly forwardedHeaders: boolean;
  readonly backendTls: Readonly<Record<string, unknown>> | undefined;
  readonly onError: ProxyOptions['onError'];
  readonly accessLog: ProxyOptions['accessLog'];
  readonly admission: ProxyOptions['admission'];
  readonly hooks: NormalizedHooks | undefined;
  readonly maxHeaderCount: number;
  readonly handshakeMs: number;
  readonly tunnelMs: number;
  /** The upstream protocol of a pool, by its name. */
  readonly upstreamProtocol: (pool: string) => UpstreamProtocol;
  readonly grpc: NormalizedGrpcOptions;
}

const KNOWN = new Set([
  'balancer',
  'stickiness',
  'hashBy',
  'trustedProxies',
  'attempts',
  'retryOn',
  'retryNonIdempotent',
  'retryBudget',
  'maxReplayBytes',
  'maxRetryAfterMs',
  'maxQueue',
  'queueTimeoutMs',
  'timeouts',
  'connectionsPerBackend',
  'preserveHost',
  'forwardedHeaders',
  'backendTls',
  'onError',
  'router',
  'accessLog',
  'admission',
  'maxHeaderCount',
  'upgradeTimeouts',
  'on',
  'upstreamProtocol',
  'grpc',
]);

function num(path: string, value: unknown, fallback: number, min: number, max: number, integer = false): number {
  return optionalNumber(path, value, fallback, { min, max, integer });
}

const bool = optionalBoolean;
const MAX_TIMER = MAX_TIMER_MS;

/**
 * `createProxy`'s options validated and defaulted into a frozen config (no pool, router or socket is
 * created): throws `InvalidOptionError` naming the option. The `fulcrum` config validation calls it.
 */
export function normalizeProxyOptions(options: ProxyOptions): NormalizedProxyOptions {
  if (!isPlainObject(options)) throw new InvalidOptionError('options', options, 'must be an object with a balancer');
  checkKnownKeys('', options, [...KNOWN]);
  const retryOn = options.retryOn ?? ['connect', 'reset', 'timeout'];
  if (!Array.isArray(retryOn)) throw new InvalidOptionError('retryOn', retryOn, `must be an array of ${RETRY_CONDITIONS.join(', ')}`);
  retryOn.forEach((condition, i) => {
    if (!RETRY_CONDITIONS.includes(condition)) throw new InvalidOptionError(`retryOn[${i}]`, condition, `must be one of ${RETRY_CONDITIONS.join(', ')}`);
  });
  const budget = options.retryBudget ?? {};
  if (!isPlainObject(budget)) throw new InvalidOptionError('retryBudget', budget, 'must be an object');
  const timeouts = options.timeouts ?? {};
  if (!isPlainObject(timeouts)) throw new InvalidOptionError('timeouts', timeouts, 'must be an object');
  checkKnownKeys('timeouts', timeouts, ['connectMs', 'headersMs', 'idleMs', 'totalMs']);
  const upgradeTimeouts = options.upgradeTimeouts ?? {};
  if (!isPlainObject(upgradeTimeouts)) throw new InvalidOptionError('upgradeTimeouts', upgradeTimeouts, 'must be an object');
  checkKnownKeys('upgradeTimeouts', upgradeTimeouts, ['handshakeMs', 'tunnelMs']);
  const headersMs = num('timeouts.headersMs', timeouts.headersMs, 60_000, 1, MAX_TIMER);
  if (options.backendTls !== undefined && !isPlainObject(options.backendTls)) {
    throw new InvalidOptionError('backendTls', options.backendTls, 'must be an object of TLS options');
  }
  for (const name of ['onError', 'accessLog', 'admission'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'function') {
      throw new InvalidOptionError(name, options[name], 'must be a function');
    }
  }
  const forwardedHeaders = bool('forwardedHeaders', options.forwardedHeaders, true);
  const protocols = normalizeUpstreamProtocol(options.upstreamProtocol);
  return Object.freeze({
    upstreamProtocol: (pool: string) => protocols.byPool.get(pool) ?? protocols.fallback,
    grpc: normalizeGrpcOptions(options.grpc as GrpcOptions | undefined),
    attempts: num('attempts', options.attempts, 3, 1, 10, true),
    retryOn: new Set(retryOn as readonly RetryCondition[]),
    retryNonIdempotent: bool('retryNonIdempotent', options.retryNonIdempotent, false),
    budgetPercent: num('retryBudget.percent', budget.percent, 20, 0, 100),
    budgetMinConcurrency: num('retryBudget.minConcurrency', budget.minConcurrency, 3, 0, 1_000_000, true),
    maxReplayBytes: num('maxReplayBytes', options.maxReplayBytes, 65_536, 0, 64 * 1024 * 1024, true),
    maxRetryAfterMs: num('maxRetryAfterMs', options.maxRetryAfterMs, 10_000, 0, MAX_TIMER),
    maxQueue: num('maxQueue', options.maxQueue, 1024, 0, 1_000_000, true),
    queueTimeoutMs: num('queueTimeoutMs', options.queueTimeoutMs, 5000, 1, MAX_TIMER),
    connectMs: num('timeouts.connectMs', timeouts.connectMs, 5000, 1, MAX_TIMER),
    headersMs,
    idleMs: num('timeouts.idleMs', timeouts.idleMs, 60_000, 1, MAX_TIMER),
    totalMs: num('timeouts.totalMs', timeouts.totalMs, 0, 0, MAX_TIMER),
    connectionsPerBackend: num('connectionsPerBackend', options.connectionsPerBackend, 128, 1, 65_536, true),
    preserveHost: bool('preserveHost', options.preserveHost, true),
    forwardedHeaders,
    backendTls: options.backendTls as NormalizedProxyOptions['backendTls'],
    onError: options.onError as ProxyOptions['onError'],
    accessLog: options.accessLog as ProxyOptions['accessLog'],
    admission: options.admission as ProxyOptions['admission'],
    hooks: normalizeHooks(options.on, forwardedHeaders),
    maxHeaderCount: num('maxHeaderCount', options.maxHeaderCount, DEFAULT_MAX_HEADER_COUNT, 1, 1000, true),
    handshakeMs: num('upgradeTimeouts.handshakeMs', upgradeTimeouts.handshakeMs, headersMs, 1, MAX_TIMER),
    tunnelMs: num('upgradeTimeouts.tunnelMs', upgradeTimeouts.tunnelMs, 3_600_000, 1, MAX_TIMER),
  });
}

/** The pools a proxy serves: one load balancer, or a router's. */
export function resolvePools(options: ProxyOptions): {
  pools: ReadonlyMap<string, LoadBalancer>;
  router: RequestRouter | undefined;
  owned: LoadBalancer | undefined;
} {
  if (options.router !== undefined) {
    if (options.balancer !== undefined)
      throw new InvalidOptionError('router', '(router and balancer)', 'must be given without balancer: the routes choose the pools');
    const router = options.router as Partial<RequestRouter> | null;
    if (typeof router !== 'object' || router === null || typeof router.match !== 'function' || !(router.pools instanceof Map)) {
      throw new InvalidOptionError('router', options.router, 'must be a router from createRouter()');
    }
    return { pools: router.pools, router: router as RequestRouter, owned: undefined };
  }
  const { lb, owned } = resolveBalancer(options.balancer);
  // The pool is named after its load balancer (`name`, 'default' unless given), in logs and stats.
  return { pools: new Map([[lb.name ?? 'default', lb]]), router: undefined, owned: owned ? lb : undefined };
}

/** The load balancer to use: the one given, or a new one the proxy owns. */
export function resolveBalancer(balancer: unknown): { lb: LoadBalancer; owned: boolean } {
  if (balancer instanceof LoadBalancer) return { lb: balancer, owned: false };
  const candidate = balancer as Partial<LoadBalancer> | null;
  if (typeof candidate === 'object' && candidate !== null && typeof candidate.acquire === 'function' && typeof candidate.snapshot === 'function') {
    // A LoadBalancer from another installed copy of @fulcrum/core.
    return { lb: candidate as LoadBalancer, owned: false };
  }
  if (!isPlainObject(balancer)) {
    throw new InvalidOptionError('balancer', balancer, 'must be a LoadBalancer or the options of createLoadBalancer (or give a router instead)');
  }
  return { lb: new LoadBalancer(resolveBalancerOptions('balancer', balancer)), owned: true };
}
