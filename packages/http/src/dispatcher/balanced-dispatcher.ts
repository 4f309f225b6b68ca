/**
 * `createBalancedDispatcher`: client-side load balancing for service-to-service calls, as an undici
 * `Dispatcher`. `fetch('http://users.internal/api', { dispatcher })`, `undici.request(...)`,
 * `stream`, `pipeline` and `compose()`d interceptors all send each request to one instance of the
 * pool, chosen by the load balancer; the request's origin is a logical name, and its path, query,
 * method, headers and body are sent unchanged (minus the key header, plus the logical Host).
 *
 * The idea is Finagle's and gRPC's client-side balancing (and undici's own `BalancedPool`, which
 * keeps one `Pool` per upstream the same way): no proxy hop, each caller balances with what it sees
 * — per-instance latency, in-flight counts, failures — and a dead instance costs a retry rather
 * than an error. The policies are the proxy's, from the same code: retry rules, budget, queue,
 * timeouts, outlier detection and active probes through the load balancer.
 *
 * Lifecycle is undici's: `close()` refuses new requests and resolves once those in flight (queued
 * and retrying ones included) have finished and the pools are closed; `destroy(err)` aborts them
 * with `err` (undici's `ClientDestroyedError` by default). Both take a callback or return a
 * promise. A load balancer the dispatcher created is closed with it; one passed in is not.
 */
import type { LoadBalancer } from '@fulcrum/core';
import { Dispatcher, errors } from 'undici';
import { BalancedRequest } from './balanced-request';
import { DispatcherEngine } from './engine';
import { canReceiveErrors, toCallbackHandler } from './handlers';
import { normalizeDispatcherOptions, type BalancedDispatcherOptions, type NormalizedDispatcherOptions } from './options';

/** Dispatch options a balanced dispatcher also understands. */
export interface BalancedDispatchOptions extends Dispatcher.DispatchOptions {
  /**
   * The request's affinity/hash key: the hash key of hashing balancers and the stick-table key when
   * the load balancer has one. Wins over the key header and `hashBy`.
   */
  fulcrumKey?: string;
}

/** Origins seen in requests, mapped to their normalised form: a handful per process. */
const ORIGIN_CACHE_LIMIT = 256;

export class BalancedDispatcher extends Dispatcher {
  readonly #engine: DispatcherEngine;
  readonly #config: NormalizedDispatcherOptions;
  readonly #origins = new Map<string, { origin: string; host: string } | null>();
  #closePromise: Promise<void> | undefined;
  #destroyPromise: Promise<void> | undefined;

  /** Validates `options` (throws `InvalidOptionError` naming the option) — see `BalancedDispatcherOptions`. */
  constructor(options: BalancedDispatcherOptions) {
    super();
    const { config, lb, owned } = normalizeDispatcherOptions(options);
    this.#config = config;
    this.#engine = new DispatcherEngine(this, lb, owned, config);
  }

  /** The load balancer that picks instances (membership, drain, stats: `lb.snapshot()`). */
  get lb(): LoadBalancer {
    return this.#engine.lb;
  }

  /** `close()` or `destroy()` was called: new requests are refused. */
  get closed(): boolean {
    return this.#engine.closing;
  }

  get destroyed(): boolean {
    return this.#engine.destroyed;
  }

  /** Requests in flight, queued and retrying ones included. */
  get pending(): number {
    return this.#engine.active.size;
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (handler === null || typeof handler !== 'object') throw new errors.InvalidArgumentError('handler must be an object');
    if (!canReceiveErrors(handler)) throw new errors.InvalidArgumentError('invalid onError method');
    const callback = toCallbackHandler(handler);
    const engine = this.#engine;
    if (options === null || typeof options !== 'object') return fail(callback, new errors.InvalidArgumentError('opts must be an object.'));
    if (engine.destroyed) return fail(callback, new errors.ClientDestroyedError());
    if (engine.closing) return fail(callback, new errors.ClientClosedError());
    const target = this.#target(options.origin);
    if (target === null) {
      return fail(callback, new errors.InvalidArgumentError('origin is not served by this balanced dispatcher'));
    }
    const config = this.#config;
    let key = (options as BalancedDispatchOptions).fulcrumKey;
    if (key !== undefined && (typeof key !== 'string' || key === '')) key = undefined;
    let sent = options;
    const keyHeader = config.keyHeader;
    const host = config.logicalHost && target !== undefined ? target.host : undefined;
    if (keyHeader !== undefined || host !== undefined) {
      const prepared = prepareHeaders(options.headers, keyHeader, host);
      if (prepared !== undefined) {
        if (key === undefined) key = prepared.key;
        sent = { ...options, headers: prepared.headers };
      }
    }
    if (key === undefined && config.hashKey !== undefined) key = config.hashKey(options);
    return new BalancedRequest(engine, sent, callback, key).start();
  }

  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    const promise = this.#close();
    if (callback === undefined) return promise;
    promise.then(
      () => callback(),
      () => callback(),
    );
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const err = typeof errOrCallback === 'function' ? null : errOrCallback;
    const done = typeof errOrCallback === 'function' ? errOrCallback : callback;
    this.#destroyPromise ??= this.#engine.destroy(err ?? new errors.ClientDestroyedError());
    if (done === undefined) return this.#destroyPromise;
    this.#destroyPromise.then(
      () => done(),
      () => done(),
    );
  }

  #close(): Promise<void> {
    if (this.#destroyPromise !== undefined) return this.#destroyPromise;
    return (this.#closePromise ??= this.#engine.close());
  }

  /**
   * The request's logical origin and host, `undefined` when the request names none (undici's
   * `request()` always does; a hand-made dispatch may not), `null` when it is not served here.
   */
  #target(origin: Dispatcher.DispatchOptions['origin']): { origin: string; host: string } | null | undefined {
    if (origin === undefined || origin === null) return this.#config.origins === undefined ? undefined : null;
    const raw = typeof origin === 'string' ? origin : origin.origin;
    let target = this.#origins.get(raw);
    if (target === undefined) {
      target = parseTarget(raw, this.#config.origins);
      if (this.#origins.size >= ORIGIN_CACHE_LIMIT) this.#origins.clear();
      this.#origins.set(raw, target);
    }
    return target;
  }
}

function parseTarget(raw: string, allowed: ReadonlySet<string> | undefined): { origin: string; host: string } | null {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return null;
  }
  if (allowed !== undefined && !allowed.has(url.origin)) return null;
  return { origin: url.origin, host: url.host };
}

function fail(handler: { onError?(error: Error): void }, error: Error): boolean {
  handler.onError?.(error);
  return false;
}

/**
 * The headers to send: without the key header (whose value is returned), with `host` added unless
 * the caller set one. `undefined` when nothing needs to change — the caller's object is sent as is.
 */
function prepareHeaders(
  headers: Dispatcher.DispatchOptions['headers'],
  keyHeader: string | undefined,
  host: string | undefined,
): { headers: string[]; key: string | undefined } | undefined {
  let key: string | undefined;
  let hasKey = false;
  let hasHost = false;
  const out: string[] = [];
  const visit = (name: string, value: string | string[]): void => {
    const lower = name.toLowerCase();
    if (lower === keyHeader) {
      hasKey = true;
      const first = Array.isArray(value) ? value[0] : value;
      if (key === undefined && typeof first === 'string' && first !== '') key = first;
      return;
    }
    if (lower === 'host') hasHost = true;
    if (Array.isArray(value)) for (const item of value) out.push(name, item);
    else out.push(name, value);
  };
  if (headers !== null && headers !== undefined) {
    if (Array.isArray(headers)) {
      for (let i = 0; i + 1 < headers.length; i += 2) visit(String(headers[i]), headers[i + 1] as string | string[]);
    } else if (typeof (headers as Iterable<unknown>)[Symbol.iterator] === 'function') {
      for (const [name, value] of headers as Iterable<[string, string | string[] | undefined]>) if (value !== undefined) visit(name, value);
    } else {
      const record = headers as Record<string, string | string[] | undefined>;
      for (const name in record) {
        const value = record[name];
        if (value !== undefined) visit(name, value);
      }
    }
  }
  const addHost = host !== undefined && !hasHost;
  if (!hasKey && !addHost) return undefined;
  if (addHost) out.push('host', host);
  return { headers: out, key };
}

/**
 * Create a balanced dispatcher. See `BalancedDispatcherOptions` for every option and its default.
 *
 * ```ts
 * const users = createBalancedDispatcher({
 *   balancer: { backends: [{ id: 'u1', address: 'http://10.0.0.5:8080' }, { id: 'u2', address: 'http://10.0.0.6:8080' }] },
 * });
 * const res = await fetch('http://users.internal/api/users/42', { dispatcher: users });
 * ```
 */
export function createBalancedDispatcher(options: BalancedDispatcherOptions): BalancedDispatcher {
  return new BalancedDispatcher(options);
}
