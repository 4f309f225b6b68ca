/**
 * `FileReplicator`: connects stick-tables on several hosts through a directory that a tool
 * replicates between them. Each replicator appends the batches its table publishes to its own log
 * (`stick-log.ts` explains the format and why one log per node beats one file per key), tails the
 * other nodes' logs, and builds snapshots by scanning them — HAProxy's peers protocol with the
 * directory as the wire: updates stream in order per node, a joining node resyncs from the whole
 * state, and the stick-table's last-writer-wins merge by `(updatedAt, origin)` settles conflicts, so
 * an older entry never replaces a newer one whatever order the tool delivers files in.
 *
 * Change detection: `fs.watch` (inotify, FSEvents, ReadDirectoryChangesW) when it works, and
 * polling always. Polling is not a fallback for exotic platforms only: inotify reports changes made
 * through the local kernel, so it misses what an NFS server or a FUSE-mounted GlusterFS volume
 * changed on behalf of another host, and rsync-based tools (lsyncd) deliver a rename that some
 * watchers coalesce or drop. A poll is one `readdir` and one `stat` per node, so it runs every
 * second by default (`pollIntervalMs`), which is also the worst-case replication delay it adds.
 *
 * Bounded growth: the owner compacts its log (rewrites it, via temp file + rename, with only its
 * live latest entries under a new generation) once it passes `compactBytes` and holds more than
 * half garbage, and when everything in it has expired. A log whose entries have all expired and
 * that nobody has written for five minutes belongs to a node that is gone (a restart gets a new
 * default node id): any replicator removes it. Tombstones travel like values and expire like them.
 *
 * Defaults: `pollIntervalMs` 1000 (one stat per node per second is free; a second of extra delay
 * is far below a stick-table's TTL); `compactBytes` 1 MiB (a few thousand entries; rewriting it is
 * a millisecond); `fsync` off, because a stick entry lost to a power cut costs one re-pick, not a
 * user's session; `nodeId` `<hostname>-<pid>-<random>`, unique per instance, which is what matters:
 * each log must have exactly one writer (two replicators in one process used to share
 * `<hostname>-<pid>` and silently never saw each other).
 */
import { watch } from 'node:fs';
import type { FSWatcher } from 'node:fs';
import { mkdir, open, readdir, readFile, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { InvalidOptionError, StoreUnavailableError } from '@fulcrum/core';
import { mergeStickEntry, sessionStoreClock } from '@fulcrum/core/session';
import type { Clock, Replicator, StickEntry } from '@fulcrum/core';
import { DirectorySync, STALE_TEMP_MS, currentIdentity, errorCode, identityOf, sweepTempFiles, writeFileAtomic } from './atomic-file';
import type { FileIdentity } from './atomic-file';
import { CorruptFileError } from './errors';
import { MAX_TIMER_MS, checkOptions, optionalBoolean, optionalFileMode, optionalNumber, requiredDirectory } from './options';
import { LOG_NODE_ID_PATTERN, decodeHeader, decodeRecord, encodeHeader, encodeRecord, isLogFileName, logFileName, newGeneration } from './stick-log';

/** Options of `FileReplicator`. */
export interface FileReplicatorOptions {
  /** The directory the logs live in, shared between hosts by a replication tool. Created if missing. Required. */
  dir: string;
  /**
   * Names this replicator's log (`<nodeId>.sticklog`); must be unique among the replicators alive
   * on the directory, since each log must have one writer (a second live replicator of the same
   * process with the same id and directory is refused). 1–64 of `[A-Za-z0-9._:-]`, not starting
   * with a dot. Default `<hostname>-<pid>-<8 random hex digits>` (sanitised), unique per instance.
   */
  nodeId?: string;
  /** How often the other logs are checked for changes, ms (10 … 2^31−1). Default 1000. */
  pollIntervalMs?: number;
  /** Also react to `fs.watch` events, for lower latency where they are delivered. Default true. */
  watch?: boolean;
  /** Size past which the own log is compacted (when over half of it is garbage), bytes ≥ 4096. Default 1048576. */
  compactBytes?: number;
  /** fsync every append and compaction. Default false (see the file header). */
  fsync?: boolean;
  /** Permissions of the log files (the owner must read and write). Default 0o600: keys may be session ids. */
  fileMode?: number;
  /**
   * Problems that affect no caller directly: a damaged log line skipped, a watcher that failed,
   * a poll that could not read the directory, a subscriber that threw. Default: a process warning
   * (once per distinct message).
   */
  onError?: (error: unknown) => void;
  /**
   * The time of expiry decisions — entries dropped when published, read, snapshotted or compacted,
   * logs of nodes that are gone — and of the 10 s wait for a damaged line: core's `Clock`, the same
   * one the stick-table uses (a test passes a `FakeClock` and expires entries with
   * `await clock.advance(ms)`). The poll timer runs on real time, since it looks for what other
   * hosts write, and crash leftovers are aged by their files' modification times. Default `realClock`.
   */
  clock?: Clock;
}

const OPTION_NAMES = ['dir', 'nodeId', 'pollIntervalMs', 'watch', 'compactBytes', 'fsync', 'fileMode', 'onError', 'clock'] as const;

/** Entries per line when a log is rewritten: keeps lines (and the memory to parse one) bounded. */
const ENTRIES_PER_RECORD = 1000;

/**
 * A damaged line is waited for this long before it is skipped: a line a replication tool is still
 * writing (or an NFS client still shows as zeros) completes within seconds.
 */
const DAMAGED_LINE_GRACE_MS = 10_000;

/** A foreign log whose entries all expired this long ago, and which is unchanged, is removed. */
const ORPHAN_GRACE_MS = 5 * 60_000;

/** Bytes read to find a log's header line (the header is under 120 bytes). */
const HEADER_PROBE_BYTES = 256;

interface Cursor {
  generation: string;
  /** Bytes consumed: always at a line boundary. */
  offset: number;
  /** Identity of the file when it was last consumed to its end ('' while not). */
  identity: FileIdentity;
  /** Latest `expiresAt` (or header `createdAt`) seen in this generation: when the log stops mattering. */
  maxExpiresAt: number;
  damagedAt: number;
  damagedSince: number;
}

interface ReadRun {
  dirty: boolean;
  promise: Promise<void>;
}

/**
 * `<hostname>-<pid>-<8 random hex digits>`: unique per instance. Host and pid alone are not: two
 * replicators in one process on one directory would share a log and never see each other's
 * entries, and a container restarted with the same hostname and pid 1 would take over its
 * predecessor's log.
 */
function defaultNodeId(): string {
  const suffix = `-${process.pid}-${randomBytes(4).toString('hex')}`;
  const host = hostname()
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .replace(/^\.+/, '')
    .slice(0, 64 - suffix.length);
  return `${host || 'node'}${suffix}`;
}

/** The live (not closed) replicators of this process, by directory and node id: each log has one writer. */
const liveLogs = new Map<string, object>();

function defaultOnError(): (error: unknown) => void {
  const warned = new Set<string>();
  return (error) => {
    const message = error instanceof Error ? error.message : String(error);
    if (warned.has(message) || warned.size >= 100) return;
    warned.add(message);
    process.emitWarning(`FileReplicator: ${message}`, { code: 'FULCRUM_FS_REPLICATOR' });
  };
}

/** A stick-table `Replicator` over a replicated directory (see the file header). */
export class FileReplicator<V = string> implements Replicator<V> {
  readonly dir: string;
  readonly nodeId: string;
  readonly pollIntervalMs: number;
  readonly watch: boolean;
  readonly compactBytes: number;
  readonly fsync: boolean;
  readonly fileMode: number;
  /** Resolves once the own log is loaded and the others are read; never rejects. */
  readonly ready: Promise<void>;

  readonly #onError: (error: unknown) => void;
  readonly #clock: Clock;
  readonly #ownName: string;
  readonly #liveKey: string;
  readonly #directorySync: DirectorySync;
  /** The latest entry per key that this node published: what a compaction writes. */
  readonly #own = new Map<string, StickEntry<V>>();
  readonly #cursors = new Map<string, Cursor>();
  readonly #reads = new Map<string, ReadRun>();
  readonly #listeners = new Set<(entries: readonly StickEntry<V>[]) => void>();
  #startError: unknown;
  #logBytes = 0;
  #compactedBytes = 0;
  #writes: Promise<void> = Promise.resolve();
  #watcher: FSWatcher | undefined;
  #pollTimer: NodeJS.Timeout | undefined;
  #polling: Promise<void> | undefined;
  #lastTempSweep = 0;
  #closed = false;

  constructor(options: FileReplicatorOptions) {
    const o = checkOptions('fileReplicator', options, OPTION_NAMES);
    this.dir = requiredDirectory('fileReplicator.dir', o.dir);
    const nodeId = o.nodeId ?? defaultNodeId();
    if (typeof nodeId !== 'string' || !LOG_NODE_ID_PATTERN.test(nodeId)) {
      throw new InvalidOptionError('fileReplicator.nodeId', nodeId, 'must be 1–64 characters of A–Z, a–z, 0–9, ".", "_", ":", "-", not starting with "."');
    }
    this.nodeId = nodeId;
    this.#liveKey = `${resolve(this.dir)}\0${nodeId}`;
    this.pollIntervalMs = optionalNumber('fileReplicator.pollIntervalMs', o.pollIntervalMs, 1000, {
      min: 10,
      max: MAX_TIMER_MS,
      integer: true,
    });
    this.watch = optionalBoolean('fileReplicator.watch', o.watch, true);
    this.compactBytes = optionalNumber('fileReplicator.compactBytes', o.compactBytes, 1_048_576, { min: 4096, integer: true });
    this.fsync = optionalBoolean('fileReplicator.fsync', o.fsync, false);
    this.fileMode = optionalFileMode('fileReplicator.fileMode', o.fileMode, 0o600);
    if (o.onError !== undefined && typeof o.onError !== 'function') {
      throw new InvalidOptionError('fileReplicator.onError', o.onError, 'must be a function');
    }
    this.#onError = (o.onError as ((error: unknown) => void) | undefined) ?? defaultOnError();
    this.#clock = sessionStoreClock('fileReplicator.clock', o.clock);
    this.#ownName = logFileName(nodeId);
    // Last of the checks, so that a refused construction never holds the id.
    if (liveLogs.has(this.#liveKey)) {
      throw new InvalidOptionError(
        'fileReplicator.nodeId',
        nodeId,
        `must be unique among live replicators: another FileReplicator of this process already writes ${this.#ownName} in ${this.dir} (close() it first, or leave nodeId unset for a unique default)`,
      );
    }
    liveLogs.set(this.#liveKey, this);
    this.#directorySync = new DirectorySync(this.dir);
    this.ready = this.#start();
  }

  /**
   * Appends the batch to this node's log (entries already expired are dropped). Resolves once the
   * line is written; rejects with `StoreUnavailableError` when the directory cannot be written.
   */
  publish(entries: readonly StickEntry<V>[]): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('FileReplicator is closed'));
    const now = this.#clock.now();
    const batch: StickEntry<V>[] = [];
    for (const entry of entries) {
      if (entry.expiresAt <= now) continue;
      batch.push(entry);
    }
    if (batch.length === 0) return Promise.resolve();
    // Encode now: the caller may reuse its entry objects once publish returns.
    const record = encodeRecord(batch);
    return this.#serialised(async () => {
      for (const entry of batch) this.#own.set(entry.key, mergeStickEntry(this.#own.get(entry.key), entry));
      await this.#append(record);
      if (this.#logBytes > this.compactBytes && this.#logBytes > 2 * this.#compactedBytes) await this.#compact();
    });
  }

  /** Receives the batches other nodes append from now on. Returns the function that stops delivery. */
  subscribe(onEntries: (entries: readonly StickEntry<V>[]) => void): () => void {
    if (this.#closed) throw new Error('FileReplicator is closed');
    const listener = (entries: readonly StickEntry<V>[]) => onEntries(entries);
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** The winning live entry per key across every node's log, tombstones included. */
  async snapshot(): Promise<readonly StickEntry<V>[]> {
    await this.ready;
    if (this.#closed) throw new Error('FileReplicator is closed');
    this.#throwIfUnusable();
    const names = await this.#guard(() => readdir(this.dir));
    const merged = new Map<string, StickEntry<V>>();
    const now = this.#clock.now();
    const take = (entry: StickEntry<V>) => {
      if (entry.expiresAt > now) merged.set(entry.key, mergeStickEntry(merged.get(entry.key), entry));
    };
    for (const entry of this.#own.values()) take(entry);
    for (const name of names) {
      if (name === this.#ownName || !isLogFileName(name)) continue;
      let text: string;
      try {
        text = await readFile(join(this.dir, name), 'utf8');
      } catch (error) {
        if (errorCode(error) === 'ENOENT') continue;
        throw new StoreUnavailableError('stick-table log unreadable', { cause: error });
      }
      for (const entry of parseWholeLog(text)) take(entry as StickEntry<V>);
    }
    // Fresh objects: the caller's table must never share them with this replicator's own map.
    return JSON.parse(JSON.stringify([...merged.values()])) as StickEntry<V>[];
  }

  /** Stops watching and polling, waits for writes in flight. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (liveLogs.get(this.#liveKey) === this) liveLogs.delete(this.#liveKey);
    this.#listeners.clear();
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#pollTimer !== undefined) clearTimeout(this.#pollTimer);
    this.#pollTimer = undefined;
    await this.ready;
    await this.#writes;
    await this.#polling;
    await Promise.all([...this.#reads.values()].map((run) => run.promise));
  }

  /** Checks every other log for changes now (the poll timer calls it; tests and tools may too). */
  poll(): Promise<void> {
    this.#polling ??= this.#poll().finally(() => {
      this.#polling = undefined;
    });
    return this.#polling;
  }

  // ── start ─────────────────────────────────────────────────────────────────────────────────────

  async #start(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      // Modification times of temporary files: the file system's clock (see #poll).
      this.#lastTempSweep = Date.now();
      await sweepTempFiles(this.dir, this.#lastTempSweep);
      await this.#loadOwn();
      for (const name of await readdir(this.dir)) {
        if (name !== this.#ownName && isLogFileName(name)) await this.#read(name, false);
      }
    } catch (error) {
      this.#startError = error;
      this.#onError(new StoreUnavailableError('stick-table directory unavailable', { cause: error }));
    }
    if (this.#closed) return;
    if (this.watch) this.#startWatching();
    this.#schedulePoll();
  }

  /** A restarted node with the same id takes its log back (and compacts it: a fresh generation). */
  async #loadOwn(): Promise<void> {
    let text = '';
    try {
      text = await readFile(join(this.dir, this.#ownName), 'utf8');
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error;
    }
    for (const entry of parseWholeLog(text)) {
      this.#own.set(entry.key, mergeStickEntry(this.#own.get(entry.key), entry as StickEntry<V>));
    }
    await this.#compact();
  }

  #startWatching(): void {
    try {
      const watcher = watch(this.dir, { persistent: false }, (_event, filename) => {
        if (this.#closed) return;
        const name = typeof filename === 'string' ? filename : undefined;
        if (name === undefined) void this.poll();
        else if (name !== this.#ownName && isLogFileName(name)) void this.#read(name, true);
      });
      watcher.on('error', (error) => {
        // inotify limits (ENOSPC), a removed directory…: polling carries on alone.
        this.#onError(error);
        watcher.close();
        if (this.#watcher === watcher) this.#watcher = undefined;
      });
      this.#watcher = watcher;
    } catch (error) {
      this.#onError(error);
    }
  }

  #schedulePoll(): void {
    if (this.#closed) return;
    this.#pollTimer = setTimeout(() => {
      void this.poll().finally(() => this.#schedulePoll());
    }, this.pollIntervalMs);
    this.#pollTimer.unref();
  }

  // ── writing the own log ───────────────────────────────────────────────────────────────────────

  #serialised(task: () => Promise<void>): Promise<void> {
    const run = this.#writes.then(async () => {
      await this.ready;
      this.#throwIfUnusable();
      await this.#guard(task);
    });
    this.#writes = run.catch(() => undefined);
    return run;
  }

  async #append(record: string): Promise<void> {
    const handle = await open(join(this.dir, this.#ownName), 'a', this.fileMode);
    let rewrite = false;
    try {
      const size = (await handle.stat()).size;
      // Smaller than what we wrote: the file was removed (a peer took us for gone) or a tool copied
      // an older version back over it. The own map has everything: rewrite instead of appending.
      if (size === 0 || size < this.#logBytes) {
        rewrite = true;
      } else {
        await handle.writeFile(record);
        if (this.fsync) await handle.sync();
        this.#logBytes = size + Buffer.byteLength(record);
      }
    } finally {
      await handle.close();
    }
    if (rewrite) await this.#compact();
  }

  async #compact(): Promise<void> {
    const now = this.#clock.now();
    const live: StickEntry<V>[] = [];
    for (const [key, entry] of this.#own) {
      if (entry.expiresAt <= now) this.#own.delete(key);
      else live.push(entry);
    }
    let text = encodeHeader({ generation: newGeneration(), createdAt: now, nodeId: this.nodeId });
    for (let i = 0; i < live.length; i += ENTRIES_PER_RECORD) text += encodeRecord(live.slice(i, i + ENTRIES_PER_RECORD));
    await writeFileAtomic(this.dir, this.#ownName, text, {
      fsync: this.fsync,
      mode: this.fileMode,
      directorySync: this.#directorySync,
    });
    this.#logBytes = this.#compactedBytes = Buffer.byteLength(text);
  }

  // ── reading the other logs ────────────────────────────────────────────────────────────────────

  async #poll(): Promise<void> {
    if (this.#closed || this.#startError !== undefined) return;
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (error) {
      this.#onError(new StoreUnavailableError('stick-table directory unreadable', { cause: error }));
      return;
    }
    const logs = new Set(names.filter((name) => name !== this.#ownName && isLogFileName(name)));
    for (const name of logs) await this.#read(name, true);
    for (const name of this.#cursors.keys()) if (!logs.has(name)) this.#cursors.delete(name);
    const now = this.#clock.now();
    if (this.#closed) return;
    await this.#purgeOrphans(now);
    await this.#compactIfAllExpired(now);
    // Temporary files are aged by their modification times: the file system's clock, not ours.
    const fileNow = Date.now();
    if (fileNow - this.#lastTempSweep > STALE_TEMP_MS) {
      this.#lastTempSweep = fileNow;
      await sweepTempFiles(this.dir, fileNow, names).catch((error: unknown) => this.#onError(error));
    }
  }

  /**
   * Reads what is new in log `name`; with `deliver`, hands the live entries to the subscribers.
   * Calls for one file are coalesced: one read at a time, and one more if anything asked meanwhile.
   */
  #read(name: string, deliver: boolean): Promise<void> {
    const running = this.#reads.get(name);
    if (running !== undefined) {
      running.dirty = true;
      return running.promise;
    }
    const run: ReadRun = { dirty: false, promise: Promise.resolve() };
    run.promise = (async () => {
      try {
        do {
          run.dirty = false;
          await this.#readNew(name, deliver).catch((error: unknown) => this.#onError(error));
        } while (run.dirty && !this.#closed);
      } finally {
        // No await between the last dirty check and here: a request cannot slip through.
        this.#reads.delete(name);
      }
    })();
    this.#reads.set(name, run);
    return run.promise;
  }

  async #readNew(name: string, deliver: boolean): Promise<void> {
    let handle;
    try {
      handle = await open(join(this.dir, name), 'r');
    } catch (error) {
      if (errorCode(error) === 'ENOENT') {
        this.#cursors.delete(name);
        return;
      }
      throw error;
    }
    try {
      const stats = await handle.stat({ bigint: true });
      const identity = identityOf(stats);
      const size = Number(stats.size);
      let cursor = this.#cursors.get(name);
      if (cursor !== undefined && cursor.identity === identity) return;
      const probe = Buffer.alloc(Math.min(size, HEADER_PROBE_BYTES));
      await readFully(handle, probe, 0);
      const newline = probe.indexOf(10);
      // No complete header yet: the file is still being created or copied; a later event or poll retries.
      if (newline < 0) return;
      const header = decodeHeader(probe.toString('utf8', 0, newline));
      if (header === undefined) return;
      if (cursor === undefined || cursor.generation !== header.generation || size < cursor.offset) {
        cursor = { generation: header.generation, offset: newline + 1, identity: '', maxExpiresAt: header.createdAt, damagedAt: -1, damagedSince: 0 };
        this.#cursors.set(name, cursor);
      }
      const now = this.#clock.now();
      const fresh: StickEntry<V>[] = [];
      if (size > cursor.offset) {
        const bytes = Buffer.alloc(size - cursor.offset);
        await readFully(handle, bytes, cursor.offset);
        let start = 0;
        for (;;) {
          const end = bytes.indexOf(10, start);
          if (end < 0) break; // a line still being appended or copied
          const entries = decodeRecord(bytes.toString('utf8', start, end));
          if (entries === undefined) {
            const at = cursor.offset + start;
            if (cursor.damagedAt !== at) {
              cursor.damagedAt = at;
              cursor.damagedSince = now;
              break;
            }
            if (now - cursor.damagedSince < DAMAGED_LINE_GRACE_MS) break;
            this.#onError(new CorruptFileError(name, 'checksum', `skipped a damaged line at byte ${at}`));
            cursor.damagedAt = -1;
            start = end + 1;
            continue;
          }
          for (const entry of entries) {
            if (entry.expiresAt > cursor.maxExpiresAt) cursor.maxExpiresAt = entry.expiresAt;
            if (entry.expiresAt > now) fresh.push(entry as StickEntry<V>);
          }
          start = end + 1;
        }
        cursor.offset += start;
      }
      cursor.identity = cursor.offset === size ? identity : '';
      if (deliver && fresh.length > 0 && !this.#closed) this.#deliver(fresh);
    } finally {
      await handle.close();
    }
  }

  #deliver(entries: StickEntry<V>[]): void {
    for (const listener of this.#listeners) {
      try {
        listener(entries.slice());
      } catch (error) {
        this.#onError(error);
      }
    }
  }

  async #purgeOrphans(now: number): Promise<void> {
    for (const [name, cursor] of this.#cursors) {
      if (cursor.identity === '' || cursor.maxExpiresAt + ORPHAN_GRACE_MS > now) continue;
      const path = join(this.dir, name);
      try {
        if ((await currentIdentity(path)) === cursor.identity) await unlink(path);
      } catch (error) {
        if (errorCode(error) !== 'ENOENT') this.#onError(error);
      }
      this.#cursors.delete(name);
    }
  }

  async #compactIfAllExpired(now: number): Promise<void> {
    if (this.#own.size === 0) return;
    for (const entry of this.#own.values()) if (entry.expiresAt > now) return;
    await this.#serialised(() => this.#compact()).catch((error: unknown) => this.#onError(error));
  }

  // ── errors ────────────────────────────────────────────────────────────────────────────────────

  #throwIfUnusable(): void {
    if (this.#startError !== undefined) {
      throw new StoreUnavailableError('stick-table directory unavailable', { cause: this.#startError });
    }
  }

  async #guard<T>(task: () => Promise<T>): Promise<T> {
    try {
      return await task();
    } catch (error) {
      if (error instanceof StoreUnavailableError) throw error;
      throw new StoreUnavailableError('stick-table directory operation failed', { cause: error });
    }
  }
}

/** Every intact entry of a whole log, in file order (damaged lines skipped: snapshots are best effort). */
function parseWholeLog(text: string): StickEntry<unknown>[] {
  const lines = text.split('\n');
  // The last piece is '' for a complete file, or a line still being written.
  lines.pop();
  if (lines.length === 0 || decodeHeader(lines[0]!) === undefined) return [];
  const entries: StickEntry<unknown>[] = [];
  for (let i = 1; i < lines.length; i++) {
    const decoded = decodeRecord(lines[i]!);
    if (decoded !== undefined) for (const entry of decoded) entries.push(entry);
  }
  return entries;
}

async function readFully(handle: FileHandle, buffer: Buffer, position: number): Promise<void> {
  let done = 0;
  while (done < buffer.length) {
    const { bytesRead } = await handle.read(buffer, done, buffer.length - done, position + done);
    if (bytesRead === 0) throw new Error('log file shrank while being read');
    done += bytesRead;
  }
}
