/**
 * The stats of `fulcrum --workers N` across its workers: what each worker reports beyond its
 * snapshots (its transitions, traffic counters and HTTP/2 / gRPC counters), and how the reports
 * become one stats answer — the page's JSON and the Prometheus text.
 *
 * - **Counters add up.** Every counter is plain data (numbers, bucket counts, per-second slots), so
 *   the workers' answers are summed field by field, as HAProxy's `show stat` does across threads.
 *   `…Max` fields then give an upper bound of the combined maximum. A few fields are facts rather
 *   than counts and are not summed: `at` and `lastChangeAt` take the latest, `since` the earliest,
 *   `downtimeMs` the largest (every worker sees the same states, the checking worker's), `lastCheck`
 *   the most recent; per-second series are aligned on their seconds before they are added.
 * - **Events are merged.** Each worker records the transitions it sees. A change every worker
 *   applies — an admin drain, the checking worker's verdict, a reload's additions — is seen by all of
 *   them: one event of the same pool, backend, type and outcome within `SAME_EVENT_MS` of another is
 *   the same event, shown once with the worker that recorded it first (`worker`) and every worker
 *   that did (`workers`). The checking worker's cause wins over a follower's `handover` (the cause a
 *   verdict applied through `restoreHealth` carries). Events are ordered by time.
 * - **Per-worker series.** Summed families double count nothing, so dashboards keep working when
 *   `--workers` changes; what each worker does is in separate families with a `worker` label (the
 *   slot, stable across a worker's replacement): `fulcrum_worker_info{worker,pid}`,
 *   `fulcrum_worker_pool_requests_total`, `fulcrum_worker_pool_failures_total`,
 *   `fulcrum_worker_pool_inflight` and `fulcrum_worker_http2_streams_total`. They are families of
 *   their own rather than a `worker` label on the summed ones because a `sum()` over a family that
 *   held both the total and its parts would count everything twice (Prometheus' guidance on labels:
 *   a family's series must add up to something meaningful).
 */
import type { LoadBalancerSnapshot } from '@fulcrum/core';
import {
  DURATION_BOUNDS_MS,
  renderPrometheus,
  renderProtocolFamilies,
  renderTrafficJson,
  sumProtocolStats,
  type PoolTrafficJson,
  type ProtocolStatsJson,
  type StatsEvent,
  type StatsJson,
} from '@fulcrum/http';

/** What a worker reports for the stats, beside its snapshots. */
export interface WorkerStats {
  /** Its recorded transitions, oldest first (none when it serves no stats page). */
  events: StatsEvent[];
  /** Its traffic counters, by pool. */
  traffic: Record<string, PoolTrafficJson>;
  /** Its HTTP/2 and gRPC counters. */
  protocol: ProtocolStatsJson;
}

/** One worker's report, as the aggregation reads it (`WorkerReport` of workers.ts). */
export interface WorkerStatsReport {
  slot: number;
  pid: number;
  pools: Record<string, LoadBalancerSnapshot>;
  stats?: WorkerStats;
}

/** Two events of different workers this close (ms) and otherwise equal are the same change. */
export const SAME_EVENT_MS = 2000;

/** What makes two workers' events the same change: everything but the stamps and the cause. */
function eventKey(event: StatsEvent): string {
  switch (event.type) {
    case 'state':
      return `state\u001f${event.pool}\u001f${event.backend}\u001f${event.from}\u001f${event.to}`;
    case 'ejected':
      return `ejected\u001f${event.pool}\u001f${event.backend}`;
    case 'restored':
    case 'added':
    case 'removed':
      return `${event.type}\u001f${event.pool}\u001f${event.backend}`;
    case 'panic':
      return `panic\u001f${event.pool}\u001f${String(event.active)}`;
  }
}

/**
 * Every worker's events as one list: ordered by time, the same change recorded by several workers
 * shown once (with `worker` and `workers`), renumbered from 1. At most `limit` (the newest).
 */
export function mergeWorkerEvents(reports: readonly WorkerStatsReport[], limit: number = Number.POSITIVE_INFINITY): StatsEvent[] {
  const all: { event: StatsEvent; slot: number }[] = [];
  for (const report of reports) for (const event of report.stats?.events ?? []) all.push({ event, slot: report.slot });
  all.sort((a, b) => a.event.at - b.event.at || a.slot - b.slot || a.event.seq - b.event.seq);
  const merged: StatsEvent[] = [];
  /** The latest merged event per key, to fold later copies into. */
  const open = new Map<string, StatsEvent>();
  for (const { event, slot } of all) {
    const key = eventKey(event);
    const same = open.get(key);
    if (same !== undefined && event.at - same.at <= SAME_EVENT_MS && !same.workers!.includes(slot)) {
      same.workers!.push(slot);
      same.workers!.sort((a, b) => a - b);
      // The worker that made the change says why; the others only applied it.
      if (same.type === 'state' && event.type === 'state' && same.cause === 'handover' && event.cause !== 'handover') {
        same.cause = event.cause;
        same.worker = slot;
      }
      continue;
    }
    const copy = { ...event, worker: slot, workers: [slot] } as StatsEvent;
    open.set(key, copy);
    merged.push(copy);
  }
  const kept = merged.length > limit ? merged.slice(merged.length - limit) : merged;
  kept.forEach((event, i) => (event.seq = i + 1));
  return kept;
}

/** Fields that are facts of one instant, not counts: combined as said, never summed. */
const LATEST = new Set(['at', 'lastChangeAt']);
const EARLIEST = new Set(['since']);
const LARGEST = new Set(['downtimeMs', 'stepMs']);

type Json = number | string | boolean | null | Json[] | { [key: string]: Json };

/** `a` and `b` combined field by field (see the header); `key` is the field's name in its parent. */
function combine(a: Json | undefined, b: Json | undefined, key: string): Json {
  if (a === undefined || a === null) return clone(b ?? null);
  if (b === undefined || b === null) return a;
  if (key === 'lastCheck' && isCheck(a) && isCheck(b)) return b.at > a.at ? clone(b) : a;
  if (typeof a === 'number' && typeof b === 'number') {
    if (LATEST.has(key) || LARGEST.has(key)) return Math.max(a, b);
    if (EARLIEST.has(key)) return Math.min(a, b);
    return a + b;
  }
  if (Array.isArray(a) && Array.isArray(b)) {
    const out: Json[] = [];
    for (let i = 0; i < Math.max(a.length, b.length); i++) out.push(combineSlot(a[i], b[i]));
    return out;
  }
  if (typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
    const left = a as { [key: string]: Json };
    const right = b;
    if (key === 'series' && typeof left.stepMs === 'number' && typeof right.stepMs === 'number') {
      return combineSeries(left as unknown as Series, right as unknown as Series) as unknown as Json;
    }
    const out: { [key: string]: Json } = Object.create(null) as { [key: string]: Json };
    for (const k of Object.keys(left)) out[k] = combine(left[k], right[k], k);
    for (const k of Object.keys(right)) if (!(k in out)) out[k] = clone(right[k]!);
    return out;
  }
  return a;
}

function isCheck(value: Json): value is { ok: boolean; at: number } {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && typeof value.ok === 'boolean' && typeof value.at === 'number';
}

/** A slot of a series' `latency` (a histogram, or 0 for a second nothing was answered) or a count. */
function combineSlot(a: Json | undefined, b: Json | undefined): Json {
  if (a === undefined || a === 0) return clone(b ?? 0);
  if (b === undefined || b === 0) return a;
  return combine(a, b, '');
}

function clone(value: Json): Json {
  return typeof value === 'object' && value !== null ? (JSON.parse(JSON.stringify(value)) as Json) : value;
}

interface Series {
  stepMs: number;
  end: number;
  requests: number[];
  errors: number[];
  latency: (number[] | 0)[];
}

/** Two per-second histories added second by second: slot `i` is second `end - (length - 1) + i`. */
function combineSeries(a: Series, b: Series): Series {
  const end = Math.max(a.end, b.end);
  const length = Math.max(a.requests.length, b.requests.length);
  const out: Series = {
    stepMs: a.stepMs,
    end,
    requests: new Array<number>(length).fill(0),
    errors: new Array<number>(length).fill(0),
    latency: new Array<number[] | 0>(length).fill(0),
  };
  for (const part of [a, b]) {
    const shift = Math.round((end - part.end) / (part.stepMs || 1000));
    const offset = length - part.requests.length - shift;
    for (let i = 0; i < part.requests.length; i++) {
      const at = i + offset;
      if (at < 0 || at >= length) continue;
      out.requests[at]! += part.requests[i] ?? 0;
      out.errors[at]! += part.errors[i] ?? 0;
      out.latency[at] = combineSlot(out.latency[at], part.latency[i]) as number[] | 0;
    }
  }
  return out;
}

/** Every worker's traffic counters, summed per pool (see the header). */
export function sumWorkerTraffic(reports: readonly WorkerStatsReport[]): Record<string, PoolTrafficJson> {
  const sum = Object.create(null) as Record<string, PoolTrafficJson>;
  for (const report of reports) {
    for (const [pool, traffic] of Object.entries(report.stats?.traffic ?? {})) {
      sum[pool] = combine(sum[pool] as unknown as Json, traffic as unknown as Json, pool) as unknown as PoolTrafficJson;
    }
  }
  return sum;
}

/** Every worker's HTTP/2 and gRPC counters, summed. */
export function sumWorkerProtocol(reports: readonly WorkerStatsReport[]): ProtocolStatsJson {
  return sumProtocolStats(reports.map((r) => r.stats?.protocol ?? { pools: {}, frontends: {} }));
}

/** The stats page's JSON for every worker: summed snapshots (`pools`) from `mergeReports`, and the rest from the reports. */
export function workersStatsJson(pools: Record<string, LoadBalancerSnapshot>, reports: readonly WorkerStatsReport[], historySize: number): StatsJson {
  return {
    pools,
    events: mergeWorkerEvents(reports, historySize),
    traffic: sumWorkerTraffic(reports),
    durationBoundsMs: DURATION_BOUNDS_MS,
    protocol: sumWorkerProtocol(reports),
    workers: reports.length,
  };
}

function label(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

function family(name: string, type: 'counter' | 'gauge', help: string): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
}

/** The per-worker families (see the header), for the reports of one scrape. */
export function renderWorkerFamilies(reports: readonly WorkerStatsReport[]): string {
  let text = family('fulcrum_worker_info', 'gauge', 'One series per worker process that answered this scrape: its slot and pid.');
  for (const r of reports) text += `fulcrum_worker_info{worker="${r.slot}",pid="${r.pid}"} 1\n`;
  const perPool = (name: string, type: 'counter' | 'gauge', help: string, value: (pool: LoadBalancerSnapshot) => number): void => {
    text += family(name, type, help);
    for (const r of reports) {
      for (const [pool, snapshot] of Object.entries(r.pools)) text += `${name}{worker="${r.slot}",pool="${label(pool)}"} ${value(snapshot)}\n`;
    }
  };
  const sum = (pool: LoadBalancerSnapshot, field: 'requests' | 'failures' | 'inflight'): number => pool.backends.reduce((n, b) => n + b[field], 0);
  perPool('fulcrum_worker_pool_requests_total', 'counter', "Requests the worker's backends of the pool completed.", (p) => sum(p, 'requests'));
  perPool('fulcrum_worker_pool_failures_total', 'counter', "Requests to the worker's backends of the pool that failed.", (p) => sum(p, 'failures'));
  perPool('fulcrum_worker_pool_inflight', 'gauge', "Requests in flight from the worker to the pool's backends.", (p) => sum(p, 'inflight'));
  text += family('fulcrum_worker_http2_streams_total', 'counter', 'Request streams the worker received over HTTP/2 connections.');
  for (const r of reports) {
    const frontends = Object.values(r.stats?.protocol.frontends ?? {});
    text += `fulcrum_worker_http2_streams_total{worker="${r.slot}"} ${frontends.reduce((n, f) => n + f.streamsTotal, 0)}\n`;
  }
  return text;
}

/**
 * The Prometheus text of every worker: the summed snapshot families (`pools`, from `mergeReports`),
 * the summed traffic families, the summed HTTP/2 and gRPC families, the per-worker families, and `fulcrum_workers`.
 */
export function renderWorkersMetrics(pools: Record<string, LoadBalancerSnapshot>, reports: readonly WorkerStatsReport[]): string {
  return (
    renderPrometheus(pools) +
    renderTrafficJson(sumWorkerTraffic(reports)) +
    renderProtocolFamilies(sumWorkerProtocol(reports)) +
    renderWorkerFamilies(reports) +
    family('fulcrum_workers', 'gauge', 'Worker processes that answered this scrape.') +
    `fulcrum_workers ${reports.length}\n`
  );
}
