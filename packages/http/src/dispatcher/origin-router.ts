/**
 * `routeByOrigin`: one dispatcher per logical origin, a default for every other origin — so a
 * balanced dispatcher can be the process's global dispatcher (`setGlobalDispatcher`) for the
 * services it balances while every other `fetch` goes through an ordinary undici `Agent`.
 *
 * This is what undici's `Agent` does internally (a map from origin to a `Pool`), made explicit; the
 * map is fixed at construction so the per-request cost is one `Map` lookup on the origin string.
 * Origins are compared in `URL.origin` form (lower-case host, default port dropped), so
 * `http://Users.Internal:80` and `http://users.internal` are the same key.
 */
import { InvalidOptionError } from '@fulcrum/core';
import { isPlainObject } from '@fulcrum/core/validate';
import { Agent, Dispatcher, errors } from 'undici';
import { parseOrigin } from './options';

export interface OriginRouterOptions {
  /** Where requests for other origins go. Default: a new undici `Agent` (closed with the router). */
  fallback?: Dispatcher;
}

/** Origins seen in requests, mapped to their normalised form: a handful per process. */
const CACHE_LIMIT = 256;

export class OriginRouter extends Dispatcher {
  readonly #routes = new Map<string, Dispatcher>();
  readonly #fallback: Dispatcher;
  readonly #seen = new Map<string, Dispatcher>();
  #closed = false;
  #shutdown: Promise<void> | undefined;

  constructor(routes: Readonly<Record<string, Dispatcher>>, options: OriginRouterOptions = {}) {
    super();
    if (!isPlainObject(routes) || Object.keys(routes).length === 0) {
      throw new InvalidOptionError('routes', routes, "must be an object mapping origins ('http://users.internal') to dispatchers");
    }
    for (const [key, dispatcher] of Object.entries(routes)) {
      const origin = parseOrigin(key);
      if (origin === undefined) throw new InvalidOptionError(`routes["${key}"]`, key, 'must be an http(s) origin (no path, query or credentials)');
      if (!isDispatcher(dispatcher)) throw new InvalidOptionError(`routes["${key}"]`, dispatcher, 'must be an undici Dispatcher');
      if (this.#routes.has(origin)) throw new InvalidOptionError(`routes["${key}"]`, key, `must be unique (same origin as another key: ${origin})`);
      this.#routes.set(origin, dispatcher);
    }
    if (!isPlainObject(options)) throw new InvalidOptionError('options', options, 'must be an object');
    if (options.fallback !== undefined && !isDispatcher(options.fallback)) {
      throw new InvalidOptionError('options.fallback', options.fallback, 'must be an undici Dispatcher');
    }
    this.#fallback = options.fallback ?? new Agent();
  }

  override dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    if (this.#closed) {
      const error = new errors.ClientClosedError();
      if (typeof handler.onResponseError === 'function') handler.onResponseError(NOOP_CONTROLLER, error);
      else handler.onError?.(error);
      return false;
    }
    return this.#route(options.origin).dispatch(options, handler);
  }

  #route(origin: Dispatcher.DispatchOptions['origin']): Dispatcher {
    if (origin === undefined || origin === null) return this.#fallback;
    const raw = typeof origin === 'string' ? origin : origin.origin;
    const direct = this.#routes.get(raw) ?? this.#seen.get(raw);
    if (direct !== undefined) return direct;
    let normalized: string | undefined;
    try {
      normalized = new URL(raw).origin;
    } catch {
      normalized = undefined;
    }
    const dispatcher = (normalized === undefined ? undefined : this.#routes.get(normalized)) ?? this.#fallback;
    if (this.#seen.size >= CACHE_LIMIT) this.#seen.clear();
    this.#seen.set(raw, dispatcher);
    return dispatcher;
  }

  /** Close every routed dispatcher and the fallback, letting their requests finish. */
  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    this.#closed = true;
    this.#shutdown ??= Promise.all(this.#all().map((d) => d.close().catch(() => undefined))).then(() => undefined);
    if (callback === undefined) return this.#shutdown;
    void this.#shutdown.then(() => callback());
  }

  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(errOrCallback?: Error | null | (() => void), callback?: () => void): Promise<void> | void {
    const err = typeof errOrCallback === 'function' ? null : (errOrCallback ?? null);
    const done = typeof errOrCallback === 'function' ? errOrCallback : callback;
    this.#closed = true;
    const promise = Promise.all(this.#all().map((d) => d.destroy(err).catch(() => undefined))).then(() => undefined);
    if (done === undefined) return promise;
    void promise.then(() => done());
  }

  #all(): Dispatcher[] {
    return [...new Set([...this.#routes.values(), this.#fallback])];
  }
}

const NOOP_CONTROLLER: Dispatcher.DispatchController = Object.freeze({
  aborted: false,
  paused: false,
  reason: null,
  abort: () => undefined,
  pause: () => undefined,
  resume: () => undefined,
});

function isDispatcher(value: unknown): value is Dispatcher {
  return (
    typeof value === 'object' && value !== null && typeof (value as Dispatcher).dispatch === 'function' && typeof (value as Dispatcher).close === 'function'
  );
}

/**
 * A dispatcher that sends each origin in `routes` to its dispatcher and everything else to
 * `options.fallback` (default a new undici `Agent`):
 *
 * ```ts
 * setGlobalDispatcher(routeByOrigin({ 'http://users.internal': createBalancedDispatcher({ balancer }) }));
 * await fetch('http://users.internal/api');   // balanced
 * await fetch('https://example.org/');        // the fallback Agent
 * ```
 */
export function routeByOrigin(routes: Readonly<Record<string, Dispatcher>>, options?: OriginRouterOptions): OriginRouter {
  return new OriginRouter(routes, options);
}
