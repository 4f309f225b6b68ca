/**
 * The files a config refers to — certificates and keys it reads, the access log it appends to —
 * opened so that no path can hang or exhaust the process, whatever it points at.
 *
 * A certificate path that is a FIFO made `readFileSync` wait forever on the event loop (the whole
 * proxy froze on reload, and `fulcrum --check` never returned); `/dev/urandom` would have been read
 * until memory ran out. So a file is opened with `O_NONBLOCK` (opening a FIFO for reading then
 * returns at once instead of waiting for a writer), `fstat`-ed on the descriptor (no race with a
 * rename between a check and the read), refused unless it is a regular file, and read up to a size
 * cap — asynchronously in `readConfigFile`, for the runner and `loadConfig`. The access log is
 * opened for appending the way `nginx -t` opens its logs (creating it if missing), non-blocking, so
 * an unwritable path is an error of `fulcrum --check`, not a warning at run time with the log lost.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { open } from 'node:fs/promises';
import { ErrorCodes, FulcrumError } from '@fulcrum/core';

/** Largest file a config may make the proxy read (a PEM chain is a few KB; 1 MiB is generous). */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

const READ_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK | (constants.O_NOCTTY ?? 0);
const APPEND_FLAGS = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NONBLOCK | (constants.O_NOCTTY ?? 0);

/** A file a config refers to that cannot be used: `reason` completes "must be …, but it …". */
export class ConfigPathError extends FulcrumError {
  readonly code = ErrorCodes.CONFIG_PATH;
  constructor(
    readonly file: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}: ${reason}`, options);
  }
}

/** What a non-regular file is, in words. */
function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory';
  if (stats.isFIFO()) return 'a FIFO (named pipe)';
  if (stats.isCharacterDevice()) return 'a character device';
  if (stats.isBlockDevice()) return 'a block device';
  if (stats.isSocket()) return 'a socket';
  return 'not a regular file';
}

function refuseUnlessRegular(file: string, stats: Stats, maxBytes: number): void {
  if (!stats.isFile()) throw new ConfigPathError(file, `is ${kindOf(stats)}, not a regular file`);
  if (stats.size > maxBytes) throw new ConfigPathError(file, `is ${stats.size} bytes, over the ${maxBytes}-byte limit`);
}

function openError(file: string, error: unknown): ConfigPathError {
  const code = (error as NodeJS.ErrnoException).code ?? 'unreadable';
  return new ConfigPathError(file, `cannot be opened (${code})`, { cause: error });
}

/** Read a regular file of at most `maxBytes` as UTF-8, without blocking the event loop. */
export async function readConfigFile(file: string, maxBytes = MAX_CONFIG_FILE_BYTES): Promise<string> {
  let handle;
  try {
    handle = await open(file, READ_FLAGS);
  } catch (error) {
    throw openError(file, error);
  }
  try {
    refuseUnlessRegular(file, await handle.stat(), maxBytes);
    // One byte more than allowed: a file that grew since the stat is caught too.
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxBytes) throw new ConfigPathError(file, `is over the ${maxBytes}-byte limit`);
    }
    return buffer.toString('utf8', 0, length);
  } finally {
    await handle.close();
  }
}

/** `readConfigFile` for synchronous callers (`validateConfig` without pre-read files): same refusals. */
export function readConfigFileSync(file: string, maxBytes = MAX_CONFIG_FILE_BYTES): string {
  let fd: number;
  try {
    fd = openSync(file, READ_FLAGS);
  } catch (error) {
    throw openError(file, error);
  }
  try {
    refuseUnlessRegular(file, fstatSync(fd), maxBytes);
    const buffer = Buffer.alloc(maxBytes + 1);
    let length = 0;
    for (;;) {
      const bytesRead = readSync(fd, buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxBytes) throw new ConfigPathError(file, `is over the ${maxBytes}-byte limit`);
    }
    return buffer.toString('utf8', 0, length);
  } finally {
    closeSync(fd);
  }
}

/**
 * Check that the access log `file` can be appended to: opened (created if missing) write-only and
 * non-blocking, then closed. A directory, a FIFO, a missing directory or a read-only place is refused.
 */
export async function checkAppendable(file: string): Promise<void> {
  let handle;
  try {
    handle = await open(file, APPEND_FLAGS, 0o640);
  } catch (error) {
    throw appendError(file, error);
  }
  try {
    const stats = await handle.stat();
    // Appending to a FIFO blocks once its reader stops; a regular file or a device such as /dev/null only.
    if (stats.isFIFO() || stats.isSocket()) throw new ConfigPathError(file, `is ${kindOf(stats)}, not a file to append to`);
  } finally {
    await handle.close();
  }
}

/** `checkAppendable` for synchronous callers. */
export function checkAppendableSync(file: string): void {
  let fd: number;
  try {
    fd = openSync(file, APPEND_FLAGS, 0o640);
  } catch (error) {
    throw appendError(file, error);
  }
  try {
    const stats = fstatSync(fd);
    if (stats.isFIFO() || stats.isSocket()) throw new ConfigPathError(file, `is ${kindOf(stats)}, not a file to append to`);
  } finally {
    closeSync(fd);
  }
}

function appendError(file: string, error: unknown): ConfigPathError {
  const code = (error as NodeJS.ErrnoException).code ?? 'unwritable';
  // ENXIO: a FIFO without a reader (O_NONBLOCK refuses rather than waits for one).
  const why =
    code === 'EISDIR'
      ? 'is a directory'
      : code === 'ENXIO'
        ? 'is a FIFO (named pipe)'
        : code === 'ENOENT'
          ? 'is in a directory that does not exist'
          : `cannot be opened for writing (${code})`;
  return new ConfigPathError(file, why, { cause: error });
}
