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
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { BackendSnapshot, LoadBalancerSnapshot } from '@fulcrum/core';
import {
  DURATION_BOUNDS_MS,
  MAX_CONCURRENT_RENDERS,
  renderPrometheus,
  renderPrometheusPieces,
  renderProtocolFamilies,
  renderTrafficJson,
  renderTrafficJsonPieces,
  streamBody,
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
  return runSteps(sumWorkerTrafficSteps(reports));
}

/** `sumWorkerTraffic` in steps: it yields every `STEP_ITEMS` backends (`runSliced` runs it a few ms per turn of the event loop). */
export function* sumWorkerTrafficSteps(reports: readonly WorkerStatsReport[]): Steps<Record<string, PoolTrafficJson>> {
  const sum = Object.create(null) as Record<string, PoolTrafficJson>;
  for (const report of reports) {
    for (const [pool, traffic] of Object.entries(report.stats?.traffic ?? {})) {
      sum[pool] = (yield* poolSteps(sum[pool] as unknown as Json, traffic as unknown as Json, pool)) as unknown as PoolTrafficJson;
    }
  }
  return sum;
}

/** `combine(a, b, name)` of a pool's counters, yielding between the entries of its `backends` (one per backend: the bulk of a large pool). */
function* poolSteps(a: Json | undefined, b: Json, name: string): Steps<Json> {
  if (!isPlain(b) || !(a === undefined || a === null || isPlain(a))) return combine(a, b, name);
  const left = a ?? {};
  const right = b;
  const out: { [key: string]: Json } = Object.create(null) as { [key: string]: Json };
  for (const k of Object.keys(left)) out[k] = k === 'backends' ? yield* backendsSteps(left[k], right[k]) : combine(left[k], right[k], k);
  for (const k of Object.keys(right)) if (!(k in out)) out[k] = k === 'backends' ? yield* backendsSteps(undefined, right[k]) : clone(right[k]!);
  return out;
}

function* backendsSteps(a: Json | undefined, b: Json | undefined): Steps<Json> {
  if (b === undefined || b === null || !isPlain(b) || !(a === undefined || a === null || isPlain(a))) return combine(a, b, 'backends');
  const left = a ?? {};
  const right = b;
  const out: { [key: string]: Json } = Object.create(null) as { [key: string]: Json };
  let n = 0;
  for (const k of Object.keys(left)) {
    out[k] = combine(left[k], right[k], k);
    if (++n % STEP_ITEMS === 0) yield;
  }
  for (const k of Object.keys(right)) {
    if (k in out) continue;
    out[k] = clone(right[k]!);
    if (++n % STEP_ITEMS === 0) yield;
  }
  return out;
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

// ── Bounded cost on large pools (issue #22) ──────────────────────────────────────────────────
//
// A scrape under `--workers` moves every worker's snapshots (a 40,000-backend pool: ~10 MB of JSON
// per worker) through the primary to the worker that answers, which then renders ~30 MB of text.
// Done in one step each, that stalled the answering worker's event loop for seconds (its proxied
// requests with it) and the primary's for hundreds of ms (bench/workers-stats.bench.mjs). Hence:
//
// - **Packed reports.** A worker sends its report as one JSON text (`packReport`) in which arrays
//   and records of same-shaped objects (the backends, their traffic counters) are tables — column
//   names once, then rows of values — so the text is smaller, and the primary relays a string
//   instead of parsing and re-serialising a tree of objects. Over `MAX_REPORT_CHARS` the report is
//   refused (the answer leaves that worker out and says so) rather than sent.
// - **In steps.** Packing (`packReportSliced`), unpacking (`unpackReports`), merging the snapshots
//   (`mergeSnapshotsSteps`) and summing the traffic (`sumWorkerTrafficSteps`) are generators that
//   yield every few dozen backends; `runSliced` runs them ~10 ms per turn of the event loop. What
//   cannot be cut: Node's parse of an IPC message, and `JSON.parse` of one report's text.
// - **Coalesced scrapes.** Scrapes that arrive while one collection is under way share it (the
//   runner's `coalesce`d collect): one IPC round and one merge, not one per scrape.
// - **Streamed answers.** The metrics and the page's JSON are written ~64 KB per turn of the event
//   loop with backpressure (`streamPieces`), as the single process's handlers do.
// - **Two renders at once.** As one process renders at most `MAX_CONCURRENT_RENDERS` large bodies per
//   handler, so does the whole `--workers N` instance: the primary counts them (`RenderSlots`) and a
//   scrape past them gets 503 with `Retry-After: 1` before anything is collected. Without it, four
//   simultaneous scrapes rendered four bodies at once, on two workers sharing the machine's cores.

/** A packed report's longest text, in characters (bytes, for ASCII names): past it, the report is refused. */
export const MAX_REPORT_CHARS = 128 * 1024 * 1024;

/** A worker's report as it crosses the IPC link: its data packed into one JSON text, or why it was refused. */
export interface PackedReport {
  slot: number;
  pid: number;
  /** `packValue({ pools, stats })` as JSON. */
  data?: string;
  /** Set instead of `data` when the report could not be sent (over `MAX_REPORT_CHARS`). */
  refused?: string;
}

/** Reports of one collection, with the slots of the workers left out of it (no answer in time, or a refused report). */
export type CollectedReports = WorkerStatsReport[] & { missing?: number[] };

/** Markers opening a packed array: a table of objects, a record of objects, an array kept as is. */
const TABLE = '\u0000t';
const RECORD = '\u0000r';
const LITERAL = '\u0000a';

type Plain = { [key: string]: unknown };

function isPlain(value: unknown): value is Plain {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The keys JSON writes (a property holding `undefined` is not written). */
function keysOf(value: Plain): string[] {
  const keys: string[] = [];
  for (const key of Object.keys(value)) if (value[key] !== undefined) keys.push(key);
  return keys;
}

/** The keys every item has, in the same order, when there are at least two items, else undefined. */
function sharedKeys(items: readonly unknown[]): string[] | undefined {
  if (items.length < 2 || !isPlain(items[0])) return undefined;
  const columns = keysOf(items[0]);
  for (let i = 1; i < items.length; i++) {
    const item = items[i];
    if (!isPlain(item)) return undefined;
    const keys = keysOf(item);
    if (keys.length !== columns.length) return undefined;
    for (let k = 0; k < keys.length; k++) if (keys[k] !== columns[k]) return undefined;
  }
  return columns;
}

/**
 * `value` (plain JSON data) with every array or record of at least two same-shaped objects written
 * as a table: `[TABLE, columns, rows]` or `[RECORD, names, columns, rows]`. `unpackValue` gives back
 * what `JSON.parse(JSON.stringify(value))` would, key order included.
 */
export function packValue(value: unknown): unknown {
  return runSteps(packSteps(value, false));
}

/** Work done in steps: each `yield` is a point where the event loop may run (`runSliced`). */
export type Steps<T> = Generator<void, T, void>;

/** Items (rows, backends) handled between two yields of a `Steps`. */
const STEP_ITEMS = 64;
/** How long `runSliced` works before it lets the event loop run, ms. */
const SLICE_MS = 10;

/** Run `steps` to the end at once. */
export function runSteps<T>(steps: Steps<T>): T {
  for (;;) {
    const next = steps.next();
    if (next.done === true) return next.value;
  }
}

/** Run `steps` ~`sliceMs` at a time, letting the event loop run in between (proxied requests, other answers). */
export async function runSliced<T>(steps: Steps<T>, sliceMs: number = SLICE_MS): Promise<T> {
  let start = performance.now();
  for (;;) {
    const next = steps.next();
    if (next.done === true) return next.value;
    if (performance.now() - start >= sliceMs) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      start = performance.now();
    }
  }
}

/**
 * `packValue` in steps. `sliced`: yield between the rows of a table and the items of a collection
 * of more than `STEP_ITEMS` (whose items are then packed at once: they are a pool's backends).
 */
function* packSteps(value: unknown, sliced: boolean): Steps<unknown> {
  if (Array.isArray(value)) {
    const columns = sharedKeys(value);
    if (columns !== undefined) return [TABLE, columns, yield* rowsSteps(value, columns, sliced)];
    const big = value.length > STEP_ITEMS;
    const items: unknown[] = [];
    for (const item of value) {
      items.push(item === undefined || typeof item === 'function' ? null : big ? runSteps(packSteps(item, false)) : yield* packSteps(item, sliced));
      if (big && sliced) yield;
    }
    return typeof items[0] === 'string' && items[0].startsWith('\u0000') ? [LITERAL, ...items] : items;
  }
  if (isPlain(value)) {
    const names = keysOf(value);
    const items = names.map((name) => value[name]);
    const columns = sharedKeys(items);
    if (columns !== undefined) return [RECORD, names, columns, yield* rowsSteps(items, columns, sliced)];
    const big = names.length > STEP_ITEMS;
    const out: Plain = {};
    for (const name of names) {
      set(out, name, big ? runSteps(packSteps(value[name], false)) : yield* packSteps(value[name], sliced));
      if (big && sliced) yield;
    }
    return out;
  }
  return value;
}

function* rowsSteps(items: readonly unknown[], columns: readonly string[], sliced: boolean): Steps<unknown[][]> {
  const rows: unknown[][] = [];
  for (const item of items) {
    rows.push(columns.map((column) => runSteps(packSteps((item as Plain)[column], false))));
    if (sliced) yield;
  }
  return rows;
}

/** `out[key] = value`, also for a key named `__proto__` (a pool or backend may be called so). */
function set(out: Plain, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  else out[key] = value;
}

function fromRow(columns: readonly string[], row: readonly unknown[]): Plain {
  const out: Plain = {};
  for (let i = 0; i < columns.length; i++) {
    const cell = row[i];
    set(out, columns[i]!, typeof cell === 'object' && cell !== null ? runSteps(unpackSteps(cell, false)) : cell);
  }
  return out;
}

/** The inverse of `packValue` (on its JSON round trip). */
export function unpackValue(value: unknown): unknown {
  return runSteps(unpackSteps(value, false));
}

/** `unpackValue` in steps (see `packSteps`). */
function* unpackSteps(value: unknown, sliced: boolean): Steps<unknown> {
  if (Array.isArray(value)) {
    if (value[0] === TABLE) {
      const columns = value[1] as string[];
      const out: Plain[] = [];
      for (const row of value[2] as unknown[][]) {
        out.push(fromRow(columns, row));
        if (sliced) yield;
      }
      return out;
    }
    if (value[0] === RECORD) {
      const names = value[1] as string[];
      const columns = value[2] as string[];
      const rows = value[3] as unknown[][];
      const out: Plain = {};
      for (let i = 0; i < names.length; i++) {
        set(out, names[i]!, fromRow(columns, rows[i]!));
        if (sliced) yield;
      }
      return out;
    }
    const items = value[0] === LITERAL ? value.slice(1) : value;
    const big = items.length > STEP_ITEMS;
    const out: unknown[] = [];
    for (const item of items) {
      out.push(big ? runSteps(unpackSteps(item, false)) : yield* unpackSteps(item, sliced));
      if (big && sliced) yield;
    }
    return out;
  }
  if (isPlain(value)) {
    const keys = Object.keys(value);
    const big = keys.length > STEP_ITEMS;
    const out: Plain = {};
    for (const key of keys) {
      set(out, key, big ? runSteps(unpackSteps(value[key], false)) : yield* unpackSteps(value[key], sliced));
      if (big && sliced) yield;
    }
    return out;
  }
  return value;
}

/** The JSON text of `value`, built piece by piece (`jsonPieces`); undefined as soon as it grows past `maxChars`. */
function* stringifySteps(value: unknown, maxChars: number): Steps<string | undefined> {
  let text = '';
  let n = 0;
  for (const piece of jsonPieces(value)) {
    text += piece;
    if (text.length > maxChars) return undefined;
    if (++n % (STEP_ITEMS * 4) === 0) yield;
  }
  return text;
}

function* packReportSteps(report: WorkerStatsReport, maxChars: number): Steps<PackedReport> {
  const { slot, pid } = report;
  let data: string | undefined;
  try {
    data = yield* stringifySteps(yield* packSteps({ pools: report.pools, stats: report.stats }, true), maxChars);
  } catch (error) {
    // A text past the engine's longest string throws: that is over any cap too.
    return { slot, pid, refused: `report could not be serialised: ${String(error)}` };
  }
  if (data === undefined) return { slot, pid, refused: `report over the cap of ${maxChars} bytes` };
  return { slot, pid, data };
}

/** A worker's report, packed for the IPC link; refused (without `data`) when its text would exceed `maxChars`. */
export function packReport(report: WorkerStatsReport, maxChars: number = MAX_REPORT_CHARS): PackedReport {
  return runSteps(packReportSteps(report, maxChars));
}

/** `packReport`, a few ms per turn of the event loop (what a worker does when asked for its report). */
export function packReportSliced(report: WorkerStatsReport, maxChars: number = MAX_REPORT_CHARS): Promise<PackedReport> {
  return runSliced(packReportSteps(report, maxChars));
}

function reportOf(packed: PackedReport, data: unknown): WorkerStatsReport {
  const { pools, stats } = data as { pools: Record<string, LoadBalancerSnapshot>; stats?: WorkerStats };
  return stats === undefined ? { slot: packed.slot, pid: packed.pid, pools } : { slot: packed.slot, pid: packed.pid, pools, stats };
}

/** A packed report as the aggregation reads it; undefined for a refused one. */
export function unpackReport(packed: PackedReport): WorkerStatsReport | undefined {
  if (typeof packed.data !== 'string') return undefined;
  return reportOf(packed, unpackValue(JSON.parse(packed.data)));
}

/**
 * The reports of a collection unpacked a few ms per turn of the event loop (the JSON text of one
 * report is parsed in one step); a refused or unreadable one joins `missing`.
 */
export async function unpackReports(packed: readonly PackedReport[], missing: readonly number[] = []): Promise<CollectedReports> {
  const reports: CollectedReports = [];
  const left = [...missing];
  for (const one of packed) {
    if (typeof one.data !== 'string') {
      left.push(one.slot);
      continue;
    }
    await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      reports.push(reportOf(one, await runSliced(unpackSteps(JSON.parse(one.data), true))));
    } catch {
      // Not a report this version wrote (a worker of another build mid-upgrade): left out, not a hang.
      left.push(one.slot);
    }
  }
  reports.missing = left.sort((a, b) => a - b);
  return reports;
}

/**
 * The workers' snapshots summed, in steps: in-flight, requests and failures added over the workers;
 * states, weights and the rest from the checking worker's report. It yields every `STEP_ITEMS`
 * backends, so a 40,000-backend pool is merged a few ms per turn of the event loop; `mergeReports`
 * of workers.ts runs it at once.
 */
export function* mergeSnapshotsSteps(reports: readonly WorkerStatsReport[], checkingSlot: number): Steps<Record<string, LoadBalancerSnapshot>> {
  const merged: Record<string, LoadBalancerSnapshot> = {};
  if (reports.length === 0) return merged;
  const base = reports.find((r) => r.slot === checkingSlot) ?? reports[0]!;
  let n = 0;
  for (const [name, pool] of Object.entries(base.pools)) {
    const backends: BackendSnapshot[] = [];
    const byId = new Map<string, BackendSnapshot>();
    for (const b of pool.backends) {
      const sum = { ...b, inflight: 0, requests: 0, failures: 0 };
      backends.push(sum);
      byId.set(sum.id, sum);
      if (++n % STEP_ITEMS === 0) yield;
    }
    for (const report of reports) {
      for (const b of report.pools[name]?.backends ?? []) {
        const sum = byId.get(b.id);
        if (sum !== undefined) {
          sum.inflight += b.inflight;
          sum.requests += b.requests;
          sum.failures += b.failures;
        }
        if (++n % STEP_ITEMS === 0) yield;
      }
    }
    merged[name] = { ...pool, backends };
  }
  return merged;
}

/** `fn` whose calls while one is under way share its result: one IPC round for simultaneous scrapes. */
export function coalesce<T>(fn: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    pending ??= fn().finally(() => (pending = undefined));
    return pending;
  };
}

/**
 * The text of `JSON.stringify(value)` (plain JSON data), piece by piece: an array or object of more
 * than `PIECE_NODES` values, nested ones counted, is written item by item; a smaller one in one piece.
 */
export function* jsonPieces(value: unknown): Generator<string> {
  if (!isLarge(value)) {
    yield JSON.stringify(value) ?? 'null';
    return;
  }
  if (Array.isArray(value)) {
    yield '[';
    for (let i = 0; i < value.length; i++) {
      if (i > 0) yield ',';
      const item = value[i] as unknown;
      if (item === undefined || typeof item === 'function' || typeof item === 'symbol') yield 'null';
      else yield* jsonPieces(item);
    }
    yield ']';
    return;
  }
  const object = value as Plain;
  yield '{';
  let first = true;
  for (const key of Object.keys(object)) {
    const item = object[key];
    if (item === undefined || typeof item === 'function' || typeof item === 'symbol') continue;
    yield `${first ? '' : ','}${JSON.stringify(key)}:`;
    first = false;
    yield* jsonPieces(item);
  }
  yield '}';
}

/** Values an array or object of `jsonPieces` may hold, nested ones counted, and still be written in one piece. */
const PIECE_NODES = 256;

/** Whether `value` holds more than `PIECE_NODES` values (counting stops there). */
function isLarge(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || typeof (value as { toJSON?: unknown }).toJSON === 'function') return false;
  let budget = PIECE_NODES;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const node = stack.pop();
    if (typeof node !== 'object' || node === null) continue;
    const items = Array.isArray(node) ? (node as unknown[]) : Object.values(node as Plain);
    budget -= items.length;
    if (budget < 0) return true;
    for (const item of items) if (typeof item === 'object' && item !== null) stack.push(item);
  }
  return false;
}

/**
 * The page's JSON (`workersStatsJson`, and `missingWorkers`: the slots left out of this answer),
 * piece by piece; `traffic` is `sumWorkerTraffic(reports)`, computed beforehand in steps.
 */
export function workersStatsJsonPieces(
  pools: Record<string, LoadBalancerSnapshot>,
  reports: CollectedReports,
  historySize: number,
  traffic: Record<string, PoolTrafficJson> = sumWorkerTraffic(reports),
): Generator<string> {
  const json: StatsJson & { missingWorkers: number[] } = {
    pools,
    events: mergeWorkerEvents(reports, historySize),
    traffic,
    durationBoundsMs: DURATION_BOUNDS_MS,
    protocol: sumWorkerProtocol(reports),
    workers: reports.length,
    missingWorkers: reports.missing ?? [],
  };
  return jsonPieces(json);
}

/**
 * The text of `renderWorkersMetrics`, and `fulcrum_workers_missing`, piece by piece; `traffic` is
 * `sumWorkerTraffic(reports)`, computed beforehand in steps.
 */
export function* workersMetricsPieces(
  pools: Record<string, LoadBalancerSnapshot>,
  reports: CollectedReports,
  traffic: Record<string, PoolTrafficJson> = sumWorkerTraffic(reports),
): Generator<string> {
  yield* renderPrometheusPieces(pools);
  yield* renderTrafficJsonPieces(traffic);
  yield renderProtocolFamilies(sumWorkerProtocol(reports));
  yield renderWorkerFamilies(reports);
  yield family('fulcrum_workers', 'gauge', 'Worker processes that answered this scrape.');
  yield `fulcrum_workers ${reports.length}\n`;
  yield family('fulcrum_workers_missing', 'gauge', 'Worker processes left out of this scrape: no answer within the deadline, or a report over the size cap.');
  yield `fulcrum_workers_missing ${reports.missing?.length ?? 0}\n`;
}

/**
 * Answer `status` with `headers` and the text of `pieces`, ~64 KB per turn of the event loop, waiting
 * for the client to drain what was written (a reader that takes nothing for 30 s is cut): @fulcrum/http's
 * `streamBody`, which its stats handlers use. HEAD gets the headers only. An error in `pieces`
 * destroys the socket: a truncated body must not look complete.
 */
export function streamPieces(req: IncomingMessage, res: ServerResponse, status: number, headers: OutgoingHttpHeaders, pieces: Iterator<string>): void {
  streamBody(req, res, status, headers, pieces);
}

/**
 * The large renders in progress over every worker, per handler (the page on the frontends, the page
 * on its listener, the metrics), as the primary counts them: at most `limit` at once per handler —
 * the single process's bound (`MAX_CONCURRENT_RENDERS` of `@fulcrum/http`, default 2) for the whole
 * instance. Each render is held in the name of the worker slot that asked, so a worker that exits
 * gives back what it held.
 */
export class RenderSlots {
  /** Per handler, the worker slot of each render in progress (a slot appears once per render). */
  readonly #held = new Map<string, number[]>();

  constructor(readonly limit: number = MAX_CONCURRENT_RENDERS) {}

  /** Take one of `handler`'s renders for worker `slot`; false when all of them are taken. */
  take(handler: string, slot: number): boolean {
    const held = this.#held.get(handler) ?? [];
    if (held.length >= this.limit) return false;
    held.push(slot);
    this.#held.set(handler, held);
    return true;
  }

  /** Give back one render of `handler` that worker `slot` took (nothing when it holds none). */
  give(handler: string, slot: number): void {
    const held = this.#held.get(handler);
    const at = held?.indexOf(slot) ?? -1;
    if (at !== -1) held!.splice(at, 1);
  }

  /** Give back every render worker `slot` holds (it exited). */
  release(slot: number): void {
    for (const held of this.#held.values()) {
      for (let at = held.indexOf(slot); at !== -1; at = held.indexOf(slot)) held.splice(at, 1);
    }
  }

  /** Renders of `handler` in progress. */
  active(handler: string): number {
    return this.#held.get(handler)?.length ?? 0;
  }
}
