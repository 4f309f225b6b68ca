/**
 * Prometheus metrics for load balancers, in the text exposition format 0.0.4: one sample per
 * backend (labels `pool`, `backend`) and per pool (label `pool`), each family with HELP and TYPE.
 *
 * Names follow Prometheus' conventions (base units — seconds, not the snapshot's milliseconds;
 * `_total` on counters) and what HAProxy's exporter and Envoy's stats expose for the same facts:
 * up/state, in-flight, requests, failures, latency, weight, ejection; per pool the eligible count
 * and panic mode. `fulcrum_backend_state` is one-hot over every state (the kube-state-metrics
 * pattern) so a query can count backends by state without knowing which states have members.
 * `fulcrum_backend_up` is 1 only in state `up`: a draining backend still serves its sticky clients
 * but is leaving, and alerts on "fewer than N up" should count it out.
 *
 * Counters come from the live `Backend` objects; they restart at 0 when a backend is removed and
 * re-added, which Prometheus treats as a counter reset. Label values are escaped (`\`, `"`,
 * newline) — pool names are free text, and a hostile one must not forge a sample.
 *
 * Cost: `prometheusHandler` renders a large source (over 1,000 backends) straight from the live
 * `Backend` objects — no snapshot — in chunks of about 64 KB, one per turn of the event loop, with at
 * most two such renders at once (see `stream.ts`); a 40,000-backend pool's 30 MB answer no longer
 * holds up every other request of the process while it is built. Samples of one scrape are then
 * read over a few hundred milliseconds rather than at one instant, as with any exporter that reads
 * live counters; each sample is still a value the backend really had.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Backend, BackendSnapshot, BackendState, LoadBalancerSnapshot } from '@fulcrum/core';
import { protocolStatsJson, renderProtocolFamilies } from '../h2/stats';
import { allowReadOnly, guarded, send } from './respond';
import { normalizeFrontends, normalizeStatsSource, snapshotPools } from './source';
import type { StatsFrontends, StatsPool, StatsSource } from './source';
import { SMALL_BODY_BACKENDS, normalizeStreamOptions, streamBody, type StreamOptions } from './stream';
import { DURATION_BOUNDS_MS, statsTrafficOf } from './traffic';
import type { BackendTraffic, HistogramJson, PoolTraffic, PoolTrafficJson, ResponseClasses } from './traffic';

/** The Content-Type of the text exposition format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

const STATES: readonly BackendState[] = ['up', 'down', 'draining', 'maintenance'];

interface Family<T> {
  name: string;
  type: 'gauge' | 'counter';
  help: string;
  value: (item: T) => number;
}

const BACKEND_FAMILIES: readonly Family<BackendSnapshot>[] = [
  {
    name: 'fulcrum_backend_up',
    type: 'gauge',
    help: 'Whether the backend is up (1) or down, draining or in maintenance (0).',
    value: (b) => (b.state === 'up' ? 1 : 0),
  },
  { name: 'fulcrum_backend_inflight', type: 'gauge', help: 'Requests in flight to the backend.', value: (b) => b.inflight },
  { name: 'fulcrum_backend_requests_total', type: 'counter', help: 'Requests completed by the backend.', value: (b) => b.requests },
  { name: 'fulcrum_backend_failures_total', type: 'counter', help: 'Requests to the backend that failed.', value: (b) => b.failures },
  {
    name: 'fulcrum_backend_latency_ewma_seconds',
    type: 'gauge',
    help: 'Peak-sensitive moving average of the backend latency, in seconds.',
    value: (b) => b.latencyEwma / 1000,
  },
  { name: 'fulcrum_backend_weight', type: 'gauge', help: 'Configured weight of the backend.', value: (b) => b.weight },
  {
    name: 'fulcrum_backend_effective_weight',
    type: 'gauge',
    help: 'Weight the balancer uses for new traffic, after slow start and agent percentages: 0 unless the backend is up and not ejected.',
    value: (b) => servingWeight(b),
  },
  {
    name: 'fulcrum_backend_ejected',
    type: 'gauge',
    help: 'Whether outlier detection has ejected the backend (1) or not (0).',
    value: (b) => (b.ejected ? 1 : 0),
  },
];

/** The weight new unsticky traffic sees: a draining, down, in-maintenance or ejected backend gets none. */
export function servingWeight(b: Pick<BackendSnapshot, 'state' | 'ejected' | 'effectiveWeight'>): number {
  return b.state === 'up' && !b.ejected ? b.effectiveWeight : 0;
}

const POOL_FAMILIES: readonly Family<LoadBalancerSnapshot>[] = [
  { name: 'fulcrum_pool_backends', type: 'gauge', help: 'Backends in the pool.', value: (p) => p.backends.length },
  { name: 'fulcrum_pool_eligible_backends', type: 'gauge', help: 'Backends the balancer currently chooses from.', value: (p) => p.eligible },
  {
    name: 'fulcrum_pool_panic',
    type: 'gauge',
    help: 'Whether the pool is in panic mode, spreading load over unhealthy backends (1) or not (0).',
    value: (p) => (p.tier === 'panic' ? 1 : 0),
  },
];

/**
 * A function returning current metrics for `source` in the Prometheus text format 0.0.4. The source
 * is validated here, once; each call snapshots every pool.
 *
 * ```ts
 * const metrics = prometheus({ web: lbWeb, api: lbApi });
 * metrics(); // '# HELP fulcrum_backend_up …\nfulcrum_backend_up{pool="web",backend="b1"} 1\n…'
 * ```
 */
export function prometheus(source: StatsSource, options?: { frontends?: StatsFrontends }): () => string {
  const pools = normalizeStatsSource('prometheus(source)', source);
  const frontends = normalizeProtocolOption('prometheus.options', options);
  for (const { lb } of pools) statsTrafficOf(lb);
  return () => renderPrometheus(snapshotPools(pools)) + joinPieces(trafficPieces(pools, frontends));
}

/** Options of `prometheusHandler`: the streaming bounds, and the listeners whose HTTP/2 counters to add. */
export interface PrometheusHandlerOptions extends StreamOptions {
  /** Listeners by name (`createProxyServer` servers with `http2`), or a function returning them. Default: none. */
  frontends?: StatsFrontends;
}

function normalizeProtocolOption(path: string, options: unknown): (() => Readonly<Record<string, object>>) | undefined {
  if (typeof options !== 'object' || options === null || !('frontends' in options)) return undefined;
  return normalizeFrontends(`${path}.frontends`, (options as { frontends?: unknown }).frontends);
}

/** `options` without `frontends`, for the stream options' own check. */
function streamOptionsOf(options: PrometheusHandlerOptions | undefined): StreamOptions | undefined {
  if (typeof options !== 'object' || options === null || !('frontends' in options)) return options;
  const { frontends: _frontends, ...rest } = options;
  return rest;
}

function joinPieces(pieces: Iterable<string>): string {
  let text = '';
  for (const piece of pieces) text += piece;
  return text;
}

/**
 * A `(req, res)` handler serving `prometheus(source)` (GET and HEAD; others 405). A source of more
 * than 1,000 backends is streamed in slices that yield to the event loop, `maxConcurrentRenders`
 * (default 2) at a time at most (more get 503 with `Retry-After: 1`); a reader that stalls for
 * `stallTimeoutMs` (default 30 s) is cut.
 */
export function prometheusHandler(source: StatsSource, options?: PrometheusHandlerOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const pools = normalizeStatsSource('prometheusHandler(source)', source);
  const gate = normalizeStreamOptions('prometheusHandler.options', streamOptionsOf(options));
  const frontends = normalizeProtocolOption('prometheusHandler.options', options);
  for (const { lb } of pools) statsTrafficOf(lb);
  return (req, res) =>
    guarded(req, res, () => {
      if (!allowReadOnly(req, res)) return;
      const live = liveBackends(pools);
      if (live === undefined) {
        send(req, res, 200, { 'content-type': PROMETHEUS_CONTENT_TYPE }, renderPrometheus(snapshotPools(pools)) + joinPieces(trafficPieces(pools, frontends)));
        return;
      }
      if (!gate.enter(req, res)) return;
      streamBody(req, res, 200, { 'content-type': PROMETHEUS_CONTENT_TYPE }, allPieces(live, pools, frontends), () => gate.leave(), gate.stallTimeoutMs);
    });
}

interface LivePool {
  readonly label: string;
  readonly lb: StatsPool['lb'];
  readonly backends: readonly Backend[];
}

/**
 * The pools' live backend lists when they are large enough to stream (and every pool exposes them;
 * a duck-typed custom load balancer without `backends` is rendered from its snapshot), else undefined.
 */
function liveBackends(pools: readonly StatsPool[]): LivePool[] | undefined {
  let total = 0;
  const live: LivePool[] = [];
  for (const { name, lb } of pools) {
    const backends = (lb as { backends?: unknown }).backends;
    if (!Array.isArray(backends) || typeof lb.tier !== 'string' || typeof lb.eligibleCount !== 'number') return undefined;
    total += backends.length;
    // The list is replaced, never mutated, on membership changes: this reference is a stable view.
    live.push({ label: escapeLabelValue(name), lb, backends: backends as readonly Backend[] });
  }
  return total > SMALL_BODY_BACKENDS ? live : undefined;
}

function* allPieces(
  live: readonly LivePool[],
  pools: readonly StatsPool[],
  frontends: (() => Readonly<Record<string, object>>) | undefined,
): Generator<string> {
  yield* prometheusPieces(live);
  yield* trafficPieces(pools, frontends);
}

/** What a backend family reads, filled from a live `Backend` into one reused object. */
const facts = {} as BackendSnapshot;

function readFacts(b: Backend, now: number): BackendSnapshot {
  facts.state = b.state;
  facts.inflight = b.inflight;
  facts.requests = b.requests;
  facts.failures = b.failures;
  facts.latencyEwma = b.latencyEwma;
  facts.weight = b.weight;
  facts.effectiveWeight = b.effectiveWeight;
  facts.ejected = b.isEjected(now);
  return facts;
}

/** The same text as `renderPrometheus`, piece by piece, read from the live backends. */
function* prometheusPieces(pools: readonly LivePool[]): Generator<string> {
  const clockOf = (pool: LivePool): number => pool.lb.clock?.now() ?? Date.now();
  for (const family of BACKEND_FAMILIES) {
    yield headerText(family);
    for (const pool of pools) {
      const now = clockOf(pool);
      for (const b of pool.backends) {
        yield `${family.name}{pool="${pool.label}",backend="${escapeLabelValue(b.id)}"} ${formatValue(family.value(readFacts(b, now)))}\n`;
      }
    }
    if (family.name === 'fulcrum_backend_up') {
      yield headerText(STATE_FAMILY);
      for (const pool of pools) {
        for (const b of pool.backends) {
          const labels = `pool="${pool.label}",backend="${escapeLabelValue(b.id)}"`;
          const state = b.state;
          yield `fulcrum_backend_state{${labels},state="up"} ${state === 'up' ? 1 : 0}\nfulcrum_backend_state{${labels},state="down"} ${state === 'down' ? 1 : 0}\nfulcrum_backend_state{${labels},state="draining"} ${state === 'draining' ? 1 : 0}\nfulcrum_backend_state{${labels},state="maintenance"} ${state === 'maintenance' ? 1 : 0}\n`;
        }
      }
    }
  }
  for (const family of POOL_FAMILIES) {
    yield headerText(family);
    for (const pool of pools) {
      // The three facts the pool families read, without a snapshot of every backend.
      const view = { backends: pool.backends, eligible: pool.lb.eligibleCount, tier: pool.lb.tier } as unknown as LoadBalancerSnapshot;
      yield `${family.name}{pool="${pool.label}"} ${formatValue(family.value(view))}\n`;
    }
  }
}

const STATE_FAMILY = { name: 'fulcrum_backend_state', type: 'gauge', help: 'The backend state, one-hot: 1 for its current state, 0 for the others.' } as const;

function headerText(family: { name: string; type: string; help: string }): string {
  return `# HELP ${family.name} ${escapeHelp(family.help)}\n# TYPE ${family.name} ${family.type}\n`;
}

/** Render snapshots keyed by pool name. Exposed for callers that collect snapshots themselves. */
export function renderPrometheus(pools: Readonly<Record<string, LoadBalancerSnapshot>>): string {
  const lines: string[] = [];
  const names = Object.keys(pools);
  const backendLabels = (pool: string, b: BackendSnapshot): string => `pool="${escapeLabelValue(pool)}",backend="${escapeLabelValue(b.id)}"`;

  for (const family of BACKEND_FAMILIES) {
    header(lines, family);
    for (const pool of names) {
      for (const b of (pools[pool] as LoadBalancerSnapshot).backends) {
        lines.push(`${family.name}{${backendLabels(pool, b)}} ${formatValue(family.value(b))}`);
      }
    }
    // The one-hot state family goes right after `up`, its closest relative.
    if (family.name === 'fulcrum_backend_up') {
      header(lines, STATE_FAMILY);
      for (const pool of names) {
        for (const b of (pools[pool] as LoadBalancerSnapshot).backends) {
          for (const state of STATES) lines.push(`fulcrum_backend_state{${backendLabels(pool, b)},state="${state}"} ${b.state === state ? 1 : 0}`);
        }
      }
    }
  }
  for (const family of POOL_FAMILIES) {
    header(lines, family);
    for (const pool of names) lines.push(`${family.name}{pool="${escapeLabelValue(pool)}"} ${formatValue(family.value(pools[pool] as LoadBalancerSnapshot))}`);
  }
  return `${lines.join('\n')}\n`;
}

function header(lines: string[], family: Pick<Family<unknown>, 'name' | 'type' | 'help'>): void {
  lines.push(`# HELP ${family.name} ${escapeHelp(family.help)}`, `# TYPE ${family.name} ${family.type}`);
}

/** Label values escape backslash, double quote and line feed (the format's only escapes). */
export function escapeLabelValue(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

function escapeHelp(text: string): string {
  return text.replace(/[\\\n]/g, (c) => (c === '\n' ? '\\n' : '\\\\'));
}

// ---- traffic counters (./traffic.ts) ------------------------------------------------------------

interface TrafficFamily<T> {
  name: string;
  type: 'gauge' | 'counter';
  help: string;
  /** One sample, or several by an extra label (`code`, `result`): [label value, value] pairs. */
  value: (item: T, now: number) => number | readonly (readonly [string, number])[];
  label?: string;
}

const CODES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'other'] as const;
const byCode = (counts: readonly number[]): [string, number][] => CODES.map((code, i) => [code, counts[i] ?? 0]);

const POOL_TRAFFIC_FAMILIES: readonly TrafficFamily<PoolTraffic>[] = [
  { name: 'fulcrum_pool_requests_total', type: 'counter', help: 'Requests of the pool that ended, however they ended.', value: (p) => p.requests },
  {
    name: 'fulcrum_pool_responses_total',
    type: 'counter',
    help: "Responses the clients got, by status class (the proxy's own 502/503/504 included).",
    label: 'code',
    value: (p) => byCode(p.responses),
  },
  {
    name: 'fulcrum_pool_failed_requests_total',
    type: 'counter',
    help: 'Requests that failed: a 5xx to the client or a response cut short.',
    value: (p) => p.errors,
  },
  {
    name: 'fulcrum_pool_denied_requests_total',
    type: 'counter',
    help: 'Requests refused by the admission check (rate limits and the like).',
    value: (p) => p.denied,
  },
  { name: 'fulcrum_pool_request_errors_total', type: 'counter', help: 'Malformed requests answered 400.', value: (p) => p.requestErrors },
  {
    name: 'fulcrum_pool_client_aborts_total',
    type: 'counter',
    help: 'Requests the client abandoned before the response was complete.',
    value: (p) => p.clientAborts,
  },
  {
    name: 'fulcrum_pool_retries_total',
    type: 'counter',
    help: "Failed attempts tried again on the same backend, over the pool's backends (removed ones included).",
    value: (p) => p.sums().retries,
  },
  {
    name: 'fulcrum_pool_redispatches_total',
    type: 'counter',
    help: "Retries that went to another backend, over the pool's backends (removed ones included).",
    value: (p) => p.sums().redispatches,
  },
  { name: 'fulcrum_pool_request_bytes_total', type: 'counter', help: 'Request body bytes received from clients.', value: (p) => p.bytesIn },
  { name: 'fulcrum_pool_response_bytes_total', type: 'counter', help: 'Response body bytes sent to clients.', value: (p) => p.bytesOut },
  { name: 'fulcrum_pool_active_requests', type: 'gauge', help: 'Requests in progress, queued ones included.', value: (p) => p.sessions },
  { name: 'fulcrum_pool_active_requests_max', type: 'gauge', help: 'The most requests in progress at once since counting began.', value: (p) => p.sessionsMax },
  {
    name: 'fulcrum_pool_queue_length',
    type: 'gauge',
    help: 'Requests waiting for a backend slot (every candidate at its maxConnections).',
    value: (p) => p.queue,
  },
  { name: 'fulcrum_pool_queue_length_max', type: 'gauge', help: 'The most requests waiting at once since counting began.', value: (p) => p.queueMax },
];

const BACKEND_TRAFFIC_FAMILIES: readonly TrafficFamily<BackendTraffic>[] = [
  {
    name: 'fulcrum_backend_responses_total',
    type: 'counter',
    help: 'Responses of the backend, by status class.',
    label: 'code',
    value: (b) => byCode(b.responses),
  },
  {
    name: 'fulcrum_backend_connection_errors_total',
    type: 'counter',
    help: 'Attempts that could not connect to the backend and were not tried again (HAProxy econ).',
    value: (b) => b.connectionErrors,
  },
  {
    name: 'fulcrum_backend_response_errors_total',
    type: 'counter',
    help: 'Attempts whose response failed (reset, timeout, cut short) and were not tried again (HAProxy eresp).',
    value: (b) => b.responseErrors,
  },
  {
    name: 'fulcrum_backend_retries_total',
    type: 'counter',
    help: 'Failed attempts on the backend tried again on the same backend (HAProxy wretr).',
    value: (b) => b.retries,
  },
  {
    name: 'fulcrum_backend_redispatches_total',
    type: 'counter',
    help: 'Failed attempts on the backend tried again on another backend (HAProxy wredis).',
    value: (b) => b.redispatches,
  },
  { name: 'fulcrum_backend_request_bytes_total', type: 'counter', help: 'Request body bytes sent to the backend.', value: (b) => b.bytesIn },
  { name: 'fulcrum_backend_response_bytes_total', type: 'counter', help: 'Response body bytes relayed from the backend.', value: (b) => b.bytesOut },
  {
    name: 'fulcrum_backend_connections',
    type: 'gauge',
    help: 'Connections to the backend open now (keep-alive pools of both engines).',
    value: (b) => b.connections.open,
  },
  { name: 'fulcrum_backend_connections_opened_total', type: 'counter', help: 'Connections to the backend opened so far.', value: (b) => b.connections.opened },
  {
    name: 'fulcrum_backend_inflight_max',
    type: 'gauge',
    help: 'The most requests in flight to the backend at once since counting began.',
    value: (b) => b.sessionsMax,
  },
  {
    name: 'fulcrum_backend_checks_total',
    type: 'counter',
    help: 'Active health checks of the backend, by result.',
    label: 'result',
    value: (b) => [
      ['passed', b.checksPassed],
      ['failed', b.checksFailed],
    ],
  },
  {
    name: 'fulcrum_backend_check_success',
    type: 'gauge',
    help: 'Whether the last active health check passed (1) or failed (0); absent before the first.',
    value: (b) => (b.lastCheck === null ? [] : b.lastCheck.ok ? 1 : 0),
  },
  {
    name: 'fulcrum_backend_check_duration_seconds',
    type: 'gauge',
    help: 'How long the last active health check took, in seconds.',
    value: (b) => (b.lastCheck === null ? [] : b.lastCheck.durationMs / 1000),
  },
  { name: 'fulcrum_backend_ejections_total', type: 'counter', help: 'Times outlier detection ejected the backend.', value: (b) => b.ejections },
  {
    name: 'fulcrum_backend_downtime_seconds_total',
    type: 'counter',
    help: 'Time the backend spent down, in seconds, the current outage included.',
    value: (b, now) => b.toJSON(now).downtimeMs / 1000,
  },
  {
    name: 'fulcrum_backend_last_state_change_timestamp_seconds',
    type: 'gauge',
    help: 'When the backend state last changed (or counting began), seconds on the load balancer clock.',
    value: (b) => b.lastChangeAt / 1000,
  },
];

/** Every bucket bound, for the per-pool histograms (a few series per pool). */
const POOL_LE_MS: readonly number[] = DURATION_BOUNDS_MS;
/**
 * A subset of the bounds for the per-backend histogram: ten lines per backend instead of 22, so a
 * 40,000-backend pool that serves adds 400,000 lines to a scrape rather than 880,000.
 */
const BACKEND_LE_MS: readonly number[] = [5, 20, 50, 100, 300, 1000, 5000];

/** Histogram lines (`_bucket` cumulative over `le`, `_sum`, `_count`), seconds, at the bounds `le` (ms). */
function histogramText(name: string, labels: string, histogram: Pick<HistogramJson, 'counts' | 'sumMs' | 'count'>, le: readonly number[]): string {
  let text = '';
  let cumulative = 0;
  let bucket = 0;
  for (const bound of le) {
    // The fine buckets up to this bound (every bound of `le` is one of DURATION_BOUNDS_MS).
    while (bucket < DURATION_BOUNDS_MS.length && (DURATION_BOUNDS_MS[bucket] as number) <= bound) cumulative += histogram.counts[bucket++] ?? 0;
    text += `${name}_bucket{${labels},le="${formatValue(bound / 1000)}"} ${cumulative}\n`;
  }
  return `${text}${name}_bucket{${labels},le="+Inf"} ${histogram.count}\n${name}_sum{${labels}} ${formatValue(histogram.sumMs / 1000)}\n${name}_count{${labels}} ${histogram.count}\n`;
}

function sampleText<T>(family: TrafficFamily<T>, labels: string, item: T, now: number): string {
  const value = family.value(item, now);
  if (typeof value === 'number') return `${family.name}{${labels}} ${formatValue(value)}\n`;
  let text = '';
  for (const [label, v] of value) text += `${family.name}{${labels},${family.label}="${label}"} ${formatValue(v)}\n`;
  return text;
}

/**
 * The traffic families, piece by piece: per pool, then per backend that has counters (a backend that
 * has seen no request, check or event has no series yet), then the HTTP/2 and gRPC families
 * (`../h2/stats.ts`), then the worker gauge.
 */
function* trafficPieces(pools: readonly StatsPool[], frontends: (() => Readonly<Record<string, object>>) | undefined): Generator<string> {
  const counted: { label: string; traffic: PoolTraffic }[] = [];
  for (const { name, lb } of pools) {
    const traffic = statsTrafficOf(lb);
    if (traffic !== undefined) counted.push({ label: `pool="${escapeLabelValue(name)}"`, traffic });
  }
  yield* trafficFamilyPieces(counted);
  yield renderProtocolFamilies(protocolStatsJson(pools, frontends?.()));
  yield headerText({ name: 'fulcrum_workers', type: 'gauge', help: 'Processes serving traffic whose counters these metrics hold.' });
  yield 'fulcrum_workers 1\n';
}

/**
 * The traffic families of counters in their JSON form (`PoolTrafficJson` by pool name, as
 * `statsPage`'s `?format=json` gives them, or several processes' summed): the same families and
 * series `prometheus()` writes for live counters, without the HTTP/2 families and the worker gauge.
 * For callers that gather counters themselves (`fulcrum --workers`).
 */
export function renderTrafficJson(traffic: Readonly<Record<string, PoolTrafficJson>>): string {
  const counted = Object.keys(traffic).map((name) => ({ label: `pool="${escapeLabelValue(name)}"`, traffic: poolFromJson(traffic[name]!) }));
  return joinPieces(trafficFamilyPieces(counted));
}

/** Status classes in the counters' array order. */
function classesArray(responses: ResponseClasses): number[] {
  return [responses['1xx'], responses['2xx'], responses['3xx'], responses['4xx'], responses['5xx'], responses.other];
}

/** A `PoolTraffic` as far as the families read it, over its JSON form. */
function poolFromJson(json: PoolTrafficJson): PoolTraffic {
  const backends = Object.keys(json.backends).map((id) => {
    const b = json.backends[id]!;
    const counters = {
      ...b,
      responses: classesArray(b.responses),
      connections: { open: b.connections, opened: b.connectionsOpened },
      toJSON: () => b,
    };
    return [{ id } as Backend, counters as unknown as BackendTraffic] as const;
  });
  const view = {
    ...json,
    responses: classesArray(json.responses),
    sums: () => ({ retries: json.retries, redispatches: json.redispatches, connectionErrors: json.connectionErrors, responseErrors: json.responseErrors }),
    now: () => json.at,
    entries: () => backends,
  };
  return view as unknown as PoolTraffic;
}

function* trafficFamilyPieces(counted: readonly { label: string; traffic: PoolTraffic }[]): Generator<string> {
  for (const family of POOL_TRAFFIC_FAMILIES) {
    yield headerText(family);
    for (const { label, traffic } of counted) yield sampleText(family, label, traffic, 0);
  }
  yield headerText({
    name: 'fulcrum_pool_request_duration_seconds',
    type: 'histogram',
    help: 'Total time of answered requests, from arrival to the end of the response, in seconds.',
  });
  for (const { label, traffic } of counted) yield histogramText('fulcrum_pool_request_duration_seconds', label, traffic.duration, POOL_LE_MS);
  yield headerText({ name: 'fulcrum_pool_queue_wait_seconds', type: 'histogram', help: 'Time requests waited in the queue for a backend slot, in seconds.' });
  for (const { label, traffic } of counted) yield histogramText('fulcrum_pool_queue_wait_seconds', label, traffic.queueWait, POOL_LE_MS);
  yield headerText({
    name: 'fulcrum_backend_request_duration_seconds',
    type: 'histogram',
    help: 'Time to the response head of answered attempts on the backend, in seconds.',
  });
  for (const { label, traffic } of counted) {
    for (const [backend, counters] of traffic.entries())
      yield histogramText('fulcrum_backend_request_duration_seconds', `${label},backend="${escapeLabelValue(backend.id)}"`, counters.duration, BACKEND_LE_MS);
  }
  for (const family of BACKEND_TRAFFIC_FAMILIES) {
    yield headerText(family);
    for (const { label, traffic } of counted) {
      const now = traffic.now();
      for (const [backend, counters] of traffic.entries()) yield sampleText(family, `${label},backend="${escapeLabelValue(backend.id)}"`, counters, now);
    }
  }
}

/** Go's ParseFloat spellings for the special values; JavaScript's for the rest parse the same. */
function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}
