/**
 * Traffic counters per pool and per backend — what HAProxy's stats page and its Prometheus exporter
 * show beyond the load balancer's own snapshot: sessions (current / max / limit) and session rates,
 * bytes, denied requests, request / connection / response errors, retries and redispatches,
 * responses by status class, the queue, request durations, the last health check, the time since the
 * last state change and the total downtime — plus a short per-second history for the page's charts.
 *
 * Both engines (`createProxy` and `createProxyServer`) record through `ProxyEngine` (proxy/proxy.ts),
 * four calls per request in all, each a few field increments: no allocation per request, no timer.
 * The stats surfaces read the same objects. They meet through a registry keyed by the load balancer
 * (a `WeakMap` kept on `globalThis` under a `Symbol.for` key, so two bundled copies of this module —
 * an ESM and a CJS entry, say — still share one set of counters per load balancer).
 *
 * Every counter is plain data: `toJSON()` gives numbers, arrays of bucket counts over the fixed
 * `DURATION_BOUNDS_MS` and per-second slots, so the counters of several processes (workers) add up
 * field by field; quantiles are computed where they are shown, from the summed buckets.
 *
 * Memory is bounded: per pool one ring of `SERIES_SECONDS` one-second slots (requests, errors and a
 * 20-bucket latency histogram each, about 27 KB, allocated at the pool's first request), and per
 * backend a record created on its first request or event (about 70 numbers), dropped when the
 * backend is removed.
 *
 * Rates follow HAProxy's `freq_ctr`: events in the current second plus the previous second's count
 * weighted by the part of that second still in the one-second window.
 */
import type { Backend, LoadBalancer, Outcome } from '@fulcrum/core';

/**
 * Upper bounds of the duration histogram buckets, in ms (the last bucket, above 30 s, is open).
 * Dense where web latencies live (1–1000 ms, ×1.5–2 apart: a quantile read from them is within about
 * a third of the truth) and few enough that a per-second slot stays small.
 */
export const DURATION_BOUNDS_MS: readonly number[] = Object.freeze([1, 2, 5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000, 10000, 30000]);
const BUCKETS = DURATION_BOUNDS_MS.length + 1;
/** Seconds of history kept per pool for the charts (five minutes). */
export const SERIES_SECONDS = 300;

function scanBucket(ms: number): number {
  const bounds = DURATION_BOUNDS_MS;
  for (let i = 0; i < bounds.length; i++) if (ms <= (bounds[i] as number)) return i;
  return bounds.length;
}

/**
 * The bucket of every whole ms up to 1 s. The bounds are whole ms, so `ms ≤ bound` exactly when
 * `⌈ms⌉ ≤ bound`: one table read instead of up to 19 comparisons for the durations most requests have.
 */
const SMALL_BUCKETS = Uint8Array.from({ length: 1001 }, (_, ms) => scanBucket(ms));

/** Index of the histogram bucket holding `ms`. */
export function bucketOf(ms: number): number {
  return ms <= 1000 ? (SMALL_BUCKETS[ms > 0 ? Math.ceil(ms) : 0] as number) : scanBucket(ms);
}

/**
 * The `q` quantile (0..1) of a histogram over `DURATION_BOUNDS_MS`, interpolated linearly inside its
 * bucket (as Prometheus' `histogram_quantile` does); 0 for an empty histogram. The open last bucket
 * answers its lower bound.
 */
export function quantileOf(counts: ArrayLike<number>, q: number): number {
  let total = 0;
  for (let i = 0; i < counts.length; i++) total += counts[i] as number;
  if (total === 0) return 0;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    const count = counts[i] as number;
    if (count > 0 && seen + count >= rank) {
      const lower = i === 0 ? 0 : (DURATION_BOUNDS_MS[i - 1] as number);
      if (i >= DURATION_BOUNDS_MS.length) return lower;
      const upper = DURATION_BOUNDS_MS[i] as number;
      return lower + ((upper - lower) * (rank - seen)) / count;
    }
    seen += count;
  }
  return DURATION_BOUNDS_MS[DURATION_BOUNDS_MS.length - 1] as number;
}

/**
 * HAProxy's `freq_ctr`: a per-second event rate without a timer. `hit` is two compares and an
 * increment; the highest rate is settled when a second ends (a second's full count is its rate at
 * the end of it), and the second in progress counts towards it as far as it has got.
 */
export class RateCounter {
  #second = -1;
  #current = 0;
  #previous = 0;
  #max = 0;

  hit(nowMs: number): void {
    const second = Math.floor(nowMs / 1000);
    if (second !== this.#second) this.#roll(second);
    this.#current++;
  }

  #roll(second: number): void {
    if (this.#current > this.#max) this.#max = this.#current;
    this.#previous = second === this.#second + 1 ? this.#current : 0;
    this.#current = 0;
    this.#second = second;
  }

  /** The highest rate seen, events per second. */
  get max(): number {
    return this.#current > this.#max ? this.#current : this.#max;
  }

  /** Events per second over the last second (the current second plus a share of the previous one). */
  rate(nowMs: number): number {
    const second = Math.floor(nowMs / 1000);
    const left = 1 - (nowMs - second * 1000) / 1000;
    if (second === this.#second) return Math.round(this.#current + this.#previous * left);
    if (second === this.#second + 1) return Math.round(this.#current * left);
    return 0;
  }
}

/** Responses by status class: index 0 = 1xx … 4 = 5xx, 5 = anything else (a status the proxy could not read). */
function statusClass(status: number): number {
  const hundreds = Math.floor(status / 100);
  return hundreds >= 1 && hundreds <= 5 ? hundreds - 1 : 5;
}

/** Response counts by class, as JSON. */
export interface ResponseClasses {
  '1xx': number;
  '2xx': number;
  '3xx': number;
  '4xx': number;
  '5xx': number;
  other: number;
}

function classesJson(counts: readonly number[]): ResponseClasses {
  return { '1xx': counts[0]!, '2xx': counts[1]!, '3xx': counts[2]!, '4xx': counts[3]!, '5xx': counts[4]!, other: counts[5]! };
}

/** A duration histogram over `DURATION_BOUNDS_MS`, as JSON: bucket counts (not cumulative), sum and count. */
export interface HistogramJson {
  counts: number[];
  sumMs: number;
  count: number;
}

class Histogram {
  readonly counts: number[] = new Array<number>(BUCKETS).fill(0);
  sumMs = 0;
  count = 0;

  observe(ms: number): void {
    this.counts[bucketOf(ms)]!++;
    this.sumMs += ms;
    this.count++;
  }

  toJSON(): HistogramJson {
    return { counts: this.counts.slice(), sumMs: this.sumMs, count: this.count };
  }
}

/** The last active health check of a backend. */
export interface LastCheck {
  ok: boolean;
  /** When it ended, on the load balancer's clock (ms). */
  at: number;
  durationMs: number;
  /** What the probe said (status line, error), if anything. */
  detail?: string;
}

/** One backend's counters, as JSON. */
export interface BackendTrafficJson {
  /** Concurrent requests: the highest seen (the current number is the snapshot's `inflight`). */
  sessionsMax: number;
  /** Attempts per second as they end (current and highest). */
  rate: number;
  rateMax: number;
  /** Request body bytes sent to the backend / response body bytes relayed from it. */
  bytesIn: number;
  bytesOut: number;
  /** Attempts that could not connect, and were not tried again (HAProxy's `econ`). */
  connectionErrors: number;
  /** Attempts whose response failed (reset, timeout, cut short), and were not tried again (`eresp`). */
  responseErrors: number;
  /** Failed attempts on this backend tried again on it (`wretr`) / on another backend (`wredis`). */
  retries: number;
  redispatches: number;
  /** Its answers, by status class. */
  responses: ResponseClasses;
  /** Time to the response head of each answered attempt. */
  duration: HistogramJson;
  checksPassed: number;
  checksFailed: number;
  lastCheck: LastCheck | null;
  /** Times outlier detection ejected it. */
  ejections: number;
  /** When its state last changed (or when counting began), load-balancer clock ms. */
  lastChangeAt: number;
  /** Time spent `down`, ms, the current outage included. */
  downtimeMs: number;
  /** Connections to the backend open now (both engines' keep-alive pools), and opened in all. */
  connections: number;
  connectionsOpened: number;
}

/** The counters of one backend; written by the engines and the load balancer's events. */
export class BackendTraffic {
  sessionsMax = 0;
  readonly rate = new RateCounter();
  bytesIn = 0;
  bytesOut = 0;
  connectionErrors = 0;
  responseErrors = 0;
  retries = 0;
  redispatches = 0;
  readonly responses: number[] = [0, 0, 0, 0, 0, 0];
  readonly duration = new Histogram();
  checksPassed = 0;
  checksFailed = 0;
  lastCheck: LastCheck | null = null;
  ejections = 0;
  lastChangeAt: number;
  downtimeMs = 0;
  /** When the current outage began; 0 when the backend is not down. */
  downSince = 0;
  readonly #backend: Backend;

  constructor(backend: Backend, since: number, down: boolean) {
    this.#backend = backend;
    this.lastChangeAt = since;
    if (down) this.downSince = since;
  }

  /** Its backend's connections (open now, opened in all). */
  get connections(): ConnectionCount {
    return connectionRegistry.get(this.#backend) ?? NO_CONNECTIONS;
  }

  toJSON(now: number): BackendTrafficJson {
    const connections = this.connections;
    return {
      sessionsMax: this.sessionsMax,
      rate: this.rate.rate(now),
      rateMax: this.rate.max,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      connectionErrors: this.connectionErrors,
      responseErrors: this.responseErrors,
      retries: this.retries,
      redispatches: this.redispatches,
      responses: classesJson(this.responses),
      duration: this.duration.toJSON(),
      checksPassed: this.checksPassed,
      checksFailed: this.checksFailed,
      lastCheck: this.lastCheck,
      ejections: this.ejections,
      lastChangeAt: this.lastChangeAt,
      downtimeMs: this.downtimeMs + (this.downSince > 0 ? Math.max(0, now - this.downSince) : 0),
      connections: connections.open,
      connectionsOpened: connections.opened,
    };
  }
}

/** The per-second history of a pool, as JSON: slot `i` is second `end - (length - 1) + i`. */
export interface SeriesJson {
  /** Slot width, ms (1000). */
  stepMs: number;
  /** The last slot's start, load-balancer clock ms. */
  end: number;
  /** Requests that ended in each second. */
  requests: number[];
  /** Of them, the ones that failed (a 5xx to the client, or a response cut short). */
  errors: number[];
  /** Per second: the total-time histogram of the requests answered, or 0 when there was none. */
  latency: (number[] | 0)[];
}

/** One pool's counters, as JSON. */
export interface PoolTrafficJson {
  /** The load balancer's clock when this was read, ms. */
  at: number;
  /** When counting began. */
  since: number;
  /** Requests in progress (queued or with a backend), the most at once. */
  sessions: number;
  sessionsMax: number;
  /** Requests per second as they arrive (current and highest). */
  rate: number;
  rateMax: number;
  /** Requests ended in all. */
  requests: number;
  /** What the client got, by status class (the proxy's own 5xx answers included). */
  responses: ResponseClasses;
  /** Refused by the admission check (rate limits and the like). */
  denied: number;
  /** Malformed requests (400). */
  requestErrors: number;
  /** Requests the client abandoned before the response was complete. */
  clientAborts: number;
  /** Requests that failed: a 5xx to the client, or a response cut short. */
  errors: number;
  bytesIn: number;
  bytesOut: number;
  /** Requests waiting for a backend slot now, the most at once, and how long they waited. */
  queue: number;
  queueMax: number;
  queueWait: HistogramJson;
  /** Total time of each answered request (arrival to the response's end). */
  duration: HistogramJson;
  /** Sums over the pool's backends. */
  retries: number;
  redispatches: number;
  connectionErrors: number;
  responseErrors: number;
  /** Counters per backend id (only backends that have seen traffic or an event). */
  backends: Record<string, BackendTrafficJson>;
  series: SeriesJson;
}

const EMPTY_SECONDS = new Float64Array(0);
const EMPTY_COUNTS = new Uint32Array(0);

/** How a request ended, as the engines report it (the `Termination` of the access log). */
export type EndKind = string;

/** The counters of one pool (load balancer). */
export class PoolTraffic {
  readonly since: number;
  sessions = 0;
  sessionsMax = 0;
  readonly rate = new RateCounter();
  requests = 0;
  readonly responses: number[] = [0, 0, 0, 0, 0, 0];
  denied = 0;
  requestErrors = 0;
  clientAborts = 0;
  errors = 0;
  bytesIn = 0;
  bytesOut = 0;
  queue = 0;
  queueMax = 0;
  readonly queueWait = new Histogram();
  readonly duration = new Histogram();
  /** Counters of backends that left the pool, so the pool's sums do not go backwards. */
  readonly #retired = { retries: 0, redispatches: 0, connectionErrors: 0, responseErrors: 0 };
  readonly #backends = new Map<Backend, BackendTraffic>();
  readonly #lb: LoadBalancer;
  // The chart history: a ring of one-second slots, each stamped with the second it holds.
  // Allocated at the pool's first request: a router's idle pools cost nothing.
  #slotSecond = EMPTY_SECONDS;
  #slotRequests = EMPTY_COUNTS;
  #slotErrors = EMPTY_COUNTS;
  #slotLatency = EMPTY_COUNTS;
  #slotAnswered = EMPTY_COUNTS;

  constructor(lb: LoadBalancer) {
    this.#lb = lb;
    this.since = lb.clock.now();
    if (typeof lb.on === 'function') this.#listen(lb);
  }

  /** The record of `backend`, created on first use. */
  backend(backend: Backend): BackendTraffic {
    let traffic = this.#backends.get(backend);
    if (traffic === undefined) {
      traffic = new BackendTraffic(backend, this.since, backend.state === 'down');
      this.#backends.set(backend, traffic);
    }
    return traffic;
  }

  /** The record of `backend` if it has one (no record is created). */
  peek(backend: Backend): BackendTraffic | undefined {
    return this.#backends.get(backend);
  }

  // ---- written by the engines (through ProxyEngine) ---------------------------------------------

  /** A request of this pool arrived. */
  started(): void {
    const sessions = ++this.sessions;
    if (sessions > this.sessionsMax) this.sessionsMax = sessions;
    this.rate.hit(this.#lb.clock.now());
  }

  /**
   * An attempt that began at `startedAt` (its lease's, load-balancer clock ms) ended with `outcome`;
   * `inflight` counts it (the backend's concurrency just before it ended); `previous` is the backend
   * of the failed attempt it retried, if it was a retry. The rate counts attempts by the second
   * they began, as HAProxy counts sessions.
   */
  attemptEnded(backend: Backend, outcome: Outcome, inflight: number, startedAt: number, previous: Backend | undefined): void {
    const traffic = this.backend(backend);
    if (previous !== undefined) {
      // A retry of an attempt that failed on `previous`: on the same backend (HAProxy's `wretr`)
      // or on another one (`wredis`), counted against the one that failed.
      const failed = previous === backend ? traffic : this.backend(previous);
      if (previous === backend) failed.retries++;
      else failed.redispatches++;
    }
    if (inflight > traffic.sessionsMax) traffic.sessionsMax = inflight;
    traffic.rate.hit(startedAt);
    const error = outcome.error;
    if (error === 'connect') traffic.connectionErrors++;
    else if (error === 'reset' || error === 'timeout') traffic.responseErrors++;
    const status = outcome.status;
    if (status !== undefined && status > 0) {
      traffic.responses[statusClass(status)]!++;
      if (outcome.durationMs !== undefined) traffic.duration.observe(outcome.durationMs);
    }
  }

  /**
   * A failed attempt on `backend` (`kind`: why) is to be tried again. An error a retry recovers from
   * is not the request's error: like HAProxy's `econ` and `eresp`, the connection and response
   * errors count only the attempts nothing followed (every failed attempt stays in the load
   * balancer's `failures`). Both engines release a failed attempt before they ask whether to retry
   * it, so the error is taken back here.
   */
  recovered(backend: Backend, kind: string): void {
    const traffic = this.backend(backend);
    if (kind === 'connect') {
      if (traffic.connectionErrors > 0) traffic.connectionErrors--;
    } else if (kind === 'reset' || kind === 'timeout') {
      if (traffic.responseErrors > 0) traffic.responseErrors--;
    }
  }

  /** A request entered (+1) or left (−1) the wait queue. */
  queued(delta: number): void {
    const queue = (this.queue += delta);
    if (queue > this.queueMax) this.queueMax = queue;
  }

  /**
   * A request of this pool ended. `status` is what the client got (0 when nothing complete was
   * sent); `backend` the last one tried, if any; times in ms.
   */
  ended(backend: Backend | undefined, termination: EndKind, status: number, bytesIn: number, bytesOut: number, totalMs: number, queueMs: number): void {
    this.sessions--;
    this.requests++;
    this.bytesIn += bytesIn;
    this.bytesOut += bytesOut;
    if (backend !== undefined && termination !== 'denied') {
      const traffic = this.backend(backend);
      traffic.bytesIn += bytesIn;
      traffic.bytesOut += bytesOut;
    }
    if (queueMs > 0) this.queueWait.observe(queueMs);
    const failed = status >= 500 || termination === 'upstream-truncated';
    if (failed) this.errors++;
    if (termination === 'denied') this.denied++;
    else if (termination === 'bad-request') this.requestErrors++;
    else if (termination === 'client-aborted') this.clientAborts++;
    if (status > 0 && termination !== 'client-aborted' && termination !== 'upstream-truncated') this.responses[statusClass(status)]!++;
    const answered = termination === 'ok';
    if (answered) this.duration.observe(totalMs);
    // The chart's slot for this second.
    if (this.#slotSecond.length === 0) this.#allocateSlots();
    const second = Math.floor(this.#lb.clock.now() / 1000);
    const slot = second % SERIES_SECONDS;
    if (this.#slotSecond[slot] !== second) this.#resetSlot(slot, second);
    this.#slotRequests[slot]!++;
    if (failed) this.#slotErrors[slot]!++;
    if (answered) {
      this.#slotAnswered[slot]!++;
      this.#slotLatency[slot * BUCKETS + bucketOf(totalMs)]!++;
    }
  }

  #allocateSlots(): void {
    this.#slotSecond = new Float64Array(SERIES_SECONDS).fill(-1);
    this.#slotRequests = new Uint32Array(SERIES_SECONDS);
    this.#slotErrors = new Uint32Array(SERIES_SECONDS);
    this.#slotLatency = new Uint32Array(SERIES_SECONDS * BUCKETS);
    this.#slotAnswered = new Uint32Array(SERIES_SECONDS);
  }

  #resetSlot(slot: number, second: number): void {
    this.#slotSecond[slot] = second;
    this.#slotRequests[slot] = 0;
    this.#slotErrors[slot] = 0;
    this.#slotAnswered[slot] = 0;
    this.#slotLatency.fill(0, slot * BUCKETS, (slot + 1) * BUCKETS);
  }

  // ---- read by the stats surfaces ---------------------------------------------------------------

  /** Every backend record, with its backend. */
  entries(): IterableIterator<[Backend, BackendTraffic]> {
    return this.#backends.entries();
  }

  /** Sums over the backends (the pool row's retries, redispatches and errors). */
  sums(): { retries: number; redispatches: number; connectionErrors: number; responseErrors: number } {
    const sums = { ...this.#retired };
    for (const traffic of this.#backends.values()) {
      sums.retries += traffic.retries;
      sums.redispatches += traffic.redispatches;
      sums.connectionErrors += traffic.connectionErrors;
      sums.responseErrors += traffic.responseErrors;
    }
    return sums;
  }

  /** The per-second history ending at `now`'s second. */
  series(now: number): SeriesJson {
    const last = Math.floor(now / 1000);
    const requests: number[] = [];
    const errors: number[] = [];
    const latency: (number[] | 0)[] = [];
    for (let second = last - SERIES_SECONDS + 1; second <= last; second++) {
      const slot = ((second % SERIES_SECONDS) + SERIES_SECONDS) % SERIES_SECONDS;
      if (second < 0 || this.#slotSecond.length === 0 || this.#slotSecond[slot] !== second) {
        requests.push(0);
        errors.push(0);
        latency.push(0);
        continue;
      }
      requests.push(this.#slotRequests[slot]!);
      errors.push(this.#slotErrors[slot]!);
      latency.push(this.#slotAnswered[slot]! > 0 ? Array.from(this.#slotLatency.subarray(slot * BUCKETS, (slot + 1) * BUCKETS)) : 0);
    }
    return { stepMs: 1000, end: last * 1000, requests, errors, latency };
  }

  /** Everything but the per-backend records, as JSON (`backends` empty). */
  headJson(now: number): PoolTrafficJson {
    return {
      at: now,
      since: this.since,
      sessions: this.sessions,
      sessionsMax: this.sessionsMax,
      rate: this.rate.rate(now),
      rateMax: this.rate.max,
      requests: this.requests,
      responses: classesJson(this.responses),
      denied: this.denied,
      requestErrors: this.requestErrors,
      clientAborts: this.clientAborts,
      errors: this.errors,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      queue: this.queue,
      queueMax: this.queueMax,
      queueWait: this.queueWait.toJSON(),
      duration: this.duration.toJSON(),
      ...this.sums(),
      series: this.series(now),
      backends: {},
    };
  }

  /** The load balancer's clock. */
  now(): number {
    return this.#lb.clock.now();
  }

  /** The whole record as JSON, read at the load balancer's `now`. */
  toJSON(): PoolTrafficJson {
    const now = this.#lb.clock.now();
    const json = this.headJson(now);
    const backends = Object.create(null) as Record<string, BackendTrafficJson>;
    for (const [backend, traffic] of this.#backends) backends[backend.id] = traffic.toJSON(now);
    json.backends = backends;
    return json;
  }

  // ---- the load balancer's events -----------------------------------------------------------------

  #listen(lb: LoadBalancer): void {
    lb.on('state', (id, from, to) => {
      const backend = lb.get(id);
      if (backend === undefined) return;
      const traffic = this.backend(backend);
      const now = lb.clock.now();
      traffic.lastChangeAt = now;
      if (to === 'down' && traffic.downSince === 0) traffic.downSince = now;
      else if (from === 'down' && to !== 'down' && traffic.downSince > 0) {
        traffic.downtimeMs += Math.max(0, now - traffic.downSince);
        traffic.downSince = 0;
      }
    });
    lb.on('ejected', (id) => {
      const backend = lb.get(id);
      if (backend !== undefined) this.backend(backend).ejections++;
    });
    lb.on('check', (id, ok, durationMs, detail) => {
      const backend = lb.get(id);
      if (backend === undefined) return;
      const traffic = this.backend(backend);
      if (ok) traffic.checksPassed++;
      else traffic.checksFailed++;
      traffic.lastCheck = detail === undefined ? { ok, at: lb.clock.now(), durationMs } : { ok, at: lb.clock.now(), durationMs, detail };
    });
    lb.on('removed', (backend) => {
      const traffic = this.#backends.get(backend);
      if (traffic === undefined) return;
      const retired = this.#retired;
      retired.retries += traffic.retries;
      retired.redispatches += traffic.redispatches;
      retired.connectionErrors += traffic.connectionErrors;
      retired.responseErrors += traffic.responseErrors;
      this.#backends.delete(backend);
    });
  }
}

/** Connections to one backend: open now, and opened in all. */
export interface ConnectionCount {
  open: number;
  opened: number;
}

const NO_CONNECTIONS: ConnectionCount = Object.freeze({ open: 0, opened: 0 });
const CONNECTIONS_KEY = Symbol.for('fulcrum.stats.connections');
const connectionRegistry: WeakMap<object, ConnectionCount> = ((globalThis as Record<symbol, unknown>)[CONNECTIONS_KEY] ??= new WeakMap()) as WeakMap<
  object,
  ConnectionCount
>;

/**
 * A connection to `backend` opened (+1) or closed (−1): the engines' keep-alive pools report here,
 * per `Backend` object (one per id for its whole life), whatever load balancer it belongs to.
 */
export function countConnection(backend: Backend, delta: 1 | -1): void {
  let count = connectionRegistry.get(backend);
  if (count === undefined) {
    count = { open: 0, opened: 0 };
    connectionRegistry.set(backend, count);
  }
  count.open += delta;
  if (delta > 0) count.opened++;
}

const REGISTRY_KEY = Symbol.for('fulcrum.stats.traffic');
const registry: WeakMap<object, PoolTraffic> = ((globalThis as Record<symbol, unknown>)[REGISTRY_KEY] ??= new WeakMap()) as WeakMap<object, PoolTraffic>;

/** The counters of `lb`, created (and subscribed to its events) on first use. */
export function trafficOf(lb: LoadBalancer): PoolTraffic {
  let traffic = registry.get(lb);
  if (traffic === undefined) {
    traffic = new PoolTraffic(lb);
    registry.set(lb, traffic);
  }
  return traffic;
}

/** The counters of `lb` when something created them. */
export function peekTraffic(lb: LoadBalancer): PoolTraffic | undefined {
  return registry.get(lb);
}

/**
 * The counters the stats surfaces show for `lb`: created on first use for a real load balancer;
 * `undefined` for a duck-typed one without the clock, `get` and events they need.
 */
export function statsTrafficOf(lb: LoadBalancer): PoolTraffic | undefined {
  const candidate = lb as Partial<LoadBalancer>;
  if (typeof candidate.clock?.now !== 'function' || typeof candidate.get !== 'function' || typeof candidate.on !== 'function') return undefined;
  return trafficOf(lb);
}

/** `toJSON()` of every pool that has counters, by pool name (a prototype-less object). */
export function trafficJson(pools: readonly { name: string; lb: LoadBalancer }[]): Record<string, PoolTrafficJson> {
  const out = Object.create(null) as Record<string, PoolTrafficJson>;
  for (const { name, lb } of pools) {
    const traffic = statsTrafficOf(lb);
    if (traffic !== undefined) out[name] = traffic.toJSON();
  }
  return out;
}

/** The text of `JSON.stringify(traffic.toJSON())`, one backend per piece. */
export function* trafficJsonPieces(traffic: PoolTraffic, now: number): Generator<string> {
  const head = JSON.stringify(traffic.headJson(now));
  // `backends` is the last key and empty: open it, and write the backends one by one.
  yield head.slice(0, -2);
  let first = true;
  for (const [backend, counters] of traffic.entries()) {
    yield `${first ? '' : ','}${JSON.stringify(backend.id)}:${JSON.stringify(counters.toJSON(now))}`;
    first = false;
  }
  yield '}}';
}
