/**
 * The load balancer: owns the `Backend` objects, decides which ones are eligible, and asks a
 * `Balancer` to choose among them.
 *
 * Slow path and hot path are separate (as in grpc-js's picker): every change of membership, state
 * or weight recomputes the eligible tier once and hands it to `balancer.update()`; `acquire()` then
 * does a stick-table lookup, one `pick()` and a counter increment. The tiers follow HAProxy and
 * Envoy:
 *
 *   1. primaries that are `up`, not ejected and have a positive weight — while at least
 *      `panicThreshold` of the primaries that are in service are healthy;
 *   2. else backups (HAProxy's `backup` servers);
 *   3. else, below the panic threshold, every primary in service, healthy or not (Envoy's panic
 *      mode: when most hosts look unhealthy the health signal is more likely wrong than the hosts,
 *      and spreading load beats overloading the few that remain);
 *   4. else nothing: `acquire` returns `undefined` and the runtime answers 503.
 *
 * A `Lease` is the completion handle: `release(outcome)` feeds inflight counts, latency and failure
 * counters back, and balancers that keep ordered structures hear about it through their hooks.
 */
import { EventEmitter } from 'eventemitter3';
import { Backend, forgetLatency, mutable, normalizeBackendSpec, normalizeBackendSpecs, recordLatency, validateWeight } from './backend';
import type { BackendSpec, BackendState, NormalizedBackendSpec } from './backend';
import type { AlgorithmName, Balancer, Outcome } from './balancers/balancer';
import { createBalancer } from './balancers/registry';
import { coarseClock } from './clock';
import type { Clock } from './clock';
import type { Decision, DecisionReason, StickyMissCause } from './decision';
import { InvalidOptionError } from './errors';
import { HealthChecker } from './health/checker';
import type { ProbeResult } from './health/checker';
import { normalizeHealthOptions, normalizeOutlierOptions, normalizePanicThreshold, normalizeSlowStartOptions } from './health/options';
import type { EjectionCause, HealthOptions, NormalizedHealthOptions, NormalizedOutlierOptions, OutlierOptions } from './health/options';
import { OutlierDetector } from './health/outlier';
import { slowStartFactor } from './health/slow-start';
import type { NormalizedSlowStartOptions, SlowStartOptions } from './health/slow-start';
import { applyAdminDirectives, checkPhase, initialHealth, reduceHealth, resolveState } from './health/state-machine';
import type { AdminState, HealthStatus } from './health/state-machine';
import { defaultRandom } from './random';
import type { Random } from './random';
import { isPlainObject, optionalNumber } from './validate/checks';

/** What the load balancer needs of a stick-table: `StickTable<string>` fits. */
export interface AffinityTable {
  get(key: string): string | undefined;
  set(key: string, backendId: string): void;
  touch?(key: string): void;
}

export interface LoadBalancerOptions {
  /**
   * The backends: specs, or bare addresses (`'http://10.0.0.1:3000'`) whose id is derived from the
   * address (`backendIdOf`: opaque and stable) and whose other fields take their defaults. Ids must be unique.
   */
  backends: readonly (BackendSpec | string)[];
  /** A built-in or registered algorithm name, or a `Balancer` instance. Default `'p2c'`. */
  algorithm?: AlgorithmName | (string & {}) | Balancer;
  /** Active health checks: a probe run per backend on a schedule (HAProxy's rise/fall model). Default off. */
  health?: HealthOptions;
  /** Passive outlier ejection from observed outcomes (Envoy's outlier detection). Default off; `{}` for Envoy's defaults. */
  outlier?: OutlierOptions;
  /** Ramp the weight of a backend that joins or recovers over `windowMs` (Envoy's slow start). Default off. */
  slowStart?: SlowStartOptions;
  /**
   * Below this fraction of healthy primaries (among those not in maintenance or draining), traffic
   * spreads over all primaries (`decision.reason = 'panic'`). 0..1, default 0.5 (Envoy's default);
   * 0 disables panic.
   */
  panicThreshold?: number;
  /** Affinity key → backend id. Consulted by `acquire({ affinityKey })`. */
  stickTable?: AffinityTable;
  /** Decay time of each backend's latency average, in ms. Default 10000 (Finagle's and tower's). */
  latencyDecayMs?: number;
  /** A name for logs and stats (the pool name). Default `'default'`. */
  name?: string;
  clock?: Clock;
  random?: Random;
}

export interface AcquireContext {
  /** Hash key for hashing balancers (`hashBy`). */
  key?: string;
  /** Stick-table key: requests with the same affinity key go to the same backend while it can serve. */
  affinityKey?: string;
  /**
   * The id of the backend this request is stuck to by other means (a signed cookie the runtime has
   * verified). Used like a stick-table hit: it wins while that backend is up or draining, else the
   * balancer picks again and the decision says why. Takes precedence over `affinityKey`.
   */
  stickyBackendId?: string;
  /**
   * Treat backends at their `maxConnections` as unavailable. When every candidate is full — or the
   * sticky backend is — `acquire` returns `undefined` while `lb.tier` is not `'none'`: the runtime
   * queues the request and tries again when a slot frees (HAProxy's maxconn and queue).
   */
  skipFull?: boolean;
  /** Backends (objects or ids) to avoid, e.g. those a retry already tried. Used only if another exists. */
  exclude?: readonly (Backend | string)[];
  /** The attempt number (0 first). Default: the length of `exclude`. */
  attempt?: number;
}

/** What `lb.update(specs)` changed. */
export interface MembershipChange {
  added: string[];
  removed: string[];
  updated: string[];
}

/**
 * Why a backend's state changed: an admin call (`drain`, `maintain`, `ready`), an active check or
 * what its agent reported, or its removal. Passive observation of traffic acts through outlier
 * ejection, reported by the `'ejected'` and `'restored'` events (an ejected backend keeps its state).
 * `'handover'`: the counter another process had reached was restored (`restoreHealth`, a seamless upgrade).
 */
export type StateCause = 'admin' | 'probe' | 'removal' | 'handover';

export interface LoadBalancerEvents {
  state: (id: string, from: BackendState, to: BackendState, cause: StateCause) => void;
  ejected: (id: string, cause: EjectionCause, until: number) => void;
  restored: (id: string) => void;
  added: (backend: Backend) => void;
  removed: (backend: Backend) => void;
  decision: (decision: Decision) => void;
  /** Entering (`true`) or leaving (`false`) panic mode. */
  panic: (active: boolean, healthyFraction: number) => void;
  /**
   * An active health check ended: passed or not, how long it took (clock ms, a timeout included) and
   * what the probe said. Emitted before the result moves the health counter, so a `'state'` event it
   * causes comes after it. Only emitted when someone listens.
   */
  check: (id: string, ok: boolean, durationMs: number, detail: string | undefined) => void;
}

export interface BackendSnapshot {
  id: string;
  address: string;
  state: BackendState;
  backup: boolean;
  weight: number;
  effectiveWeight: number;
  inflight: number;
  maxConnections: number | null;
  requests: number;
  failures: number;
  ejected: boolean;
  ejectedUntil: number;
  latencyEwma: number;
  /** The active-check counter (HAProxy's), when health checks are on. */
  health: { value: number; rise: number; fall: number } | null;
  zone?: string;
  /** True while a removed backend finishes its in-flight requests. */
  removing: boolean;
  /** True while slow start is ramping the backend's effective weight up. */
  slowStart: boolean;
}

export interface LoadBalancerSnapshot {
  at: number;
  name: string;
  algorithm: string;
  tier: Tier;
  eligible: number;
  backends: BackendSnapshot[];
}

/** Which set the balancer currently chooses from. */
export type Tier = 'primary' | 'backup' | 'panic' | 'none';

/** The load balancer's private facts about one backend. */
interface Member {
  readonly backend: Backend;
  admin: AdminState;
  /** The active-check verdict; admin states sit above it. Always up without health checks. */
  health: HealthStatus;
  /** The share of its weight the backend's agent asks for, 0..100. */
  weightPercent: number;
  /** Clock ms when slow start began; `undefined` when not ramping. */
  slowStartedAt: number | undefined;
  removing: boolean;
  whenRemoved: (() => void)[];
}

const ALWAYS_UP: HealthStatus = Object.freeze({ health: 1, up: true });

const EMPTY_CONTEXT: AcquireContext = Object.freeze({});
const OK_OUTCOME: Outcome = Object.freeze({ ok: true });
const KNOWN_OPTIONS = new Set([
  'backends',
  'algorithm',
  'health',
  'outlier',
  'slowStart',
  'panicThreshold',
  'stickTable',
  'latencyDecayMs',
  'name',
  'clock',
  'random',
]);

/**
 * One request's hold on a backend. Release it exactly once when the request ends; later calls are
 * ignored, so a `finally` and an error handler can both call it safely.
 */
export class Lease {
  readonly backend: Backend;
  /** Clock ms when the lease was taken. */
  readonly startedAt: number;
  readonly #lb: LoadBalancer;
  #released = false;
  #decision: Decision | undefined;
  readonly #reason: DecisionReason;
  readonly #key: string | undefined;
  readonly #attempt: number;
  readonly #eligible: number;
  readonly #previous: Decision['previous'];

  /** @internal */
  constructor(
    lb: LoadBalancer,
    backend: Backend,
    reason: DecisionReason,
    key: string | undefined,
    attempt: number,
    eligible: number,
    startedAt: number,
    previous: Decision['previous'],
  ) {
    this.#lb = lb;
    this.backend = backend;
    this.#reason = reason;
    this.#key = key;
    this.#attempt = attempt;
    this.#eligible = eligible;
    this.startedAt = startedAt;
    this.#previous = previous;
  }

  /** Who was chosen and why. Built on first access. */
  get decision(): Decision {
    if (this.#decision === undefined) {
      const decision: { -readonly [K in keyof Decision]: Decision[K] } = {
        backendId: this.backend.id,
        reason: this.#reason,
        algorithm: this.#lb.algorithm,
        attempt: this.#attempt,
        eligible: this.#eligible,
        at: this.startedAt,
      };
      if (this.#key !== undefined) decision.key = this.#key;
      if (this.#previous !== undefined) decision.previous = this.#previous;
      this.#decision = Object.freeze(decision);
    }
    return this.#decision;
  }

  /** True once `release` has been called. */
  get released(): boolean {
    return this.#released;
  }

  /**
   * End the request. `durationMs` defaults to the clock time since `acquire`; pass a measured
   * duration (from a monotonic timer) for sub-millisecond precision. Default outcome `{ ok: true }`.
   */
  release(outcome: Outcome = OK_OUTCOME): void {
    if (this.#released) return;
    this.#released = true;
    this.#lb[RELEASE](this, outcome);
  }
}

const RELEASE: unique symbol = Symbol('release');

export class LoadBalancer extends EventEmitter<LoadBalancerEvents> {
  readonly name: string;
  readonly clock: Clock;
  readonly random: Random;
  readonly panicThreshold: number;
  readonly latencyDecayMs: number;

  readonly #balancer: Balancer;
  readonly #health: NormalizedHealthOptions | undefined;
  readonly #slowStart: NormalizedSlowStartOptions | undefined;
  readonly #checker: HealthChecker | undefined;
  readonly #outlier: OutlierDetector | undefined;
  #slowStartTimer: unknown;
  readonly #stickTable: AffinityTable | undefined;
  /** Current members by id (one per id). */
  readonly #byId = new Map<string, Member>();
  /** Every member still referenced, including removed ones finishing their requests. */
  readonly #members = new Map<Backend, Member>();
  /** `backends`, built on first read after a membership change (a mass removal must not copy the list per backend). */
  #backendList: readonly Backend[] | undefined = undefined;
  #tier: Tier = 'none';
  /** The set last handed to the balancer. */
  #eligible: readonly Backend[] = [];
  #reason: DecisionReason = 'balanced';
  #panic = false;
  #closed = false;
  /** Members removed but still finishing requests: release looks them up only while there are some. */
  #removals = 0;

  constructor(options: LoadBalancerOptions) {
    super();
    if (!isPlainObject(options)) throw new InvalidOptionError('options', options, 'must be an object');
    for (const key of Object.keys(options)) {
      if (!KNOWN_OPTIONS.has(key)) {
        throw new InvalidOptionError(key, (options as unknown as Record<string, unknown>)[key], `is not an option (known: ${[...KNOWN_OPTIONS].join(', ')})`);
      }
    }
    const specs = normalizeBackendSpecs(options.backends, 'backends');
    this.clock = validateClock(options.clock);
    if (options.random !== undefined && typeof options.random !== 'function') {
      throw new InvalidOptionError('random', options.random, 'must be a function returning a number in [0, 1)');
    }
    this.random = options.random ?? defaultRandom;
    this.panicThreshold = normalizePanicThreshold(options.panicThreshold);
    this.latencyDecayMs = optionalNumber('latencyDecayMs', options.latencyDecayMs, 10_000, { min: 0, minExclusive: true });
    if (options.name !== undefined && (typeof options.name !== 'string' || options.name.length === 0 || options.name.length > 128)) {
      throw new InvalidOptionError('name', options.name, 'must be a non-empty string of at most 128 characters');
    }
    this.name = options.name ?? 'default';
    this.#stickTable = validateStickTable(options.stickTable);
    this.#balancer = resolveBalancer(options.algorithm, this.clock, this.random);
    this.#health = normalizeHealthOptions(options.health);
    this.#slowStart = normalizeSlowStartOptions(options.slowStart);
    const outlier: NormalizedOutlierOptions | undefined = normalizeOutlierOptions(options.outlier);
    const health = this.#health;
    if (health !== undefined) {
      this.#checker = new HealthChecker(health, {
        clock: this.clock,
        random: this.random,
        onResult: (backend, result, durationMs) => this.#onProbeResult(backend, result, durationMs),
        phase: (backend) => checkPhase(this.#members.get(backend)?.health ?? ALWAYS_UP, health),
      });
    }
    if (outlier !== undefined) {
      this.#outlier = new OutlierDetector(outlier, {
        clock: this.clock,
        onEject: (backend, cause, until) => this.#onEject(backend, cause, until),
        onRestore: (backend) => this.#onRestore(backend),
      });
    }

    // The first members start at full weight: slow start protects a backend joining a pool that
    // already carries traffic, and at construction there is none yet.
    const now = this.clock.now();
    for (const spec of specs) this.#admit(spec, now, false);
    this.#refresh();
  }

  /** The balancer's name. */
  get algorithm(): string {
    return this.#balancer.name;
  }

  /** The live `Backend` objects (read-only view), in the order they were added. */
  get backends(): readonly Backend[] {
    return (this.#backendList ??= Object.freeze([...this.#members.keys()]));
  }

  /** The tier the balancer currently chooses from. */
  get tier(): Tier {
    return this.#tier;
  }

  /** How many backends the balancer currently chooses among (its tier's size). */
  get eligibleCount(): number {
    return this.#eligible.length;
  }

  /** The backend with this id, if it is a current member. */
  get(id: string): Backend | undefined {
    return this.#byId.get(id)?.backend;
  }

  /**
   * Choose a backend for one request and hold it until the lease is released. Returns `undefined`
   * when no backend is eligible (the runtime answers 503). Never throws for bad input: a key that is
   * not a string is ignored.
   */
  acquire(context: AcquireContext = EMPTY_CONTEXT): Lease | undefined {
    if (this.#closed) return undefined;
    const { key, affinityKey, exclude, skipFull } = context;
    const attempt = context.attempt ?? (exclude ? exclude.length : 0);
    let previous: Decision['previous'];
    let backend: Backend | undefined;
    let reason = this.#reason;

    const table = this.#stickTable;
    const fromTable = context.stickyBackendId === undefined && table !== undefined && typeof affinityKey === 'string';
    const stuckId = fromTable ? table.get(affinityKey) : context.stickyBackendId;
    if (typeof stuckId === 'string') {
      const member = this.#byId.get(stuckId);
      const cause = member === undefined ? 'unknown' : this.#stickyMissCause(member, exclude);
      if (cause === undefined) {
        backend = member!.backend;
        // A full sticky backend keeps its client: the request waits for a slot there.
        if (skipFull === true && backend.inflight >= backend.maxConnections) return undefined;
        reason = 'sticky';
        if (fromTable) table.touch?.(affinityKey);
      } else {
        previous = { backendId: stuckId, cause };
      }
    }

    if (backend === undefined) {
      const hashKey = typeof key === 'string' ? key : undefined;
      backend = this.#balancer.pick(hashKey, attempt);
      if (backend === undefined) return undefined;
      const full = skipFull === true && backend.inflight >= backend.maxConnections;
      if (full || (exclude !== undefined && exclude.length > 0 && isExcluded(backend, exclude))) {
        // Ask for further choices; when every eligible backend is excluded, the first choice stands
        // (HAProxy's "server to avoid": a retry on the same server beats no retry). A full backend
        // never stands: the request waits in the runtime's queue instead.
        const limit = attempt + this.#eligible.length;
        let found: Backend | undefined;
        for (let next = attempt + 1; next <= limit && found === undefined; next++) {
          const candidate = this.#balancer.pick(hashKey, next);
          if (candidate !== undefined && this.#usable(candidate, exclude, skipFull)) found = candidate;
        }
        // Random balancers can keep drawing excluded backends; a scan from a random offset settles it.
        found ??= this.#firstUsable(exclude, skipFull);
        if (found === undefined && full) return undefined;
        backend = found ?? backend;
      }
      if (attempt > 0 || previous !== undefined) reason = 'redispatched';
      if (table !== undefined && typeof affinityKey === 'string') table.set(affinityKey, backend.id);
    }

    const b = mutable(backend);
    b.inflight++;
    this.#balancer.acquired?.(backend);
    const lease = new Lease(this, backend, reason, typeof key === 'string' ? key : undefined, attempt, this.#eligible.length, this.clock.now(), previous);
    if (this.listenerCount('decision') > 0) this.emit('decision', lease.decision);
    return lease;
  }

  /** @internal Called by `Lease.release`. */
  [RELEASE](lease: Lease, outcome: Outcome): void {
    const backend = lease.backend;
    const b = mutable(backend);
    b.inflight--;
    b.requests++;
    if (!outcome.ok) b.failures++;
    // Only a successful response is a latency sample. A failure's duration measures the failure, not
    // the service: a refused connection takes a millisecond (a backend failing fast would attract
    // traffic), a timeout takes the timeout (after an outage of all backends, the one that timed out
    // would be shunned long after it recovered, the others sharing everything — undici #4839). A
    // backend whose requests hang is avoided anyway: its in-flight count grows.
    if (outcome.ok && outcome.error !== 'aborted') {
      // With a measured duration, the end of the request is startedAt + duration: no second clock read.
      const measured = outcome.durationMs;
      if (measured === undefined) {
        const now = this.clock.now();
        recordLatency(backend, now - lease.startedAt, now, this.latencyDecayMs);
      } else {
        recordLatency(backend, measured, lease.startedAt + measured, this.latencyDecayMs);
      }
    }
    this.#balancer.released?.(backend, outcome);
    this.#outlier?.record(backend, outcome);
    if (this.#removals > 0 && b.inflight === 0) {
      const member = this.#members.get(backend);
      if (member !== undefined && member.removing) this.#finishRemoval(member);
    }
  }

  /** Add a backend. Throws `InvalidOptionError` for a bad spec or an id already in use. */
  add(spec: BackendSpec | string): Backend {
    const normalized = normalizeBackendSpec(spec, 'backend');
    if (this.#byId.has(normalized.id)) {
      throw new InvalidOptionError('backend.id', normalized.id, 'must be unique (a backend with this id exists)');
    }
    this.#checkCapacity([normalized], new Set());
    const member = this.#admit(normalized, this.clock.now(), true);
    this.#refresh();
    return member.backend;
  }

  /**
   * Remove a backend: it takes no new requests at once (sticky clients move elsewhere), and the
   * promise resolves when its in-flight requests have ended.
   */
  remove(id: string): Promise<void> {
    const member = this.#requireMember(id);
    const done = this.#beginRemoval(member);
    this.#refresh();
    return done;
  }

  /**
   * Make the membership equal to `specs` (discovery uses this): new ids are added, missing ones
   * removed (draining their requests), changed weights and attributes applied in place. A changed
   * address means a new backend under the same id. Validates everything before changing anything.
   * Backends that join ramp up with slow start (when configured) unless `options.slowStart` is
   * false — for members that join before the pool carries any traffic, as the constructor's do.
   */
  update(specs: readonly (BackendSpec | string)[], options?: { slowStart?: boolean }): MembershipChange {
    const slowStart = options?.slowStart !== false;
    const normalized = normalizeBackendSpecs(specs, 'backends');
    const change: MembershipChange = { added: [], removed: [], updated: [] };
    const now = this.clock.now();
    const wanted = new Set(normalized.map((s) => s.id));
    const leaving = new Set<string>();
    const joining: NormalizedBackendSpec[] = [];
    for (const id of this.#byId.keys()) if (!wanted.has(id)) leaving.add(id);
    for (const spec of normalized) {
      const member = this.#byId.get(spec.id);
      if (member === undefined) joining.push(spec);
      else if (member.backend.address !== spec.address) {
        leaving.add(spec.id);
        joining.push(spec);
      }
    }
    if (joining.length > 0) this.#checkCapacity(joining, leaving);
    for (const [id, member] of this.#byId) {
      if (!wanted.has(id)) {
        void this.#beginRemoval(member);
        change.removed.push(id);
      }
    }
    for (const spec of normalized) {
      const member = this.#byId.get(spec.id);
      if (member === undefined) {
        this.#admit(spec, now, slowStart);
        change.added.push(spec.id);
      } else if (member.backend.address !== spec.address) {
        void this.#beginRemoval(member);
        this.#admit(spec, now, slowStart);
        change.updated.push(spec.id);
      } else if (applySpec(member.backend, spec)) {
        this.#applyWeight(member, now);
        change.updated.push(spec.id);
      }
    }
    this.#refresh();
    return change;
  }

  /**
   * Change a backend's weight: 0 (no new unsticky traffic) or `MIN_BACKEND_WEIGHT`..`MAX_BACKEND_WEIGHT`
   * (0.01..1 000 000). Throws `InvalidOptionError` (path `weight`) and changes nothing otherwise.
   */
  setWeight(id: string, weight: number): void {
    const member = this.#requireMember(id);
    mutable(member.backend).weight = validateWeight('weight', weight);
    this.#applyWeight(member, this.clock.now());
    this.#refresh();
  }

  /** Stop new unsticky traffic to a backend; sticky clients keep using it. */
  drain(id: string): void {
    this.#setAdmin(this.#requireMember(id), 'draining');
  }

  /** Take a backend out of service: no traffic at all, sticky clients move elsewhere. */
  maintain(id: string): void {
    this.#setAdmin(this.#requireMember(id), 'maintenance');
  }

  /** Return a drained or maintained backend to service (its health decides up or down). */
  ready(id: string): void {
    this.#setAdmin(this.#requireMember(id), 'ready');
  }

  /**
   * Set a backend's active-check counter to what another load balancer had reached (its
   * `snapshot().backends[i].health.value`): a process taking over from another — the `fulcrum` CLI's
   * seamless upgrade — carries health over instead of starting every backend at `initialState`.
   * The value is clamped to `[0, rise + fall − 1]`; without health checks, or for an unknown id, it
   * does nothing (a handover may name backends the new configuration dropped).
   */
  restoreHealth(id: string, counter: number): void {
    const member = this.#byId.get(id);
    const health = this.#health;
    if (member === undefined || member.removing || health === undefined || !Number.isFinite(counter)) return;
    const value = Math.min(health.rise + health.fall - 1, Math.max(0, Math.round(counter)));
    member.health = { health: value, up: value >= health.rise };
    if (this.#applyState(member, 'handover')) this.#refresh();
  }

  /** Plain JSON for stats pages, metrics and logs. */
  snapshot(): LoadBalancerSnapshot {
    const now = this.clock.now();
    const backends: BackendSnapshot[] = [];
    for (const member of this.#members.values()) {
      const b = member.backend;
      const entry: BackendSnapshot = {
        id: b.id,
        address: b.address,
        state: b.state,
        backup: b.backup,
        weight: b.weight,
        effectiveWeight: b.effectiveWeight,
        inflight: b.inflight,
        maxConnections: Number.isFinite(b.maxConnections) ? b.maxConnections : null,
        requests: b.requests,
        failures: b.failures,
        ejected: b.isEjected(now),
        ejectedUntil: b.ejectedUntil,
        latencyEwma: b.latencyEwma,
        health: this.#health ? { value: member.health.health, rise: this.#health.rise, fall: this.#health.fall } : null,
        removing: member.removing,
        slowStart: member.slowStartedAt !== undefined,
      };
      if (b.zone !== undefined) entry.zone = b.zone;
      backends.push(entry);
    }
    return { at: now, name: this.name, algorithm: this.algorithm, tier: this.#tier, eligible: this.#eligible.length, backends };
  }

  /** Stop background work. `acquire` returns `undefined` afterwards; open leases can still be released. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#checker?.close();
    this.#outlier?.close();
    if (this.#slowStartTimer !== undefined) this.clock.clearTimeout(this.#slowStartTimer);
    this.#slowStartTimer = undefined;
  }

  get closed(): boolean {
    return this.#closed;
  }

  // ---- slow path -------------------------------------------------------------------------------

  #admit(spec: NormalizedBackendSpec, now: number, slowStart: boolean): Member {
    const backend = new Backend(spec, now);
    const health = this.#health ? initialHealth(this.#health, this.#health.initialState) : ALWAYS_UP;
    const member: Member = {
      backend,
      admin: 'ready',
      health,
      weightPercent: 100,
      slowStartedAt: undefined,
      removing: false,
      whenRemoved: [],
    };
    mutable(backend).state = resolveState(member.admin, health);
    this.#byId.set(spec.id, member);
    this.#members.set(backend, member);
    this.#checker?.add(backend);
    this.#outlier?.add(backend);
    if (slowStart) this.#startSlowStart(member, now);
    this.emit('added', backend);
    return member;
  }

  #beginRemoval(member: Member): Promise<void> {
    if (this.#byId.get(member.backend.id) === member) this.#byId.delete(member.backend.id);
    const done = new Promise<void>((resolve) => member.whenRemoved.push(resolve));
    if (!member.removing) {
      member.removing = true;
      this.#removals++;
      member.admin = 'draining';
      this.#checker?.remove(member.backend);
      this.#outlier?.remove(member.backend);
      this.#setState(member, resolveState(member.admin, member.health), 'removal');
    }
    if (member.backend.inflight === 0) this.#finishRemoval(member);
    return done;
  }

  #finishRemoval(member: Member): void {
    if (!this.#members.delete(member.backend)) return;
    this.#removals--;
    this.#backendList = undefined;
    this.emit('removed', member.backend);
    for (const resolve of member.whenRemoved.splice(0)) resolve();
  }

  /**
   * Make sure the balancer can take the set that joining backends would make, before anything
   * changes: a Maglev table smaller than the set refuses it, and a refusal after the membership had
   * changed would leave backends listed but unreachable. Offers the largest set the change could
   * produce (every current member in service and every newcomer); on refusal the balancer gets its
   * current set back and the error propagates with nothing changed.
   */
  #checkCapacity(joining: readonly NormalizedBackendSpec[], leaving: ReadonlySet<string>): void {
    const candidate: Backend[] = [];
    for (const [id, member] of this.#byId) {
      if (!leaving.has(id) && member.backend.effectiveWeight > 0) candidate.push(member.backend);
    }
    const now = this.clock.now();
    for (const spec of joining) if (spec.weight > 0) candidate.push(new Backend(spec, now));
    if (candidate.length <= this.#eligible.length) return;
    try {
      this.#balancer.update(candidate);
    } catch (error) {
      this.#balancer.update(this.#eligible);
      throw error;
    }
  }

  #requireMember(id: string): Member {
    const member = typeof id === 'string' ? this.#byId.get(id) : undefined;
    if (member === undefined) throw new InvalidOptionError('id', id, 'must be the id of a backend of this load balancer');
    return member;
  }

  #setAdmin(member: Member, admin: AdminState): void {
    // Out of maintenance, a backend's health is proven again from the start (HAProxy does the same):
    // what the checks said before maintenance may no longer be true.
    if (member.admin === 'maintenance' && admin !== 'maintenance' && this.#health) {
      member.health = initialHealth(this.#health, this.#health.initialState);
    }
    member.admin = admin;
    this.#applyState(member, 'admin');
    this.#refresh();
  }

  /** Set the state the admin state and health imply; a recovery starts slow start. */
  #applyState(member: Member, cause: StateCause): boolean {
    const from = member.backend.state;
    const to = resolveState(member.admin, member.health);
    if (from === to) return false;
    this.#setState(member, to, cause);
    if (to === 'up' && from === 'down') {
      const now = this.clock.now();
      // What it measured before or during the outage is not the backend that came back.
      forgetLatency(member.backend, now);
      this.#startSlowStart(member, now);
    }
    return true;
  }

  #onProbeResult(backend: Backend, result: ProbeResult, durationMs: number): void {
    const member = this.#members.get(backend);
    if (member === undefined || member.removing || this.#health === undefined) return;
    if (this.listenerCount('check') > 0) this.emit('check', backend.id, result.ok, durationMs, result.detail);
    // HAProxy ignores check results during maintenance: the counter restarts on `ready`.
    if (member.admin !== 'maintenance') member.health = reduceHealth(member.health, result.ok ? 'pass' : 'fail', this.#health);
    member.admin = applyAdminDirectives(member.admin, result);
    let changed = false;
    if (result.weightPercent !== undefined && result.weightPercent !== member.weightPercent) {
      member.weightPercent = result.weightPercent;
      changed = this.#applyWeight(member, this.clock.now());
    }
    if (this.#applyState(member, 'probe')) changed = true;
    // A passing active check ends an ejection early (Envoy's default): the backend has shown it serves.
    if (result.ok && backend.ejectedUntil !== 0) this.#outlier?.restore(backend);
    if (changed) this.#refresh();
  }

  #onEject(backend: Backend, cause: EjectionCause, until: number): void {
    mutable(backend).ejectedUntil = until;
    this.emit('ejected', backend.id, cause, until);
    this.#refresh();
  }

  #onRestore(backend: Backend): void {
    mutable(backend).ejectedUntil = 0;
    const member = this.#members.get(backend);
    if (member !== undefined && !member.removing) {
      const now = this.clock.now();
      forgetLatency(backend, now);
      this.#startSlowStart(member, now);
    }
    this.emit('restored', backend.id);
    this.#refresh();
  }

  // ---- weights and slow start -------------------------------------------------------------------

  /** effectiveWeight = weight × agent percentage × slow-start factor. Returns true when it changed. */
  #applyWeight(member: Member, now: number): boolean {
    const b = mutable(member.backend);
    let factor = member.weightPercent / 100;
    if (member.slowStartedAt !== undefined && this.#slowStart !== undefined) {
      const ramp = slowStartFactor(now - member.slowStartedAt, this.#slowStart);
      if (ramp >= 1) member.slowStartedAt = undefined;
      else factor *= ramp;
    }
    const next = b.weight * factor;
    if (next === b.effectiveWeight) return false;
    b.effectiveWeight = next;
    return true;
  }

  #startSlowStart(member: Member, now: number): void {
    if (this.#slowStart === undefined || this.#closed) return;
    member.slowStartedAt = now;
    this.#applyWeight(member, now);
    this.#scheduleSlowStartTick();
  }

  /**
   * Ramp weights in steps of a twentieth of the window: often enough that the ramp looks smooth to
   * the balancers, rarely enough that rebuilding their tables (Maglev's is 65537 slots) stays cheap.
   */
  #scheduleSlowStartTick(): void {
    if (this.#slowStartTimer !== undefined || this.#slowStart === undefined || this.#closed) return;
    const step = Math.max(10, this.#slowStart.windowMs / 20);
    this.#slowStartTimer = this.clock.setTimeout(() => {
      this.#slowStartTimer = undefined;
      const now = this.clock.now();
      let ramping = false;
      for (const member of this.#members.values()) {
        if (member.slowStartedAt === undefined) continue;
        this.#applyWeight(member, now);
        if (member.slowStartedAt !== undefined) ramping = true;
      }
      this.#refresh();
      if (ramping) this.#scheduleSlowStartTick();
    }, step);
  }

  #setState(member: Member, to: BackendState, cause: StateCause): void {
    const b = mutable(member.backend);
    const from = b.state;
    if (from === to) return;
    b.state = to;
    this.emit('state', b.id, from, to, cause);
  }

  #usable(b: Backend, exclude: AcquireContext['exclude'], skipFull: boolean | undefined): boolean {
    if (skipFull === true && b.inflight >= b.maxConnections) return false;
    return exclude === undefined || exclude.length === 0 || !isExcluded(b, exclude);
  }

  #firstUsable(exclude: AcquireContext['exclude'], skipFull: boolean | undefined): Backend | undefined {
    const eligible = this.#eligible;
    const n = eligible.length;
    const start = Math.floor(this.random() * n);
    for (let i = 0; i < n; i++) {
      const b = eligible[(start + i) % n]!;
      if (b.effectiveWeight > 0 && this.#usable(b, exclude, skipFull)) return b;
    }
    return undefined;
  }

  #stickyMissCause(member: Member, exclude: AcquireContext['exclude']): StickyMissCause | undefined {
    const b = member.backend;
    if (b.state === 'maintenance') return 'maintenance';
    if (b.state === 'down') return 'down';
    if (b.ejectedUntil !== 0 && b.isEjected(this.clock.now())) return 'ejected';
    if (exclude !== undefined && exclude.length > 0 && isExcluded(b, exclude)) return 'excluded';
    return undefined;
  }

  /** Recompute the eligible tier and hand it to the balancer. */
  #refresh(): void {
    const now = this.clock.now();
    const primaries: Backend[] = [];
    const backups: Backend[] = [];
    const inService: Backend[] = [];
    let healthyPrimaries = 0;
    for (const member of this.#byId.values()) {
      const b = member.backend;
      if (b.state === 'maintenance' || b.state === 'draining') continue;
      const healthy = b.state === 'up' && !b.isEjected(now);
      if (b.backup) {
        if (healthy && b.effectiveWeight > 0) backups.push(b);
        continue;
      }
      inService.push(b);
      if (healthy) {
        healthyPrimaries++;
        if (b.effectiveWeight > 0) primaries.push(b);
      }
    }
    const fraction = inService.length === 0 ? 0 : healthyPrimaries / inService.length;
    const belowThreshold = this.panicThreshold > 0 && fraction < this.panicThreshold;
    let tier: Tier;
    let eligible: Backend[];
    if (primaries.length > 0 && !belowThreshold) {
      tier = 'primary';
      eligible = primaries;
    } else if (backups.length > 0) {
      tier = 'backup';
      eligible = backups;
    } else if (belowThreshold && inService.some((b) => b.effectiveWeight > 0)) {
      tier = 'panic';
      eligible = inService.filter((b) => b.effectiveWeight > 0);
    } else if (primaries.length > 0) {
      tier = 'primary';
      eligible = primaries;
    } else {
      tier = 'none';
      eligible = [];
    }
    this.#tier = tier;
    this.#eligible = eligible;
    this.#reason = tier === 'backup' ? 'backup' : tier === 'panic' ? 'panic' : this.#balancer.hashing ? 'hashed' : 'balanced';
    this.#backendList = undefined;
    this.#balancer.update(eligible);
    const panic = tier === 'panic';
    if (panic !== this.#panic) {
      this.#panic = panic;
      this.emit('panic', panic, fraction);
    }
  }
}

function isExcluded(backend: Backend, exclude: readonly (Backend | string)[]): boolean {
  for (let i = 0; i < exclude.length; i++) {
    const e = exclude[i];
    if (e === backend || e === backend.id) return true;
  }
  return false;
}

/** Apply a new spec's mutable attributes to a backend with the same id and address. */
function applySpec(backend: Backend, spec: NormalizedBackendSpec): boolean {
  const b = mutable(backend);
  let changed = false;
  if (b.weight !== spec.weight) {
    b.weight = spec.weight;
    changed = true;
  }
  if (b.backup !== spec.backup) {
    b.backup = spec.backup;
    changed = true;
  }
  if (b.maxConnections !== spec.maxConnections) {
    b.maxConnections = spec.maxConnections;
    changed = true;
  }
  if (b.zone !== spec.zone) {
    b.zone = spec.zone;
    changed = true;
  }
  if (JSON.stringify(b.metadata) !== JSON.stringify(spec.metadata)) {
    b.metadata = spec.metadata;
    changed = true;
  }
  return changed;
}

function validateClock(clock: unknown): Clock {
  if (clock === undefined) return coarseClock;
  const c = clock as Partial<Clock> | null;
  if (typeof c !== 'object' || c === null || typeof c.now !== 'function' || typeof c.setTimeout !== 'function' || typeof c.clearTimeout !== 'function') {
    throw new InvalidOptionError('clock', clock, 'must have now(), setTimeout(fn, ms) and clearTimeout(timer)');
  }
  return c as Clock;
}

function validateStickTable(table: unknown): AffinityTable | undefined {
  if (table === undefined) return undefined;
  const t = table as Partial<AffinityTable> | null;
  if (typeof t !== 'object' || t === null || typeof t.get !== 'function' || typeof t.set !== 'function') {
    throw new InvalidOptionError('stickTable', table, 'must be a StickTable (get(key) and set(key, id))');
  }
  return t as AffinityTable;
}

function resolveBalancer(algorithm: unknown, clock: Clock, random: Random): Balancer {
  if (algorithm === undefined) return createBalancer('p2c', { clock, random });
  if (typeof algorithm === 'string') return createBalancer(algorithm, { clock, random });
  const b = algorithm as Partial<Balancer> | null;
  if (typeof b === 'object' && b !== null && typeof b.pick === 'function' && typeof b.update === 'function' && typeof b.name === 'string') {
    return b as Balancer;
  }
  throw new InvalidOptionError('algorithm', algorithm, 'must be an algorithm name or a Balancer (name, update(backends), pick(key, attempt))');
}

/** Create a load balancer. See `LoadBalancerOptions` for defaults. */
export function createLoadBalancer(options: LoadBalancerOptions): LoadBalancer {
  return new LoadBalancer(options);
}
