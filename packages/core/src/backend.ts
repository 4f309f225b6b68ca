/**
 * Backends: what a user declares (`BackendSpec`) and the runtime object the load balancer owns
 * (`Backend`). There is one `Backend` object per id for its whole life, so identity comparisons work
 * and balancers can keep references across `update()` calls. Users and balancers read its fields;
 * only the load balancer writes them.
 */
import { InvalidOptionError } from './errors';
import { murmur3 } from './hash/murmur3';
import { finiteNumber, isPlainObject } from './validate/checks';

export interface BackendSpec {
  /** Unique; 1–64 chars of [A-Za-z0-9._:-]; stable across restarts and instances (hashing uses it). */
  id: string;
  /** `'http://10.0.0.5:8080'`, `'https://…'`, or `'host:port'`. */
  address: string;
  /**
   * Share of new unsticky traffic. Default 1; 0 (no new unsticky traffic) or a number from
   * `MIN_BACKEND_WEIGHT` (0.01) to `MAX_BACKEND_WEIGHT` (1 000 000) — see `validateWeight`.
   */
  weight?: number;
  /** Used only when no primary backend is eligible. Default false. */
  backup?: boolean;
  /** Concurrency cap; excess waits in the runtime's queue. Default: unlimited. */
  maxConnections?: number;
  zone?: string;
  metadata?: Readonly<Record<string, string>>;
}

/** Health state (`up`/`down`) and admin states (`draining`, `maintenance`) that sit above it. */
export type BackendState = 'up' | 'down' | 'draining' | 'maintenance';

export const BACKEND_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * The largest weight a backend may have. HAProxy caps weights at 256 and nginx and Envoy take
 * integers; Fulcrum takes fractions too, so the bound is about arithmetic rather than a table size.
 * Every balancer sums, scales or multiplies weights in doubles (cumulative sums, `(inflight + 1) / w`,
 * points per unit of weight, cycle slots); unbounded weights overflow those sums to `Infinity` —
 * `[1e308, 1e308, 1]` used to make `Infinity − Infinity = NaN` and weighted round robin then gave the
 * weight-1 backend a third of the traffic. With weights ≤ 10^6, a pool of a million backends sums
 * below 2^53 with room to spare, so every sum is finite and exact to far better than a request in
 * a million, and 10^6 : 1 is more dynamic range than any traffic split asks for (one request in a
 * million). HAProxy's 0–256 configurations are accepted unchanged.
 */
export const MAX_BACKEND_WEIGHT = 1_000_000;
/**
 * The smallest positive weight. Weighted round robin counts fractional weights in hundredths of a
 * weight unit (`weighted-round-robin.ts`), and a positive weight always gets at least one slot, so a
 * configured 0.001 would silently get the share of 0.01; rather than accept a weight it would not
 * honour, the load balancer refuses it. Slow start and agent percentages may scale an EFFECTIVE
 * weight lower; that is a transient the balancers round, not a configuration.
 */
export const MIN_BACKEND_WEIGHT = 0.01;

const WEIGHT_EXPECTED = `must be 0 or a finite number ≥ ${MIN_BACKEND_WEIGHT} and ≤ ${MAX_BACKEND_WEIGHT} (0 = no new unsticky traffic)`;

/**
 * A backend weight, checked: 0, or finite and within [`MIN_BACKEND_WEIGHT`, `MAX_BACKEND_WEIGHT`].
 * Throws `InvalidOptionError` naming `path` and the value otherwise (NaN, ±Infinity, negative,
 * 1e308, 0.001, a string…).
 */
export function validateWeight(path: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_BACKEND_WEIGHT || (value > 0 && value < MIN_BACKEND_WEIGHT)) {
    throw new InvalidOptionError(path, value, WEIGHT_EXPECTED);
  }
  // -0 is a weight of 0; keep serialised state free of it.
  return value === 0 ? 0 : value;
}

export class Backend {
  readonly id: string;
  readonly address: string;
  /** The configured weight. */
  readonly weight: number;
  readonly backup: boolean;
  /** Concurrency cap; `Infinity` when unlimited. */
  readonly maxConnections: number;
  readonly zone: string | undefined;
  readonly metadata: Readonly<Record<string, string>>;

  readonly state: BackendState = 'up';
  /** Requests acquired and not yet released. */
  readonly inflight: number = 0;
  /** The weight balancers use: `weight` scaled by slow start and by agent-reported percentages. */
  readonly effectiveWeight: number;
  /** Peak-sensitive, time-decayed latency average in ms; 0 until the first sample. */
  readonly latencyEwma: number = 0;
  /** When `latencyEwma` was last updated (or when the backend joined), in `Clock` ms. */
  readonly latencyUpdatedAt: number;
  /** Requests released so far. */
  readonly requests: number = 0;
  /** Released requests whose outcome was a failure. */
  readonly failures: number = 0;
  /** Clock ms until which outlier detection has ejected this backend; 0 when not ejected. */
  readonly ejectedUntil: number = 0;

  /** @internal Use `createLoadBalancer` (or `createBackends` from the testing kit). */
  constructor(spec: NormalizedBackendSpec, now = 0) {
    this.id = spec.id;
    this.address = spec.address;
    this.weight = spec.weight;
    this.backup = spec.backup;
    this.maxConnections = spec.maxConnections;
    this.zone = spec.zone;
    this.metadata = spec.metadata;
    this.effectiveWeight = spec.weight;
    this.latencyUpdatedAt = now;
  }

  /** True when outlier detection has this backend ejected at time `now`. */
  isEjected(now: number): boolean {
    return this.ejectedUntil > now;
  }

  toJSON(): BackendSpec & { state: BackendState } {
    return {
      id: this.id,
      address: this.address,
      weight: this.weight,
      backup: this.backup,
      ...(Number.isFinite(this.maxConnections) ? { maxConnections: this.maxConnections } : {}),
      ...(this.zone !== undefined ? { zone: this.zone } : {}),
      metadata: this.metadata,
      state: this.state,
    };
  }
}

/** @internal The load balancer's write access to a `Backend`; never exported from the package. */
export type MutableBackend = { -readonly [K in keyof Backend]: Backend[K] };

/** @internal */
export function mutable(backend: Backend): MutableBackend {
  return backend as MutableBackend;
}

export interface NormalizedBackendSpec {
  id: string;
  address: string;
  weight: number;
  backup: boolean;
  maxConnections: number;
  zone: string | undefined;
  metadata: Readonly<Record<string, string>>;
}

const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?):(\d{1,5})$/;

/** Validate an address: an http(s) origin or `host:port`. Returns it unchanged when valid. */
export function validateAddress(path: string, address: unknown): string {
  const expected = "must be an http(s) origin like 'http://10.0.0.5:8080' or 'host:port'";
  if (typeof address !== 'string' || address.length === 0 || address.length > 2048) {
    throw new InvalidOptionError(path, address, expected);
  }
  if (address.includes('://')) {
    let url: URL;
    try {
      url = new URL(address);
    } catch {
      throw new InvalidOptionError(path, address, expected);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new InvalidOptionError(path, address, `${expected} (scheme must be http or https)`);
    }
    if (url.hostname === '') throw new InvalidOptionError(path, address, expected);
    if (url.username !== '' || url.password !== '') {
      throw new InvalidOptionError(path, address, `${expected}, without credentials`);
    }
    if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') {
      throw new InvalidOptionError(path, address, `${expected}, without a path, query or fragment`);
    }
    return address;
  }
  const match = HOST_PORT.exec(address);
  const port = match ? Number(match[1]) : 0;
  if (!match || port < 1 || port > 65535) throw new InvalidOptionError(path, address, expected);
  return address;
}

/**
 * The id of a backend given as a bare address (`'http://10.0.0.1:3000'`): `b-` and 16 hex digits of
 * a hash (two MurmurHash3 seeds) of its canonical origin — scheme, lower-case host, port written out
 * (`'10.0.0.1:3000'` and `'http://10.0.0.1:3000'` are one origin, as are `'https://api.example'` and
 * `'https://API.example:443'`). Stable across restarts and instances, so hashing balancers and sticky
 * cookies keep working; and opaque, because the id travels in the sticky cookie, which must never
 * tell a client where the backend is. Give an object with an `id` for a readable one.
 */
export function backendIdOf(address: string): string {
  const url = new URL(address.includes('://') ? address : `http://${address}`);
  const port = url.port === '' ? (url.protocol === 'https:' ? '443' : '80') : url.port;
  const origin = `${url.protocol}//${url.hostname.toLowerCase()}:${port}`;
  const hex = (n: number): string => n.toString(16).padStart(8, '0');
  return `b-${hex(murmur3(origin, 0))}${hex(murmur3(origin, 0x5f3759df))}`;
}

/**
 * Validate one spec into a fully defaulted, frozen form. `path` prefixes error messages. A string is
 * an address whose id is derived from it (`backendIdOf`) and whose other fields take their defaults.
 */
export function normalizeBackendSpec(spec: unknown, path = 'backend'): NormalizedBackendSpec {
  if (typeof spec === 'string') {
    validateAddress(path, spec);
    return Object.freeze({
      id: backendIdOf(spec),
      address: spec,
      weight: 1,
      backup: false,
      maxConnections: Infinity,
      zone: undefined,
      metadata: EMPTY_METADATA,
    });
  }
  if (!isPlainObject(spec)) throw new InvalidOptionError(path, spec, "must be an object with an id and an address, or an address like 'http://10.0.0.5:8080'");
  const { id, address, weight, backup, maxConnections, zone, metadata } = spec as Record<string, unknown>;
  if (typeof id !== 'string' || !BACKEND_ID_PATTERN.test(id)) {
    throw new InvalidOptionError(`${path}.id`, id, 'must be 1–64 characters of A–Z, a–z, 0–9, ".", "_", ":" or "-"');
  }
  validateAddress(`${path}.address`, address);
  const normalizedWeight = weight === undefined ? 1 : validateWeight(`${path}.weight`, weight);
  if (backup !== undefined && typeof backup !== 'boolean') {
    throw new InvalidOptionError(`${path}.backup`, backup, 'must be true or false');
  }
  const normalizedMax = maxConnections === undefined ? Infinity : finiteNumber(`${path}.maxConnections`, maxConnections, { min: 1, integer: true });
  if (zone !== undefined && (typeof zone !== 'string' || zone.length === 0 || zone.length > 128)) {
    throw new InvalidOptionError(`${path}.zone`, zone, 'must be a non-empty string of at most 128 characters');
  }
  let normalizedMetadata: Readonly<Record<string, string>> = EMPTY_METADATA;
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) throw new InvalidOptionError(`${path}.metadata`, metadata, 'must be an object of strings');
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') throw new InvalidOptionError(`${path}.metadata.${key}`, value, 'must be a string');
    }
    normalizedMetadata = Object.freeze({ ...(metadata as Record<string, string>) });
  }
  return Object.freeze({
    id,
    address: address as string,
    weight: normalizedWeight,
    backup: backup ?? false,
    maxConnections: normalizedMax,
    zone: zone as string | undefined,
    metadata: normalizedMetadata,
  });
}

const EMPTY_METADATA: Readonly<Record<string, string>> = Object.freeze({});

/** Validate a list of specs (objects or address strings): each one, and that ids are unique. */
export function normalizeBackendSpecs(specs: unknown, path = 'backends'): NormalizedBackendSpec[] {
  if (!Array.isArray(specs)) throw new InvalidOptionError(path, specs, 'must be an array of backend specs');
  const seen = new Map<string, number>();
  return specs.map((spec, i) => {
    const normalized = normalizeBackendSpec(spec, `${path}[${i}]`);
    const first = seen.get(normalized.id);
    if (first !== undefined) {
      if (typeof spec === 'string') throw new InvalidOptionError(`${path}[${i}]`, spec, `must be another backend than ${path}[${first}] (the same address)`);
      throw new InvalidOptionError(`${path}[${i}].id`, normalized.id, `must be unique (also used by ${path}[${first}])`);
    }
    seen.set(normalized.id, i);
    return normalized;
  });
}

/**
 * Forget a backend's latency estimate (`latencyEwma` back to 0, "no sample yet", as of `now`). The
 * load balancer calls it when a backend comes back from down or from an ejection: what it measured
 * before or during the outage says nothing about the backend that returned, and latency-aware
 * balancers try an unmeasured backend promptly (see peak-ewma.ts).
 */
export function forgetLatency(backend: Backend, now: number): void {
  const b = mutable(backend);
  b.latencyEwma = 0;
  b.latencyUpdatedAt = now;
}

/**
 * Fold one latency sample into `latencyEwma`: peak-sensitive (a sample above the average replaces it
 * at once, so a backend that slows down is avoided immediately) and time-decayed (below the peak, the
 * average moves toward the sample with weight `1 − e^(−Δt/decayMs)`), as in Finagle's and tower's
 * peak EWMA.
 */
export function recordLatency(backend: Backend, durationMs: number, now: number, decayMs: number): void {
  const b = mutable(backend);
  if (!(durationMs >= 0) || !Number.isFinite(durationMs)) return;
  if (b.latencyEwma === 0 || durationMs > b.latencyEwma) {
    b.latencyEwma = durationMs;
  } else {
    const elapsed = now - b.latencyUpdatedAt;
    // Within the same instant the average keeps its value: the weight of a new sample is 1 − e^0 = 0.
    if (elapsed <= 0) return;
    const keep = Math.exp(-elapsed / decayMs);
    b.latencyEwma = b.latencyEwma * keep + durationMs * (1 - keep);
  }
  b.latencyUpdatedAt = now;
}
