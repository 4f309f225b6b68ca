/**
 * The discrete-event simulation. One binary-heap event queue (`EventQueue`) holds every future event
 * — the next arrival, each request's end of service, timeouts, the scenario's changes, the load
 * balancer's own timers (outlier sweeps, slow-start ticks, health checks) — and a virtual clock
 * (`SimClock`, a core `Clock`) whose time is the event being handled. The load balancer is the real
 * one from `@fulcrum/core`, built from the scenario with that clock and a seeded `Random`: every
 * `acquire()`, `release()`, ejection and decision is the production code's.
 *
 * The model (the classic one of queueing theory, and of the papers this package reproduces):
 * requests arrive (Poisson, bursts, or closed-loop clients); the load balancer picks a backend; the
 * backend serves `concurrency` requests at once, each for a draw of its service-time distribution,
 * and queues the rest FIFO; the lease is released when the answer comes back, so the balancer's
 * `inflight` is the backend's queue plus its requests in service — what a proxy sees.
 *
 * Deterministic: every random draw comes from a stream seeded from `scenario.seed` (arrivals, keys,
 * each backend's service times, errors, the balancer's choices each have their own, so two policies
 * see the same arrivals), and ties in time are broken by scheduling order. Same scenario, same
 * policy, same result — bit for bit. Memory is flat in the length of the run: requests live in
 * recycled slots, and the statistics are streaming histograms (see `Histogram`).
 */
import { createLoadBalancer, createSeededRandom, InvalidOptionError } from '@fulcrum/core';
import type {
  AcquireContext,
  AffinityTable,
  Backend,
  Balancer,
  BalancerOptions,
  Clock,
  FailureKind,
  Lease,
  LoadBalancer,
  LoadBalancerOptions,
  Outcome,
  Random,
  Timer,
} from '@fulcrum/core';
import { createBalancer } from '@fulcrum/core';
import { EventQueue } from './event-queue';
import { samplerOf, zipfSampler } from './distributions';
import type { Sampler } from './distributions';
import { Histogram } from './histogram';
import { normalizeScenario } from './scenario';
import type { NormalizedBackend, NormalizedScenario, Scenario } from './scenario';

/**
 * What to simulate: a built-in or registered algorithm name (`'p2c'`), a factory that builds a
 * `Balancer` from the simulation's seeded `random` and virtual `clock` (so a custom policy is
 * deterministic too), or `{ name, create }` to give it a name for reports. A `Balancer` instance is
 * accepted for a single run (it keeps state, so it cannot be shared between runs).
 */
export type Policy =
  | string
  | Balancer
  | ((options: BalancerOptions & { random: Random; clock: Clock }) => Balancer)
  | { name: string; create: (options: BalancerOptions & { random: Random; clock: Clock }) => Balancer };

export interface SimulationEvent {
  atMs: number;
  kind: 'change' | 'ejected' | 'restored' | 'state' | 'panic';
  backend?: string;
  detail: string;
}

export interface BackendResult {
  id: string;
  /** Attempts the load balancer sent it (measured requests and warm-up alike). */
  requests: number;
  /** Its fraction of all attempts. */
  share: number;
  /** Attempts that failed on it (refused, 5xx, timed out, rejected by a full queue). */
  failures: number;
  ejections: number;
  /** The longest its queue grew (requests waiting for a worker). */
  maxQueue: number;
  /** Attempts sent to it in each interval of the time series. */
  requestsOverTime: number[];
  /** Its in-flight requests (queued + in service, the load balancer's `inflight`) at the end of each interval. */
  inflightOverTime: number[];
}

export interface SimulationResult {
  scenario: string;
  policy: string;
  seed: number;
  /** When the last request finished, in simulated ms. */
  simulatedMs: number;
  /** Requests that arrived after the warm-up (the measured ones). */
  requests: number;
  ok: number;
  failed: number;
  /** Measured requests by how they finally failed. */
  failures: { connect: number; timeout: number; status: number; noBackend: number };
  /** Retry attempts made for measured requests, and retries the budget refused. */
  retries: number;
  retriesRefusedByBudget: number;
  /** Ejections by outlier detection over the run. */
  ejections: number;
  /** Latency of measured requests (arrival to final answer, retries included), ms. `meanMs` is exact; quantiles ±0.8 %. */
  meanMs: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  maxMs: number;
  /** The latency distribution: [ms, fraction of requests at most that long]. */
  cdf: Array<[number, number]>;
  /**
   * Time attempts waited for a worker (at the proxy for a connection slot, then in the backend's
   * queue), the longest backend queue, and the longest proxy queue (backends with `maxConnections`).
   */
  queueing: { meanWaitMs: number; p99WaitMs: number; maxQueueLength: number; maxProxyQueueLength: number };
  /** The run as a time series of `intervalMs`-wide intervals (by arrival time for latency, dispatch time for shares). */
  timeline: {
    intervalMs: number;
    startMs: number[];
    requests: number[];
    errors: number[];
    retries: number[];
    p50: number[];
    p99: number[];
    /** Requests waiting in backends' queues at the end of each interval. */
    queued: number[];
  };
  backends: BackendResult[];
  /** Changes and the load balancer's events, in time order (the first 10,000). */
  events: SimulationEvent[];
  eventsDropped: number;
}

// ---------------------------------------------------------------------------------- internals

const enum Kind {
  Arrival = 0,
  Finish = 1,
  Timer = 2,
  Change = 3,
  Client = 4,
  Timeout = 5,
  Sample = 6,
  Burst = 7,
  Refused = 8,
}

const enum Failure {
  None = 0,
  Connect = 1,
  Timeout = 2,
  Status = 3,
  NoBackend = 4,
}

const enum FailMode {
  None = 0,
  Refuse = 1,
  Error = 2,
}

const OUTCOMES: readonly Outcome[] = [
  Object.freeze({ ok: true }),
  Object.freeze({ ok: false, error: 'connect' as FailureKind }),
  Object.freeze({ ok: false, error: 'timeout' as FailureKind }),
  Object.freeze({ ok: false, error: 'status' as FailureKind, status: 503 }),
];
const ERROR_500: Outcome = Object.freeze({ ok: false, error: 'status' as FailureKind, status: 500 });
const MAX_EVENTS = 10_000;

/** A seed for one named stream of the run, mixed from the scenario's seed. */
function streamSeed(seed: number, stream: number): number {
  let h = Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) ^ Math.imul(stream + 1, 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  return (h ^ (h >>> 13)) | 0;
}

interface SimBackend {
  readonly index: number;
  readonly spec: NormalizedBackend;
  readonly sample: Sampler;
  readonly errorRandom: Random;
  backend: Backend | undefined;
  busy: number;
  slowFactor: number;
  failMode: FailMode;
  weight: number;
  /** FIFO of waiting attempts: slot and generation, in a ring buffer. */
  queueSlots: Int32Array;
  queueGens: Int32Array;
  queueHead: number;
  queueLength: number;
  requests: number;
  failures: number;
  ejections: number;
  maxQueue: number;
}

/** The virtual clock: time is the event being handled; timers are events in the same queue. */
class SimClock implements Clock {
  nowMs = 0;
  #nextId = 1;
  readonly timers = new Map<number, () => void>();
  readonly #queue: EventQueue;

  constructor(queue: EventQueue) {
    this.#queue = queue;
  }

  now(): number {
    return this.nowMs;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const id = this.#nextId++;
    this.timers.set(id, fn);
    this.#queue.push(this.nowMs + (typeof ms === 'number' && ms > 0 ? ms : 0), Kind.Timer, id, 0, 0);
    return id;
  }

  clearTimeout(timer: Timer): void {
    if (typeof timer === 'number') this.timers.delete(timer);
  }
}

/** One run. Built by `simulate`/`simulateAsync`; `step()` advances it. */
class Simulation {
  readonly scenario: NormalizedScenario;
  readonly policyName: string;
  readonly queue = new EventQueue();
  readonly clock: SimClock;
  readonly lb: LoadBalancer;
  readonly backends: SimBackend[];
  readonly #byBackend = new Map<Backend, SimBackend>();

  // Request slots (structure of arrays, recycled through a free stack).
  #capacity = 0;
  #arrival = new Float64Array(0);
  #attemptStart = new Float64Array(0);
  #gen = new Int32Array(0);
  #attempt = new Int32Array(0);
  #keyIndex = new Int32Array(0);
  #client = new Int32Array(0);
  /** The backend a request must go to (its initial queue), or −1. */
  #pinned = new Int32Array(0);
  #measured = new Uint8Array(0);
  #leases: (Lease | undefined)[] = [];
  #excludes: (Backend[] | undefined)[] = [];
  #free = new Int32Array(0);
  #freeCount = 0;

  readonly #context: {
    key: string | undefined;
    affinityKey: string | undefined;
    stickyBackendId: string | undefined;
    exclude: Backend[] | undefined;
    attempt: number;
    skipFull: boolean;
  } = {
    skipFull: false,
    key: undefined,
    affinityKey: undefined,
    stickyBackendId: undefined,
    exclude: undefined,
    attempt: 0,
  };
  readonly #arrivalRandom: Random;
  readonly #interArrival: Sampler;
  readonly #think: Sampler | undefined;
  readonly #keyStrings: string[] | undefined;
  readonly #nextKey: (() => number) | undefined;
  readonly #affinity: boolean;
  readonly #retryOn: boolean[] = [false, false, false, false];

  #active = 0;
  #activeRetries = 0;
  /** Some backend has a `maxConnections`: acquire with `skipFull`, and queue at the proxy. */
  readonly #capped: boolean;
  #proxySlots = new Int32Array(16);
  #proxyGens = new Int32Array(16);
  #proxyHead = 0;
  #proxyQueueLength = 0;
  #maxProxyQueue = 0;
  /** A health probe was started since the async driver last yielded. */
  probeStarted = false;
  finished = false;

  // Statistics.
  readonly latency = new Histogram(6);
  readonly wait = new Histogram(6);
  readonly #buckets: number;
  readonly #bucketLatency: Histogram[];
  readonly #bucketRequests: Float64Array;
  readonly #bucketErrors: Float64Array;
  readonly #bucketRetries: Float64Array;
  readonly #bucketQueued: Float64Array;
  readonly #dispatchOverTime: Float64Array;
  readonly #inflightOverTime: Float64Array;
  #ok = 0;
  #failures = [0, 0, 0, 0, 0];
  #retries = 0;
  #retriesRefused = 0;
  #ejections = 0;
  #lastFinish = 0;
  readonly events: SimulationEvent[] = [];
  #eventsDropped = 0;

  constructor(scenario: NormalizedScenario, policy: Policy, options: { async: boolean }) {
    this.scenario = scenario;
    const seed = scenario.seed;
    this.clock = new SimClock(this.queue);
    const lbRandom = createSeededRandom(streamSeed(seed, 0));
    this.#arrivalRandom = createSeededRandom(streamSeed(seed, 1));

    this.backends = scenario.backends.map((spec, index) => {
      const random = createSeededRandom(streamSeed(seed, 1000 + 2 * index));
      return {
        index,
        spec,
        sample: samplerOf(spec.service, random),
        errorRandom: createSeededRandom(streamSeed(seed, 1001 + 2 * index)),
        backend: undefined,
        busy: 0,
        slowFactor: 1,
        failMode: FailMode.None,
        weight: spec.weight,
        queueSlots: new Int32Array(16),
        queueGens: new Int32Array(16),
        queueHead: 0,
        queueLength: 0,
        requests: 0,
        failures: 0,
        ejections: 0,
        maxQueue: 0,
      };
    });

    const arrivals = scenario.arrivals;
    if (arrivals.type === 'poisson') {
      const mean = 1 / arrivals.ratePerMs;
      const random = this.#arrivalRandom;
      this.#interArrival = () => -mean * Math.log(1 - random());
      this.#think = undefined;
    } else {
      this.#interArrival = () => 0;
      this.#think = samplerOf(arrivals.thinkTime, this.#arrivalRandom);
    }
    if (scenario.keys !== undefined) {
      const { count, distribution, exponent } = scenario.keys;
      const keyRandom = createSeededRandom(streamSeed(seed, 2));
      this.#keyStrings = Array.from({ length: count }, (_, i) => `key-${i}`);
      this.#nextKey = distribution === 'zipf' ? zipfSampler(count, exponent, keyRandom) : () => Math.floor(keyRandom() * count);
    }
    this.#affinity = scenario.loadBalancer.affinity === true;
    this.#capped = scenario.backends.some((b) => b.maxConnections !== Infinity);
    for (const kind of scenario.retries?.on ?? []) {
      if (kind === 'connect') this.#retryOn[Failure.Connect] = true;
      if (kind === 'timeout') this.#retryOn[Failure.Timeout] = true;
      if (kind === 'status') this.#retryOn[Failure.Status] = true;
    }

    this.#buckets = Math.max(1, Math.ceil(scenario.durationMs / scenario.sampleIntervalMs - 1e-9));
    this.#bucketLatency = Array.from({ length: this.#buckets }, () => new Histogram(4));
    this.#bucketRequests = new Float64Array(this.#buckets);
    this.#bucketErrors = new Float64Array(this.#buckets);
    this.#bucketRetries = new Float64Array(this.#buckets);
    this.#bucketQueued = new Float64Array(this.#buckets);
    this.#dispatchOverTime = new Float64Array(this.#buckets * this.backends.length);
    this.#inflightOverTime = new Float64Array(this.#buckets * this.backends.length);
    this.#grow(64);

    // The load balancer, as configured, on the virtual clock.
    const balancer = buildBalancer(policy, lbRandom, this.clock);
    const named =
      typeof policy === 'object' && policy !== null && typeof (policy as { create?: unknown }).create === 'function'
        ? (policy as { name: unknown }).name
        : undefined;
    this.policyName = typeof policy === 'string' ? policy : typeof named === 'string' ? named : balancer.name;
    const lbOptions: LoadBalancerOptions = {
      name: 'sim',
      backends: this.backends.filter((b) => b.spec.initial).map((b) => backendSpec(b)),
      algorithm: balancer,
      clock: this.clock,
      random: lbRandom,
    };
    const lbScenario = scenario.loadBalancer;
    if (lbScenario.outlier !== undefined) lbOptions.outlier = lbScenario.outlier;
    if (lbScenario.slowStart !== undefined) lbOptions.slowStart = lbScenario.slowStart;
    if (lbScenario.panicThreshold !== undefined) lbOptions.panicThreshold = lbScenario.panicThreshold;
    if (lbScenario.latencyDecayMs !== undefined) lbOptions.latencyDecayMs = lbScenario.latencyDecayMs;
    if (this.#affinity) lbOptions.stickTable = mapAffinityTable();
    if (lbScenario.health !== undefined) {
      if (!options.async) {
        throw new InvalidOptionError(
          'scenario.loadBalancer.health',
          lbScenario.health,
          'needs simulateAsync(): health probes answer through promises, which a synchronous run cannot wait for',
        );
      }
      lbOptions.health = {
        ...lbScenario.health,
        probe: (backend) => {
          this.probeStarted = true;
          const sim = this.#byBackend.get(backend);
          return Promise.resolve(sim !== undefined && sim.failMode === FailMode.None);
        },
      };
    }
    let lb: LoadBalancer;
    try {
      lb = createLoadBalancer(lbOptions);
    } catch (error) {
      if (error instanceof InvalidOptionError) {
        throw new InvalidOptionError(`scenario.loadBalancer.${error.path}`, error.value, error.expected, { cause: error });
      }
      throw error;
    }
    this.lb = lb;
    for (const b of lb.backends)
      this.#byBackend.set(
        b,
        this.backends.find((s) => s.spec.id === b.id)!,
      );
    lb.on('added', (backend) => {
      const sim = this.backends.find((s) => s.spec.id === backend.id);
      if (sim !== undefined) {
        sim.backend = backend;
        this.#byBackend.set(backend, sim);
      }
    });
    for (const sim of this.backends) sim.backend = lb.get(sim.spec.id);
    lb.on('ejected', (id, cause, until) => {
      const sim = this.#sim(id);
      if (sim) sim.ejections++;
      this.#ejections++;
      this.#event('ejected', id, `ejected (${cause}) until ${round(until)} ms`);
    });
    lb.on('restored', (id) => this.#event('restored', id, 'restored'));
    lb.on('state', (id, from, to, cause) => this.#event('state', id, `${from} → ${to} (${cause})`));
    lb.on('panic', (active, fraction) => this.#event('panic', undefined, `${active ? 'panic mode' : 'panic over'} (${Math.round(fraction * 100)}% healthy)`));

    // The initial queues, then the initial events.
    const prefillRandom = createSeededRandom(streamSeed(seed, 3));
    for (const sim of this.backends) {
      const initial = sim.spec.initialQueue;
      if (initial === undefined) continue;
      let requests = 0;
      if (initial.type === 'fixed') requests = initial.requests;
      else if (initial.mean > 0) requests = Math.floor(Math.log(1 - prefillRandom()) / Math.log(initial.mean / (1 + initial.mean)));
      for (let i = 0; i < requests; i++) this.#newRequest(-1, sim.index);
    }
    const q = this.queue;
    if (arrivals.type === 'poisson') {
      if (arrivals.ratePerMs > 0) q.push(this.#interArrival(), Kind.Arrival, 0, 0, 0);
      arrivals.bursts.forEach((burst, i) => {
        if (burst.requests > 0 && burst.atMs < scenario.durationMs) q.push(burst.atMs, Kind.Burst, i, burst.requests, 0);
      });
    } else {
      for (let c = 0; c < arrivals.clients; c++) q.push(0, Kind.Client, c, 0, 0);
    }
    // Changes and samples are queued one at a time, each when the one before it fires: the heap stays
    // as small as the requests in flight, and every pop is cheaper.
    if (scenario.changes.length > 0) q.push(scenario.changes[0]!.atMs, Kind.Change, 0, 0, 0);
    this.#pushSample(0);
  }

  #sim(id: string): SimBackend | undefined {
    return this.backends.find((s) => s.spec.id === id);
  }

  #event(kind: SimulationEvent['kind'], backend: string | undefined, detail: string): void {
    if (this.events.length >= MAX_EVENTS) {
      this.#eventsDropped++;
      return;
    }
    const event: SimulationEvent = { atMs: this.clock.nowMs, kind, detail };
    if (backend !== undefined) event.backend = backend;
    this.events.push(event);
  }

  /**
   * Handle events until the run ends or, when `yieldOnProbe`, a health probe has started (the async
   * driver then lets its promise settle). Returns true when the run is over.
   */
  step(yieldOnProbe: boolean): boolean {
    const q = this.queue;
    const clock = this.clock;
    const durationMs = this.scenario.durationMs;
    while (q.pop()) {
      const time = q.time;
      if (time > durationMs && this.#active === 0) {
        this.finished = true;
        return true;
      }
      clock.nowMs = time;
      switch (q.kind) {
        case Kind.Arrival:
          this.#onArrival();
          break;
        case Kind.Finish:
          this.#onFinish(q.a, q.b, q.c);
          break;
        case Kind.Timer: {
          const fn = clock.timers.get(q.a);
          if (fn !== undefined) {
            clock.timers.delete(q.a);
            fn();
          }
          break;
        }
        case Kind.Change: {
          const next = q.a + 1;
          if (next < this.scenario.changes.length) q.push(this.scenario.changes[next]!.atMs, Kind.Change, next, 0, 0);
          this.#onChange(q.a);
          break;
        }
        case Kind.Client:
          if (time < durationMs) this.#newRequest(q.a);
          break;
        case Kind.Timeout:
          this.#onTimeout(q.a, q.b);
          break;
        case Kind.Sample:
          this.#onSample(q.a);
          this.#pushSample(q.a + 1);
          break;
        case Kind.Burst:
          this.#onBurst(q.a, q.b);
          break;
        case Kind.Refused:
          if (this.#gen[q.a] === q.b) this.#attemptFailed(q.a, Failure.Connect);
          break;
      }
      if (yieldOnProbe && this.probeStarted) return false;
    }
    this.finished = true;
    return true;
  }

  // ---- arrivals

  #onArrival(): void {
    const now = this.clock.nowMs;
    const next = now + this.#interArrival();
    if (next < this.scenario.durationMs) this.queue.push(next, Kind.Arrival, 0, 0, 0);
    this.#newRequest(-1);
  }

  #onBurst(index: number, remaining: number): void {
    const arrivals = this.scenario.arrivals;
    if (arrivals.type !== 'poisson') return;
    const burst = arrivals.bursts[index]!;
    if (burst.overMs === 0) {
      for (let i = 0; i < remaining; i++) this.#newRequest(-1);
      return;
    }
    this.#newRequest(-1);
    const next = this.clock.nowMs + burst.overMs / burst.requests;
    if (remaining > 1 && next < this.scenario.durationMs) this.queue.push(next, Kind.Burst, index, remaining - 1, 0);
  }

  #newRequest(client: number, pinned = -1): void {
    const slot = this.#allocate();
    const now = this.clock.nowMs;
    this.#arrival[slot] = now;
    this.#attempt[slot] = 0;
    this.#client[slot] = client;
    this.#pinned[slot] = pinned;
    this.#measured[slot] = pinned < 0 && now >= this.scenario.warmupMs ? 1 : 0;
    this.#keyIndex[slot] = this.#nextKey === undefined ? -1 : this.#nextKey();
    this.#active++;
    this.#dispatch(slot);
  }

  // ---- one attempt

  #acquire(slot: number): Lease | undefined {
    const ctx = this.#context;
    const keyIndex = this.#keyIndex[slot]!;
    const key = keyIndex >= 0 ? this.#keyStrings![keyIndex] : undefined;
    ctx.key = key;
    ctx.affinityKey = this.#affinity ? key : undefined;
    const pinned = this.#pinned[slot]!;
    ctx.stickyBackendId = pinned >= 0 ? this.backends[pinned]!.spec.id : undefined;
    ctx.exclude = this.#excludes[slot];
    ctx.attempt = this.#attempt[slot]!;
    ctx.skipFull = this.#capped;
    return this.lb.acquire(ctx as AcquireContext);
  }

  /** Start an attempt: a backend if one is free, else the proxy's queue, else a 503 or "no backend". */
  #dispatch(slot: number): void {
    const lease = this.#acquire(slot);
    if (lease !== undefined) {
      this.#attemptStart[slot] = this.clock.nowMs;
      this.#begin(slot, lease);
      return;
    }
    // Every candidate is at its maxConnections while backends are eligible: wait in the proxy's
    // queue (HAProxy's maxconn and queue) — unless it is full.
    if (this.#capped && this.lb.tier !== 'none') {
      if (this.#proxyQueueLength >= this.scenario.proxyQueueLimit) {
        this.#complete(slot, Failure.Status);
        return;
      }
      const now = this.clock.nowMs;
      const gen = (this.#gen[slot]! + 1) | 0;
      this.#gen[slot] = gen;
      this.#attemptStart[slot] = now;
      this.#proxyEnqueue(slot, gen);
      const timeoutMs = this.scenario.timeoutMs;
      if (timeoutMs !== Infinity) this.queue.push(now + timeoutMs, Kind.Timeout, slot, gen, 0);
      return;
    }
    this.#complete(slot, Failure.NoBackend);
  }

  /** The attempt has its backend: send it (or fail the connection to a refusing one). */
  #begin(slot: number, lease: Lease): void {
    const sim = this.#byBackend.get(lease.backend)!;
    const now = this.clock.nowMs;
    const gen = (this.#gen[slot]! + 1) | 0;
    this.#gen[slot] = gen;
    this.#leases[slot] = lease;
    sim.requests++;
    this.#dispatchOverTime[this.#bucketOf(now) * this.backends.length + sim.index]!++;
    const timeoutMs = this.scenario.timeoutMs;
    // The client's clock started when the attempt did, queued at the proxy or not.
    if (timeoutMs !== Infinity) this.queue.push(this.#attemptStart[slot]! + timeoutMs, Kind.Timeout, slot, gen, 0);
    if (sim.failMode === FailMode.Refuse) {
      this.queue.push(now + this.scenario.connectFailureMs, Kind.Refused, slot, gen, sim.index);
    } else if (sim.busy < sim.spec.concurrency) {
      this.#startService(sim, slot, gen);
    } else if (sim.queueLength >= sim.spec.queueLimit) {
      this.#attemptFailed(slot, Failure.Status);
    } else {
      this.#enqueue(sim, slot, gen);
    }
  }

  #proxyEnqueue(slot: number, gen: number): void {
    if (this.#proxyQueueLength === this.#proxySlots.length) {
      const n = this.#proxySlots.length;
      const slots = new Int32Array(n * 2);
      const gens = new Int32Array(n * 2);
      for (let i = 0; i < n; i++) {
        slots[i] = this.#proxySlots[(this.#proxyHead + i) % n]!;
        gens[i] = this.#proxyGens[(this.#proxyHead + i) % n]!;
      }
      this.#proxySlots = slots;
      this.#proxyGens = gens;
      this.#proxyHead = 0;
    }
    const at = (this.#proxyHead + this.#proxyQueueLength) % this.#proxySlots.length;
    this.#proxySlots[at] = slot;
    this.#proxyGens[at] = gen;
    this.#proxyQueueLength++;
    if (this.#proxyQueueLength > this.#maxProxyQueue) this.#maxProxyQueue = this.#proxyQueueLength;
  }

  /** A connection slot may have freed: give it to the oldest request waiting at the proxy. */
  #drainProxyQueue(): void {
    while (this.#proxyQueueLength > 0) {
      const slot = this.#proxySlots[this.#proxyHead]!;
      const gen = this.#proxyGens[this.#proxyHead]!;
      if (this.#gen[slot] === gen) {
        const lease = this.#acquire(slot);
        if (lease === undefined) {
          // Nothing eligible any more: the waiting requests have no backend to wait for.
          if (this.lb.tier === 'none') {
            this.#proxyShift();
            this.#complete(slot, Failure.NoBackend);
            continue;
          }
          return;
        }
        this.#proxyShift();
        this.#begin(slot, lease);
      } else {
        this.#proxyShift();
      }
    }
  }

  #proxyShift(): void {
    this.#proxyHead = (this.#proxyHead + 1) % this.#proxySlots.length;
    this.#proxyQueueLength--;
  }

  #startService(sim: SimBackend, slot: number, gen: number): void {
    sim.busy++;
    const now = this.clock.nowMs;
    if (this.#measured[slot] === 1) this.wait.record(now - this.#attemptStart[slot]!);
    this.queue.push(now + sim.sample() * sim.slowFactor, Kind.Finish, slot, gen, sim.index);
  }

  #enqueue(sim: SimBackend, slot: number, gen: number): void {
    if (sim.queueLength === sim.queueSlots.length) {
      const n = sim.queueSlots.length;
      const slots = new Int32Array(n * 2);
      const gens = new Int32Array(n * 2);
      for (let i = 0; i < n; i++) {
        slots[i] = sim.queueSlots[(sim.queueHead + i) % n]!;
        gens[i] = sim.queueGens[(sim.queueHead + i) % n]!;
      }
      sim.queueSlots = slots;
      sim.queueGens = gens;
      sim.queueHead = 0;
    }
    const at = (sim.queueHead + sim.queueLength) % sim.queueSlots.length;
    sim.queueSlots[at] = slot;
    sim.queueGens[at] = gen;
    sim.queueLength++;
    if (sim.queueLength > sim.maxQueue) sim.maxQueue = sim.queueLength;
  }

  /** A worker is free: give it the oldest waiting attempt whose client has not given up. */
  #startNext(sim: SimBackend): void {
    while (sim.queueLength > 0 && sim.busy < sim.spec.concurrency) {
      const slot = sim.queueSlots[sim.queueHead]!;
      const gen = sim.queueGens[sim.queueHead]!;
      sim.queueHead = (sim.queueHead + 1) % sim.queueSlots.length;
      sim.queueLength--;
      if (this.#gen[slot] === gen) this.#startService(sim, slot, gen);
    }
  }

  #onFinish(slot: number, gen: number, index: number): void {
    const sim = this.backends[index]!;
    sim.busy--;
    this.#startNext(sim);
    // The client gave up on this attempt (timeout): the backend did the work for nobody.
    if (this.#gen[slot] !== gen) return;
    if (sim.failMode === FailMode.Error || (sim.spec.errorRate > 0 && sim.errorRandom() < sim.spec.errorRate)) {
      this.#attemptFailed(slot, Failure.Status, ERROR_500);
    } else {
      this.#leases[slot]!.release(OUTCOMES[0]);
      this.#complete(slot, Failure.None);
    }
    if (this.#proxyQueueLength > 0) this.#drainProxyQueue();
  }

  #onTimeout(slot: number, gen: number): void {
    if (this.#gen[slot] !== gen) return;
    this.#attemptFailed(slot, Failure.Timeout);
  }

  #attemptFailed(slot: number, failure: Failure, outcome: Outcome = OUTCOMES[failure]!): void {
    const lease = this.#leases[slot];
    // Orphan whatever the backend or the proxy's queue still holds of this attempt.
    this.#gen[slot] = (this.#gen[slot]! + 1) | 0;
    if (lease === undefined) {
      // Timed out in the proxy's queue: no backend was tried.
      this.#complete(slot, failure);
      return;
    }
    this.#leases[slot] = undefined;
    lease.release(outcome);
    if (this.#proxyQueueLength > 0) this.#drainProxyQueue();
    this.#byBackend.get(lease.backend)!.failures++;
    const retries = this.scenario.retries;
    const attempt = this.#attempt[slot]!;
    if (retries !== undefined && attempt < retries.attempts && this.#retryOn[failure] === true) {
      const budget = Math.max(retries.minRetries, (retries.budgetPercent / 100) * this.#active);
      if (attempt > 0 || this.#activeRetries < budget) {
        if (attempt === 0) this.#activeRetries++;
        this.#attempt[slot] = attempt + 1;
        (this.#excludes[slot] ??= []).push(lease.backend);
        if (this.#measured[slot] === 1) {
          this.#retries++;
          this.#bucketRetries[this.#bucketOf(this.#arrival[slot]!)]!++;
        }
        this.#dispatch(slot);
        return;
      }
      if (this.#measured[slot] === 1) this.#retriesRefused++;
    }
    this.#complete(slot, failure);
  }

  #complete(slot: number, failure: Failure): void {
    const now = this.clock.nowMs;
    if (this.#measured[slot] === 1) {
      const latency = now - this.#arrival[slot]!;
      const bucket = this.#bucketOf(this.#arrival[slot]!);
      this.latency.record(latency);
      this.#bucketLatency[bucket]!.record(latency);
      this.#bucketRequests[bucket]!++;
      if (failure === Failure.None) this.#ok++;
      else {
        this.#failures[failure]!++;
        this.#bucketErrors[bucket]!++;
      }
    }
    if (this.#attempt[slot]! > 0) this.#activeRetries--;
    this.#active--;
    this.#lastFinish = now;
    const client = this.#client[slot]!;
    if (client >= 0) {
      const next = now + this.#think!();
      if (next < this.scenario.durationMs) this.queue.push(next, Kind.Client, client, 0, 0);
    }
    this.#release(slot);
  }

  // ---- changes and samples

  #onChange(index: number): void {
    const change = this.scenario.changes[index]!;
    const sim = this.backends[change.backend]!;
    const id = sim.spec.id;
    const lb = this.lb;
    if (change.label !== '') this.#event('change', id, change.label);
    const member = lb.get(id) !== undefined;
    switch (change.action) {
      case 'slow':
        sim.slowFactor = change.factor;
        break;
      case 'fail':
        sim.failMode = change.mode === 'error' ? FailMode.Error : FailMode.Refuse;
        break;
      case 'recover':
        sim.failMode = FailMode.None;
        sim.slowFactor = 1;
        break;
      case 'add':
        if (!member) lb.add(backendSpec(sim));
        break;
      case 'remove':
        if (member) void lb.remove(id);
        break;
      case 'drain':
        if (member) lb.drain(id);
        break;
      case 'maintain':
        if (member) lb.maintain(id);
        break;
      case 'ready':
        if (member) lb.ready(id);
        break;
      case 'weight':
        sim.weight = change.weight;
        if (member) lb.setWeight(id, change.weight);
        break;
    }
    if (this.#proxyQueueLength > 0) this.#drainProxyQueue();
  }

  #pushSample(bucket: number): void {
    if (bucket < this.#buckets) this.queue.push(Math.min(this.scenario.durationMs, (bucket + 1) * this.scenario.sampleIntervalMs), Kind.Sample, bucket, 0, 0);
  }

  #onSample(bucket: number): void {
    const n = this.backends.length;
    let queued = 0;
    for (let i = 0; i < n; i++) {
      const sim = this.backends[i]!;
      queued += sim.queueLength;
      this.#inflightOverTime[bucket * n + i] = sim.backend?.inflight ?? 0;
    }
    this.#bucketQueued[bucket] = queued;
  }

  #bucketOf(time: number): number {
    const b = Math.floor(time / this.scenario.sampleIntervalMs);
    return b < this.#buckets ? b : this.#buckets - 1;
  }

  // ---- slots

  #allocate(): number {
    if (this.#freeCount === 0) this.#grow(this.#capacity * 2);
    return this.#free[--this.#freeCount]!;
  }

  #release(slot: number): void {
    this.#leases[slot] = undefined;
    this.#excludes[slot] = undefined;
    this.#gen[slot] = (this.#gen[slot]! + 1) | 0;
    this.#free[this.#freeCount++] = slot;
  }

  #grow(capacity: number): void {
    const old = this.#capacity;
    const f64 = (a: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> => {
      const next = new Float64Array(capacity);
      next.set(a);
      return next;
    };
    const i32 = (a: Int32Array<ArrayBuffer>): Int32Array<ArrayBuffer> => {
      const next = new Int32Array(capacity);
      next.set(a);
      return next;
    };
    this.#arrival = f64(this.#arrival);
    this.#attemptStart = f64(this.#attemptStart);
    this.#gen = i32(this.#gen);
    this.#attempt = i32(this.#attempt);
    this.#keyIndex = i32(this.#keyIndex);
    this.#client = i32(this.#client);
    this.#pinned = i32(this.#pinned);
    const measured = new Uint8Array(capacity);
    measured.set(this.#measured);
    this.#measured = measured;
    for (let i = old; i < capacity; i++) {
      this.#leases.push(undefined);
      this.#excludes.push(undefined);
    }
    const free = new Int32Array(capacity);
    free.set(this.#free.subarray(0, this.#freeCount));
    // Lowest slots on top of the stack, so slot use does not depend on growth history.
    let count = this.#freeCount;
    for (let i = capacity - 1; i >= old; i--) free[count++] = i;
    this.#free = free;
    this.#freeCount = count;
    this.#capacity = capacity;
  }

  // ---- result

  result(): SimulationResult {
    this.lb.close();
    const n = this.backends.length;
    const totalAttempts = this.backends.reduce((sum, b) => sum + b.requests, 0);
    const intervalMs = this.scenario.sampleIntervalMs;
    const h = this.latency;
    const failures = this.#failures;
    const measured = h.count;
    return {
      scenario: this.scenario.name,
      policy: this.policyName,
      seed: this.scenario.seed,
      simulatedMs: this.#lastFinish,
      requests: measured,
      ok: this.#ok,
      failed: measured - this.#ok,
      failures: {
        connect: failures[Failure.Connect]!,
        timeout: failures[Failure.Timeout]!,
        status: failures[Failure.Status]!,
        noBackend: failures[Failure.NoBackend]!,
      },
      retries: this.#retries,
      retriesRefusedByBudget: this.#retriesRefused,
      ejections: this.#ejections,
      meanMs: h.mean,
      p50: h.quantile(0.5),
      p90: h.quantile(0.9),
      p99: h.quantile(0.99),
      p999: h.quantile(0.999),
      maxMs: h.count === 0 ? 0 : h.max,
      cdf: h.cdf(200),
      queueing: {
        meanWaitMs: this.wait.mean,
        p99WaitMs: this.wait.quantile(0.99),
        maxQueueLength: Math.max(0, ...this.backends.map((b) => b.maxQueue)),
        maxProxyQueueLength: this.#maxProxyQueue,
      },
      timeline: {
        intervalMs,
        startMs: Array.from({ length: this.#buckets }, (_, k) => k * intervalMs),
        requests: Array.from(this.#bucketRequests),
        errors: Array.from(this.#bucketErrors),
        retries: Array.from(this.#bucketRetries),
        p50: this.#bucketLatency.map((b) => b.quantile(0.5)),
        p99: this.#bucketLatency.map((b) => b.quantile(0.99)),
        queued: Array.from(this.#bucketQueued),
      },
      backends: this.backends.map((b) => ({
        id: b.spec.id,
        requests: b.requests,
        share: totalAttempts === 0 ? 0 : b.requests / totalAttempts,
        failures: b.failures,
        ejections: b.ejections,
        maxQueue: b.maxQueue,
        requestsOverTime: Array.from({ length: this.#buckets }, (_, k) => this.#dispatchOverTime[k * n + b.index]!),
        inflightOverTime: Array.from({ length: this.#buckets }, (_, k) => this.#inflightOverTime[k * n + b.index]!),
      })),
      events: this.events,
      eventsDropped: this.#eventsDropped,
    };
  }
}

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000;
}

/** The address a simulated backend is given: unique, valid, and never dialled. */
function simAddress(index: number): string {
  return `10.${(index >> 16) & 255}.${(index >> 8) & 255}.${index & 255}:8080`;
}

function backendSpec(sim: SimBackend): { id: string; address: string; weight: number; backup: boolean; zone?: string; maxConnections?: number } {
  const spec: { id: string; address: string; weight: number; backup: boolean; zone?: string; maxConnections?: number } = {
    id: sim.spec.id,
    address: simAddress(sim.index),
    weight: sim.weight,
    backup: sim.spec.backup,
  };
  if (sim.spec.maxConnections !== Infinity) spec.maxConnections = sim.spec.maxConnections;
  if (sim.spec.zone !== undefined) spec.zone = sim.spec.zone;
  return spec;
}

function mapAffinityTable(): AffinityTable {
  const map = new Map<string, string>();
  return { get: (key) => map.get(key), set: (key, id) => void map.set(key, id) };
}

function buildBalancer(policy: Policy, random: Random, clock: Clock): Balancer {
  if (typeof policy === 'string') {
    try {
      return createBalancer(policy, { random, clock });
    } catch (error) {
      if (error instanceof InvalidOptionError) throw new InvalidOptionError('policy', policy, error.expected, { cause: error });
      throw error;
    }
  }
  if (typeof policy === 'function') return checkBalancer(policy({ random, clock }));
  if (typeof policy === 'object' && policy !== null) {
    if (typeof (policy as { create?: unknown }).create === 'function')
      return checkBalancer((policy as { create: (o: { random: Random; clock: Clock }) => Balancer }).create({ random, clock }));
    return checkBalancer(policy as Balancer);
  }
  throw new InvalidOptionError('policy', policy, 'must be an algorithm name, a Balancer, a factory ({ random, clock }) => Balancer, or { name, create }');
}

function checkBalancer(balancer: unknown): Balancer {
  const b = balancer as Partial<Balancer> | null;
  if (typeof b !== 'object' || b === null || typeof b.pick !== 'function' || typeof b.update !== 'function' || typeof b.name !== 'string') {
    throw new InvalidOptionError('policy', balancer, 'must give a Balancer (name, update(backends), pick(key, attempt))');
  }
  return b as Balancer;
}

/**
 * Run `scenario` (validated first; see `Scenario`) with `policy` and return the statistics. Pure and
 * deterministic: the same scenario and policy give the same result, bit for bit. Synchronous; a
 * scenario with active health checks needs `simulateAsync` (probes answer through promises).
 *
 * ```ts
 * const r = simulate(scenario, 'peak-ewma');
 * r.p99; r.backends[0].share; r.timeline.p99;
 * ```
 */
export function simulate(scenario: Scenario | NormalizedScenario, policy: Policy = 'p2c'): SimulationResult {
  const sim = new Simulation(normalizeOnce(scenario), policy, { async: false });
  sim.step(false);
  return sim.result();
}

/** `simulate`, for scenarios with active health checks too: lets each probe's promise settle in turn. */
export async function simulateAsync(scenario: Scenario | NormalizedScenario, policy: Policy = 'p2c'): Promise<SimulationResult> {
  const sim = new Simulation(normalizeOnce(scenario), policy, { async: true });
  while (!sim.step(true)) {
    sim.probeStarted = false;
    // A probe's result reaches the load balancer a few microtask turns after it resolves.
    for (let i = 0; i < 8; i++) await Promise.resolve();
  }
  return sim.result();
}

const normalized = new WeakSet<object>();

function normalizeOnce(scenario: Scenario | NormalizedScenario): NormalizedScenario {
  if (typeof scenario === 'object' && scenario !== null && normalized.has(scenario)) return scenario as NormalizedScenario;
  const result = normalizeScenario(scenario);
  normalized.add(result);
  return result;
}

/** Run one scenario under several policies (validated once), in order. */
export function compare(scenario: Scenario | NormalizedScenario, policies: readonly Policy[]): SimulationResult[] {
  const normalizedScenario = normalizeOnce(scenario);
  return policies.map((policy) => simulate(normalizedScenario, policy));
}

/** `compare` with `simulateAsync` (scenarios with active health checks). */
export async function compareAsync(scenario: Scenario | NormalizedScenario, policies: readonly Policy[]): Promise<SimulationResult[]> {
  const normalizedScenario = normalizeOnce(scenario);
  const results: SimulationResult[] = [];
  for (const policy of policies) results.push(await simulateAsync(normalizedScenario, policy));
  return results;
}
