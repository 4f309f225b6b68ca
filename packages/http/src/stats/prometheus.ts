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
import { allowReadOnly, guarded, send } from './respond';
import { normalizeStatsSource, snapshotPools } from './source';
import type { StatsPool, StatsSource } from './source';
import { SMALL_BODY_BACKENDS, normalizeStreamOptions, streamBody, type StreamOptions } from './stream';

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
  { name: 'fulcrum_backend_up', type: 'gauge', help: 'Whether the backend is up (1) or down, draining or in maintenance (0).', value: (b) => (b.state === 'up' ? 1 : 0) },
  { name: 'fulcrum_backend_inflight', type: 'gauge', help: 'Requests in flight to the backend.', value: (b) => b.inflight },
  { name: 'fulcrum_backend_requests_total', type: 'counter', help: 'Requests completed by the backend.', value: (b) => b.requests },
  { name: 'fulcrum_backend_failures_total', type: 'counter', help: 'Requests to the backend that failed.', value: (b) => b.failures },
  { name: 'fulcrum_backend_latency_ewma_seconds', type: 'gauge', help: 'Peak-sensitive moving average of the backend latency, in seconds.', value: (b) => b.latencyEwma / 1000 },
  { name: 'fulcrum_backend_weight', type: 'gauge', help: 'Configured weight of the backend.', value: (b) => b.weight },
  { name: 'fulcrum_backend_effective_weight', type: 'gauge', help: 'Weight the balancer uses, after slow start and agent percentages.', value: (b) => b.effectiveWeight },
  { name: 'fulcrum_backend_ejected', type: 'gauge', help: 'Whether outlier detection has ejected the backend (1) or not (0).', value: (b) => (b.ejected ? 1 : 0) },
];

const POOL_FAMILIES: readonly Family<LoadBalancerSnapshot>[] = [
  { name: 'fulcrum_pool_backends', type: 'gauge', help: 'Backends in the pool.', value: (p) => p.backends.length },
  { name: 'fulcrum_pool_eligible_backends', type: 'gauge', help: 'Backends the balancer currently chooses from.', value: (p) => p.eligible },
  { name: 'fulcrum_pool_panic', type: 'gauge', help: 'Whether the pool is in panic mode, spreading load over unhealthy backends (1) or not (0).', value: (p) => (p.tier === 'panic' ? 1 : 0) },
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
export function prometheus(source: StatsSource): () => string {
  const pools = normalizeStatsSource('prometheus(source)', source);
  return () => renderPrometheus(snapshotPools(pools));
}

/**
 * A `(req, res)` handler serving `prometheus(source)` (GET and HEAD; others 405). A source of more
 * than 1,000 backends is streamed in slices that yield to the event loop, `maxConcurrentRenders`
 * (default 2) at a time at most (more get 503 with `Retry-After: 1`); a reader that stalls for
 * `stallTimeoutMs` (default 30 s) is cut.
 */
export function prometheusHandler(source: StatsSource, options?: StreamOptions): (req: IncomingMessage, res: ServerResponse) => void {
  const pools = normalizeStatsSource('prometheusHandler(source)', source);
  const gate = normalizeStreamOptions('prometheusHandler.options', options);
  return (req, res) =>
    guarded(req, res, () => {
      if (!allowReadOnly(req, res)) return;
      const live = liveBackends(pools);
      if (live === undefined) {
        send(req, res, 200, { 'content-type': PROMETHEUS_CONTENT_TYPE }, renderPrometheus(snapshotPools(pools)));
        return;
      }
      if (!gate.enter(req, res)) return;
      streamBody(req, res, 200, { 'content-type': PROMETHEUS_CONTENT_TYPE }, prometheusPieces(live), () => gate.leave(), gate.stallTimeoutMs);
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

function headerText(family: Pick<Family<unknown>, 'name' | 'type' | 'help'>): string {
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

/** Go's ParseFloat spellings for the special values; JavaScript's for the rest parse the same. */
function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Number.POSITIVE_INFINITY) return '+Inf';
  if (value === Number.NEGATIVE_INFINITY) return '-Inf';
  return String(value);
}
