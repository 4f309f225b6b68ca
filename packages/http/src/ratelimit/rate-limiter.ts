/**
 * Rate and concurrency limits per client key, from stick-table counters — HAProxy's
 * `http-request track-sc0 src` + `deny deny_status 429 if { sc_http_req_rate(0) gt N }` and
 * `sc_conn_cur` limits, plugged into `createProxy({ admission })`.
 *
 * Each limiter owns a `StickTable` used only for its counters: `incr(key, 'req')` per request and
 * `rate(key, 'req')` (HAProxy's two-bucket `freq_ctr` estimate of a sliding window), and a `conc`
 * counter that goes up on admission and down when the request ends (the verdict's `done`). Every
 * request is counted, refused ones included — as HAProxy's `http_req_rate` does — so a client that
 * keeps hammering stays refused instead of getting in every other window.
 *
 * Sharing between instances (`shared`): core's counters are local by design (replicating a counter
 * would count it twice). When a replicator is given, each instance publishes its OWN rate per key as
 * an ordinary stick entry (`<nodeId>␟<key>` → rate), coalesced by the table's batching, and adds the
 * latest rates its peers published to its local one. The limit is therefore approximate: a peer's
 * share is as old as one replication batch plus the transport delay (≈ 50–100 ms with the defaults),
 * so a burst spread over N instances inside that delay may exceed the limit by up to N × the burst.
 * Concurrency limits stay per instance (a connection count is a local fact; a stale remote one would
 * refuse or admit wrongly).
 *
 * Defaults: window 10 s (HAProxy's customary `http_req_rate(10s)`), 100 000 keys (≈ 12 MB; the LRU
 * drops the quietest clients first, which only forgets clients that are not being limited), the key
 * is the client address the proxy computed (through `trustedProxies`, never the client's own claim).
 */
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { InvalidOptionError, StickTable, type Clock, type Replicator, type StickEntry } from '@fulcrum/core';
import { checkKnownKeys, isPlainObject, optionalBoolean, optionalInteger } from '@fulcrum/core/validate';
import { flatKey } from '../affinity/flat-key';
import type { AdmissionVerdict } from '../proxy/options';

/** How requests are grouped for counting. */
export type RateLimitKey = 'source-ip' | { header: string };

/** Options of `RateLimiter` (and of `rateLimit` in the config file). */
export interface RateLimitOptions {
  /** Requests allowed per key per `windowMs` (sliding estimate). Integer ≥ 1. Default: no rate limit. */
  requests?: number;
  /** The window of `requests`, ms (100 – 3 600 000). Default 10 000 (HAProxy's `http_req_rate(10s)`). */
  windowMs?: number;
  /** Concurrent requests allowed per key. Integer ≥ 1. Default: no concurrency limit. */
  concurrent?: number;
  /**
   * What identifies a client: `'source-ip'` (the address the proxy computed, through trusted
   * proxies) or `{ header: 'x-api-key' }` (requests without the header are counted by address).
   * Default `'source-ip'`.
   */
  by?: RateLimitKey;
  /** Status of a refusal. 429 or 503. Default 429. */
  status?: number;
  /** Keys tracked at once; the least recently seen are forgotten. Integer ≥ 1. Default 100 000. */
  capacity?: number;
  /** Share request rates with other instances through the replicator given to the limiter. Default false. */
  shared?: boolean;
}

/** What a `RateLimiter` needs from its host. */
export interface RateLimiterDeps {
  /** This instance's node id (1–64 chars of [A-Za-z0-9._:-]); required with `shared`. */
  nodeId?: string;
  /** Replicator carrying per-instance rates, required with `shared` (e.g. a RedisReplicator on its own channel). */
  replicator?: Replicator<number>;
  clock?: Clock;
}

const KNOWN = ['requests', 'windowMs', 'concurrent', 'by', 'status', 'capacity', 'shared'];
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$/;
/** Separates the node id from the key in a shared entry: a byte no header value or address holds. */
const SEPARATOR = '\u001f';
/**
 * Header values longer than this are counted under their SHA-256 (base64url), as stickiness stores
 * long keys: a client cannot grow the table's memory with huge header values, and two long tokens
 * that share a prefix (JWTs share their header) still count separately.
 */
const MAX_RAW_KEY_LENGTH = 128;

/** `RateLimitOptions` with defaults applied. */
export interface NormalizedRateLimitOptions {
  readonly requests: number;
  readonly windowMs: number;
  readonly concurrent: number;
  readonly by: 'source-ip' | { readonly header: string };
  readonly status: number;
  readonly capacity: number;
  readonly shared: boolean;
}

const integer = optionalInteger;

/** Validate rate-limit options; errors name `path` (`pools.api.rateLimit.requests`). */
export function normalizeRateLimitOptions(input: unknown, path = 'rateLimit'): NormalizedRateLimitOptions {
  if (!isPlainObject(input)) throw new InvalidOptionError(path, input, 'must be an object like { "requests": 100, "windowMs": 10000 }');
  checkKnownKeys(path, input, KNOWN);
  const requests = integer(`${path}.requests`, input.requests, 0, 1, 1e9);
  const concurrent = integer(`${path}.concurrent`, input.concurrent, 0, 1, 1e9);
  if (requests === 0 && concurrent === 0) {
    throw new InvalidOptionError(path, input, 'must set "requests", "concurrent" or both');
  }
  let by: NormalizedRateLimitOptions['by'] = 'source-ip';
  if (input.by !== undefined && input.by !== 'source-ip') {
    const header = isPlainObject(input.by) ? input.by.header : undefined;
    if (!isPlainObject(input.by) || Object.keys(input.by).length !== 1 || typeof header !== 'string' || !TOKEN.test(header)) {
      throw new InvalidOptionError(`${path}.by`, input.by, 'must be "source-ip" or { "header": "<header name>" }');
    }
    by = Object.freeze({ header: header.toLowerCase() });
  }
  const status = integer(`${path}.status`, input.status, 429, 429, 503);
  if (status !== 429 && status !== 503) throw new InvalidOptionError(`${path}.status`, status, 'must be 429 or 503');
  const shared = optionalBoolean(`${path}.shared`, input.shared, false);
  return Object.freeze({
    requests,
    windowMs: integer(`${path}.windowMs`, input.windowMs, 10_000, 100, 3_600_000),
    concurrent,
    by,
    status,
    capacity: integer(`${path}.capacity`, input.capacity, 100_000, 1, 10_000_000),
    shared,
  });
}

/**
 * A rate and concurrency limiter. `limiter.admission` plugs into `createProxy({ admission })`;
 * `limiter.check(key)` is the same decision for any key.
 */
export class RateLimiter {
  readonly options: NormalizedRateLimitOptions;
  /** The counters (and, with `shared`, the peers' published rates). */
  readonly table: StickTable<number>;
  readonly #nodeId: string;
  /** `<nodeId>␟`, the prefix of this instance's published rates. */
  readonly #ownPrefix: string;
  readonly #peers = new Set<string>();
  readonly #replicator: Replicator<number> | undefined;
  /**
   * The refusal of a rate over the limit. The sliding estimate falls below the limit within one
   * window at most, so that is what Retry-After promises (rounded up to whole seconds).
   */
  readonly #refused: AdmissionVerdict;
  readonly #message: string;

  constructor(options: RateLimitOptions | NormalizedRateLimitOptions, deps: RateLimiterDeps = {}, path = 'rateLimit') {
    this.options = Object.isFrozen(options) ? (options as NormalizedRateLimitOptions) : normalizeRateLimitOptions(options, path);
    const { shared, windowMs, capacity } = this.options;
    if (shared && (deps.replicator === undefined || deps.nodeId === undefined)) {
      throw new InvalidOptionError(`${path}.shared`, true, 'needs a replicator and a node id (configure "replication")');
    }
    this.#nodeId = deps.nodeId ?? 'local';
    this.#ownPrefix = `${this.#nodeId}${SEPARATOR}`;
    this.#replicator = shared ? recordPeers(deps.replicator!, this.#peers, this.#nodeId) : undefined;
    this.table = new StickTable<number>({
      capacity,
      // Counters live ttlMs after their last use: two windows covers the two-bucket estimate.
      ttlMs: windowMs * 2,
      nodeId: this.#nodeId,
      rateWindowMs: windowMs,
      ...(deps.clock ? { clock: deps.clock } : {}),
      ...(this.#replicator ? { replicator: this.#replicator } : {}),
    });
    this.#message = this.options.status === 429 ? 'Too Many Requests' : 'Service Unavailable';
    this.#refused = Object.freeze({
      admit: false as const,
      status: this.options.status,
      message: this.#message,
      headers: Object.freeze({ 'retry-after': String(Math.max(1, Math.ceil(windowMs / 1000))) }),
    });
  }

  /** The counting key of a request. */
  keyOf(req: IncomingMessage, clientIp: string): string {
    const by = this.options.by;
    if (by !== 'source-ip') {
      const value = req.headers[by.header];
      const text = Array.isArray(value) ? value[0] : value;
      // Flat keys (see affinity/flat-key.ts): a counter kept for the window must not keep the
      // request's header — or the X-Forwarded-For the address was cut from — alive with it.
      if (text !== undefined && text.length > 0) {
        return text.length <= MAX_RAW_KEY_LENGTH ? flatKey('h:', text) : flatKey('h:#', createHash('sha256').update(text).digest('base64url'));
      }
    }
    return flatKey('ip:', clientIp);
  }

  /** `createProxy({ admission })`: count the request under its key and admit or refuse it. */
  readonly admission = (req: IncomingMessage, info: { clientIp: string }): AdmissionVerdict => this.check(this.keyOf(req, info.clientIp));

  /**
   * Count one request for `key` and decide. An admitted verdict carries `done`, which must be called
   * once when the request ends (the proxy does) so the concurrency count goes down.
   */
  check(key: string): AdmissionVerdict {
    const { requests, concurrent } = this.options;
    const table = this.table;
    if (requests > 0) {
      table.incr(key, 'req');
      const rate = this.rateOf(key);
      if (rate > requests) return this.#refused;
    }
    if (concurrent > 0) {
      if (table.count(key, 'conc') >= concurrent) return { admit: false, status: this.options.status, message: this.#message, headers: { 'retry-after': '1' } };
      table.incr(key, 'conc');
      let released = false;
      return {
        admit: true,
        done: () => {
          if (released) return;
          released = true;
          table.incr(key, 'conc', -1);
        },
      };
    }
    return ADMIT;
  }

  /** Requests per window for `key`: the local estimate, plus the peers' published rates when shared. */
  rateOf(key: string): number {
    const local = this.table.rate(key, 'req');
    if (this.#replicator === undefined) return local;
    this.table.set(flatKey(this.#ownPrefix, key), Math.round(local * 100) / 100);
    let total = local;
    for (const peer of this.#peers) total += this.table.get(`${peer}${SEPARATOR}${key}`) ?? 0;
    return total;
  }

  /** Concurrent requests admitted and not yet ended for `key` (this instance). */
  concurrentOf(key: string): number {
    return this.table.count(key, 'conc');
  }

  /** Stop replicating (flushing what is queued). The replicator itself stays open. */
  close(): Promise<void> {
    return this.table.close();
  }
}

const ADMIT: AdmissionVerdict = Object.freeze({ admit: true as const });

/** A view of `replicator` that remembers which peers published rates (so `rateOf` knows whom to add). */
function recordPeers(replicator: Replicator<number>, peers: Set<string>, self: string): Replicator<number> {
  const note = (entries: readonly StickEntry<number>[]): void => {
    for (const entry of entries) {
      const cut = entry.key.indexOf(SEPARATOR);
      if (cut > 0) {
        const origin = entry.key.slice(0, cut);
        if (origin !== self) peers.add(origin);
      }
    }
  };
  return {
    publish: (entries) => replicator.publish(entries),
    subscribe: (onEntries) =>
      replicator.subscribe((entries) => {
        note(entries);
        onEntries(entries);
      }),
    snapshot: async () => {
      const entries = await replicator.snapshot();
      note(entries);
      return entries;
    },
    close: () => replicator.close(),
  };
}
