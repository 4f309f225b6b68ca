/**
 * Crash-safe file replacement on a directory that other hosts see through a replication tool: write
 * a temporary file next to the target, `fsync` it, `rename` it over the target, then `fsync` the
 * directory. POSIX makes `rename` atomic, so a reader (or rsync, or a GlusterFS brick) sees the old
 * file or the new one, never a mix; the file `fsync` before the rename is what keeps ext4/XFS from
 * exposing a zero-length file after a power cut (the "O_PONIES" lesson, and what write-file-atomic,
 * SQLite and PostgreSQL do); the directory `fsync` makes the rename itself durable.
 *
 * Directory fsyncs are grouped (one in flight, the writers that arrive meanwhile share the next one),
 * as a database groups commits: 50 concurrent session writes cost a handful of directory flushes,
 * not 50.
 *
 * Temporary files are named `.fulcrum-<host>-<pid>-<random>.tmp`: hidden, and with a fixed shape so
 * a replication tool can be told to skip them (`--exclude='.fulcrum-*.tmp'`) and so a restarted
 * process can tell a crashed writer's leftovers (same host, pid no longer alive, or older than a
 * minute) from a live neighbour's write in flight.
 */
import { createHash, randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { lstat, open, readdir, rename, stat, unlink } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';

/** Prefix of every temporary file this package writes. */
export const TEMP_PREFIX = '.fulcrum-';
/** Suffix of every temporary file this package writes. */
export const TEMP_SUFFIX = '.tmp';

/**
 * A temporary file older than this is garbage whoever wrote it: a write is a few milliseconds, so a
 * minute leaves room for a slow disk or a paused VM while never keeping a crash's leftovers long.
 */
export const STALE_TEMP_MS = 60_000;

const TEMP_PATTERN = /^\.fulcrum-([0-9a-f]{8})-(\d{1,10})-[0-9a-f]{16}\.tmp$/;

/** Eight hex digits naming this host in temporary file names (the hostname may hold any character). */
export const HOST_TAG = createHash('sha256').update(hostname()).digest('hex').slice(0, 8);

/** A fresh temporary file name for this process. */
export function tempFileName(): string {
  return `${TEMP_PREFIX}${HOST_TAG}-${process.pid}-${randomBytes(8).toString('hex')}${TEMP_SUFFIX}`;
}

/** Whether `name` is one of this package's temporary files. */
export function isTempFileName(name: string): boolean {
  return TEMP_PATTERN.test(name);
}

/** A short content digest (SHA-256, 128 bits in hex): detects torn and half-replicated files. */
export function digest(...parts: string[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part).update('\n');
  return hash.digest('hex').slice(0, 32);
}

/**
 * What identifies one version of a file: every rename installs a new inode, so (dev, ino, size,
 * mtime, ctime) changes on every write, and an inode number reused after a delete still differs in
 * ctime. Used to rewrite or delete a file only if nobody replaced it since it was read.
 */
export type FileIdentity = string;

export function identityOf(stats: BigIntStats): FileIdentity {
  return `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}:${stats.ctimeNs}`;
}

/** The identity of the file at `path` now, or undefined when there is none. */
export async function currentIdentity(path: string): Promise<FileIdentity | undefined> {
  try {
    return identityOf(await stat(path, { bigint: true }));
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return undefined;
    throw error;
  }
}

export function errorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Errors that say the directory itself is unusable (the mount went away, the server is down, the
 * disk failed) rather than that one file is missing: a store answering them goes `disconnect`ed.
 */
const DIRECTORY_LOST = new Set(['EIO', 'ESTALE', 'ENOTCONN', 'ETIMEDOUT', 'EHOSTDOWN', 'EHOSTUNREACH', 'ENXIO', 'ENODEV', 'EROFS']);

export function isDirectoryLost(error: unknown, missingMeansLost: boolean): boolean {
  const code = errorCode(error);
  if (code === undefined) return false;
  if (DIRECTORY_LOST.has(code)) return true;
  return missingMeansLost && (code === 'ENOENT' || code === 'ENOTDIR');
}

/** Errors a directory fsync answers where the platform or file system cannot do one (Windows, some FUSE). */
const DIRECTORY_SYNC_UNSUPPORTED = new Set(['EISDIR', 'EPERM', 'EACCES', 'EINVAL', 'ENOTSUP', 'EBADF']);

/** Grouped directory fsyncs for one directory (see the header). */
export class DirectorySync {
  readonly #dir: string;
  #running: Promise<void> | undefined;
  #next: Promise<void> | undefined;
  #supported = true;

  constructor(dir: string) {
    this.#dir = dir;
  }

  /** Resolves once a directory fsync that started after this call has completed. */
  sync(): Promise<void> {
    if (!this.#supported) return Promise.resolve();
    if (this.#next !== undefined) return this.#next;
    const running = this.#running;
    if (running === undefined) return this.#start();
    // The flush in flight may have started before the caller's rename: it needs the next one.
    const next = running
      .then(
        () => undefined,
        () => undefined,
      )
      .then(() => {
        this.#next = undefined;
        return this.#start();
      });
    this.#next = next;
    return next;
  }

  #start(): Promise<void> {
    const flush = this.#flush().finally(() => {
      if (this.#running === flush) this.#running = undefined;
    });
    this.#running = flush;
    return flush;
  }

  async #flush(): Promise<void> {
    let handle;
    try {
      handle = await open(this.#dir, 'r');
      await handle.sync();
    } catch (error) {
      const code = errorCode(error);
      if (code !== undefined && DIRECTORY_SYNC_UNSUPPORTED.has(code)) {
        this.#supported = false;
        return;
      }
      throw error;
    } finally {
      await handle?.close().catch(() => undefined);
    }
  }
}

export interface AtomicWriteOptions {
  /** fsync the file before the rename and the directory after it. */
  fsync: boolean;
  mode: number;
  directorySync: DirectorySync;
  /**
   * Called after the data is on disk and before the rename; answering false abandons the write
   * (the temporary file is removed). How `touch` refuses to bring back a file deleted meanwhile.
   */
  beforeRename?: () => Promise<boolean>;
}

/**
 * Replaces `dir/name` with `data` atomically (see the header). Answers false when `beforeRename`
 * abandoned the write. Never leaves its temporary file behind unless the process dies.
 */
export async function writeFileAtomic(dir: string, name: string, data: Uint8Array | string, options: AtomicWriteOptions): Promise<boolean> {
  const temp = join(dir, tempFileName());
  let handle;
  let renamed = false;
  try {
    // 'wx': never follow or reuse whatever might sit at the temporary name.
    handle = await open(temp, 'wx', options.mode);
    await handle.writeFile(data);
    if (options.fsync) await handle.sync();
    await handle.close();
    handle = undefined;
    if (options.beforeRename !== undefined && !(await options.beforeRename())) return false;
    await rename(temp, join(dir, name));
    renamed = true;
  } finally {
    if (handle !== undefined) await handle.close().catch(() => undefined);
    if (!renamed) await unlink(temp).catch(() => undefined);
  }
  if (options.fsync) await options.directorySync.sync();
  return true;
}

/**
 * Whether process `pid` is alive on this host. EPERM means it exists under another user; only
 * ESRCH proves it is gone.
 */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errorCode(error) !== 'ESRCH';
  }
}

/**
 * Removes the temporary files a crashed writer left in `dir`: those of a process of this host that
 * is no longer alive, and any older than `STALE_TEMP_MS` (another host's, or a process of this one
 * that got the crashed process's pid again — pid 1 in a container restarts as pid 1). Answers how
 * many were removed. Temporary files are never read as data, so one that survives a while is
 * harmless; this only keeps the directory (and what the replication tool copies) clean.
 */
export async function sweepTempFiles(dir: string, now: number, names?: readonly string[]): Promise<number> {
  const listed = names ?? (await readdir(dir));
  let removed = 0;
  for (const name of listed) {
    const match = TEMP_PATTERN.exec(name);
    if (match === null) continue;
    const pid = Number(match[2]);
    const path = join(dir, name);
    let stale = match[1] === HOST_TAG && pid !== process.pid && !processAlive(pid);
    if (!stale) {
      try {
        const info = await lstat(path);
        stale = now - info.mtimeMs > STALE_TEMP_MS;
      } catch {
        continue;
      }
    }
    if (!stale) continue;
    try {
      await unlink(path);
      removed++;
    } catch (error) {
      if (errorCode(error) !== 'ENOENT') throw error;
    }
  }
  return removed;
}
