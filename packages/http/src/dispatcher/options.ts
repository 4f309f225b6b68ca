/**
 * `createBalancedDispatcher` options, validated once into a frozen, fully defaulted config.
 *
 * The retry, budget, queue, timeout and connection options are the proxy's — same names, same
 * defaults, validated by the same function (`normalizeProxyOptions`): a service calling another
 * through the dispatcher gets exactly the rules a request through `createProxy` gets (one
 * implementation, two front ends). What is the dispatcher's own:
 *
 * - `algorithm` defaults to `'peak-ewma'` (not the load balancer's `'p2c'`) when the dispatcher
 *   creates the load balancer: a client sees each instance's latency directly, and Finagle and
 *   tower — the client-side balancers this follows — default to latency-aware P2C for that reason.
 * - `origin`: by default any request origin is accepted — the dispatcher *is* the pool, and which
 *   logical name the caller wrote (`http://users`, `http://users.internal:8080`) is its business.
 *   Listing origins turns a request for another origin into an error rather than a silent
 *   misroute, which is what a dispatcher shared through an origin map wants.
 * - `hostHeader: 'logical'`: the Host header is the logical name the caller used, as it would
 *   have been without the balancer (and as the proxy's `preserveHost: true` does), so virtual
 *   hosting on the backends keeps working. `'backend'` sends the chosen instance's address.
 * - `keyHeader: 'x-fulcrum-key'`: `fetch` cannot pass dispatch options, so the per-request
 *   affinity/hash key also travels in a header, which is removed before the request leaves.
 */
import type { IncomingMessage } from 'node:http';
import { InvalidOptionError, type LoadBalancer, type LoadBalancerOptions } from '@fulcrum/core';
import { isPlainObject, optionalBoolean } from '@fulcrum/core/validate';
import type { Dispatcher } from 'undici';
import { compileHashBy } from '../affinity/hash-by';
import type { ProxyBalancerOptions } from '../probes/health-check';
import { normalizeProxyOptions, resolveBalancer, type NormalizedProxyOptions } from '../proxy/options';
import type { RetryCondition } from '../retry/policy';

/** The header that carries a per-request affinity/hash key (removed before sending). */
export const DEFAULT_KEY_HEADER = 'x-fulcrum-key';

/** What feeds a hashing balancer when a request carries no explicit key. */
export type DispatcherHashBy =
  'uri' | { header: string } | { cookie: string } | { query: string } | ((options: Dispatcher.DispatchOptions) => string | undefined);

/** Timeouts of each attempt (the proxy's `timeouts`, without `totalMs`: callers pass an `AbortSignal`). */
export interface DispatcherTimeouts {
  /** Establishing a connection to an instance, ms. Default 5000. */
  connectMs?: number;
  /** From sending the request to receiving the response head, ms. Default 60000. */
  headersMs?: number;
  /** Longest pause between two chunks of the response body, ms. Default 60000. */
  idleMs?: number;
}

export interface BalancedDispatcherOptions {
  /**
   * A load balancer, or the options to create one (the dispatcher then owns it and closes it on
   * `close()`/`destroy()`). Created load balancers default to `algorithm: 'peak-ewma'`. Outlier
   * detection (`outlier`), active checks (`health: { path: '/healthz' }`, or `{ probe }`) and slow start are
   * load-balancer options.
   */
  balancer: LoadBalancer | ProxyBalancerOptions;
  /**
   * The logical origin(s) this dispatcher serves, e.g. `'http://users.internal'`. A request for
   * another origin fails with `InvalidArgumentError`. Default: any origin is accepted.
   */
  origin?: string | readonly string[];
  /** Host header sent to instances: the request's logical host, or the instance's. Default `'logical'`. */
  hostHeader?: 'logical' | 'backend';
  /** Request header carrying the affinity/hash key, stripped before sending; `false` ignores it. Default `'x-fulcrum-key'`. */
  keyHeader?: string | false;
  /** The hash key of requests without an explicit key (for hashing balancers). Default none. */
  hashBy?: DispatcherHashBy;
  /** Attempts per request, the first included. Integer 1–10; default 3. */
  attempts?: number;
  /** What may be retried for idempotent methods. Default `['connect', 'reset', 'timeout']`. */
  retryOn?: readonly RetryCondition[];
  /** Also replay non-idempotent methods (POST, PATCH) that reached an instance. Default false. */
  retryNonIdempotent?: boolean;
  /** Retries in flight ≤ max(minConcurrency, percent % of requests in flight). Default 20 % and 3 (Envoy). */
  retryBudget?: { percent?: number; minConcurrency?: number };
  /** Requests waiting when every instance is at its `maxConnections`. Default 1024; 0 = fail at once. */
  maxQueue?: number;
  /** How long a request may wait in that queue, ms. Default 5000. */
  queueTimeoutMs?: number;
  timeouts?: DispatcherTimeouts;
  /** Keep-alive connections per instance when its spec has no `maxConnections`. Default 128. */
  connectionsPerBackend?: number;
  /** TLS options for `https://` instances (`{ ca }`, `{ rejectUnauthorized: false }` for tests). */
  backendTls?: Readonly<Record<string, unknown>>;
  /**
   * Speak HTTP/2 to `https://` instances that offer it by ALPN (undici's `allowH2` on each
   * instance's pool): requests to one instance share its connections as concurrent streams, and
   * each request is still balanced, retried and accounted on its own. An instance that offers only
   * HTTP/1.1 is spoken to in HTTP/1.1; `http://` instances always are (undici has no cleartext
   * HTTP/2, h2c). undici sizes a connection before it knows the protocol, so each connection then
   * takes up to 100 requests at once: streams on HTTP/2, pipelined idempotent requests on an
   * instance that answers in HTTP/1.1 — turn it on for pools whose instances speak HTTP/2.
   * Default false.
   */
  allowH2?: boolean;
  /** Called with every upstream error handled (for logs); never required. */
  onError?: (error: unknown, context: { phase: 'upstream'; backendId?: string }) => void;
}

export interface NormalizedDispatcherOptions {
  readonly shared: NormalizedProxyOptions;
  /** Accepted origins (normalised `URL.origin`s), or undefined for any. */
  readonly origins: ReadonlySet<string> | undefined;
  readonly logicalHost: boolean;
  /** Lower-cased key header, or undefined. */
  readonly keyHeader: string | undefined;
  readonly hashKey: ((options: Dispatcher.DispatchOptions) => string | undefined) | undefined;
  /** Negotiate HTTP/2 with https:// instances. */
  readonly allowH2: boolean;
}

const OWN = ['balancer', 'origin', 'hostHeader', 'keyHeader', 'hashBy', 'allowH2'];
const SHARED = [
  'attempts',
  'retryOn',
  'retryNonIdempotent',
  'retryBudget',
  'maxQueue',
  'queueTimeoutMs',
  'timeouts',
  'connectionsPerBackend',
  'backendTls',
  'onError',
];
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Validate the options; returns the config and the load balancer (created here when given options). */
export function normalizeDispatcherOptions(options: BalancedDispatcherOptions): {
  config: NormalizedDispatcherOptions;
  lb: LoadBalancer;
  owned: boolean;
} {
  if (!isPlainObject(options)) throw new InvalidOptionError('options', options, 'must be an object with a balancer');
  const raw = options as unknown as Record<string, unknown>;
  const shared: Record<string, unknown> = {};
  for (const key of Object.keys(raw)) {
    if (SHARED.includes(key)) shared[key] = raw[key];
    else if (!OWN.includes(key)) {
      throw new InvalidOptionError(key, raw[key], `is not an option of createBalancedDispatcher (known: ${[...OWN, ...SHARED].join(', ')})`);
    }
  }
  const timeouts = raw.timeouts;
  if (isPlainObject(timeouts) && 'totalMs' in timeouts) {
    throw new InvalidOptionError(
      'timeouts.totalMs',
      timeouts.totalMs,
      'is not a dispatcher timeout: pass an AbortSignal with the request (known: connectMs, headersMs, idleMs)',
    );
  }
  // The proxy's validation, on the options both front ends share: same names, paths and defaults.
  const normalized = normalizeProxyOptions({ balancer: {} as LoadBalancerOptions, ...shared });

  const origins = normalizeOrigins(options.origin);
  const hostHeader = options.hostHeader ?? 'logical';
  if (hostHeader !== 'logical' && hostHeader !== 'backend') {
    throw new InvalidOptionError('hostHeader', hostHeader, "must be 'logical' or 'backend'");
  }
  let keyHeader: string | undefined = DEFAULT_KEY_HEADER;
  if (options.keyHeader === false) keyHeader = undefined;
  else if (options.keyHeader !== undefined) {
    if (typeof options.keyHeader !== 'string' || !TOKEN.test(options.keyHeader)) {
      throw new InvalidOptionError('keyHeader', options.keyHeader, 'must be a header name (an HTTP token) or false');
    }
    keyHeader = options.keyHeader.toLowerCase();
  }
  const hashKey = options.hashBy === undefined ? undefined : compileDispatcherHashBy(options.hashBy);
  const allowH2 = optionalBoolean('allowH2', options.allowH2, false);

  const balancer = options.balancer;
  const withDefault =
    isPlainObject(balancer) && (balancer as Record<string, unknown>).algorithm === undefined ? { ...balancer, algorithm: 'peak-ewma' } : balancer;
  const { lb, owned } = resolveBalancer(withDefault);
  return {
    config: Object.freeze({ shared: normalized, origins, logicalHost: hostHeader === 'logical', keyHeader, hashKey, allowH2 }),
    lb,
    owned,
  };
}

function normalizeOrigins(value: unknown): ReadonlySet<string> | undefined {
  if (value === undefined) return undefined;
  const list = typeof value === 'string' ? [value] : value;
  if (!Array.isArray(list) || list.length === 0) {
    throw new InvalidOptionError('origin', value, "must be an origin like 'http://users.internal' or a non-empty array of them");
  }
  const origins = new Set<string>();
  list.forEach((entry: unknown, i) => {
    const path = typeof value === 'string' ? 'origin' : `origin[${i}]`;
    const origin = parseOrigin(entry);
    if (origin === undefined)
      throw new InvalidOptionError(path, entry, "must be an http(s) origin like 'http://users.internal' (no path, query or credentials)");
    origins.add(origin);
  });
  return origins;
}

/** `URL.origin` of an http(s) origin string, or undefined when it is not one. */
export function parseOrigin(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return undefined;
  if (url.username !== '' || url.password !== '' || (url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') return undefined;
  return url.origin;
}

/**
 * The proxy's `compileHashBy`, fed a request view (`url` = the dispatch path, `headers` lower-cased)
 * — its extractors for `'uri'`, header, cookie and query read nothing else. `'source-ip'` has no
 * meaning for a client (the caller is the source of every request) and is refused.
 */
function compileDispatcherHashBy(hashBy: DispatcherHashBy): (options: Dispatcher.DispatchOptions) => string | undefined {
  if ((hashBy as unknown) === 'source-ip') {
    throw new InvalidOptionError(
      'hashBy',
      hashBy,
      "must be 'uri', { header: name }, { cookie: name }, { query: name } or a function (options) => string | undefined ('source-ip' has no meaning client-side)",
    );
  }
  if (typeof hashBy === 'function') {
    const fn = hashBy;
    return (options) => {
      try {
        const key = fn(options);
        return typeof key === 'string' && key !== '' ? key : undefined;
      } catch {
        // A user function's bug must not fail the request: without a key it is simply balanced.
        return undefined;
      }
    };
  }
  const extract = compileHashBy(hashBy, 'hashBy');
  const needsHeaders = typeof hashBy === 'object';
  return (options) => {
    const view = { url: options.path, headers: needsHeaders ? lowerCaseHeaders(options.headers) : {} } as unknown as IncomingMessage;
    return extract(view, '');
  };
}

/** Dispatch headers in any of undici's shapes as a lower-cased record (first value wins for a key). */
export function lowerCaseHeaders(headers: Dispatcher.DispatchOptions['headers']): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  forEachHeader(headers, (name, value) => {
    const lower = name.toLowerCase();
    if (out[lower] === undefined) out[lower] = value;
  });
  return out;
}

/** Visit every header of a dispatch `headers` value: a record, a flat array, or an iterable of pairs. */
export function forEachHeader(headers: Dispatcher.DispatchOptions['headers'], visit: (name: string, value: string | string[]) => void): void {
  if (headers === null || headers === undefined) return;
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) visit(String(headers[i]), headers[i + 1] as string);
    return;
  }
  if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
    for (const pair of headers as Iterable<[string, string | string[] | undefined]>) {
      if (pair[1] !== undefined) visit(pair[0], pair[1]);
    }
    return;
  }
  const record = headers as Record<string, string | string[] | undefined>;
  for (const name in record) {
    const value = record[name];
    if (value !== undefined) visit(name, value);
  }
}
