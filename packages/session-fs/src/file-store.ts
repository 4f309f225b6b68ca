/**
 * `FileStore`: an express-session store (also usable by @fastify/session) that keeps one file per
 * session in a directory which a tool — lsyncd, GlusterFS, NFS, DRBD… — replicates between hosts,
 * so that any host behind the load balancer finds the session another host wrote.
 *
 * Where the ideas come from:
 * - one file per session, as PHP's `session.save_handler = files` and `session-file-store` do; but
 *   written as temp file + fsync + rename (`atomic-file.ts`), never in place, because a replication
 *   tool copies whatever it sees and a reader on another host must never see half a session;
 * - file names hashed from the id (`session-file.ts`), so a forged cookie cannot name a path;
 * - expiry from the cookie and a throttled `touch`, shared with every Fulcrum store through core's
 *   session rules (express-session's and connect-redis's contract, connect-mongo's `touchAfter`);
 * - `connect` / `disconnect` events, as express-session expects from stores with a backing service:
 *   a directory whose mount vanished (ENOENT on the directory, EIO, ESTALE, ENOTCONN…) is a server
 *   that went down; operations then fail fast with `StoreUnavailableError` until a probe finds the
 *   directory again. The store never re-creates a vanished directory after start: that would write
 *   sessions onto the local disk under an unmounted mount point.
 *
 * Concurrency: writes of one id are serialised in the process (`KeyedLock`); reads need no lock
 * because a rename is atomic. Between processes and hosts there is no lock — a lock file does not
 * replicate atomically — so the last rename wins whole, and `touch` and the sweeper re-check the
 * file's identity right before they replace or remove it, which shrinks the window in which they
 * could undo another host's write to the gap between a `stat` and a `rename`.
 *
 * Defaults: `ttlSeconds` one day (express-session's, connect-redis's) for sessions without a
 * cookie expiry; `touchAfterSeconds` 60, because every touch is an fsync'd write that the
 * replication tool then ships to every host — once a minute per active session instead of once per
 * request, at the cost of a store expiry up to a minute short of the cookie's; `cleanupIntervalMs`
 * ten minutes (connect-mongo's autoRemoveInterval): expired files are never *read*, the sweep only
 * reclaims disk; `fsync` on, because a session lost to a power cut logs a user out; file mode 0600,
 * because a session file is a credential.
 */
import { join } from 'node:path';
import { access, mkdir, open, readFile, readdir, stat, unlink } from 'node:fs/promises';
import { constants as fsConstants } from 'node:fs';
import { InvalidOptionError, StoreUnavailableError } from '@fulcrum/core';
import type { Clock, Timer } from '@fulcrum/core';
import {
  DEFAULT_SESSION_TTL_SECONDS,
  KeyedLock,
  assertSessionId,
  isValidSessionId,
  jsonSerializer,
  sessionExpiresAt,
  sessionStoreClock,
  settle,
} from '@fulcrum/core/session';
import type { SessionLike, SessionSerializer } from '@fulcrum/core/session';
import { Store } from 'express-session';
import type { SessionData } from 'express-session';
import { DirectorySync, currentIdentity, errorCode, identityOf, isDirectoryLost, sweepTempFiles, writeFileAtomic } from './atomic-file';
import type { FileIdentity } from './atomic-file';
import { CorruptFileError } from './errors';
import { MAX_TIMER_MS, PEER_STORE_OPTION_HINTS, checkOptions, optionalBoolean, optionalFileMode, optionalNumber, requiredDirectory } from './options';
import { decodeSessionFile, encodeSessionFile, isDecodeFailure, isSessionFileName, sessionFileName } from './session-file';
import type { SessionFile } from './session-file';

/** Options of `FileStore`. */
export interface FileStoreOptions {
  /**
   * The directory of session files, shared with the other hosts by a replication tool. Created
   * (with its parents, mode 0700) at start if missing; never re-created afterwards. Required.
   */
  dir: string;
  /** Lifetime of a session whose cookie has no expiry, seconds ≥ 1. Default 86400 (one day). */
  ttlSeconds?: number;
  /**
   * `touch` rewrites a session only when that extends its stored expiry by at least this many
   * seconds, capped at half the session's lifetime (so a rolling session whose user is active never
   * expires); 0 writes on every touch (exact expiry, one fsync'd write per request). Default 60.
   */
  touchAfterSeconds?: number;
  /**
   * How often expired session files and crash leftovers are swept, ms; 0 disables the timer (call
   * `cleanup()` yourself). The timer is unref'd. Default 600000 (ten minutes).
   */
  cleanupIntervalMs?: number;
  /** Turns a session into text and back. Default: core's `jsonSerializer`. */
  serializer?: SessionSerializer;
  /**
   * fsync each session file before its rename and the directory after it (grouped between
   * concurrent writes). Turn off only where losing the last seconds of writes to a power cut is
   * acceptable. Default true.
   */
  fsync?: boolean;
  /** Permissions of session files (the owner must read and write). Default 0o600. */
  fileMode?: number;
  /**
   * The time for expiry, TTL and touch decisions and the timers of the cleanup sweep and the
   * recovery probe (core's `Clock`; a test passes a `FakeClock`, expires sessions and runs those
   * timers with `await clock.advance(ms)`). File ages — crash leftovers, corrupt files — are measured
   * against the files' own modification times, so on the real clock. Default `realClock`.
   */
  clock?: Clock;
}

type Callback<T> = (error: unknown, result?: T) => void;

const OPTION_NAMES = ['dir', 'ttlSeconds', 'touchAfterSeconds', 'cleanupIntervalMs', 'serializer', 'fsync', 'fileMode', 'clock'] as const;

/** Files read at once by `all`, `ids`, `length`, `clear` and the sweep: bounded, so 100k sessions never hit EMFILE. */
const SCAN_CONCURRENCY = 16;

/**
 * A session file that stays corrupt this long after its last change is garbage: a replication tool
 * finishes a copy in seconds, so an hour only ever removes files nothing will complete.
 */
const CORRUPT_FILE_GRACE_MS = 60 * 60 * 1000;

/** How often a disconnected store probes its directory. */
const RECONNECT_PROBE_MS = 1000;

/** What `cleanup()` did. */
export interface CleanupResult {
  /** Expired session files removed. */
  expired: number;
  /** Files that stayed corrupt past an hour, removed. */
  corrupt: number;
  /** Temporary files left by a crashed writer, removed. */
  temporary: number;
}

interface ReadFile extends SessionFile {
  readonly identity: FileIdentity;
}

/** A file-system failure in words, without the path (a store error may end up in a response body). */
function describeFsFailure(error: unknown): string {
  const code = errorCode(error);
  switch (code) {
    case 'ENOENT':
      return 'the session directory is gone (ENOENT: unmounted or deleted?)';
    case 'EACCES':
    case 'EPERM':
      return `permission denied (${code})`;
    case 'ENOSPC':
    case 'EDQUOT':
      return `no space left (${code})`;
    case 'EMFILE':
    case 'ENFILE':
      return `too many open files (${code})`;
    case 'EIO':
    case 'ESTALE':
    case 'ENOTCONN':
      return `the file system failed (${code}: a network mount that went away?)`;
    case undefined:
      return 'a file-system call failed';
    default:
      return `a file-system call failed (${code})`;
  }
}

function ignoreMissing(error: unknown): void {
  if (errorCode(error) !== 'ENOENT') throw error;
}

/** Runs `task` over `items` with at most `limit` in flight. */
async function forEachLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await task(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * An express-session `Store` over a replicated directory (see the file header). Every method takes
 * an optional node-style callback and returns a promise when it is omitted.
 *
 * Events: `'connect'` once the directory is usable (after start, and after it came back),
 * `'disconnect'` when it became unusable, `'error'` for files that were ignored (`CorruptFileError`)
 * and failures of the background sweep. `'error'` is only emitted while someone listens — an
 * unheard `'error'` would crash the process — otherwise one process warning says so.
 */
export class FileStore extends Store {
  /** The directory of session files. */
  readonly dir: string;
  readonly ttlSeconds: number;
  readonly touchAfterSeconds: number;
  readonly cleanupIntervalMs: number;
  readonly fsync: boolean;
  readonly fileMode: number;
  /** Resolves once the directory exists and crash leftovers are swept; never rejects. */
  readonly ready: Promise<void>;

  readonly #serializer: SessionSerializer;
  readonly #clock: Clock;
  readonly #locks = new KeyedLock();
  readonly #directorySync: DirectorySync;
  readonly #failures = new WeakSet<Error>();
  #connected = false;
  #closed = false;
  #warned = false;
  #cleanupTimer: Timer | undefined;
  #probeTimer: Timer | undefined;
  #cleanupRun: Promise<CleanupResult> | undefined;

  constructor(options: FileStoreOptions) {
    super();
    const o = checkOptions('fileStore', options, OPTION_NAMES, PEER_STORE_OPTION_HINTS);
    this.dir = requiredDirectory('fileStore.dir', o.dir);
    this.ttlSeconds = optionalNumber('fileStore.ttlSeconds', o.ttlSeconds, DEFAULT_SESSION_TTL_SECONDS, { min: 1 });
    this.touchAfterSeconds = optionalNumber('fileStore.touchAfterSeconds', o.touchAfterSeconds, 60, { min: 0 });
    this.cleanupIntervalMs = optionalNumber('fileStore.cleanupIntervalMs', o.cleanupIntervalMs, 600_000, {
      min: 0,
      max: MAX_TIMER_MS,
      integer: true,
    });
    this.fsync = optionalBoolean('fileStore.fsync', o.fsync, true);
    this.fileMode = optionalFileMode('fileStore.fileMode', o.fileMode, 0o600);
    const serializer = o.serializer ?? jsonSerializer;
    if (
      typeof serializer !== 'object' ||
      serializer === null ||
      typeof (serializer as SessionSerializer).stringify !== 'function' ||
      typeof (serializer as SessionSerializer).parse !== 'function'
    ) {
      throw new InvalidOptionError('fileStore.serializer', serializer, 'must be an object with stringify(session) and parse(text)');
    }
    this.#serializer = serializer as SessionSerializer;
    this.#clock = sessionStoreClock('fileStore.clock', o.clock);
    this.#directorySync = new DirectorySync(this.dir);
    this.ready = this.#start();
  }

  /** Whether the directory is currently usable. */
  get connected(): boolean {
    return this.#connected;
  }

  // ── express-session's Store interface ─────────────────────────────────────────────────────────

  /** The session stored under `sid`, or null (unknown, expired, corrupt, or a malformed id). */
  get(sid: string, callback?: Callback<SessionData | null>): Promise<SessionData | null> | undefined {
    return settle(
      () =>
        this.#operation('get', async () => {
          await this.#usable();
          // A forged cookie is just a cookie without a session: null, never an error page.
          if (!isValidSessionId(sid)) return null;
          const file = await this.#read(sid);
          if (file === undefined || file.expiresAt <= this.#clock.now()) return null;
          return this.#parse(sid, file.body);
        }),
      callback,
    );
  }

  /**
   * Stores `session` under `sid`, expiring with its cookie (else after `ttlSeconds`). A session
   * whose cookie already expired is destroyed instead. Rejects a malformed `sid` with
   * `InvalidOptionError`.
   */
  set(sid: string, session: SessionData, callback?: Callback<void>): Promise<void> | undefined {
    return settle(
      () =>
        this.#operation('set', async () => {
          assertSessionId(sid);
          await this.#usable();
          const now = this.#clock.now();
          const expiresAt = sessionExpiresAt(session as SessionLike, now, this.ttlSeconds);
          if (expiresAt <= now) return this.#destroy(sid);
          // Serialise outside the lock: CPU work need not wait for another write's fsync.
          const content = encodeSessionFile(sid, expiresAt, this.#serializer.stringify(session as SessionLike));
          await this.#locks.run(sid, () => this.#io(true, () => this.#write(sessionFileName(sid), content)));
        }),
      callback,
    );
  }

  /** Removes the session stored under `sid`, if any. A malformed `sid` has nothing to remove. */
  destroy(sid: string, callback?: Callback<void>): Promise<void> | undefined {
    return settle(
      () =>
        this.#operation('destroy', async () => {
          await this.#usable();
          if (!isValidSessionId(sid)) return;
          await this.#destroy(sid);
        }),
      callback,
    );
  }

  /**
   * Extends the stored expiry to that of `session`'s cookie, keeping the stored data (as
   * express-session's MemoryStore does) — only when the extension is at least `touchAfterSeconds`,
   * and never for a session that is gone: the file is rewritten only if it still holds the very
   * version that was read, so a `destroy` (or a newer `set`) that came first always wins.
   */
  override touch(sid: string, session: SessionData, callback?: Callback<void>): Promise<void> | undefined {
    return settle(
      () =>
        this.#operation('touch', async () => {
          await this.#usable();
          if (!isValidSessionId(sid)) return;
          const now = this.#clock.now();
          const expiresAt = sessionExpiresAt(session as SessionLike, now, this.ttlSeconds);
          if (expiresAt <= now) return;
          await this.#locks.run(sid, async () => {
            const stored = await this.#read(sid, true);
            if (stored === undefined || stored.expiresAt <= this.#clock.now()) return;
            // Capped at half the session's lifetime: an uncapped throttle longer than a rolling
            // session's maxAge would let an active user's session expire between writes.
            const throttleMs = Math.min(this.touchAfterSeconds * 1000, Math.floor((expiresAt - now) / 2));
            if (throttleMs > 0 && expiresAt - stored.expiresAt < throttleMs) return;
            const data = this.#parse(sid, stored.body);
            if (data === null) return;
            const cookie = (session as SessionLike).cookie;
            const touched = cookie === undefined ? data : { ...data, cookie };
            const content = encodeSessionFile(sid, expiresAt, this.#serializer.stringify(touched as SessionLike));
            const path = join(this.dir, sessionFileName(sid));
            await this.#io(true, () => this.#write(sessionFileName(sid), content, async () => (await currentIdentity(path)) === stored.identity));
          });
        }),
      callback,
    );
  }

  /**
   * Every live session keyed by its id, in an object without a prototype — the shape of
   * express-session's MemoryStore and of the other Fulcrum stores (expired and corrupt files are left out).
   */
  override all(callback?: Callback<Record<string, SessionData>>): Promise<Record<string, SessionData>> | undefined {
    return settle(
      () =>
        this.#operation('all', async () => {
          const sessions = Object.create(null) as Record<string, SessionData>;
          await this.#scan(async (file) => {
            const session = this.#parse(file.id, file.body);
            if (session !== null) sessions[file.id] = session;
          });
          return sessions;
        }),
      callback,
    );
  }

  /** The ids of every live session. */
  ids(callback?: Callback<string[]>): Promise<string[]> | undefined {
    return settle(
      () =>
        this.#operation('ids', async () => {
          const ids: string[] = [];
          await this.#scan(async (file) => {
            ids.push(file.id);
          });
          return ids;
        }),
      callback,
    );
  }

  /** How many live sessions there are. */
  override length(callback?: Callback<number>): Promise<number> | undefined {
    return settle(
      () =>
        this.#operation('length', async () => {
          let count = 0;
          await this.#scan(async () => {
            count++;
          });
          return count;
        }),
      callback,
    );
  }

  /** Removes every session file (on every host, once the tool has replicated the deletions). */
  override clear(callback?: Callback<void>): Promise<void> | undefined {
    return settle(
      () =>
        this.#operation('clear', async () => {
          await this.#usable();
          const names = (await this.#io(true, () => readdir(this.dir))).filter(isSessionFileName);
          await forEachLimited(names, SCAN_CONCURRENCY, (name) => this.#io(false, () => unlink(join(this.dir, name)).catch(ignoreMissing)));
          if (this.fsync) await this.#io(true, () => this.#directorySync.sync());
        }),
      callback,
    );
  }

  // ── maintenance ───────────────────────────────────────────────────────────────────────────────

  /**
   * Sweeps the directory once: expired session files, files corrupt for over an hour, and
   * temporary files of crashed writers. The background timer calls it; concurrent calls share one
   * run. Safe with other stores sweeping the same directory.
   */
  cleanup(): Promise<CleanupResult> {
    this.#cleanupRun ??= this.#cleanup().finally(() => {
      this.#cleanupRun = undefined;
    });
    return this.#cleanupRun;
  }

  /**
   * Stops the timers and waits for the writes in flight. Calls after `close` still work (the
   * store has no connection to lose); only the background sweep is gone.
   */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#cleanupTimer !== undefined) this.#clock.clearTimeout(this.#cleanupTimer);
    if (this.#probeTimer !== undefined) this.#clock.clearTimeout(this.#probeTimer);
    this.#cleanupTimer = undefined;
    this.#probeTimer = undefined;
    await this.ready;
    await this.#locks.idle();
    await this.#cleanupRun?.catch(() => undefined);
  }

  // ── internals ─────────────────────────────────────────────────────────────────────────────────

  async #start(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      // Crash leftovers are aged by their modification times: the file system's clock, not the store's.
      await sweepTempFiles(this.dir, Date.now());
      this.#setConnected(true);
    } catch (error) {
      this.#report(new StoreUnavailableError('session directory unavailable', { cause: error }));
      this.#setConnected(false);
    }
    this.#scheduleCleanup();
  }

  /** The background sweep: one run every `cleanupIntervalMs` after the last one ended (realClock's timers are unref'd). */
  #scheduleCleanup(): void {
    if (this.cleanupIntervalMs === 0 || this.#closed) return;
    this.#cleanupTimer = this.#clock.setTimeout(() => {
      this.#cleanupTimer = undefined;
      const run = this.#connected ? this.cleanup().catch((error: unknown) => this.#report(error)) : Promise.resolve();
      void run.finally(() => this.#scheduleCleanup());
    }, this.cleanupIntervalMs);
  }

  async #usable(): Promise<void> {
    await this.ready;
    if (!this.#connected) {
      throw this.#failure(
        'the session directory is unavailable (it vanished or cannot be read and written); the store fails calls at once until a probe, every second, finds it again',
      );
    }
  }

  /** An internal failure, reworded by `#operation` with the call's name. */
  #failure(message: string, cause?: unknown): StoreUnavailableError {
    const error = new StoreUnavailableError(message, cause === undefined ? undefined : { cause });
    this.#failures.add(error);
    return error;
  }

  /**
   * Runs one public call; a failure of the directory reaches the caller as a `StoreUnavailableError`
   * whose message names the call (`FileStore.get failed: …`), what happened and what the store does.
   */
  async #operation<T>(name: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      if (error instanceof StoreUnavailableError && this.#failures.has(error)) {
        throw new StoreUnavailableError(`FileStore.${name} failed: ${error.message}`, error.cause === undefined ? undefined : { cause: error.cause });
      }
      throw error;
    }
  }

  /**
   * Runs one file-system call; a failure that says the directory is gone disconnects the store,
   * and every failure reaches the caller as a `StoreUnavailableError` with the cause attached.
   * `missingMeansLost`: ENOENT means the directory vanished (true for listing it and creating
   * files in it; false where ENOENT only means "no such session").
   */
  async #io<T>(missingMeansLost: boolean, call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      const lost = isDirectoryLost(error, missingMeansLost);
      if (lost) this.#setConnected(false);
      throw this.#failure(
        `${describeFsFailure(error)}; ${
          lost ? 'the store has disconnected and fails calls at once until a probe, every second, finds the directory again' : 'this call fails without a retry'
        }`,
        error,
      );
    }
  }

  #write(name: string, content: string, beforeRename?: () => Promise<boolean>): Promise<boolean> {
    return writeFileAtomic(this.dir, name, content, {
      fsync: this.fsync,
      mode: this.fileMode,
      directorySync: this.#directorySync,
      ...(beforeRename === undefined ? {} : { beforeRename }),
    });
  }

  async #destroy(sid: string): Promise<void> {
    await this.#locks.run(sid, () =>
      this.#io(false, async () => {
        try {
          await unlink(join(this.dir, sessionFileName(sid)));
        } catch (error) {
          if (errorCode(error) === 'ENOENT') return;
          throw error;
        }
        if (this.fsync) await this.#directorySync.sync();
      }),
    );
  }

  /** Reads and checks the file of `sid`: undefined when missing or refused (which is reported). */
  #read(sid: string): Promise<SessionFile | undefined>;
  #read(sid: string, withIdentity: true): Promise<ReadFile | undefined>;
  async #read(sid: string, withIdentity = false): Promise<SessionFile | ReadFile | undefined> {
    const name = sessionFileName(sid);
    const loaded = await this.#io(false, () => this.#load(name, withIdentity));
    if (loaded === undefined) return undefined;
    if (loaded.id !== sid) {
      // Only a file copied or renamed by hand can get here (the name is the id's hash).
      this.#report(new CorruptFileError(name, 'id-mismatch', `holds session ${JSON.stringify(loaded.id.slice(0, 64))}`));
      return undefined;
    }
    return loaded;
  }

  /** Reads and decodes one session file; ENOENT is undefined, a refused file is reported and undefined. */
  async #load(name: string, withIdentity: boolean): Promise<ReadFile | SessionFile | undefined> {
    const path = join(this.dir, name);
    let bytes: Buffer;
    let identity: FileIdentity | undefined;
    try {
      if (withIdentity) {
        const handle = await open(path, 'r');
        try {
          identity = identityOf(await handle.stat({ bigint: true }));
          bytes = await handle.readFile();
        } finally {
          await handle.close();
        }
      } else {
        bytes = await readFile(path);
      }
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return undefined;
      throw error;
    }
    const decoded = decodeSessionFile(bytes);
    if (isDecodeFailure(decoded)) {
      this.#report(new CorruptFileError(name, decoded.reason, decoded.detail));
      return undefined;
    }
    return identity === undefined ? decoded : { ...decoded, identity };
  }

  #parse(sid: string, body: string): SessionData | null {
    try {
      const session = this.#serializer.parse(body);
      if (typeof session !== 'object' || session === null) throw new TypeError('not an object');
      return session as unknown as SessionData;
    } catch (error) {
      this.#report(new CorruptFileError(sessionFileName(sid), 'payload', 'the serializer could not parse it', { cause: error }));
      return null;
    }
  }

  /** Calls `visit` for every live (unexpired, intact) session file. */
  async #scan(visit: (file: SessionFile) => Promise<void>): Promise<void> {
    await this.#usable();
    const names = (await this.#io(true, () => readdir(this.dir))).filter(isSessionFileName);
    const now = this.#clock.now();
    await forEachLimited(names, SCAN_CONCURRENCY, async (name) => {
      const file = await this.#io(false, () => this.#load(name, false));
      if (file === undefined || file.expiresAt <= now) return;
      if (sessionFileName(file.id) !== name) {
        this.#report(new CorruptFileError(name, 'id-mismatch', 'its id does not hash to its name'));
        return;
      }
      await visit(file);
    });
  }

  async #cleanup(): Promise<CleanupResult> {
    await this.#usable();
    const result: CleanupResult = { expired: 0, corrupt: 0, temporary: 0 };
    const names = await this.#io(true, () => readdir(this.dir));
    // Session expiry is the store's clock; file ages are the file system's (modification times).
    const now = this.#clock.now();
    const fileNow = Date.now();
    result.temporary = await this.#io(true, () => sweepTempFiles(this.dir, fileNow, names));
    const sessions = names.filter(isSessionFileName);
    await forEachLimited(sessions, SCAN_CONCURRENCY, async (name) => {
      const path = join(this.dir, name);
      const file = await this.#io(false, () => this.#peek(name));
      if (file === undefined) return;
      if (file.corrupt) {
        if (fileNow - file.mtimeMs < CORRUPT_FILE_GRACE_MS) return;
        if (await this.#unlinkIfUnchanged(path, file.identity)) result.corrupt++;
        return;
      }
      if (file.expiresAt > now) return;
      // Under the id's lock, so an in-process set() that renews it cannot fall between the check
      // and the unlink; the identity check covers the other processes.
      const removed = await this.#locks.run(file.id, () => this.#unlinkIfUnchanged(path, file.identity));
      if (removed) result.expired++;
    });
    return result;
  }

  /** Header facts of one file for the sweep (no report: a corrupt file may still be arriving). */
  async #peek(
    name: string,
  ): Promise<
    { corrupt: false; id: string; expiresAt: number; identity: FileIdentity } | { corrupt: true; mtimeMs: number; identity: FileIdentity } | undefined
  > {
    let handle;
    try {
      handle = await open(join(this.dir, name), 'r');
      const stats = await handle.stat({ bigint: true });
      const decoded = decodeSessionFile(await handle.readFile());
      const identity = identityOf(stats);
      if (isDecodeFailure(decoded) || sessionFileName(decoded.id) !== name) {
        return { corrupt: true, mtimeMs: Number(stats.mtimeMs), identity };
      }
      return { corrupt: false, id: decoded.id, expiresAt: decoded.expiresAt, identity };
    } catch (error) {
      if (errorCode(error) === 'ENOENT') return undefined;
      throw error;
    } finally {
      await handle?.close().catch(() => undefined);
    }
  }

  async #unlinkIfUnchanged(path: string, identity: FileIdentity): Promise<boolean> {
    return this.#io(false, async () => {
      if ((await currentIdentity(path)) !== identity) return false;
      try {
        await unlink(path);
        return true;
      } catch (error) {
        if (errorCode(error) === 'ENOENT') return false;
        throw error;
      }
    });
  }

  #setConnected(connected: boolean): void {
    if (this.#connected === connected) return;
    this.#connected = connected;
    // Let a caller that just constructed the store attach its listeners first.
    process.nextTick(() => this.emit(connected ? 'connect' : 'disconnect'));
    if (connected) {
      if (this.#probeTimer !== undefined) this.#clock.clearTimeout(this.#probeTimer);
      this.#probeTimer = undefined;
    } else {
      this.#scheduleProbe();
    }
  }

  /** The next recovery probe, `RECONNECT_PROBE_MS` after the last one ended, while disconnected. */
  #scheduleProbe(): void {
    if (this.#connected || this.#closed || this.#probeTimer !== undefined) return;
    this.#probeTimer = this.#clock.setTimeout(() => {
      this.#probeTimer = undefined;
      void this.#probe().finally(() => this.#scheduleProbe());
    }, RECONNECT_PROBE_MS);
  }

  async #probe(): Promise<void> {
    try {
      await access(this.dir, fsConstants.R_OK | fsConstants.W_OK);
      if (!(await stat(this.dir)).isDirectory()) return;
      if (!this.#closed) this.#setConnected(true);
    } catch {
      // Still gone; the next probe tries again.
    }
  }

  /** Emits `'error'` when someone listens; an unheard one would crash the process (see the class doc). */
  #report(error: unknown): void {
    if (this.listenerCount('error') > 0) {
      this.emit('error', error);
      return;
    }
    if (this.#warned) return;
    this.#warned = true;
    process.emitWarning(
      `FileStore: ${error instanceof Error ? error.message : String(error)} (listen to the store's 'error' event to see every such problem)`,
      { code: 'FULCRUM_FS_STORE' },
    );
  }
}
