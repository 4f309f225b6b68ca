/**
 * Scenarios are data: a JSON-able object that says what the fleet is, how requests arrive, what
 * changes when, and how the load balancer is configured. `normalizeScenario` validates one once —
 * every error is an `InvalidOptionError` naming the field path (`backends[2].service.meanMs`), the
 * value and what is allowed; unknown fields are refused, so a typo never silently does nothing — and
 * returns a frozen, fully defaulted copy the simulator runs without checking again.
 */
import { BACKEND_ID_PATTERN, InvalidOptionError } from '@fulcrum/core';
import { finiteNumber, isPlainObject, optionsObject, type NumberBounds } from '@fulcrum/core/validate';
import type { OutlierOptions, SlowStartOptions } from '@fulcrum/core';
import { meanOf } from './distributions';
import type { Distribution } from './distributions';

/** A scenario, as written in a JSON file. Times are in ms of simulated time. */
export interface Scenario {
  /** Shown in reports. Default `'scenario'`. */
  name?: string;
  /** What the scenario shows, in a sentence or two (reports print it under the title). */
  description?: string;
  /** Seeds every random stream (arrivals, keys, service times, the balancer's choices). Integer; default 1. */
  seed?: number;
  /** Requests arrive during [0, durationMs); the run ends when the last of them has finished. > 0. */
  durationMs: number;
  /** Requests arriving before this are served but not measured (lets queues reach steady state). Default 0. */
  warmupMs?: number;
  /** A client gives up on an attempt after this many ms (a `timeout` failure; the backend still works on it). Default none. */
  timeoutMs?: number;
  /** A refused connection fails after this many ms. Default 1. */
  connectFailureMs?: number;
  /** Requests the proxy's queue holds while every backend is at its `maxConnections`; beyond, a 503. Default unlimited. */
  proxyQueueLimit?: number;
  /** The width of one point of the time series. Default `durationMs / 100`. */
  sampleIntervalMs?: number;
  /** The fleet at the start. */
  backends: readonly BackendScenario[];
  arrivals: Arrivals;
  /** Request keys for hashing balancers (and affinity). Default: no key. */
  keys?: Keys;
  /** Retries with the proxy's rules. Default: none. */
  retries?: Retries;
  /** Timed changes: a backend slows down, fails, recovers, joins, drains; a rolling deploy. */
  changes?: readonly Change[];
  /** The load balancer's own options. */
  loadBalancer?: LoadBalancerScenario;
}

export interface BackendScenario {
  /** The backend id; with `count`, the prefix of `count` ids `id-0` … `id-(count−1)`. */
  id: string;
  /** Several identical backends. Integer ≥ 1; default 1. */
  count?: number;
  weight?: number;
  backup?: boolean;
  zone?: string;
  /** How long the backend takes to serve one request once a worker takes it. */
  service: Distribution;
  /** Workers: requests served at once; the rest wait in the backend's FIFO queue. Integer ≥ 1; default unlimited. */
  concurrency?: number;
  /**
   * The load balancer's cap (`BackendSpec.maxConnections`, HAProxy's `maxconn`): at most this many
   * requests in flight to the backend; with every candidate full, requests wait FIFO in the proxy's
   * queue (`proxyQueueLimit`). Integer ≥ 1; default none.
   */
  maxConnections?: number;
  /** Requests the backend's queue holds; beyond it, a 503 at once. Integer ≥ 0; default unlimited. */
  queueLimit?: number;
  /** Fraction of requests answered with a 500 (after their service time). 0..1; default 0. */
  errorRate?: number;
  /**
   * Requests already on the backend at time 0 (sent to it, unmeasured): a fixed number, or a
   * geometric number of mean `mean` — the stationary queue of an M/M/1 server at utilisation ρ has
   * mean ρ / (1 − ρ), so a run can start in steady state instead of waiting for it. Default none.
   */
  initialQueue?: { type: 'fixed'; requests: number } | { type: 'geometric'; mean: number };
}

export type Arrivals =
  | {
      type: 'poisson';
      /** Mean arrivals per second of simulated time. Exactly one of this and `utilization`. */
      ratePerSecond?: number;
      /**
       * Arrivals as a fraction of the capacity of the initial primary backends, Σ concurrency / mean
       * service time (needs every primary's `concurrency`). 0.5 = half the fleet's capacity.
       */
      utilization?: number;
      /** Extra requests on top: `requests` arriving evenly over `overMs` (default 0: all at once) from `atMs`. */
      bursts?: readonly Burst[];
    }
  | {
      type: 'closed';
      /** Clients, each sending one request at a time and waiting `thinkTime` after each answer. Integer ≥ 1. */
      clients: number;
      thinkTime: Distribution;
    };

export interface Burst {
  atMs: number;
  requests: number;
  overMs?: number;
}

export interface Keys {
  /** Distinct keys `key-0` … `key-(count−1)`. Integer 1..10⁷. */
  count: number;
  /** `'zipf'` (key k with probability ∝ 1/(k+1)^exponent) or `'uniform'`. Default `'zipf'`. */
  distribution?: 'zipf' | 'uniform';
  /** Zipf's exponent s ≥ 0. Default 1. */
  exponent?: number;
}

export type RetryableFailure = 'connect' | 'timeout' | 'status' | 'reset';

export interface Retries {
  /** Extra attempts per request. Integer 0..10; default 1. */
  attempts?: number;
  /**
   * Which failures are retried. A refused connection wrote nothing upstream, so the proxy retries it
   * for any method; `timeout` and `status` (a 5xx) only for idempotent requests — list them to say the
   * requests are. Default `['connect']`.
   */
  on?: readonly RetryableFailure[];
  /** Retries in flight stay under this percentage of the requests in flight (the proxy's retry budget). Default 20. */
  budgetPercent?: number;
  /** …or this many, whichever is more. Default 3. */
  minRetries?: number;
}

export type Change =
  | { atMs: number; action: 'slow'; backend: string; factor: number }
  | { atMs: number; action: 'fail'; backend: string; mode?: 'refuse' | 'error' }
  | { atMs: number; action: 'recover'; backend: string }
  | { atMs: number; action: 'add'; backend: BackendScenario }
  | { atMs: number; action: 'remove' | 'drain' | 'maintain' | 'ready'; backend: string }
  | { atMs: number; action: 'weight'; backend: string; weight: number }
  | {
      atMs: number;
      action: 'rolling-deploy';
      /** Which backends, in order. Default: every backend of the initial fleet. */
      backends?: readonly string[];
      /** How long each is drained before it restarts. */
      drainMs: number;
      /** How long it is down (in maintenance, refusing connections). */
      restartMs: number;
      /** A restarted process is this many times slower at first (cold caches, JIT). Default 1. */
      coldFactor?: number;
      /** …for this long after it is ready. Default 0. */
      coldMs?: number;
    };

/** Health checks, run by the simulator's probe: a backend passes while it is not failed. */
export interface SimHealthOptions {
  rise?: number;
  fall?: number;
  intervalMs?: number;
  fastIntervalMs?: number;
  downIntervalMs?: number;
  timeoutMs?: number;
  jitter?: number;
}

export interface LoadBalancerScenario {
  outlier?: OutlierOptions;
  slowStart?: SlowStartOptions;
  panicThreshold?: number;
  latencyDecayMs?: number;
  /** Active health checks (the simulator probes its own backends). Needs `simulateAsync`. */
  health?: SimHealthOptions;
  /** Pin each key to a backend with a stick-table (`keys` required). Default false. */
  affinity?: boolean;
}

// ---------------------------------------------------------------------------------- normalized

export interface NormalizedBackend {
  readonly id: string;
  readonly weight: number;
  readonly backup: boolean;
  readonly zone: string | undefined;
  readonly service: Distribution;
  readonly concurrency: number;
  readonly queueLimit: number;
  readonly maxConnections: number;
  readonly errorRate: number;
  readonly initialQueue: BackendScenario['initialQueue'];
  /** In the fleet at time 0 (false for those a change adds). */
  readonly initial: boolean;
}

/** One primitive change, after rolling deploys are expanded; `backend` is an index into `backends`. */
export interface NormalizedChange {
  readonly atMs: number;
  readonly action: 'slow' | 'fail' | 'recover' | 'add' | 'remove' | 'drain' | 'maintain' | 'ready' | 'weight';
  readonly backend: number;
  readonly factor: number;
  readonly mode: 'refuse' | 'error';
  readonly weight: number;
  /** What the scenario said, for the report. */
  readonly label: string;
}

export interface NormalizedScenario {
  readonly name: string;
  readonly seed: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly timeoutMs: number;
  readonly connectFailureMs: number;
  readonly proxyQueueLimit: number;
  readonly sampleIntervalMs: number;
  readonly backends: readonly NormalizedBackend[];
  readonly arrivals:
    | { readonly type: 'poisson'; readonly ratePerMs: number; readonly bursts: readonly Required<Burst>[] }
    | { readonly type: 'closed'; readonly clients: number; readonly thinkTime: Distribution };
  readonly keys: { readonly count: number; readonly distribution: 'zipf' | 'uniform'; readonly exponent: number } | undefined;
  readonly retries:
    { readonly attempts: number; readonly on: readonly RetryableFailure[]; readonly budgetPercent: number; readonly minRetries: number } | undefined;
  readonly changes: readonly NormalizedChange[];
  readonly loadBalancer: LoadBalancerScenario;
}

// ---------------------------------------------------------------------------------- validation

const MAX_TIME_MS = 1e12;

function fail(path: string, value: unknown, expected: string): never {
  throw new InvalidOptionError(path, value, expected);
}

function object(path: string, value: unknown, known: readonly string[]): Record<string, unknown> {
  return optionsObject(path, value, known, { allowMissing: false });
}

type NumberRule = NumberBounds;

function number(path: string, value: unknown, rule: NumberRule): number {
  return finiteNumber(path, value, rule);
}

function optional<T>(value: unknown, fallback: T, read: (v: unknown) => T): T {
  return value === undefined ? fallback : read(value);
}

function oneOf<T extends string>(path: string, value: unknown, allowed: readonly T[]): T {
  if (typeof value !== 'string' || !allowed.includes(value as T)) fail(path, value, `must be one of ${allowed.map((a) => `'${a}'`).join(', ')}`);
  return value as T;
}

function array(path: string, value: unknown, maxLength = 1_000_000): unknown[] {
  if (!Array.isArray(value)) fail(path, value, 'must be an array');
  if (value.length > maxLength) fail(path, value, `must have at most ${maxLength} entries`);
  return value;
}

export function normalizeDistribution(path: string, value: unknown, depth = 0): Distribution {
  if (!isPlainObject(value)) fail(path, value, "must be a distribution object ({ type: 'fixed' | 'exponential' | 'lognormal' | 'bimodal', … })");
  const type = oneOf(`${path}.type`, value.type, ['fixed', 'exponential', 'lognormal', 'bimodal'] as const);
  const ms = { min: 0, max: MAX_TIME_MS };
  switch (type) {
    case 'fixed': {
      const d = object(path, value, ['type', 'ms']);
      return { type, ms: number(`${path}.ms`, d.ms, ms) };
    }
    case 'exponential': {
      const d = object(path, value, ['type', 'meanMs']);
      return { type, meanMs: number(`${path}.meanMs`, d.meanMs, { ...ms, minExclusive: true }) };
    }
    case 'lognormal': {
      const d = object(path, value, ['type', 'medianMs', 'sigma']);
      return {
        type,
        medianMs: number(`${path}.medianMs`, d.medianMs, { ...ms, minExclusive: true }),
        sigma: number(`${path}.sigma`, d.sigma, { min: 0, max: 5 }),
      };
    }
    case 'bimodal': {
      if (depth >= 4) fail(path, value, 'must nest bimodal distributions at most 4 deep');
      const d = object(path, value, ['type', 'fast', 'slow', 'slowProbability']);
      return {
        type,
        fast: normalizeDistribution(`${path}.fast`, d.fast, depth + 1),
        slow: normalizeDistribution(`${path}.slow`, d.slow, depth + 1),
        slowProbability: number(`${path}.slowProbability`, d.slowProbability, { min: 0, max: 1 }),
      };
    }
  }
}

const BACKEND_FIELDS = [
  'id',
  'count',
  'weight',
  'backup',
  'zone',
  'service',
  'concurrency',
  'maxConnections',
  'queueLimit',
  'errorRate',
  'initialQueue',
] as const;
const MAX_BACKENDS = 1_000_000;

function normalizeBackends(path: string, value: unknown, initial: boolean, ids: Set<string>, out: NormalizedBackend[]): number[] {
  const b = object(path, value, BACKEND_FIELDS);
  if (typeof b.id !== 'string') fail(`${path}.id`, b.id, 'must be a string');
  const count = optional(b.count, undefined as number | undefined, (v) => number(`${path}.count`, v, { min: 1, max: MAX_BACKENDS, integer: true }));
  const template = {
    weight: optional(b.weight, 1, (v) => number(`${path}.weight`, v, { min: 0, max: 1e6 })),
    backup: optional(b.backup, false, (v) => (typeof v === 'boolean' ? v : fail(`${path}.backup`, v, 'must be a boolean'))),
    zone: optional(b.zone, undefined as string | undefined, (v) =>
      typeof v === 'string' && v.length > 0 && v.length <= 64 ? v : fail(`${path}.zone`, v, 'must be a string of 1–64 characters'),
    ),
    service: normalizeDistribution(`${path}.service`, b.service),
    concurrency: optional(b.concurrency, Infinity, (v) => number(`${path}.concurrency`, v, { min: 1, max: 1e6, integer: true })),
    maxConnections: optional(b.maxConnections, Infinity, (v) => number(`${path}.maxConnections`, v, { min: 1, max: 1e6, integer: true })),
    queueLimit: optional(b.queueLimit, Infinity, (v) => number(`${path}.queueLimit`, v, { min: 0, max: 1e9, integer: true })),
    errorRate: optional(b.errorRate, 0, (v) => number(`${path}.errorRate`, v, { min: 0, max: 1 })),
    initialQueue: optional(b.initialQueue, undefined as BackendScenario['initialQueue'], (v) => normalizeInitialQueue(`${path}.initialQueue`, v, initial)),
    initial,
  };
  const names = count === undefined ? [b.id] : Array.from({ length: count }, (_, i) => `${b.id as string}-${i}`);
  const indices: number[] = [];
  for (const id of names) {
    if (!BACKEND_ID_PATTERN.test(id)) fail(`${path}.id`, b.id, 'must make ids of 1–64 characters of [A-Za-z0-9._:-]');
    if (ids.has(id)) fail(`${path}.id`, id, 'must be unique across backends and added backends');
    if (out.length >= MAX_BACKENDS) fail(path, value, `must keep the fleet at ${MAX_BACKENDS} backends or fewer`);
    ids.add(id);
    indices.push(out.length);
    out.push(Object.freeze({ id, ...template }));
  }
  return indices;
}

function normalizeInitialQueue(path: string, value: unknown, initial: boolean): BackendScenario['initialQueue'] {
  if (!initial) fail(path, value, 'is only for backends in the fleet at time 0');
  if (!isPlainObject(value)) fail(path, value, "must be { type: 'fixed', requests } or { type: 'geometric', mean }");
  const type = oneOf(`${path}.type`, value.type, ['fixed', 'geometric'] as const);
  if (type === 'fixed') {
    const q = object(path, value, ['type', 'requests']);
    return Object.freeze({ type, requests: number(`${path}.requests`, q.requests, { min: 0, max: 1e6, integer: true }) });
  }
  const q = object(path, value, ['type', 'mean']);
  return Object.freeze({ type, mean: number(`${path}.mean`, q.mean, { min: 0, max: 1e5 }) });
}

const CHANGE_FIELDS: Record<string, readonly string[]> = {
  slow: ['atMs', 'action', 'backend', 'factor'],
  fail: ['atMs', 'action', 'backend', 'mode'],
  recover: ['atMs', 'action', 'backend'],
  add: ['atMs', 'action', 'backend'],
  remove: ['atMs', 'action', 'backend'],
  drain: ['atMs', 'action', 'backend'],
  maintain: ['atMs', 'action', 'backend'],
  ready: ['atMs', 'action', 'backend'],
  weight: ['atMs', 'action', 'backend', 'weight'],
  'rolling-deploy': ['atMs', 'action', 'backends', 'drainMs', 'restartMs', 'coldFactor', 'coldMs'],
};

/** Validate a scenario and apply every default. Throws `InvalidOptionError` naming the field. */
export function normalizeScenario(input: unknown): NormalizedScenario {
  const s = object('scenario', input, [
    'name',
    'seed',
    'durationMs',
    'warmupMs',
    'timeoutMs',
    'connectFailureMs',
    'proxyQueueLimit',
    'sampleIntervalMs',
    'backends',
    'arrivals',
    'keys',
    'retries',
    'changes',
    'loadBalancer',
    'description',
  ]);
  const name = optional(s.name, 'scenario', (v) =>
    typeof v === 'string' && v.length > 0 && v.length <= 200 ? v : fail('scenario.name', v, 'must be a string of 1–200 characters'),
  );
  if (s.description !== undefined && typeof s.description !== 'string') fail('scenario.description', s.description, 'must be a string');
  const seed = optional(s.seed, 1, (v) => number('scenario.seed', v, { min: -(2 ** 31), max: 2 ** 31 - 1, integer: true }));
  const durationMs = number('scenario.durationMs', s.durationMs, { min: 0, minExclusive: true, max: MAX_TIME_MS });
  const warmupMs = optional(s.warmupMs, 0, (v) => number('scenario.warmupMs', v, { min: 0, max: durationMs }));
  const timeoutMs = optional(s.timeoutMs, Infinity, (v) => number('scenario.timeoutMs', v, { min: 0, minExclusive: true, max: MAX_TIME_MS }));
  const connectFailureMs = optional(s.connectFailureMs, 1, (v) => number('scenario.connectFailureMs', v, { min: 0, max: MAX_TIME_MS }));
  const proxyQueueLimit = optional(s.proxyQueueLimit, Infinity, (v) => number('scenario.proxyQueueLimit', v, { min: 0, max: 1e9, integer: true }));
  const sampleIntervalMs = optional(s.sampleIntervalMs, durationMs / 100, (v) =>
    number('scenario.sampleIntervalMs', v, { min: durationMs / 2000, max: durationMs }),
  );

  const ids = new Set<string>();
  const backends: NormalizedBackend[] = [];
  const list = array('scenario.backends', s.backends);
  if (list.length === 0) fail('scenario.backends', s.backends, 'must list at least one backend');
  list.forEach((b, i) => normalizeBackends(`scenario.backends[${i}]`, b, true, ids, backends));

  const initialIds = backends.map((b) => b.id);
  const changes = normalizeChanges(s.changes, ids, backends, initialIds);
  const arrivals = normalizeArrivals(s.arrivals, backends);
  const keys = normalizeKeys(s.keys);
  const retries = normalizeRetries(s.retries);
  const loadBalancer = normalizeLoadBalancer(s.loadBalancer, keys !== undefined);

  return Object.freeze({
    name,
    seed,
    durationMs,
    warmupMs,
    timeoutMs,
    connectFailureMs,
    proxyQueueLimit,
    sampleIntervalMs,
    backends: Object.freeze(backends),
    arrivals,
    keys,
    retries,
    changes,
    loadBalancer,
  });
}

function normalizeArrivals(value: unknown, backends: readonly NormalizedBackend[]): NormalizedScenario['arrivals'] {
  const path = 'scenario.arrivals';
  if (!isPlainObject(value)) fail(path, value, "must be an object ({ type: 'poisson' | 'closed', … })");
  const type = oneOf(`${path}.type`, value.type, ['poisson', 'closed'] as const);
  if (type === 'closed') {
    const a = object(path, value, ['type', 'clients', 'thinkTime']);
    return Object.freeze({
      type,
      clients: number(`${path}.clients`, a.clients, { min: 1, max: 1e6, integer: true }),
      thinkTime: normalizeDistribution(`${path}.thinkTime`, a.thinkTime),
    });
  }
  const a = object(path, value, ['type', 'ratePerSecond', 'utilization', 'bursts']);
  if ((a.ratePerSecond === undefined) === (a.utilization === undefined)) fail(path, value, 'must give exactly one of ratePerSecond and utilization');
  let ratePerMs: number;
  if (a.ratePerSecond !== undefined) {
    ratePerMs = number(`${path}.ratePerSecond`, a.ratePerSecond, { min: 0, max: 1e9 }) / 1000;
  } else {
    const utilization = number(`${path}.utilization`, a.utilization, { min: 0, max: 100 });
    let capacityPerMs = 0;
    backends.forEach((b, i) => {
      if (!b.initial || b.backup) return;
      if (b.concurrency === Infinity)
        fail(
          `${path}.utilization`,
          utilization,
          `needs a finite concurrency on every primary backend (backend '${b.id}', #${i}, has none); give ratePerSecond instead`,
        );
      capacityPerMs += (b.concurrency * b.weight > 0 ? b.concurrency : 0) / meanOf(b.service);
    });
    if (!(capacityPerMs > 0 && Number.isFinite(capacityPerMs)))
      fail(`${path}.utilization`, utilization, 'needs primary backends with a positive capacity (concurrency / mean service time)');
    ratePerMs = utilization * capacityPerMs;
  }
  const bursts = optional(a.bursts, [] as Required<Burst>[], (v) =>
    array(`${path}.bursts`, v, 10_000).map((raw, i) => {
      const p = `${path}.bursts[${i}]`;
      const b = object(p, raw, ['atMs', 'requests', 'overMs']);
      return Object.freeze({
        atMs: number(`${p}.atMs`, b.atMs, { min: 0, max: MAX_TIME_MS }),
        requests: number(`${p}.requests`, b.requests, { min: 0, max: 1e8, integer: true }),
        overMs: optional(b.overMs, 0, (o) => number(`${p}.overMs`, o, { min: 0, max: MAX_TIME_MS })),
      });
    }),
  );
  return Object.freeze({ type, ratePerMs, bursts: Object.freeze(bursts) });
}

function normalizeKeys(value: unknown): NormalizedScenario['keys'] {
  if (value === undefined) return undefined;
  const path = 'scenario.keys';
  const k = object(path, value, ['count', 'distribution', 'exponent']);
  return Object.freeze({
    count: number(`${path}.count`, k.count, { min: 1, max: 1e7, integer: true }),
    distribution: optional(k.distribution, 'zipf' as const, (v) => oneOf(`${path}.distribution`, v, ['zipf', 'uniform'] as const)),
    exponent: optional(k.exponent, 1, (v) => number(`${path}.exponent`, v, { min: 0, max: 10 })),
  });
}

function normalizeRetries(value: unknown): NormalizedScenario['retries'] {
  if (value === undefined) return undefined;
  const path = 'scenario.retries';
  const r = object(path, value, ['attempts', 'on', 'budgetPercent', 'minRetries']);
  const on = optional(r.on, ['connect'] as RetryableFailure[], (v) =>
    array(`${path}.on`, v, 4).map((kind, i) => oneOf(`${path}.on[${i}]`, kind, ['connect', 'timeout', 'status', 'reset'] as const)),
  );
  return Object.freeze({
    attempts: optional(r.attempts, 1, (v) => number(`${path}.attempts`, v, { min: 0, max: 10, integer: true })),
    on: Object.freeze(on),
    budgetPercent: optional(r.budgetPercent, 20, (v) => number(`${path}.budgetPercent`, v, { min: 0, max: 100 })),
    minRetries: optional(r.minRetries, 3, (v) => number(`${path}.minRetries`, v, { min: 0, max: 1e9, integer: true })),
  });
}

function normalizeLoadBalancer(value: unknown, hasKeys: boolean): LoadBalancerScenario {
  if (value === undefined) return Object.freeze({});
  const path = 'scenario.loadBalancer';
  const o = object(path, value, ['outlier', 'slowStart', 'panicThreshold', 'latencyDecayMs', 'health', 'affinity']);
  // The load balancer validates its own options (outlier, slowStart, …) when the run starts, naming
  // them; here only their shape, and what the simulator itself reads.
  for (const key of ['outlier', 'slowStart'] as const) if (o[key] !== undefined && !isPlainObject(o[key])) fail(`${path}.${key}`, o[key], 'must be an object');
  if (o.health !== undefined) {
    const h = object(`${path}.health`, o.health, ['rise', 'fall', 'intervalMs', 'fastIntervalMs', 'downIntervalMs', 'timeoutMs', 'jitter']);
    for (const [k, v] of Object.entries(h)) number(`${path}.health.${k}`, v, { min: 0 });
  }
  if (o.affinity !== undefined && typeof o.affinity !== 'boolean') fail(`${path}.affinity`, o.affinity, 'must be a boolean');
  if (o.affinity === true && !hasKeys) fail(`${path}.affinity`, o.affinity, 'needs scenario.keys (the affinity key is the request key)');
  return Object.freeze({ ...(o as LoadBalancerScenario) });
}

function normalizeChanges(value: unknown, ids: Set<string>, backends: NormalizedBackend[], initialIds: readonly string[]): readonly NormalizedChange[] {
  if (value === undefined) return Object.freeze([]);
  const out: NormalizedChange[] = [];
  const indexOf = new Map(backends.map((b, i) => [b.id, i]));
  const backendRef = (p: string, v: unknown): number => {
    const index = typeof v === 'string' ? indexOf.get(v) : undefined;
    if (index === undefined) fail(p, v, 'must be the id of a backend of the scenario (or of one an earlier change adds)');
    return index;
  };
  const base = { factor: 1, mode: 'refuse' as const, weight: 1 };
  array('scenario.changes', value, 100_000).forEach((raw, i) => {
    const path = `scenario.changes[${i}]`;
    if (!isPlainObject(raw)) fail(path, raw, 'must be an object');
    const action = oneOf(`${path}.action`, raw.action, Object.keys(CHANGE_FIELDS) as Change['action'][]);
    const c = object(path, raw, CHANGE_FIELDS[action]!);
    const atMs = number(`${path}.atMs`, c.atMs, { min: 0, max: MAX_TIME_MS });
    switch (action) {
      case 'add': {
        const [index] = normalizeBackends(`${path}.backend`, c.backend, false, ids, backends);
        if (backends.length - (index ?? 0) !== 1)
          fail(`${path}.backend.count`, (c.backend as { count?: unknown }).count, 'must be 1 (add one backend per change)');
        indexOf.set(backends[index!]!.id, index!);
        out.push({ ...base, atMs, action, backend: index!, label: `add ${backends[index!]!.id}` });
        break;
      }
      case 'slow': {
        const backend = backendRef(`${path}.backend`, c.backend);
        const factor = number(`${path}.factor`, c.factor, { min: 0, minExclusive: true, max: 1e6 });
        out.push({ ...base, atMs, action, backend, factor, label: `${backends[backend]!.id} ${factor}× slower` });
        break;
      }
      case 'fail': {
        const backend = backendRef(`${path}.backend`, c.backend);
        const mode = optional(c.mode, 'refuse' as const, (v) => oneOf(`${path}.mode`, v, ['refuse', 'error'] as const));
        out.push({ ...base, atMs, action, backend, mode, label: `${backends[backend]!.id} fails (${mode})` });
        break;
      }
      case 'weight': {
        const backend = backendRef(`${path}.backend`, c.backend);
        const weight = number(`${path}.weight`, c.weight, { min: 0, max: 1e6 });
        out.push({ ...base, atMs, action, backend, weight, label: `${backends[backend]!.id} weight ${weight}` });
        break;
      }
      case 'rolling-deploy': {
        const drainMs = number(`${path}.drainMs`, c.drainMs, { min: 0, max: MAX_TIME_MS });
        const restartMs = number(`${path}.restartMs`, c.restartMs, { min: 0, max: MAX_TIME_MS });
        const coldFactor = optional(c.coldFactor, 1, (v) => number(`${path}.coldFactor`, v, { min: 0, minExclusive: true, max: 1e6 }));
        const coldMs = optional(c.coldMs, 0, (v) => number(`${path}.coldMs`, v, { min: 0, max: MAX_TIME_MS }));
        const targets = optional(c.backends, initialIds as unknown[], (v) => array(`${path}.backends`, v));
        targets.forEach((id, k) => {
          const backend = backendRef(`${path}.backends[${k}]`, id);
          const name = backends[backend]!.id;
          const start = atMs + k * (drainMs + restartMs);
          // One at a time: drained, then restarted (in maintenance, refusing connections), then back.
          out.push({ ...base, atMs: start, action: 'drain', backend, label: `deploy: drain ${name}` });
          out.push({ ...base, atMs: start + drainMs, action: 'maintain', backend, label: `deploy: restart ${name}` });
          out.push({ ...base, atMs: start + drainMs, action: 'fail', backend, label: '' });
          out.push({ ...base, atMs: start + drainMs + restartMs, action: 'recover', backend, label: '' });
          out.push({ ...base, atMs: start + drainMs + restartMs, action: 'ready', backend, label: `deploy: ${name} ready` });
          if (coldFactor !== 1 && coldMs > 0) {
            out.push({ ...base, atMs: start + drainMs + restartMs, action: 'slow', backend, factor: coldFactor, label: '' });
            out.push({ ...base, atMs: start + drainMs + restartMs + coldMs, action: 'recover', backend, label: '' });
          }
        });
        break;
      }
      default: {
        const backend = backendRef(`${path}.backend`, c.backend);
        out.push({ ...base, atMs, action, backend, label: `${action} ${backends[backend]!.id}` });
      }
    }
  });
  // Stable by time: changes at the same instant apply in the order written.
  const sorted = out
    .map((c, order) => ({ c, order }))
    .sort((x, y) => x.c.atMs - y.c.atMs || x.order - y.order)
    .map((x) => Object.freeze(x.c));
  return Object.freeze(sorted);
}
