/**
 * `dnsDiscovery`: keep a load balancer's membership equal to what DNS says — A/AAAA records of a
 * hostname, or the SRV records of a service — re-resolving when the records' TTL runs out.
 *
 * Sources: Envoy's `STRICT_DNS` clusters (every address is an endpoint, refreshed on the record TTL
 * with `dns_min_refresh_rate`, and a failed resolution keeps the hosts it had), gRPC's DNS resolver
 * (which likewise never empties a channel on a lookup error), and RFC 2782 for SRV: the lowest
 * priority present serves, higher ones are backups (`backup: true`), weights are relative shares, and
 * weight 0 means "a very small chance" — mapped to 0.01, since 0 means "no traffic" to the load
 * balancer.
 *
 * Each refresh feeds `lb.update(specs)`: an instance's id is derived from its address by core's
 * `backendIdOf` (`b-` and 16 hex digits of a hash of `scheme://ip:port`), so an address that stays in
 * DNS keeps its `Backend` object, health and statistics across refreshes — and every load balancer
 * instance that discovers it gives it the same id; a new one gets traffic (through slow start when the
 * load balancer has it); one that left DNS drains — its requests in flight finish, new ones go
 * elsewhere. The id is opaque because it travels to clients in the sticky cookie, which must never
 * tell them where a backend is (as for backends given as bare addresses); the address stays in
 * `backend.address`, where the stats page and the `'update'` event's specs show it.
 *
 * Defaults and why:
 * - `minTtlMs: 5000` (Envoy's `dns_min_refresh_rate`): records with TTL 0 or 1 would otherwise turn
 *   discovery into a DNS load test; `maxTtlMs: 60000`: a day-long TTL should not hide a removed
 *   instance for a day — the balancer's own health checks and retries cover the gap meanwhile.
 * - A failed lookup — and an empty answer (`allowEmpty: false`) — keeps the last good set, emits
 *   `'error'` and tries again after `minTtlMs`: a DNS outage or a zone pushed half-written must not
 *   take every instance out of service. Set `allowEmpty: true` when an empty answer is a legitimate
 *   "scaled to zero".
 * - `family: 'any'`: A records, or AAAA when the name has no A record. Taking both would count a
 *   dual-stack instance twice (two backends, two pools, twice the share).
 * - node:dns exposes no TTL for SRV records, so an SRV set refreshes on the smallest TTL of its
 *   targets' address records (still bounded by min/max).
 * - Timers are unref'd: discovery never keeps a process alive on its own.
 */
import { EventEmitter } from 'node:events';
import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import {
  ErrorCodes,
  FulcrumError,
  InvalidOptionError,
  backendIdOf,
  isFulcrumError,
  type BackendSpec,
  type LoadBalancer,
  type MembershipChange,
} from '@fulcrum/core';
import { checkKnownKeys, finiteNumber, isPlainObject, optionalTimerMs } from '@fulcrum/core/validate';

/** What discovery needs of a resolver: node:dns/promises' `Resolver` fits; tests pass a fake. */
export interface DnsResolver {
  resolve4(hostname: string, options: { ttl: true }): Promise<{ address: string; ttl: number }[]>;
  resolve6(hostname: string, options: { ttl: true }): Promise<{ address: string; ttl: number }[]>;
  resolveSrv(name: string): Promise<{ name: string; port: number; priority: number; weight: number }[]>;
  /** Cancel outstanding queries (called by `stop()` when present). */
  cancel?(): void;
}

/** What to resolve: a hostname and the port its instances listen on, or an SRV name. */
export type DnsTarget = { hostname: string; port: number } | { srv: string };

export interface DnsDiscoveryOptions {
  /** The load balancer whose membership discovery owns (`lb.update` replaces the whole set). */
  lb: LoadBalancer;
  /** Default: a new node:dns/promises `Resolver` (the system's servers). */
  resolver?: DnsResolver;
  /** Shortest time between refreshes, ms; also the retry delay after a failure. Default 5000. */
  minTtlMs?: number;
  /** Longest time between refreshes whatever the TTL says, ms. Default 60000. */
  maxTtlMs?: number;
  /** Address records to use. Default `'any'`: A, or AAAA when there is no A record. */
  family?: 'ipv4' | 'ipv6' | 'any';
  /** Scheme of the instances' addresses. Default `'http'`. */
  scheme?: 'http' | 'https';
  /** Accept an empty answer as "no instances" instead of an error. Default false. */
  allowEmpty?: boolean;
  /** Fields every discovered instance gets (`weight` only for hostname targets; SRV brings its own). */
  backend?: Pick<BackendSpec, 'weight' | 'maxConnections' | 'zone' | 'metadata'>;
  /** Called with each lookup error (besides the `'error'` event). */
  onError?: (error: Error) => void;
}

export interface DnsDiscoveryEvents {
  /**
   * A refresh succeeded; `change` is what `lb.update` changed (often nothing), by backend id; `specs`
   * pairs each id with its address, for logs.
   */
  update: [change: MembershipChange, specs: readonly BackendSpec[]];
  /** A refresh failed; the load balancer keeps the last good set. */
  error: [error: Error];
}

/** Why a refresh failed: the lookup's own error is the `cause`. */
export class DnsDiscoveryError extends FulcrumError {
  readonly code = ErrorCodes.DNS_DISCOVERY;
  readonly target: string;
  constructor(target: string, message: string, options?: { cause?: unknown }) {
    super(`dns discovery of ${target}: ${message}`, options);
    this.name = 'DnsDiscoveryError';
    this.target = target;
  }
}

/** True for a `DnsDiscoveryError` of any installed copy of Fulcrum. */
export const isDnsDiscoveryError = (error: unknown): error is DnsDiscoveryError => isFulcrumError(error, ErrorCodes.DNS_DISCOVERY);

const NO_RECORDS = new Set(['ENODATA', 'ENOTFOUND', 'NODATA', 'NOTFOUND']);
/** RFC 2782: weight 0 is "a very small chance" of selection, never none. */
const SRV_ZERO_WEIGHT = 0.01;

interface Resolved {
  specs: BackendSpec[];
  ttlSeconds: number;
}

export class DnsDiscovery extends EventEmitter<DnsDiscoveryEvents> {
  readonly lb: LoadBalancer;
  readonly target: Readonly<DnsTarget>;
  /** Resolves after the first lookup: true when it succeeded. */
  readonly ready: Promise<boolean>;
  readonly #resolver: DnsResolver;
  readonly #ownsResolver: boolean;
  readonly #minTtlMs: number;
  readonly #maxTtlMs: number;
  readonly #family: 'ipv4' | 'ipv6' | 'any';
  readonly #scheme: 'http' | 'https';
  readonly #allowEmpty: boolean;
  readonly #template: Readonly<Pick<BackendSpec, 'weight' | 'maxConnections' | 'zone' | 'metadata'>>;
  readonly #onError: ((error: Error) => void) | undefined;
  readonly #label: string;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #inflight: Promise<MembershipChange> | undefined;
  #lastGood: readonly BackendSpec[] | undefined;

  constructor(target: DnsTarget, options: DnsDiscoveryOptions) {
    super();
    this.target = Object.freeze(normalizeTarget(target));
    if (!isPlainObject(options)) throw new InvalidOptionError('options', options, 'must be an object with an lb');
    const known = ['lb', 'resolver', 'minTtlMs', 'maxTtlMs', 'family', 'scheme', 'allowEmpty', 'backend', 'onError'];
    checkKnownKeys('options', options, known);
    const lb = options.lb as Partial<LoadBalancer> | undefined;
    if (typeof lb !== 'object' || lb === null || typeof lb.update !== 'function') {
      throw new InvalidOptionError('options.lb', options.lb, 'must be a LoadBalancer');
    }
    this.lb = options.lb;
    const resolver = options.resolver as Partial<DnsResolver> | undefined;
    if (
      resolver !== undefined &&
      (typeof resolver !== 'object' ||
        resolver === null ||
        typeof resolver.resolve4 !== 'function' ||
        typeof resolver.resolve6 !== 'function' ||
        typeof resolver.resolveSrv !== 'function')
    ) {
      throw new InvalidOptionError('options.resolver', options.resolver, 'must have resolve4, resolve6 and resolveSrv (a node:dns/promises Resolver fits)');
    }
    this.#ownsResolver = resolver === undefined;
    this.#resolver = options.resolver ?? new Resolver();
    this.#minTtlMs = duration('options.minTtlMs', options.minTtlMs, 5000);
    this.#maxTtlMs = duration('options.maxTtlMs', options.maxTtlMs, 60_000);
    if (this.#maxTtlMs < this.#minTtlMs) throw new InvalidOptionError('options.maxTtlMs', options.maxTtlMs, `must be ≥ minTtlMs (${this.#minTtlMs})`);
    const family = options.family ?? 'any';
    if (family !== 'ipv4' && family !== 'ipv6' && family !== 'any') throw new InvalidOptionError('options.family', family, "must be 'ipv4', 'ipv6' or 'any'");
    this.#family = family;
    const scheme = options.scheme ?? 'http';
    if (scheme !== 'http' && scheme !== 'https') throw new InvalidOptionError('options.scheme', scheme, "must be 'http' or 'https'");
    this.#scheme = scheme;
    if (options.allowEmpty !== undefined && typeof options.allowEmpty !== 'boolean')
      throw new InvalidOptionError('options.allowEmpty', options.allowEmpty, 'must be true or false');
    this.#allowEmpty = options.allowEmpty ?? false;
    if (options.backend !== undefined && !isPlainObject(options.backend)) throw new InvalidOptionError('options.backend', options.backend, 'must be an object');
    const { weight, maxConnections, zone, metadata } = options.backend ?? {};
    this.#template = Object.freeze({
      ...(weight === undefined ? {} : { weight }),
      ...(maxConnections === undefined ? {} : { maxConnections }),
      ...(zone === undefined ? {} : { zone }),
      ...(metadata === undefined ? {} : { metadata }),
    });
    if (options.onError !== undefined && typeof options.onError !== 'function')
      throw new InvalidOptionError('options.onError', options.onError, 'must be a function');
    this.#onError = options.onError;
    this.#label = 'srv' in this.target ? this.target.srv : `${this.target.hostname}:${this.target.port}`;
    this.ready = this.refresh().then(
      () => true,
      () => false,
    );
  }

  /** The last set handed to the load balancer, or undefined before the first success. */
  get current(): readonly BackendSpec[] | undefined {
    return this.#lastGood;
  }

  /**
   * Resolve now and apply the result (the timer is re-armed from here). Rejects with a
   * `DnsDiscoveryError` when the lookup fails; the load balancer then keeps its last good set.
   */
  refresh(): Promise<MembershipChange> {
    if (this.#stopped) return Promise.reject(new DnsDiscoveryError(this.#label, 'stopped'));
    // Concurrent callers share one lookup: a burst of refresh() calls is one query.
    this.#inflight ??= this.#refreshOnce().finally(() => {
      this.#inflight = undefined;
    });
    return this.#inflight;
  }

  /** Stop refreshing. The load balancer keeps its current members. */
  stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#ownsResolver) this.#resolver.cancel?.();
  }

  async #refreshOnce(): Promise<MembershipChange> {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    let resolved: Resolved;
    try {
      resolved = 'srv' in this.target ? await this.#resolveSrv(this.target.srv) : await this.#resolveHost(this.target.hostname, this.target.port);
      if (resolved.specs.length === 0 && !this.#allowEmpty)
        throw new DnsDiscoveryError(this.#label, 'no records (keeping the last good set; allowEmpty: true accepts an empty answer)');
    } catch (error) {
      const wrapped = error instanceof DnsDiscoveryError ? error : new DnsDiscoveryError(this.#label, `lookup failed (${codeOf(error)})`, { cause: error });
      if (!this.#stopped) {
        this.#schedule(this.#minTtlMs);
        this.#raise(wrapped);
      }
      throw wrapped;
    }
    if (this.#stopped) return { added: [], removed: [], updated: [] };
    const change = this.lb.update(resolved.specs);
    this.#lastGood = resolved.specs;
    this.#schedule(Math.min(this.#maxTtlMs, Math.max(this.#minTtlMs, resolved.ttlSeconds * 1000)));
    this.emit('update', change, resolved.specs);
    return change;
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      // Errors are reported through 'error'/onError; the rejection itself has no one to go to.
      this.refresh().catch(() => undefined);
    }, ms);
    this.#timer.unref();
  }

  #raise(error: Error): void {
    try {
      this.#onError?.(error);
    } catch {
      // A logging callback must not stop discovery.
    }
    // An 'error' event without a listener would throw (EventEmitter's rule) and kill the process.
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }

  async #resolveHost(hostname: string, port: number): Promise<Resolved> {
    const addresses = await this.#addresses(hostname);
    const specs = addresses.records.map((address) => this.#spec(address, port, this.#template.weight));
    return { specs, ttlSeconds: addresses.ttlSeconds };
  }

  async #resolveSrv(name: string): Promise<Resolved> {
    let records: Awaited<ReturnType<DnsResolver['resolveSrv']>>;
    try {
      records = await this.#resolver.resolveSrv(name);
    } catch (error) {
      if (NO_RECORDS.has(codeOf(error))) return { specs: [], ttlSeconds: 0 };
      throw error;
    }
    if (records.length === 0) return { specs: [], ttlSeconds: 0 };
    const lowest = Math.min(...records.map((r) => r.priority));
    // Lower priority first, so an address listed twice keeps its most preferred record.
    const ordered = [...records].sort((a, b) => a.priority - b.priority || b.weight - a.weight);
    const targets = await Promise.all(ordered.map((record) => this.#addresses(record.name)));
    const specs: BackendSpec[] = [];
    const seen = new Set<string>();
    let ttlSeconds = Infinity;
    ordered.forEach((record, i) => {
      const target = targets[i]!;
      if (target.records.length > 0) ttlSeconds = Math.min(ttlSeconds, target.ttlSeconds);
      for (const address of target.records) {
        const spec = this.#spec(address, record.port, record.weight > 0 ? record.weight : SRV_ZERO_WEIGHT);
        if (seen.has(spec.id)) continue;
        seen.add(spec.id);
        if (record.priority !== lowest) spec.backup = true;
        specs.push(spec);
      }
    });
    return { specs, ttlSeconds: Number.isFinite(ttlSeconds) ? ttlSeconds : 0 };
  }

  /** A name's addresses by the `family` rule; an IP literal is its own answer. */
  async #addresses(hostname: string): Promise<{ records: string[]; ttlSeconds: number }> {
    const literal = isIP(hostname);
    if (literal !== 0) return { records: [hostname], ttlSeconds: Infinity };
    const family = this.#family;
    if (family !== 'ipv6') {
      const v4 = await this.#lookup(() => this.#resolver.resolve4(hostname, { ttl: true }));
      if (v4.length > 0 || family === 'ipv4') return summarize(v4);
    }
    return summarize(await this.#lookup(() => this.#resolver.resolve6(hostname, { ttl: true })));
  }

  /** A lookup where "no such records" is an empty answer and anything else an error. */
  async #lookup(query: () => Promise<{ address: string; ttl: number }[]>): Promise<{ address: string; ttl: number }[]> {
    try {
      return await query();
    } catch (error) {
      if (NO_RECORDS.has(codeOf(error))) return [];
      throw error;
    }
  }

  #spec(address: string, port: number, weight: number | undefined): BackendSpec {
    const host = isIP(address) === 6 ? `[${address}]` : address;
    const url = `${this.#scheme}://${host}:${port}`;
    // Opaque and stable (see the file header): the id reaches clients in sticky cookies, the address never.
    const spec: BackendSpec = { ...this.#template, id: backendIdOf(url), address: url };
    if (weight !== undefined) spec.weight = weight;
    return spec;
  }
}

function summarize(records: readonly { address: string; ttl: number }[]): { records: string[]; ttlSeconds: number } {
  let ttlSeconds = Infinity;
  const addresses: string[] = [];
  for (const record of records) {
    if (!addresses.includes(record.address)) addresses.push(record.address);
    if (typeof record.ttl === 'number' && record.ttl >= 0) ttlSeconds = Math.min(ttlSeconds, record.ttl);
  }
  return { records: addresses.sort(), ttlSeconds: Number.isFinite(ttlSeconds) ? ttlSeconds : 0 };
}

function codeOf(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : error instanceof Error ? error.name : 'unknown';
}

function duration(path: string, value: unknown, fallback: number): number {
  return optionalTimerMs(path, value, fallback, 1);
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;

function normalizeTarget(target: unknown): DnsTarget {
  if (!isPlainObject(target)) throw new InvalidOptionError('target', target, "must be { hostname, port } or { srv: '_http._tcp.name' }");
  const raw = target as Record<string, unknown>;
  if ('srv' in raw) {
    if (Object.keys(raw).length !== 1) throw new InvalidOptionError('target', target, 'an SRV target takes only { srv } (ports come from the records)');
    if (typeof raw.srv !== 'string' || !HOSTNAME.test(raw.srv))
      throw new InvalidOptionError('target.srv', raw.srv, "must be a DNS name like '_http._tcp.users.internal'");
    return { srv: raw.srv };
  }
  checkKnownKeys('target', raw, ['hostname', 'port', 'srv']);
  if (typeof raw.hostname !== 'string' || (!HOSTNAME.test(raw.hostname) && isIP(raw.hostname) === 0)) {
    throw new InvalidOptionError('target.hostname', raw.hostname, 'must be a DNS name or an IP address');
  }
  return { hostname: raw.hostname, port: finiteNumber('target.port', raw.port, { min: 1, max: 65_535, integer: true }) };
}

/**
 * Keep `options.lb`'s membership equal to DNS: `{ hostname, port }` (A/AAAA records) or
 * `{ srv }` (RFC 2782). Starts at once; `stop()` ends it. Listen to `'error'` (or pass `onError`)
 * to hear about failed lookups — the load balancer keeps its last good set through them.
 *
 * ```ts
 * const lb = createLoadBalancer({ backends: [] });
 * const discovery = dnsDiscovery({ srv: '_http._tcp.users.internal' }, { lb });
 * await discovery.ready;
 * ```
 */
export function dnsDiscovery(target: DnsTarget, options: DnsDiscoveryOptions): DnsDiscovery {
  return new DnsDiscovery(target, options);
}
