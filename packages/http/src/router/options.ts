/**
 * `createRouter` options: validated once, compiled into frozen routes the hot path only reads.
 *
 * The shape follows Envoy's route configuration (an ordered list, first match wins, each route naming
 * a cluster or weighted clusters) and HAProxy's `use_backend <pool> if <acl>` lines, with the
 * config-file names of the design (`pools`, `routes`, `match`, `pool`, `split`). Every error names
 * the option path and the value (`routes[2].split[1].weight`), so a bad configuration is refused at
 * start-up rather than discovered by the request that hits it.
 *
 * Pool names double as the value of the split-stickiness cookie, so they follow the backend-id rule
 * (1–64 characters of `[A-Za-z0-9._:-]`): they are never free text inside a cookie.
 */
import { BACKEND_ID_PATTERN, InvalidOptionError } from '@fulcrum/core';
import type { LoadBalancer, LoadBalancerOptions } from '@fulcrum/core';
import { finiteNumber, isPlainObject } from '@fulcrum/core/validate';
import type { CookieStickinessOptions } from '../affinity/cookie';
import { compileHashBy, type HashBy } from '../affinity/hash-by';
import { normalizeProxyOptions, type ProxyOptions } from '../proxy/options';
import type { CompiledMatch, HeaderCondition, HostCondition } from './match';

/** Conditions of a route; all given ones must hold. An absent `match` matches every request. */
export interface RouteMatchSpec {
  /**
   * `Host` (port and trailing dot ignored, case-insensitive): an exact name (`'api.example.com'`),
   * or `'*.example.com'` for every name below `example.com` at any depth — not `example.com` itself.
   */
  host?: string;
  /** The exact normalised path (`'/health'`). */
  path?: string;
  /**
   * A segment-aware path prefix: `'/api'` matches `/api` and `/api/…`, never `/apix`; `'/api/'`
   * matches only below `/api`. `'/'` matches every path.
   */
  pathPrefix?: string;
  /** One method or a list (`'GET'`, `['GET', 'HEAD']`), case-insensitive. */
  method?: string | readonly string[];
  /**
   * A request header: present (only `name`), equal to `value` exactly, or matching `regex` over the
   * WHOLE value (anchored for you). Repeated headers are joined with `', '`. A regex that could
   * backtrack exponentially is refused (nested quantifiers like `(a+)+`, a repeated alternation like
   * `(a|aa)*`, backreferences), and values over 1024 characters never match a regex.
   */
  header?: { name: string; value?: string; regex?: string | RegExp };
  /** The name of a cookie that must be present with a non-empty value. */
  cookie?: string;
}

/** One pool of a weighted split and its weight (finite, ≥ 0; 0 = no new clients, sticky ones move off). */
export interface SplitTarget {
  pool: string;
  weight: number;
}

/** A forwarding rule. Exactly one of `pool` and `split`. */
export interface RouteSpec {
  /** A name for `setSplit` and the split cookie: 1–64 characters of `[A-Za-z0-9_-]`. Default: the index. */
  name?: string;
  /** The conditions; default: match everything. */
  match?: RouteMatchSpec;
  /** The pool that serves the matched requests. */
  pool?: string;
  /** Weighted pools (canary, blue-green, A/B): each new client is assigned one, then kept on it. */
  split?: readonly SplitTarget[];
  /**
   * Replace the matched `pathPrefix` (or the whole `path`) by this before forwarding:
   * `{ pathPrefix: '/api', rewritePrefix: '/' }` sends `/api/users?x` as `/users?x`. Must start with `/`.
   */
  rewritePrefix?: string;
}

/** How splits keep a client on one pool. */
export interface SplitOptions {
  /**
   * The signed cookie naming a client's pool, one per split route (`<name>_<route name or index>`).
   * Same options as the sticky-backend cookie (secrets rotate the same way); `name` is the prefix,
   * default `'fulcrum_pool'`. `false`: no stickiness, every request is assigned by weight. Required
   * (an object or `false`) as soon as a route splits.
   */
  cookie?: CookieStickinessOptions | false;
  /**
   * A request header that lets testers pick a pool of the matched split (`x-fulcrum-pool: green`),
   * even one at weight 0 — never a pool outside that split. Default `false` (off): enable it only
   * where choosing the version is harmless to expose.
   */
  headerOverride?: string | false;
}

export const DEFAULT_SPLIT_COOKIE_NAME = 'fulcrum_pool';

/**
 * The `createProxy` options a pool of a router may set for its own requests (HAProxy's per-backend
 * `balance`, `stick`, `retries` and `timeout server`). They override the proxy's, key by key (a
 * pool's `timeouts` replaces the proxy's `timeouts` object). `maxHeaderCount` is not among them: a
 * head is checked before it is routed.
 */
export const POOL_PROXY_KEYS = [
  'stickiness',
  'hashBy',
  'attempts',
  'retryOn',
  'retryNonIdempotent',
  'retryBudget',
  'maxRetryAfterMs',
  'maxReplayBytes',
  'maxQueue',
  'queueTimeoutMs',
  'timeouts',
  'connectionsPerBackend',
  'preserveHost',
  'forwardedHeaders',
  'backendTls',
  'upgradeTimeouts',
] as const;

/** What a pool of a router sets for itself (see `POOL_PROXY_KEYS`). */
export type PoolProxyOptions = Pick<ProxyOptions, (typeof POOL_PROXY_KEYS)[number]>;

/**
 * A pool with options of its own: its load balancer (or the options to create one, which the router
 * then owns) and the proxy options its requests use instead of the proxy's.
 */
export interface PoolSpec extends PoolProxyOptions {
  balancer: LoadBalancer | LoadBalancerOptions;
}

const POOL_SPEC_KEYS = new Set<string>(['balancer', ...POOL_PROXY_KEYS]);

/**
 * Validate a pool's own proxy options without creating anything (no load balancer, socket or
 * stick-table): the keys, every value `createProxy` would check, and `hashBy`. Errors name
 * `pools.<name>.<option>`. Stickiness is checked when the proxy builds it (it owns a stick-table).
 */
export function normalizePoolProxyOptions(path: string, spec: Readonly<Record<string, unknown>>): PoolProxyOptions {
  unknownKeys(path, spec, POOL_SPEC_KEYS);
  const options: Record<string, unknown> = {};
  for (const key of POOL_PROXY_KEYS) if (spec[key] !== undefined) options[key] = spec[key];
  const { stickiness, hashBy, ...checked } = options;
  try {
    normalizeProxyOptions(checked as ProxyOptions);
    if (hashBy !== undefined) compileHashBy(hashBy as HashBy, 'hashBy');
  } catch (error) {
    if (!(error instanceof InvalidOptionError)) throw error;
    throw new InvalidOptionError(`${path}.${error.path}`, error.value, error.expected, { cause: error });
  }
  if (stickiness !== undefined && !isPlainObject(stickiness))
    throw new InvalidOptionError(`${path}.stickiness`, stickiness, 'must be the stickiness options ({ cookie }, { sourceIp }, { header } or { learnCookie })');
  return Object.freeze(options) as PoolProxyOptions;
}

/** A compiled route. `split` is replaced wholesale by `setSplit` (one reference swap). */
export interface CompiledRoute {
  readonly index: number;
  readonly name: string;
  readonly match: CompiledMatch;
  readonly pool: string | undefined;
  split: CompiledSplit | undefined;
  readonly rewritePrefix: string | undefined;
  /** What `rewritePrefix` replaces: the prefix or exact path as configured (without trailing slash for a prefix). */
  readonly rewriteFrom: string | undefined;
  readonly cookieName: string;
}

/** A split as the hot path reads it: pools and cumulative weights, and a lookup by pool. */
export interface CompiledSplit {
  readonly pools: readonly string[];
  readonly cumulative: readonly number[];
  readonly total: number;
  readonly weights: ReadonlyMap<string, number>;
}

const ROUTE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const METHOD = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,32}$/;
const HOST_NAME = /^(?:[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9_])?)(?:\.[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;
const MATCH_KEYS = new Set(['host', 'path', 'pathPrefix', 'method', 'header', 'cookie']);
const ROUTE_KEYS = new Set(['name', 'match', 'pool', 'split', 'rewritePrefix']);

function unknownKeys(path: string, object: Record<string, unknown>, known: ReadonlySet<string>): void {
  for (const key of Object.keys(object)) {
    if (!known.has(key)) throw new InvalidOptionError(`${path}.${key}`, object[key], `is not an option (known: ${[...known].join(', ')})`);
  }
}

/** A pool name as a cookie can carry it. */
export function validatePoolName(path: string, name: unknown): string {
  if (typeof name !== 'string' || !BACKEND_ID_PATTERN.test(name)) {
    throw new InvalidOptionError(path, name, 'must be a pool name: 1–64 characters of [A-Za-z0-9._:-]');
  }
  return name;
}

/**
 * A configured path (`path`, `pathPrefix`, `rewritePrefix`): absolute, no query or fragment, no
 * percent-encoding, no dot segments or doubled slashes — it must already be in the normal form
 * requests are compared in, or it could never match.
 */
function validatePathOption(path: string, value: unknown): string {
  if (
    typeof value !== 'string' ||
    !value.startsWith('/') ||
    value.length > 2048 ||
    /[?#%\\\s\x00-\x1f\x7f]/.test(value) ||
    value.includes('//') ||
    /\/\.\.?(?:\/|$)/.test(value)
  ) {
    throw new InvalidOptionError(
      path,
      value,
      'must be an absolute path in normal form: starts with "/", no "?", "#", "%", "\\", whitespace, "//" or "." / ".." segments',
    );
  }
  return value;
}

function compileHost(path: string, value: unknown): HostCondition {
  if (typeof value !== 'string') throw new InvalidOptionError(path, value, 'must be a host name or "*.suffix"');
  const host = value.toLowerCase().replace(/\.$/, '');
  if (host.startsWith('*.')) {
    const rest = host.slice(2);
    if (!HOST_NAME.test(rest) || rest.length > 251) throw new InvalidOptionError(path, value, 'must be a host name or "*.suffix" (e.g. "*.example.com")');
    return Object.freeze({ exact: undefined, suffix: `.${rest}` });
  }
  const bracketed = /^\[[0-9a-f:.]+\]$/.test(host);
  if (!bracketed && (!HOST_NAME.test(host) || host.length > 253)) {
    throw new InvalidOptionError(path, value, 'must be a host name without port (e.g. "api.example.com"), an IPv6 literal in brackets, or "*.suffix"');
  }
  return Object.freeze({ exact: host, suffix: undefined });
}

function compileHeader(path: string, value: unknown): HeaderCondition {
  if (!isPlainObject(value)) throw new InvalidOptionError(path, value, 'must be { name, value? } or { name, regex? }');
  unknownKeys(path, value, new Set(['name', 'value', 'regex']));
  const { name, value: exact, regex } = value;
  if (typeof name !== 'string' || !TOKEN.test(name)) throw new InvalidOptionError(`${path}.name`, name, 'must be a header name (an HTTP token)');
  if (exact !== undefined && regex !== undefined) throw new InvalidOptionError(`${path}.regex`, regex, 'cannot be combined with value');
  if (exact !== undefined && typeof exact !== 'string') throw new InvalidOptionError(`${path}.value`, exact, 'must be a string');
  let compiled: RegExp | undefined;
  if (regex !== undefined) {
    let source: string;
    let flags = '';
    if (regex instanceof RegExp) {
      source = regex.source;
      // g and y make `test` stateful (lastIndex): the same request could match once and not twice.
      flags = regex.flags.replace(/[gy]/g, '');
    } else if (typeof regex === 'string') source = regex;
    else throw new InvalidOptionError(`${path}.regex`, regex, 'must be a RegExp or a regular expression source string');
    try {
      compiled = new RegExp(`^(?:${source})$`, flags);
    } catch (error) {
      throw new InvalidOptionError(`${path}.regex`, regex, 'must be a valid regular expression', { cause: error });
    }
    const unsafe = backtrackingHazard(source);
    if (unsafe !== undefined) throw new InvalidOptionError(`${path}.regex`, regex, `must not risk catastrophic backtracking: ${unsafe}`);
  }
  return Object.freeze({ name: name.toLowerCase(), value: exact, regex: compiled });
}

function compileMatch(path: string, value: unknown): CompiledMatch {
  if (value === undefined) {
    return Object.freeze({
      host: undefined,
      path: undefined,
      prefix: undefined,
      prefixTrailingSlash: false,
      methods: undefined,
      header: undefined,
      cookie: undefined,
    });
  }
  if (!isPlainObject(value)) throw new InvalidOptionError(path, value, 'must be an object of conditions');
  unknownKeys(path, value, MATCH_KEYS);
  const host = value.host === undefined ? undefined : compileHost(`${path}.host`, value.host);
  const exactPath = value.path === undefined ? undefined : validatePathOption(`${path}.path`, value.path);
  let prefix: string | undefined;
  let prefixTrailingSlash = false;
  if (value.pathPrefix !== undefined) {
    if (exactPath !== undefined) throw new InvalidOptionError(`${path}.pathPrefix`, value.pathPrefix, 'cannot be combined with path');
    const given = validatePathOption(`${path}.pathPrefix`, value.pathPrefix);
    if (given === '/') prefix = '';
    else if (given.endsWith('/')) {
      prefix = given.slice(0, -1);
      prefixTrailingSlash = true;
    } else prefix = given;
  }
  let methods: Set<string> | undefined;
  if (value.method !== undefined) {
    const list = typeof value.method === 'string' ? [value.method] : value.method;
    if (!Array.isArray(list) || list.length === 0)
      throw new InvalidOptionError(`${path}.method`, value.method, 'must be a method or a non-empty array of methods');
    methods = new Set();
    list.forEach((method: unknown, i: number) => {
      const methodPath = typeof value.method === 'string' ? `${path}.method` : `${path}.method[${i}]`;
      if (typeof method !== 'string' || !METHOD.test(method)) throw new InvalidOptionError(methodPath, method, 'must be an HTTP method such as "GET"');
      methods!.add(method.toUpperCase());
    });
  }
  const header = value.header === undefined ? undefined : compileHeader(`${path}.header`, value.header);
  const cookie = value.cookie;
  if (cookie !== undefined && (typeof cookie !== 'string' || !TOKEN.test(cookie))) {
    throw new InvalidOptionError(`${path}.cookie`, cookie, 'must be a cookie name (an RFC 6265 token)');
  }
  return Object.freeze({ host, path: exactPath, prefix, prefixTrailingSlash, methods, header, cookie });
}

/**
 * Validate a split (from a route or `setSplit`) against the known pools. Accepts the route form
 * (`[{ pool, weight }]`) or a record (`{ blue: 90, green: 10 }`).
 */
export function compileSplit(path: string, value: unknown, pools: ReadonlySet<string>): CompiledSplit {
  let entries: { pool: unknown; weight: unknown; path: string }[];
  if (Array.isArray(value)) {
    entries = value.map((entry: unknown, i: number) => {
      if (!isPlainObject(entry)) throw new InvalidOptionError(`${path}[${i}]`, entry, 'must be { pool, weight }');
      unknownKeys(`${path}[${i}]`, entry, new Set(['pool', 'weight']));
      return { pool: entry.pool, weight: entry.weight, path: `${path}[${i}]` };
    });
  } else if (isPlainObject(value)) {
    entries = Object.keys(value).map((pool) => ({ pool, weight: value[pool], path: `${path}.${pool}` }));
  } else {
    throw new InvalidOptionError(path, value, 'must be a non-empty array of { pool, weight } (or a record of pool → weight)');
  }
  if (entries.length === 0) throw new InvalidOptionError(path, value, 'must name at least one pool');
  const seen = new Set<string>();
  const names: string[] = [];
  const cumulative: number[] = [];
  const weights = new Map<string, number>();
  let total = 0;
  for (const entry of entries) {
    const name = Array.isArray(value) ? validatePoolName(`${entry.path}.pool`, entry.pool) : (entry.pool as string);
    if (!pools.has(name)) {
      throw new InvalidOptionError(Array.isArray(value) ? `${entry.path}.pool` : entry.path, name, `must name a pool of the router (${[...pools].join(', ')})`);
    }
    if (seen.has(name)) throw new InvalidOptionError(Array.isArray(value) ? `${entry.path}.pool` : entry.path, name, 'is listed twice in one split');
    seen.add(name);
    const weightPath = Array.isArray(value) ? `${entry.path}.weight` : entry.path;
    const weight = finiteNumber(weightPath, entry.weight, { min: 0, max: 1e9 });
    total += weight;
    names.push(name);
    cumulative.push(total);
    weights.set(name, weight);
  }
  if (total <= 0) throw new InvalidOptionError(path, value, 'must give at least one pool a weight above 0');
  return Object.freeze({ pools: Object.freeze(names), cumulative: Object.freeze(cumulative), total, weights });
}

/** Validate and compile the routes. */
export function compileRoutes(routes: unknown, pools: ReadonlySet<string>, cookiePrefix: string): CompiledRoute[] {
  if (!Array.isArray(routes) || routes.length === 0) throw new InvalidOptionError('routes', routes, 'must be a non-empty array of routes');
  const names = new Set<string>();
  return routes.map((route: unknown, index: number) => {
    const path = `routes[${index}]`;
    if (!isPlainObject(route)) throw new InvalidOptionError(path, route, 'must be a route object ({ match?, pool } or { match?, split })');
    unknownKeys(path, route, ROUTE_KEYS);
    let name = String(index);
    if (route.name !== undefined) {
      if (typeof route.name !== 'string' || !ROUTE_NAME.test(route.name)) {
        throw new InvalidOptionError(`${path}.name`, route.name, 'must be 1–64 characters of [A-Za-z0-9_-]');
      }
      name = route.name;
    }
    if (names.has(name)) throw new InvalidOptionError(`${path}.name`, route.name ?? name, 'is the name (or index) of another route');
    names.add(name);
    const match = compileMatch(`${path}.match`, route.match);
    if ((route.pool === undefined) === (route.split === undefined)) {
      throw new InvalidOptionError(path, route, 'must have exactly one of pool and split');
    }
    let pool: string | undefined;
    if (route.pool !== undefined) {
      pool = validatePoolName(`${path}.pool`, route.pool);
      if (!pools.has(pool)) throw new InvalidOptionError(`${path}.pool`, pool, `must name a pool of the router (${[...pools].join(', ')})`);
    }
    const split = route.split === undefined ? undefined : compileSplit(`${path}.split`, route.split, pools);
    if (split !== undefined && !Array.isArray(route.split)) throw new InvalidOptionError(`${path}.split`, route.split, 'must be an array of { pool, weight }');
    let rewritePrefix: string | undefined;
    let rewriteFrom: string | undefined;
    if (route.rewritePrefix !== undefined) {
      rewritePrefix = validatePathOption(`${path}.rewritePrefix`, route.rewritePrefix);
      if (match.prefix === undefined && match.path === undefined) {
        throw new InvalidOptionError(`${path}.rewritePrefix`, route.rewritePrefix, 'needs match.pathPrefix or match.path (the part it replaces)');
      }
      rewriteFrom = match.path ?? (match.prefixTrailingSlash ? `${match.prefix}/` : match.prefix);
    }
    return { index, name, match, pool, split, rewritePrefix, rewriteFrom, cookieName: `${cookiePrefix}_${name}` };
  });
}

/**
 * Why a regular expression could take exponential time on a crafted input, or `undefined` when it
 * has none of the known shapes. JavaScript's engine backtracks, and a route regex runs on every
 * request over a value the client chose: one request with `([a-z]+)+` against 30 letters and a `!`
 * keeps the event loop busy for seconds (ReDoS). Refused, as the `safe-regex` check does by star
 * height, and as RE2 (Envoy's and HAProxy's choice for untrusted input) cannot even express:
 * - a repeated group that itself contains a quantifier (star height 2: `(a+)+`, `(a*b?)*`);
 * - a repeated group with an alternation (`(a|aa)*`: the branches can overlap);
 * - a backreference (`\1`, `\k<name>`), which no linear-time engine supports.
 * The input a regex sees is capped as well (`MAX_REGEX_INPUT`, in the matcher), which bounds what
 * the remaining polynomial shapes (`.*a.*`) can cost.
 */
export function backtrackingHazard(source: string): string | undefined {
  interface Group {
    quantified: boolean;
    alternation: boolean;
  }
  const stack: Group[] = [{ quantified: false, alternation: false }];
  // What the quantifier that may follow applies to: a closed group (with its contents), or an atom.
  let last: Group | 'atom' | undefined;
  let i = 0;
  const n = source.length;
  while (i < n) {
    const c = source[i]!;
    if (c === '\\') {
      const next = source[i + 1];
      if (next !== undefined && /[1-9]/.test(next)) return `a backreference (\\${next}) is not allowed`;
      if (next === 'k' && source[i + 2] === '<') return 'a named backreference (\\k<…>) is not allowed';
      i += 2;
      last = 'atom';
      continue;
    }
    if (c === '[') {
      // A character class is one atom; "]" right after "[" or "[^" is literal in no JS syntax, so
      // the class ends at the first unescaped "]".
      i++;
      while (i < n && source[i] !== ']') i += source[i] === '\\' ? 2 : 1;
      i++;
      last = 'atom';
      continue;
    }
    if (c === '(') {
      stack.push({ quantified: false, alternation: false });
      i++;
      // Group syntax: (?:…), (?=…), (?!…), (?<=…), (?<!…), (?<name>…).
      if (source[i] === '?') {
        i++;
        if (source[i] === '<' && source[i + 1] !== '=' && source[i + 1] !== '!') {
          const close = source.indexOf('>', i);
          i = close === -1 ? n : close + 1;
        } else if (source[i] === '<') i += 2;
        else i++;
      }
      last = undefined;
      continue;
    }
    if (c === ')') {
      const group = stack.length > 1 ? stack.pop()! : { quantified: false, alternation: false };
      // A group holding a quantifier makes every group around it hold one.
      if (group.quantified) stack[stack.length - 1]!.quantified = true;
      last = group;
      i++;
      continue;
    }
    if (c === '|') {
      stack[stack.length - 1]!.alternation = true;
      last = undefined;
      i++;
      continue;
    }
    const quantifier = readQuantifier(source, i);
    if (quantifier !== undefined) {
      i = quantifier.end;
      if (source[i] === '?') i++; // lazy
      if (quantifier.repeats) {
        if (last !== undefined && last !== 'atom') {
          if (last.quantified) return 'a repeated group contains a quantifier (nested quantifiers, like "(a+)+")';
          if (last.alternation) return 'a repeated group contains an alternation (like "(a|aa)*"); use a character class or write the group once';
        }
        stack[stack.length - 1]!.quantified = true;
      }
      last = undefined;
      continue;
    }
    last = 'atom';
    i++;
  }
  return undefined;
}

/** A quantifier at `i` (`*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}`): where it ends and whether it repeats. */
function readQuantifier(source: string, i: number): { end: number; repeats: boolean } | undefined {
  const c = source[i];
  if (c === '*' || c === '+') return { end: i + 1, repeats: true };
  if (c === '?') return { end: i + 1, repeats: false };
  if (c !== '{') return undefined;
  const braces = /^\{(\d+)(,(\d*))?\}/.exec(source.slice(i, i + 24));
  if (braces === null) return undefined;
  const max = braces[2] === undefined ? Number(braces[1]) : braces[3] === '' ? Infinity : Number(braces[3]);
  return { end: i + braces[0].length, repeats: max > 1 };
}
