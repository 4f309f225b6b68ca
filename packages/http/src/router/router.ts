/**
 * `createRouter`: forwarding rules over several pools — one entry point, several services — and
 * weighted traffic splits between pools for canary, blue-green and A/B releases.
 *
 * Routing is HAProxy's `use_backend … if …` / Envoy's route table: an ordered list of routes, each a
 * set of exact, anchored conditions (see `match.ts`) and a target; the first route whose conditions
 * all hold wins, and no match is a 404 from the proxy. Conditions run against the NORMALISED path
 * (see `path.ts`: dot segments resolved, slashes merged, unreserved escapes decoded), and that same
 * path is what goes upstream, so the backend serves exactly what the router matched.
 *
 * A split is Envoy's `weighted_clusters` with the stickiness that releases need: a client's first
 * request is assigned a pool by weight, and a signed cookie (the sticky-backend cookie of
 * `../affinity/cookie.ts`, HMAC-SHA256 with key rotation, carrying the POOL name as its id) keeps it
 * there, so a user does not flip between versions from one request to the next. There is one cookie
 * per split route (`fulcrum_pool_<route>`) because two splits may share no pools; the route's name
 * is in the cookie name, which is inside the MAC, so a cookie minted for one route is worthless on
 * another. A cookie naming a pool that is no longer in the split, or is at weight 0, is ignored and
 * the client re-assigned: setting the canary's weight to 0 is a rollback and must take everyone off
 * it. Raising weights (`setSplit`, a canary ramp) moves only new clients, which is what a ramp is.
 * The assignment is a uniform draw against cumulative weights (few pools: a linear scan), from an
 * injectable `random` so tests replay.
 *
 * The tester override (`headerOverride`, e.g. `x-fulcrum-pool: green`) is off by default and only
 * ever selects a pool OF THE MATCHED SPLIT (any weight, so a green deployment at 0 % can be tried
 * before the switch); it sets no cookie. Anything else in the header is ignored.
 *
 * Pools given as options are created here and closed by `close()`; load balancers passed in belong
 * to the caller.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { InvalidOptionError, LoadBalancer, defaultRandom, isFulcrumError, type Random } from '@fulcrum/core';
import { isPlainObject } from '@fulcrum/core/validate';
import { StickyCookie } from '../affinity/cookie';
import { resolveBalancerOptions, type ProxyBalancerOptions } from '../probes/health-check';
import { headersMatch, hostMatches, parseHost, pathMatches } from './match';
import {
  DEFAULT_SPLIT_COOKIE_NAME,
  compileRoutes,
  compileSplit,
  normalizePoolProxyOptions,
  validatePoolName,
  type PoolProxyOptions,
  type PoolSpec,
  type CompiledRoute,
  type CompiledSplit,
  type RouteSpec,
  type SplitOptions,
  type SplitTarget,
} from './options';
import { normaliseTarget } from './path';

/** Options of `createRouter`. */
export interface RouterOptions {
  /**
   * Named pools: a `LoadBalancer` (the caller's) or its options (the router creates and closes it),
   * or a `PoolSpec` — `{ balancer, stickiness?, hashBy?, attempts?, timeouts?, … }` — whose proxy
   * options its requests use instead of the proxy's, under both engines.
   */
  pools: Readonly<Record<string, LoadBalancer | ProxyBalancerOptions | PoolSpec>>;
  /** The forwarding rules, in order; the first that matches wins. */
  routes: readonly RouteSpec[];
  /** Stickiness and tester override of weighted splits. Required (its `cookie`) when a route splits. */
  split?: SplitOptions;
  /** Random source of split assignment, `[0, 1)`. Default core's `defaultRandom` (unseeded). */
  random?: Random;
  /** Clock of the split cookie (ms since the epoch). Default `Date.now`. */
  now?: () => number;
  /**
   * What to do with a path in which an encoded `/`, `\` or `;` (`%2F`, `%5C`, `%3B`) borders a `.`
   * or `..` — `/public/..%2Fadmin`, which a backend that decodes before resolving dots serves as
   * `/admin` (see `path.ts`, step 5). `'reject'`: it matches no route (404). `'pass'`: it is routed
   * as the single segment it is to RFC 3986 and sent upstream unchanged — only for backends known
   * to treat every escape as data. Default `'reject'`.
   */
  encodedDotSegments?: 'reject' | 'pass';
}

/** What `router.match(req)` found. */
export interface RouteMatch {
  /** The pool's name. */
  pool: string;
  /** The pool's load balancer: acquire the backend from it. */
  lb: LoadBalancer;
  /** The path and query to send upstream: normalised, and rewritten when the route says so. */
  path: string;
  /** The index of the route that matched. */
  route: number;
  /** A `Set-Cookie` value to add to the response: the split assignment (new or refreshed). */
  setCookie?: string;
}

/** Forwarding rules over several pools (see the file header). */
export interface Router {
  /**
   * The route for `req`, or `undefined` (the proxy answers 404). Never throws. `secure` says the
   * client's own connection was HTTPS when a trusted TLS-terminating proxy stands between (see
   * `isSecureRequest`): the split cookie then gets `Secure`, as it does over a TLS socket.
   */
  match(req: IncomingMessage, secure?: boolean): RouteMatch | undefined;
  /** The pools by name. */
  readonly pools: ReadonlyMap<string, LoadBalancer>;
  /** The proxy options of the pools given as a `PoolSpec`, validated and frozen, by pool name. */
  readonly poolOptions: ReadonlyMap<string, PoolProxyOptions>;
  /**
   * Change a route's split at runtime (a canary ramp, a rollback): by route index or name, to
   * `[{ pool, weight }]` or `{ pool: weight }`. Also turns a single-pool route into a split. New
   * clients see the new weights at once; sticky ones stay unless their pool dropped to 0 or out.
   * Throws `InvalidOptionError` (and changes nothing) when the weights are invalid.
   */
  setSplit(route: number | string, weights: readonly SplitTarget[] | Readonly<Record<string, number>>): void;
  /** The current weights of a route's split (`undefined` for a single-pool route). */
  splitOf(route: number | string): Readonly<Record<string, number>> | undefined;
  /** Close the load balancers the router created. Idempotent. */
  close(): void;
}

const KNOWN = new Set(['pools', 'routes', 'split', 'random', 'now', 'encodedDotSegments']);
const SPLIT_KEYS = new Set(['cookie', 'headerOverride']);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** `createRouter`'s options validated, with nothing created: what `normalizeRouterOptions` returns. */
export interface NormalizedRouterOptions {
  readonly random: Random;
  readonly now: () => number;
  readonly passEncodedDotSegments: boolean;
  /** The tester-override header, lowercased, or `undefined` (off). */
  readonly headerOverride: string | undefined;
  readonly cookie: SplitOptions['cookie'];
  /** Each pool's load balancer or its options, as given (a `PoolSpec`'s `balancer`). */
  readonly balancers: ReadonlyMap<string, unknown>;
  /** The proxy options of the pools given as a `PoolSpec`. */
  readonly poolOptions: ReadonlyMap<string, PoolProxyOptions>;
  readonly routes: CompiledRoute[];
}

/**
 * Validate `createRouter`'s options without creating a load balancer, a timer or a socket: every
 * check `createRouter` makes on routes, splits, the split cookie, pool names and pools' own proxy
 * options (a pool's load balancer options are checked when `createRouter` builds it). Throws
 * `InvalidOptionError` naming the option; the `fulcrum` config validation calls it.
 */
export function normalizeRouterOptions(options: RouterOptions): NormalizedRouterOptions {
  if (!isPlainObject(options)) throw new InvalidOptionError('options', options, 'must be an object with pools and routes');
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key))
      throw new InvalidOptionError(
        key,
        (options as unknown as Record<string, unknown>)[key],
        `is not an option of createRouter (known: ${[...KNOWN].join(', ')})`,
      );
  }
  if (options.random !== undefined && typeof options.random !== 'function')
    throw new InvalidOptionError('random', options.random, 'must be a function returning [0, 1)');
  if (options.now !== undefined && typeof options.now !== 'function')
    throw new InvalidOptionError('now', options.now, 'must be a function returning ms since the epoch');
  const encodedDotSegments = options.encodedDotSegments ?? 'reject';
  if (encodedDotSegments !== 'reject' && encodedDotSegments !== 'pass') {
    throw new InvalidOptionError('encodedDotSegments', encodedDotSegments, "must be 'reject' or 'pass'");
  }

  const split: SplitOptions = options.split ?? {};
  if (!isPlainObject(split as unknown)) throw new InvalidOptionError('split', split, 'must be { cookie?, headerOverride? }');
  for (const key of Object.keys(split)) {
    if (!SPLIT_KEYS.has(key))
      throw new InvalidOptionError(`split.${key}`, (split as Record<string, unknown>)[key], 'is not an option (known: cookie, headerOverride)');
  }
  const override = split.headerOverride ?? false;
  if (override !== false && (typeof override !== 'string' || !TOKEN.test(override))) {
    throw new InvalidOptionError('split.headerOverride', override, 'must be a header name or false');
  }
  let cookiePrefix = DEFAULT_SPLIT_COOKIE_NAME;
  const cookieOptions = split.cookie;
  if (cookieOptions !== undefined && cookieOptions !== false) {
    if (!isPlainObject(cookieOptions as unknown))
      throw new InvalidOptionError('split.cookie', cookieOptions, 'must be the cookie options ({ secrets, … }) or false');
    const name: unknown = cookieOptions.name;
    if (name !== undefined) {
      if (typeof name !== 'string' || !TOKEN.test(name) || name.length > 128) {
        throw new InvalidOptionError('split.cookie.name', name, 'must be a cookie name prefix (an RFC 6265 token of up to 128 characters)');
      }
      cookiePrefix = name;
    }
    // Validate the cookie options now, with the option path, not on the first split request.
    new StickyCookie({ ...cookieOptions, name: `${cookiePrefix}_0` }, 'split.cookie');
  }

  if (!isPlainObject(options.pools) || Object.keys(options.pools).length === 0) {
    throw new InvalidOptionError('pools', options.pools, 'must be an object of pool name → LoadBalancer or load balancer options, with at least one pool');
  }
  const balancers = new Map<string, unknown>();
  const poolOptions = new Map<string, PoolProxyOptions>();
  for (const name of Object.keys(options.pools)) {
    validatePoolName(`pools.${name}`, name);
    let pool: unknown = options.pools[name];
    if (isPlainObject(pool) && 'balancer' in pool) {
      poolOptions.set(name, normalizePoolProxyOptions(`pools.${name}`, pool));
      pool = pool.balancer;
    }
    balancers.set(name, pool);
  }
  const routes = compileRoutes(options.routes, new Set(balancers.keys()), cookiePrefix);
  for (const route of routes) {
    if (route.split !== undefined && split.cookie === undefined) {
      throw new InvalidOptionError(
        'split.cookie',
        undefined,
        `is required when a route splits traffic (routes[${route.index}].split): { secrets } for sticky splits, or false to assign every request by weight`,
      );
    }
  }
  return {
    random: options.random ?? defaultRandom,
    now: options.now ?? Date.now,
    passEncodedDotSegments: encodedDotSegments === 'pass',
    headerOverride: override === false ? undefined : override.toLowerCase(),
    cookie: split.cookie,
    balancers,
    poolOptions,
    routes,
  };
}

class RouterImpl implements Router {
  readonly pools: ReadonlyMap<string, LoadBalancer>;
  readonly poolOptions = new Map<string, PoolProxyOptions>();
  readonly #owned: LoadBalancer[] = [];
  readonly #routes: CompiledRoute[];
  readonly #byName = new Map<string, CompiledRoute>();
  readonly #poolNames: ReadonlySet<string>;
  readonly #cookies = new Map<string, StickyCookie>();
  readonly #cookieOptions: SplitOptions['cookie'];
  readonly #override: string | undefined;
  readonly #random: Random;
  readonly #now: () => number;
  readonly #passEncodedDotSegments: boolean;
  #closed = false;

  constructor(options: RouterOptions) {
    const normalized = normalizeRouterOptions(options);
    this.#random = normalized.random;
    this.#now = normalized.now;
    this.#passEncodedDotSegments = normalized.passEncodedDotSegments;
    this.#override = normalized.headerOverride;
    this.#cookieOptions = normalized.cookie;
    for (const [name, own] of normalized.poolOptions) this.poolOptions.set(name, own);
    const pools = new Map<string, LoadBalancer>();
    try {
      for (const [name, pool] of normalized.balancers) pools.set(name, this.#resolvePool(name, pool));
      this.#poolNames = new Set(pools.keys());
      this.#routes = normalized.routes;
      for (const route of this.#routes) {
        this.#byName.set(route.name, route);
        if (route.split !== undefined) this.#cookieFor(route, `routes[${route.index}].split`);
      }
    } catch (error) {
      // A half-built router must not leave health-check timers of the pools it created running.
      for (const lb of this.#owned) lb.close();
      throw error;
    }
    this.pools = pools;
  }

  #resolvePool(name: string, value: unknown): LoadBalancer {
    const path = `pools.${name}`;
    if (value instanceof LoadBalancer) return value;
    const candidate = value as Partial<LoadBalancer> | null;
    if (typeof candidate === 'object' && candidate !== null && typeof candidate.acquire === 'function' && typeof candidate.snapshot === 'function') {
      // A LoadBalancer from another installed copy of @fulcrum/core.
      return candidate as LoadBalancer;
    }
    if (!isPlainObject(value)) throw new InvalidOptionError(path, value, 'must be a LoadBalancer or the options of createLoadBalancer');
    let lb: LoadBalancer;
    try {
      lb = new LoadBalancer({ name, ...resolveBalancerOptions('', value) });
    } catch (error) {
      if (isFulcrumError(error, 'FULCRUM_INVALID_OPTION')) {
        const invalid = error as InvalidOptionError;
        throw new InvalidOptionError(`${path}.${invalid.path}`, invalid.value, invalid.expected, { cause: error });
      }
      throw error;
    }
    this.#owned.push(lb);
    return lb;
  }

  /** The split cookie of a route, built (and validated) once. Throws when splits have no cookie decision. */
  #cookieFor(route: CompiledRoute, path: string): StickyCookie | undefined {
    const options = this.#cookieOptions;
    if (options === undefined) {
      throw new InvalidOptionError(
        'split.cookie',
        undefined,
        `is required when a route splits traffic (${path}): { secrets } for sticky splits, or false to assign every request by weight`,
      );
    }
    if (options === false) return undefined;
    let cookie = this.#cookies.get(route.name);
    if (cookie === undefined) {
      cookie = new StickyCookie({ ...options, name: route.cookieName }, 'split.cookie');
      this.#cookies.set(route.name, cookie);
    }
    return cookie;
  }

  match(req: IncomingMessage, secure = false): RouteMatch | undefined {
    if (this.#closed) return undefined;
    let target;
    try {
      target = normaliseTarget(req.url, this.#passEncodedDotSegments);
    } catch {
      return undefined;
    }
    if (target === undefined) return undefined;
    const path = target.path;
    const method = req.method ?? 'GET';
    let host: string | undefined | null = null; // null: not parsed yet (most tables have no host rule)
    const routes = this.#routes;
    for (let i = 0; i < routes.length; i++) {
      const route = routes[i]!;
      const m = route.match;
      if (m.host !== undefined) {
        if (host === null) host = parseHost(req.headers.host);
        if (!hostMatches(m.host, host)) continue;
      }
      if (!pathMatches(m, path)) continue;
      if (m.methods !== undefined && !m.methods.has(method)) continue;
      if ((m.header !== undefined || m.cookie !== undefined) && !headersMatch(m, req)) continue;
      return this.#target(route, req, path, target.query, secure);
    }
    return undefined;
  }

  #target(route: CompiledRoute, req: IncomingMessage, path: string, query: string, secure: boolean): RouteMatch {
    const upstreamPath = (route.rewritePrefix === undefined ? path : rewrite(path, route.rewriteFrom!, route.rewritePrefix)) + query;
    const split = route.split;
    if (split === undefined) {
      const pool = route.pool!;
      return { pool, lb: this.pools.get(pool)!, path: upstreamPath, route: route.index };
    }
    if (this.#override !== undefined) {
      const wanted = req.headers[this.#override];
      if (typeof wanted === 'string' && split.weights.has(wanted)) {
        return { pool: wanted, lb: this.pools.get(wanted)!, path: upstreamPath, route: route.index };
      }
    }
    const cookie = this.#cookies.get(route.name);
    const now = cookie === undefined ? 0 : this.#now();
    if (cookie !== undefined) {
      const verified = cookie.verify(req.headers.cookie, now);
      if (verified !== undefined && (split.weights.get(verified.backendId) ?? 0) > 0) {
        const pool = verified.backendId;
        const result: RouteMatch = { pool, lb: this.pools.get(pool)!, path: upstreamPath, route: route.index };
        // Reissued once past half its age, so an active client never loses its assignment.
        if (now - verified.issuedAt >= cookie.maxAgeMs / 2) result.setCookie = cookie.serialize(pool, now, secure || isTls(req));
        return result;
      }
    }
    const pool = pick(split, this.#random);
    const result: RouteMatch = { pool, lb: this.pools.get(pool)!, path: upstreamPath, route: route.index };
    if (cookie !== undefined) result.setCookie = cookie.serialize(pool, now, secure || isTls(req));
    return result;
  }

  #route(route: number | string): CompiledRoute {
    const found = typeof route === 'number' ? this.#routes[route] : this.#byName.get(route);
    if (found === undefined) throw new InvalidOptionError('route', route, `must be a route index (0–${this.#routes.length - 1}) or name`);
    return found;
  }

  setSplit(route: number | string, weights: readonly SplitTarget[] | Readonly<Record<string, number>>): void {
    const target = this.#route(route);
    const compiled = compileSplit('weights', weights, this.#poolNames);
    if (target.split === undefined) this.#cookieFor(target, `setSplit(${JSON.stringify(route)})`);
    // One reference swap: a request in `match` sees the old split or the new one, never a mix.
    target.split = compiled;
  }

  splitOf(route: number | string): Readonly<Record<string, number>> | undefined {
    const split = this.#route(route).split;
    if (split === undefined) return undefined;
    return Object.freeze(Object.fromEntries(split.weights));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const lb of this.#owned) lb.close();
  }
}

/** Weighted draw over a split (at least one weight is > 0, guaranteed by `compileSplit`). */
function pick(split: CompiledSplit, random: Random): string {
  const draw = random() * split.total;
  const cumulative = split.cumulative;
  for (let i = 0; i < cumulative.length; i++) if (draw < cumulative[i]!) return split.pools[i]!;
  // draw === total only if random() returned 1 (outside its contract): the last pool with weight.
  for (let i = cumulative.length - 1; i >= 0; i--) if (split.weights.get(split.pools[i]!)! > 0) return split.pools[i]!;
  return split.pools[0]!;
}

/** Replace `from` (a matched prefix or path) at the start of `path` by `to`, joining with one `/`. */
export function rewrite(path: string, from: string, to: string): string {
  let rest = path.slice(from.length);
  if (from.endsWith('/')) rest = `/${rest}`;
  if (rest === '' || rest === '/') return rest === '/' && !to.endsWith('/') ? `${to}/` : to;
  return to.endsWith('/') ? to + rest.slice(1) : to + rest;
}

function isTls(req: IncomingMessage): boolean {
  return (req.socket as TLSSocket | undefined)?.encrypted === true;
}

/**
 * Create a router (see `RouterOptions`, `RouteSpec`). Validates everything now and throws
 * `InvalidOptionError` naming the option path (`routes[2].split[1].weight`).
 */
export function createRouter(options: RouterOptions): Router {
  return new RouterImpl(options);
}
