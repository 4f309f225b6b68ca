/**
 * `fulcrum --workers N`: one primary process and N workers (Node's `cluster`) sharing the listening
 * sockets, each running the whole proxy (`startFulcrum`) with the same config — HAProxy's `nbthread`
 * with processes. The primary serves nothing: it validates the config, forks and replaces workers,
 * and relays between them over IPC:
 *
 * - stick-tables and `shared` rate limits: each worker's replicator (`IpcReplicator`, core's
 *   `Replicator` contract) publishes to the primary, which merges the entries (last writer wins, as
 *   the tables do) and forwards them to the other workers; a new or replaced worker loads the
 *   primary's merged entries as its snapshot. A config with its own `replication` keeps it instead
 *   (each worker with its own node id, `<nodeId>.w<slot>`);
 * - health: worker 1 runs the active checks; the others never probe and apply its verdicts
 *   (`LoadBalancer.restoreHealth`), so every worker sees the same states;
 * - admin API changes (drain, maintenance, ready, weight, add, remove, splits, reload) made through
 *   one worker are applied by every worker, and replayed to a replacement worker;
 * - the admin `GET /state` and the Prometheus metrics of any worker sum every worker's counters
 *   (states, weights and latencies from the checking worker).
 *
 * Signals to the primary: SIGHUP reloads every worker, SIGTERM/SIGINT drain every worker and exit
 * (a second one exits at once). A worker that dies is replaced, after a backoff when it died during
 * its start (a config that cannot start does not fork-loop).
 */
import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import type { BackendSnapshot, LoadBalancerSnapshot, Replicator, StickEntry } from '@fulcrum/core';
import { isExpired, mergeStickEntry } from '@fulcrum/core/session';
import type { RunnerLogger } from './log';
import { packReportSliced, unpackReports, type CollectedReports, type PackedReport, type WorkerStats } from './worker-stats';

/** Environment variables the primary gives its workers. */
export const WORKER_SLOT_ENV = 'FULCRUM_WORKER_SLOT';

/** The slot whose worker runs the health checks. */
export const CHECKING_SLOT = 1;

/** A change made through one worker's admin API, or a verdict of the checking worker, for every worker. */
export type WorkerChange =
  | { op: 'drain' | 'maintenance' | 'ready'; pool: string; id: string }
  | { op: 'weight'; pool: string; id: string; weight: number }
  | { op: 'add'; pool: string; spec: unknown }
  | { op: 'remove'; pool: string; id: string }
  | { op: 'split'; route: string; weights: Readonly<Record<string, number>> }
  | { op: 'reload' }
  | { op: 'health'; pool: string; id: string; up: boolean };

/** Where a worker listens, `host:port` (every worker shares the same sockets). */
export interface WorkerAddresses {
  frontends: string[];
  admin?: string;
  stats?: string;
  metrics?: string;
}

/** What one worker reports for the aggregated state and metrics. */
export interface WorkerReport {
  slot: number;
  pid: number;
  pools: Record<string, LoadBalancerSnapshot>;
  /** Its events, traffic and HTTP/2 counters, for the stats page and metrics (worker-stats.ts). */
  stats?: WorkerStats;
}

/** Messages between the primary and its workers (every one carries `fulcrum: 'w'`). */
type ToPrimary =
  | { fulcrum: 'w'; t: 'ready'; addresses: WorkerAddresses }
  | { fulcrum: 'w'; t: 'publish'; entries: StickEntry<unknown>[] }
  | { fulcrum: 'w'; t: 'snapshot'; id: number }
  | { fulcrum: 'w'; t: 'change'; change: WorkerChange }
  | { fulcrum: 'w'; t: 'collect'; id: number }
  | { fulcrum: 'w'; t: 'report'; id: number; report: PackedReport };
type ToWorker =
  | { fulcrum: 'w'; t: 'entries'; entries: StickEntry<unknown>[] }
  | { fulcrum: 'w'; t: 'snapshot'; id: number; entries: StickEntry<unknown>[] }
  | { fulcrum: 'w'; t: 'change'; change: WorkerChange }
  | { fulcrum: 'w'; t: 'collect'; id: number; reports: PackedReport[]; missing?: number[] }
  | { fulcrum: 'w'; t: 'report'; id: number }
  | { fulcrum: 'w'; t: 'shutdown' };

function isMessage(value: unknown): value is { fulcrum: 'w'; t: string } {
  return typeof value === 'object' && value !== null && (value as { fulcrum?: unknown }).fulcrum === 'w';
}

/**
 * Parse `--workers`: a whole number from 1 to 1024, or `auto` (the machine's cores). Returns an
 * error message for anything else.
 */
export function parseWorkers(value: string, cores: number = availableParallelism()): number | string {
  if (value === 'auto') return Math.max(1, cores);
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > 1024)
    return `--workers must be auto or a whole number from 1 to 1024, got ${JSON.stringify(value)}`;
  return Number(value);
}

// ── Worker side ───────────────────────────────────────────────────────────────────────────────

/** This process's slot when it is a `fulcrum` worker, else `undefined`. */
export function workerSlot(): number | undefined {
  if (!cluster.isWorker) return undefined;
  const slot = Number(process.env[WORKER_SLOT_ENV]);
  return Number.isInteger(slot) && slot >= 1 ? slot : undefined;
}

function send(message: ToPrimary): void {
  // A worker whose primary is gone exits through 'disconnect'; a lost message is then moot.
  if (process.connected) process.send!(message);
}

/** The worker's end of the IPC link: replicator, changes, aggregation, shutdown. */
export class WorkerLink {
  readonly slot: number;
  readonly runsChecks: boolean;
  readonly replicator: Replicator<unknown>;
  #nextId = 0;
  readonly #snapshots = new Map<number, (entries: StickEntry<unknown>[]) => void>();
  readonly #collects = new Map<number, (reports: PackedReport[], missing: number[]) => void>();
  readonly #subscribers = new Set<(entries: readonly StickEntry<unknown>[]) => void>();
  /** Applies a change another worker made (set by the CLI once the runner is up). */
  onChange: (change: WorkerChange) => void = () => undefined;
  /** This worker's report for an aggregation (set by the CLI once the runner is up). */
  report: () => WorkerReport | undefined = () => undefined;
  /** Set when the primary asked this worker to stop (perhaps before `onShutdown` was set). */
  shutdownRequested = false;
  onShutdown: () => void = () => undefined;
  /** Changes received before the runner could apply them. */
  readonly #pending: WorkerChange[] = [];
  #applying = false;

  constructor(slot: number) {
    this.slot = slot;
    this.runsChecks = slot === CHECKING_SLOT;
    // The replicator's methods are called with the replicator as `this`: they reach the link through it.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const link = this;
    this.replicator = {
      publish(entries) {
        send({ fulcrum: 'w', t: 'publish', entries: [...entries] });
      },
      subscribe(onEntries) {
        link.#subscribers.add(onEntries);
        return () => link.#subscribers.delete(onEntries);
      },
      snapshot() {
        const id = ++link.#nextId;
        return new Promise((resolve) => {
          link.#snapshots.set(id, resolve);
          send({ fulcrum: 'w', t: 'snapshot', id });
        });
      },
      close: async () => undefined,
    };
    process.on('message', this.#onMessage);
  }

  #onMessage = (message: unknown): void => {
    if (!isMessage(message)) return;
    const m = message as ToWorker;
    if (m.t === 'entries') for (const subscriber of this.#subscribers) subscriber(m.entries);
    else if (m.t === 'snapshot') {
      this.#snapshots.get(m.id)?.(m.entries);
      this.#snapshots.delete(m.id);
    } else if (m.t === 'change') {
      this.#pending.push(m.change);
      if (this.#applying) this.#drainPending();
    } else if (m.t === 'collect') {
      this.#collects.get(m.id)?.(m.reports, m.missing ?? []);
      this.#collects.delete(m.id);
    } else if (m.t === 'report') {
      const report = this.report();
      void packReportSliced(report ?? { slot: this.slot, pid: process.pid, pools: {} }).then((packed) =>
        send({ fulcrum: 'w', t: 'report', id: m.id, report: packed }),
      );
    } else if (m.t === 'shutdown') {
      this.shutdownRequested = true;
      this.onShutdown();
    }
  };

  #drainPending(): void {
    while (this.#pending.length > 0) this.onChange(this.#pending.shift()!);
  }

  /** The runner is up: apply what arrived meanwhile and everything after it, and tell the primary. */
  started(addresses: WorkerAddresses): void {
    this.#applying = true;
    this.#drainPending();
    send({ fulcrum: 'w', t: 'ready', addresses });
  }

  /** Send a change made here to every other worker. */
  broadcast(change: WorkerChange): void {
    send({ fulcrum: 'w', t: 'change', change });
  }

  /** Every live worker's report (this one's included), through the primary; `missing` names the workers left out. */
  collect(): Promise<CollectedReports> {
    const id = ++this.#nextId;
    return new Promise((resolve) => {
      this.#collects.set(id, (reports, missing) => void unpackReports(reports, missing).then(resolve));
      send({ fulcrum: 'w', t: 'collect', id });
    });
  }

  detach(): void {
    process.off('message', this.#onMessage);
  }
}

/** Sum the workers' counters into one snapshot per pool; states and weights from the checking worker's. */
export function mergeReports(reports: readonly WorkerReport[]): Record<string, LoadBalancerSnapshot> {
  if (reports.length === 0) return {};
  const base = reports.find((r) => r.slot === CHECKING_SLOT) ?? reports[0]!;
  const merged: Record<string, LoadBalancerSnapshot> = {};
  for (const [name, pool] of Object.entries(base.pools)) {
    const backends: BackendSnapshot[] = pool.backends.map((b) => ({ ...b, inflight: 0, requests: 0, failures: 0 }));
    const byId = new Map(backends.map((b) => [b.id, b]));
    for (const report of reports) {
      for (const b of report.pools[name]?.backends ?? []) {
        const sum = byId.get(b.id);
        if (sum === undefined) continue;
        sum.inflight += b.inflight;
        sum.requests += b.requests;
        sum.failures += b.failures;
      }
    }
    merged[name] = { ...pool, backends };
  }
  return merged;
}

// ── Primary side ──────────────────────────────────────────────────────────────────────────────

/**
 * The primary's merged stick-table entries (every namespace: pools' tables and shared rate limits),
 * what a new worker loads. Bounded: keys can come from clients (`header` stickiness), so past
 * `capacity` the least recently written entry goes, as the workers' own tables evict theirs.
 */
export class MergedEntries {
  readonly #entries = new Map<string, StickEntry<unknown>>();
  constructor(readonly capacity: number = MERGED_CAPACITY) {}

  get size(): number {
    return this.#entries.size;
  }

  merge(entries: readonly StickEntry<unknown>[]): void {
    for (const entry of entries) {
      const merged = mergeStickEntry(this.#entries.get(entry.key), entry);
      // Re-inserted, so the Map's order is the order of the last writes.
      this.#entries.delete(entry.key);
      this.#entries.set(entry.key, merged);
      if (this.#entries.size > this.capacity) this.#entries.delete(this.#entries.keys().next().value as string);
    }
  }

  /** The live entries (expired ones are dropped on the way). */
  live(now: number): StickEntry<unknown>[] {
    const out: StickEntry<unknown>[] = [];
    for (const [key, entry] of this.#entries) {
      if (isExpired(entry, now)) this.#entries.delete(key);
      else out.push(entry);
    }
    return out;
  }
}

/** Entries the primary keeps at most: ten workers' tables at their default capacity (100,000). */
const MERGED_CAPACITY = 1_000_000;

export interface PrimaryOptions {
  workers: number;
  log: RunnerLogger;
  /** The config's shutdown grace, ms: how long the primary waits for its workers to drain, plus a margin. */
  shutdownGraceMs: number;
}

/** Longest wait for the workers' reports of an aggregation, ms; late workers are left out. */
const COLLECT_TIMEOUT_MS = 2000;
/** A worker that dies within this of its fork, before it served, counts as a failed start. */
const STARTUP_FAILURE_MS = 10_000;
const BACKOFF_MAX_MS = 30_000;

interface Slot {
  readonly slot: number;
  worker: Worker | undefined;
  ready: boolean;
  forkedAt: number;
  /** Consecutive failed starts: the backoff doubles with each. */
  failures: number;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Run the primary: fork `workers` workers and keep them running until SIGTERM/SIGINT. Resolves with
 * the exit code. The config has been validated by the caller.
 */
export function runPrimary(options: PrimaryOptions): Promise<number> {
  const { log } = options;
  cluster.schedulingPolicy = cluster.SCHED_RR;
  const slots: Slot[] = [];
  const entries = new MergedEntries();
  /** Health verdicts of the checking worker, by pool and backend, for workers that start later. */
  const health = new Map<string, WorkerChange & { op: 'health' }>();
  /** Admin changes since the last reload, replayed to replacement workers. */
  let adminLog: WorkerChange[] = [];
  let nextCollect = 0;
  const collects = new Map<
    number,
    { waiting: Set<number>; reports: PackedReport[]; reply: (reports: PackedReport[], missing: number[]) => void; timer: NodeJS.Timeout }
  >();
  let stopping = false;
  let announced = false;

  const sweep = setInterval(() => entries.live(Date.now()), 10_000);
  sweep.unref();

  const live = (): Slot[] => slots.filter((s) => s.worker !== undefined && s.ready);
  const sendTo = (worker: Worker | undefined, message: ToWorker): void => {
    if (worker !== undefined && worker.isConnected()) worker.send(message);
  };

  const finishCollect = (id: number): void => {
    const pending = collects.get(id);
    if (pending === undefined) return;
    collects.delete(id);
    clearTimeout(pending.timer);
    const missing = [...pending.waiting].sort((a, b) => a - b);
    if (missing.length > 0) log('warn', 'workers left out of a stats answer: no report in time', { workers: missing, timeoutMs: COLLECT_TIMEOUT_MS });
    pending.reply(
      pending.reports.sort((a, b) => a.slot - b.slot),
      missing,
    );
  };

  const onMessage = (slot: Slot, worker: Worker, raw: unknown): void => {
    if (!isMessage(raw)) return;
    const message = raw as ToPrimary;
    switch (message.t) {
      case 'ready': {
        slot.ready = true;
        slot.failures = 0;
        log('info', 'worker started', { worker: slot.slot, pid: worker.process.pid });
        // What it missed: the checking worker's verdicts and the admin changes since the last reload.
        for (const change of health.values()) sendTo(worker, { fulcrum: 'w', t: 'change', change });
        for (const change of adminLog) sendTo(worker, { fulcrum: 'w', t: 'change', change });
        if (!announced && live().length === slots.length) {
          announced = true;
          log('info', 'fulcrum started', { workers: slots.length, pid: process.pid, ...message.addresses });
        }
        return;
      }
      case 'publish': {
        entries.merge(message.entries);
        for (const other of slots) if (other !== slot) sendTo(other.worker, { fulcrum: 'w', t: 'entries', entries: message.entries });
        return;
      }
      case 'snapshot': {
        sendTo(worker, { fulcrum: 'w', t: 'snapshot', id: message.id, entries: entries.live(Date.now()) });
        return;
      }
      case 'change': {
        const change = message.change;
        if (change.op === 'health') health.set(`${change.pool}\u001f${change.id}`, change);
        else if (change.op === 'reload') adminLog = [];
        else adminLog.push(change);
        for (const other of slots) if (other !== slot) sendTo(other.worker, { fulcrum: 'w', t: 'change', change });
        return;
      }
      case 'collect': {
        const id = ++nextCollect;
        const targets = live();
        const timer = setTimeout(() => finishCollect(id), COLLECT_TIMEOUT_MS);
        collects.set(id, {
          waiting: new Set(targets.map((s) => s.slot)),
          reports: [],
          reply: (reports, missing) => sendTo(worker, { fulcrum: 'w', t: 'collect', id: message.id, reports, missing }),
          timer,
        });
        for (const target of targets) sendTo(target.worker, { fulcrum: 'w', t: 'report', id });
        if (targets.length === 0) finishCollect(id);
        return;
      }
      case 'report': {
        const pending = collects.get(message.id);
        if (pending === undefined) return;
        if (message.report.refused !== undefined) log('warn', 'worker report refused', { worker: slot.slot, reason: message.report.refused });
        pending.reports.push(message.report);
        pending.waiting.delete(slot.slot);
        if (pending.waiting.size === 0) finishCollect(message.id);
        return;
      }
    }
  };

  const fork = (slot: Slot): void => {
    slot.timer = undefined;
    const worker = cluster.fork({ [WORKER_SLOT_ENV]: String(slot.slot) });
    slot.worker = worker;
    slot.ready = false;
    slot.forkedAt = Date.now();
    worker.on('message', (message: unknown) => onMessage(slot, worker, message));
  };

  return new Promise<number>((resolveExit) => {
    let exitCode = 0;
    const finished = (): void => {
      if (slots.some((s) => s.worker !== undefined)) return;
      clearInterval(sweep);
      process.off('SIGHUP', onHup);
      process.off('SIGUSR2', onUsr2);
      process.off('SIGTERM', onStop);
      process.off('SIGINT', onStop);
      cluster.off('exit', onExit);
      // A failed start does not "stop".
      if (announced) log('info', 'fulcrum stopped', { workers: slots.length });
      resolveExit(exitCode);
    };

    const onExit = (worker: Worker, code: number | null, signal: string | null): void => {
      const slot = slots.find((s) => s.worker === worker);
      if (slot === undefined) return;
      slot.worker = undefined;
      for (const [id, pending] of collects) {
        if (pending.waiting.delete(slot.slot) && pending.waiting.size === 0) finishCollect(id);
      }
      if (stopping) {
        if (code !== 0) exitCode = 1;
        finished();
        return;
      }
      const failedStart = !slot.ready && Date.now() - slot.forkedAt < STARTUP_FAILURE_MS;
      if (!announced) {
        // The first start failed (a port in use, a certificate gone since the check): as one process
        // would, exit 1 rather than fork-loop, and stop the workers that did start.
        log('error', 'a worker could not start; stopping', { worker: slot.slot, pid: worker.process.pid, code, signal });
        exitCode = 1;
        stopping = true;
        for (const other of slots) {
          if (other.timer !== undefined) clearTimeout(other.timer);
          sendTo(other.worker, { fulcrum: 'w', t: 'shutdown' });
        }
        finished();
        return;
      }
      slot.failures = failedStart ? slot.failures + 1 : 0;
      const delayMs = slot.failures === 0 ? 0 : Math.min(BACKOFF_MAX_MS, 100 * 2 ** (slot.failures - 1));
      log(slot.failures > 0 ? 'error' : 'warn', 'worker exited; replacing it', {
        worker: slot.slot,
        pid: worker.process.pid,
        code,
        signal,
        failedStart,
        restartInMs: delayMs,
      });
      slot.ready = false;
      slot.timer = setTimeout(() => fork(slot), delayMs);
    };

    // Seamless binary upgrades (SIGUSR2) are the single process's: here the signal must not kill the primary.
    const onUsr2 = (): void => log('warn', 'SIGUSR2 ignored: seamless upgrades need a single process (without --workers)');
    const onHup = (): void => {
      log('info', 'reloading every worker', { signal: 'SIGHUP' });
      adminLog = [];
      for (const slot of slots) sendTo(slot.worker, { fulcrum: 'w', t: 'change', change: { op: 'reload' } });
    };

    const onStop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        for (const slot of slots) slot.worker?.process.kill('SIGKILL');
        resolveExit(1);
        return;
      }
      stopping = true;
      log('info', 'shutting down', { signal, workers: slots.length, graceMs: options.shutdownGraceMs });
      for (const slot of slots) {
        if (slot.timer !== undefined) clearTimeout(slot.timer);
        slot.timer = undefined;
        sendTo(slot.worker, { fulcrum: 'w', t: 'shutdown' });
      }
      // Workers that do not finish within the grace period and a margin are killed.
      setTimeout(() => {
        for (const slot of slots) slot.worker?.process.kill('SIGKILL');
      }, options.shutdownGraceMs + 5000).unref();
      finished();
    };

    cluster.on('exit', onExit);
    process.on('SIGHUP', onHup);
    process.on('SIGUSR2', onUsr2);
    process.on('SIGTERM', onStop);
    process.on('SIGINT', onStop);
    for (let i = 1; i <= options.workers; i++) {
      const slot: Slot = { slot: i, worker: undefined, ready: false, forkedAt: 0, failures: 0, timer: undefined };
      slots.push(slot);
      fork(slot);
    }
  });
}
