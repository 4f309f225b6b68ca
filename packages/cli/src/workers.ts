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
 *   (states, weights and latencies from the checking worker);
 * - the large renders of the stats page's JSON and the metrics: the primary grants at most two per
 *   handler at once over every worker, as one process renders (`RenderSlots`, worker-stats.ts).
 *
 * The primary owns the listening sockets, so that it can hand them to a successor
 * (`worker-listeners.ts`). By default (`workers.accept: 'primary'`) it accepts every connection and
 * passes it to a worker, on the channel that carries the stick-table entries, so learned stickiness
 * is exact; with `workers.accept: 'workers'` it also gives each worker a handle to them and the
 * workers accept themselves.
 *
 * Signals to the primary: SIGHUP reloads every worker, SIGTERM/SIGINT drain every worker and exit
 * (a second one exits at once), SIGUSR2 upgrades: the primary starts a new primary from the same
 * command line and hands it the listening sockets and its state (`handover.ts`: the checking
 * worker's health counters and admin states, the merged stick-table entries, the verdicts and the
 * admin changes it replays); once the new primary's workers serve, the old workers drain and the old
 * primary exits. A worker that dies is replaced, after a backoff when it died during its start (a
 * config that cannot start does not fork-loop).
 */
import type { ChildProcess } from 'node:child_process';
import cluster, { type Worker } from 'node:cluster';
import { Socket, type AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import type { LoadBalancerSnapshot, Replicator, StickEntry } from '@fulcrum/core';
import { isExpired, mergeStickEntry } from '@fulcrum/core/session';
import {
  handOver,
  holdConnections,
  isServer,
  spawnSuccessor,
  UPGRADE_TIMEOUT_MS,
  type HandoverState,
  type Inherited,
  type InheritedListener,
} from './handover';
import type { RunnerLogger } from './log';
import type { PrimaryListeners } from './worker-listeners';
import {
  mergeSnapshotsSteps,
  packReportSliced,
  RenderSlots,
  runSteps,
  unpackReports,
  type CollectedReports,
  type PackedReport,
  type WorkerStats,
} from './worker-stats';

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
  | { fulcrum: 'w'; t: 'report'; id: number; report: PackedReport }
  /** Ask for one of `handler`'s render slots; answered by a `render` message with the same id. */
  | { fulcrum: 'w'; t: 'render'; id: number; handler: string }
  /** A render slot granted to this worker is free again. */
  | { fulcrum: 'w'; t: 'rendered'; handler: string }
  | { fulcrum: 'w'; t: 'hello' }
  | { fulcrum: 'w'; t: 'listening'; keys: string[] }
  | { fulcrum: 'w'; t: 'handover'; id: number; state: HandoverState | null };
type ToWorker =
  | { fulcrum: 'w'; t: 'entries'; entries: StickEntry<unknown>[] }
  | { fulcrum: 'w'; t: 'snapshot'; id: number; entries: StickEntry<unknown>[] }
  | { fulcrum: 'w'; t: 'change'; change: WorkerChange }
  | { fulcrum: 'w'; t: 'collect'; id: number; reports: PackedReport[]; missing?: number[] }
  | { fulcrum: 'w'; t: 'report'; id: number }
  | { fulcrum: 'w'; t: 'render'; id: number; granted: boolean }
  | { fulcrum: 'w'; t: 'shutdown' }
  /**
   * The listeners to serve and the state to restore. Each key follows as a `listener` message with its
   * handle, or is in `relayed` (with its address): the primary accepts on it and passes the connections.
   */
  | { fulcrum: 'w'; t: 'listeners'; keys: string[]; state: HandoverState; relayed?: Record<string, AddressInfo> }
  | { fulcrum: 'w'; t: 'listener'; key: string }
  /** A connection the primary accepted on the listener `key` (the socket is the message's handle). */
  | { fulcrum: 'w'; t: 'connection'; key: string }
  /** This worker's `handoverState()`, for an upgrade. */
  | { fulcrum: 'w'; t: 'handover'; id: number };

function isSocket(handle: unknown): handle is Socket {
  return handle instanceof Socket;
}

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
  readonly #renders = new Map<number, (granted: boolean) => void>();
  readonly #subscribers = new Set<(entries: readonly StickEntry<unknown>[]) => void>();
  /** Applies a change another worker made (set by the CLI once the runner is up). */
  onChange: (change: WorkerChange) => void = () => undefined;
  /** This worker's report for an aggregation (set by the CLI once the runner is up). */
  report: () => WorkerReport | undefined = () => undefined;
  /** Set when the primary asked this worker to stop (perhaps before `onShutdown` was set). */
  shutdownRequested = false;
  onShutdown: () => void = () => undefined;
  /** Serves a connection the primary accepted (set by the CLI once the runner is up). */
  onConnection: (key: string, socket: Socket) => void = (_key, socket) => socket.destroy();
  /** This worker's state for a successor (set by the CLI once the runner is up). */
  handoverState: () => HandoverState | undefined = () => undefined;
  /** Changes received before the runner could apply them. */
  readonly #pending: WorkerChange[] = [];
  #applying = false;
  /** Listeners being received from the primary (`listeners()`). */
  #receiving:
    | {
        keys: ReadonlySet<string> | undefined;
        state: HandoverState | undefined;
        listeners: Map<string, InheritedListener>;
        relayed: Map<string, AddressInfo>;
        done: () => void;
        fail: (error: Error) => void;
      }
    | undefined;

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

  #onMessage = (message: unknown, handle: unknown): void => {
    if (!isMessage(message)) return;
    const m = message as ToWorker;
    if (m.t === 'connection') {
      if (isSocket(handle)) this.onConnection(m.key, handle);
    } else if (m.t === 'listeners' || m.t === 'listener') this.#receive(m, handle);
    else if (m.t === 'handover') send({ fulcrum: 'w', t: 'handover', id: m.id, state: this.handoverState() ?? null });
    else if (m.t === 'entries') for (const subscriber of this.#subscribers) subscriber(m.entries);
    else if (m.t === 'snapshot') {
      this.#snapshots.get(m.id)?.(m.entries);
      this.#snapshots.delete(m.id);
    } else if (m.t === 'change') {
      this.#pending.push(m.change);
      if (this.#applying) this.#drainPending();
    } else if (m.t === 'collect') {
      this.#collects.get(m.id)?.(m.reports, m.missing ?? []);
      this.#collects.delete(m.id);
    } else if (m.t === 'render') {
      this.#renders.get(m.id)?.(m.granted);
      this.#renders.delete(m.id);
    } else if (m.t === 'report') {
      const report = this.report();
      void packReportSliced(report ?? { slot: this.slot, pid: process.pid, pools: {} }).then((packed) =>
        send({ fulcrum: 'w', t: 'report', id: m.id, report: packed }),
      );
    } else if (m.t === 'shutdown') {
      this.shutdownRequested = true;
      this.#receiving?.fail(new Error('the primary is shutting down'));
      this.onShutdown();
    }
  };

  #receive(m: ToWorker & { t: 'listeners' | 'listener' }, handle: unknown): void {
    const receiving = this.#receiving;
    if (m.t === 'listeners') {
      if (receiving === undefined) return;
      receiving.keys = new Set(m.keys);
      receiving.state = m.state;
      for (const [key, address] of Object.entries(m.relayed ?? {})) receiving.relayed.set(key, address);
    } else if (isServer(handle)) {
      // A listener nobody waits for (late, after a timeout) must not accept for nobody.
      if (receiving === undefined) handle.close();
      else receiving.listeners.set(m.key, holdConnections(handle));
    }
    if (receiving?.keys !== undefined && [...receiving.keys].every((key) => receiving.listeners.has(key) || receiving.relayed.has(key))) receiving.done();
  }

  /**
   * Ask the primary for the listening sockets (and the state a successor's first workers restore),
   * before the runner starts: it adopts them as a successor adopts its predecessor's. Rejects after
   * `timeoutMs` or when the primary goes away.
   */
  listeners(timeoutMs: number): Promise<Inherited> {
    return new Promise((resolvePromise, reject) => {
      const listeners = new Map<string, InheritedListener>();
      const relayed = new Map<string, AddressInfo>();
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        process.off('disconnect', onDisconnect);
        const state = this.#receiving?.state ?? { version: 1, pools: {} };
        this.#receiving = undefined;
        if (error === undefined) return resolvePromise({ listeners, state, ...(relayed.size === 0 ? {} : { relayed }) });
        for (const listener of listeners.values()) {
          listener.server.close();
          for (const socket of listener.pending) socket.destroy();
        }
        reject(error);
      };
      const onDisconnect = (): void => finish(new Error('the primary went away before it sent the listeners'));
      const timer = setTimeout(() => finish(new Error(`no listeners from the primary within ${timeoutMs} ms`)), timeoutMs);
      this.#receiving = { keys: undefined, state: undefined, listeners, relayed, done: () => finish(), fail: finish };
      process.on('disconnect', onDisconnect);
      send({ fulcrum: 'w', t: 'hello' });
    });
  }

  #drainPending(): void {
    while (this.#pending.length > 0) this.onChange(this.#pending.shift()!);
  }

  /** The runner is up: apply what arrived meanwhile and everything after it, and tell the primary. */
  started(addresses: WorkerAddresses): void {
    this.#applying = true;
    this.#drainPending();
    send({ fulcrum: 'w', t: 'ready', addresses });
  }

  /** The listeners this worker serves (after its start and each reload): the primary closes the ones no worker serves. */
  listening(keys: readonly string[]): void {
    send({ fulcrum: 'w', t: 'listening', keys: [...keys] });
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

  /**
   * One of `handler`'s render slots (`RenderSlots`: two at once over every worker), or undefined
   * when the primary has none left. Its `release` gives it back and may be called any number of
   * times, so every way a response ends can call it.
   */
  renderSlot(handler: string): Promise<RenderSlot | undefined> {
    // A worker whose primary is gone exits through 'disconnect': it renders nothing meanwhile.
    if (!process.connected) return Promise.resolve(undefined);
    const id = ++this.#nextId;
    return new Promise((resolve) => {
      this.#renders.set(id, (granted) => {
        if (!granted) return resolve(undefined);
        let held = true;
        resolve({
          release: () => {
            if (!held) return;
            held = false;
            send({ fulcrum: 'w', t: 'rendered', handler });
          },
        });
      });
      send({ fulcrum: 'w', t: 'render', id, handler });
    });
  }

  detach(): void {
    process.off('message', this.#onMessage);
  }
}

/** A render slot the primary granted (`WorkerLink.renderSlot`). */
export interface RenderSlot {
  /** Give the slot back; idempotent. */
  release(): void;
}

/** Sum the workers' counters into one snapshot per pool; states and weights from the checking worker's. */
export function mergeReports(reports: readonly WorkerReport[]): Record<string, LoadBalancerSnapshot> {
  return runSteps(mergeSnapshotsSteps(reports, CHECKING_SLOT));
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
  /** The listening sockets, bound or inherited: handed to a successor, and to every worker with `accept: 'workers'`. */
  listeners: PrimaryListeners;
  /** Who accepts the connections (the config's `workers.accept`, read at start): see worker-listeners.ts. */
  accept: 'primary' | 'workers';
  /** The command line's arguments (without node and script): a successor is started with them. */
  argv: readonly string[];
  /** What a predecessor handed over (this primary is a successor): restored by the first workers. */
  inherited?: HandoverState;
  /** Called once every first worker serves (a successor tells its predecessor). */
  onServing?: () => void;
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
  /** The listener keys its worker last said it serves; undefined until it says. */
  listening: ReadonlySet<string> | undefined;
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
  const renders = new RenderSlots();
  const collects = new Map<number, { waiting: Set<number>; reports: PackedReport[]; reply: (reports: PackedReport[]) => void; timer: NodeJS.Timeout }>();
  let stopping = false;
  let announced = false;
  let upgrading = false;
  /** The new primary of an upgrade under way. */
  let successor: ChildProcess | undefined;
  const { listeners } = options;
  let nextHandover = 0;
  const handovers = new Map<number, (state: HandoverState | null) => void>();
  // A successor carries on with what its predecessor kept for later workers.
  const handed = options.inherited?.primary;
  if (handed !== undefined) {
    entries.merge(handed.entries);
    for (const change of handed.health) if (change.op === 'health') health.set(`${change.pool}\u001f${change.id}`, change);
    adminLog = [...handed.adminLog];
  }
  /** What the first workers restore before they serve: the predecessor's pools (a successor), or nothing. */
  const firstState: HandoverState = { version: 1, pools: options.inherited?.pools ?? {} };

  const sweep = setInterval(() => entries.live(Date.now()), 10_000);
  sweep.unref();

  const live = (): Slot[] => slots.filter((s) => s.worker !== undefined && s.ready);
  // Kept as one array, rebuilt when a worker becomes ready or goes: the primary passes connections
  // to it, and the accept path allocates nothing for it.
  let ready: readonly Worker[] = [];
  const refreshReady = (): void => {
    ready = live().map((s) => s.worker!);
  };
  listeners.readyWorkers = () => ready;
  const sendTo = (worker: Worker | undefined, message: ToWorker): void => {
    if (worker !== undefined && worker.isConnected()) worker.send(message);
  };

  const finishCollect = (id: number): void => {
    const pending = collects.get(id);
    if (pending === undefined) return;
    collects.delete(id);
    clearTimeout(pending.timer);
    const late = [...pending.waiting].sort((a, b) => a - b);
    if (late.length > 0) log('warn', 'workers left out of a stats answer: no report in time', { workers: late, timeoutMs: COLLECT_TIMEOUT_MS });
    pending.reply(pending.reports.sort((a, b) => a.slot - b.slot));
  };

  const onMessage = (slot: Slot, worker: Worker, raw: unknown): void => {
    if (!isMessage(raw)) return;
    const message = raw as ToPrimary;
    switch (message.t) {
      case 'hello': {
        // Stopping: the listeners are closed here, and a shutdown sent before this worker listened is lost.
        if (stopping) {
          sendTo(worker, { fulcrum: 'w', t: 'shutdown' });
          return;
        }
        // The listeners, each with its handle (messages with handles keep their order), and what the
        // first workers of a successor restore before they serve.
        const keys = listeners.keys();
        const state = announced ? { version: 1 as const, pools: {} } : firstState;
        if (options.accept === 'primary') {
          // This primary accepts for it: no handle, only where each listener is (what it reports).
          sendTo(worker, { fulcrum: 'w', t: 'listeners', keys, state, relayed: listeners.addressInfo() });
          return;
        }
        sendTo(worker, { fulcrum: 'w', t: 'listeners', keys, state });
        for (const [key, server] of listeners.servers) {
          if (worker.isConnected()) worker.send({ fulcrum: 'w', t: 'listener', key } satisfies ToWorker, server);
        }
        return;
      }
      case 'ready': {
        slot.ready = true;
        slot.failures = 0;
        refreshReady();
        log('info', 'worker started', { worker: slot.slot, pid: worker.process.pid });
        // What it missed: the checking worker's verdicts and the admin changes since the last reload.
        for (const change of health.values()) sendTo(worker, { fulcrum: 'w', t: 'change', change });
        for (const change of adminLog) sendTo(worker, { fulcrum: 'w', t: 'change', change });
        listeners.flush();
        if (!announced && live().length === slots.length) {
          announced = true;
          log('info', 'fulcrum started', { workers: slots.length, pid: process.pid, ...message.addresses });
          options.onServing?.();
        }
        return;
      }
      case 'listening': {
        slot.listening = new Set(message.keys);
        retireUnused();
        return;
      }
      case 'handover': {
        handovers.get(message.id)?.(message.state);
        handovers.delete(message.id);
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
          // Missing: asked and no report (late, or exited meanwhile); a refused report says so itself.
          reply: (reports) => {
            const missing = targets.map((s) => s.slot).filter((s) => !reports.some((r) => r.slot === s));
            sendTo(worker, { fulcrum: 'w', t: 'collect', id: message.id, reports, missing });
          },
          timer,
        });
        for (const target of targets) sendTo(target.worker, { fulcrum: 'w', t: 'report', id });
        if (targets.length === 0) finishCollect(id);
        return;
      }
      case 'render': {
        sendTo(worker, { fulcrum: 'w', t: 'render', id: message.id, granted: renders.take(message.handler, slot.slot) });
        return;
      }
      case 'rendered': {
        renders.give(message.handler, slot.slot);
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

  /**
   * Close the primary's copy of a listener that a reload took out of every worker (once every running
   * worker has said what it serves): it would accept connections nobody serves, and keep the port.
   */
  const retireUnused = (): void => {
    const running = slots.filter((s) => s.worker !== undefined);
    if (running.length === 0 || running.some((s) => s.listening === undefined)) return;
    for (const key of [...listeners.servers.keys()]) {
      if (running.some((s) => s.listening!.has(key))) continue;
      listeners.retire(key);
      log('info', 'listener closed: no worker serves it since a reload', { listener: key });
    }
  };

  const fork = (slot: Slot): void => {
    slot.timer = undefined;
    slot.listening = undefined;
    const worker = cluster.fork({ [WORKER_SLOT_ENV]: String(slot.slot) });
    slot.worker = worker;
    slot.ready = false;
    refreshReady();
    slot.forkedAt = Date.now();
    worker.on('message', (message: unknown) => onMessage(slot, worker, message));
  };

  return new Promise<number>((resolveExit) => {
    let exitCode = 0;
    const finished = (): void => {
      if (slots.some((s) => s.worker !== undefined)) return;
      listeners.close();
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
      refreshReady();
      listeners.workerGone(worker);
      renders.release(slot.slot);
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
        listeners.close();
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

    /** The checking worker's pools for a successor (its health counters, admin states, stickiness). */
    const checkingState = (): Promise<HandoverState | null> => {
      const target = live().find((s) => s.slot === CHECKING_SLOT) ?? live()[0];
      if (target === undefined) return Promise.resolve(null);
      const id = ++nextHandover;
      return new Promise((resolvePromise) => {
        const timer = setTimeout(() => {
          handovers.delete(id);
          resolvePromise(null);
        }, COLLECT_TIMEOUT_MS);
        handovers.set(id, (state) => {
          clearTimeout(timer);
          resolvePromise(state);
        });
        sendTo(target.worker, { fulcrum: 'w', t: 'handover', id });
      });
    };
    const upgrade = async (): Promise<number> => {
      const checked = await checkingState();
      if (checked === null) log('warn', 'upgrade: no worker gave its state; the new workers start from the verdicts and admin changes alone');
      const state: HandoverState = {
        version: 1,
        pools: checked?.pools ?? {},
        primary: { entries: entries.live(Date.now()), health: [...health.values()], adminLog },
      };
      const child = spawnSuccessor(options.argv);
      successor = child;
      try {
        const pid = await handOver(child, state, listeners.servers, UPGRADE_TIMEOUT_MS);
        child.disconnect();
        child.unref();
        return pid;
      } catch (error) {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
        throw error;
      } finally {
        successor = undefined;
      }
    };
    const onUsr2 = (): void => {
      if (stopping || upgrading || !announced) {
        log(
          'warn',
          stopping ? 'upgrade ignored: shutting down' : upgrading ? 'upgrade ignored: one is in progress' : 'upgrade ignored: the workers are starting',
        );
        return;
      }
      upgrading = true;
      log('info', 'upgrade: starting a new process', { pid: process.pid, workers: slots.length });
      upgrade().then(
        (pid) => {
          // Stopped meanwhile (SIGTERM): the successor was told to stop too; `onStop` is under way.
          if (stopping) return;
          log('info', 'upgrade: the new process serves; this one drains and exits', { successor: pid });
          onStop('SIGUSR2');
        },
        (error: unknown) => {
          upgrading = false;
          log('error', 'upgrade failed; this process keeps serving', { error: (error as Error).message ?? String(error) });
        },
      );
    };
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
      // The primary's copies first: a connection relayed before this reaches its worker before the shutdown.
      listeners.close();
      // An upgrade under way is abandoned: the operator stops this fleet, not for another to take over.
      if (successor !== undefined && successor.exitCode === null && successor.signalCode === null) successor.kill('SIGTERM');
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
      const slot: Slot = { slot: i, worker: undefined, ready: false, forkedAt: 0, failures: 0, timer: undefined, listening: undefined };
      slots.push(slot);
      fork(slot);
    }
  });
}
