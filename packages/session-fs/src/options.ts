/**
 * Option checks shared by the store and the replicator: each throws core's `InvalidOptionError`
 * naming the option's path, the value given and what is allowed, once, at construction.
 */
import { InvalidOptionError } from '@fulcrum/core';
import { optionsObject } from '@fulcrum/core/validate';

export { MAX_TIMER_MS, isPlainObject, optionalBoolean, optionalNumber } from '@fulcrum/core/validate';

/**
 * Refuses anything but a plain object, and unknown keys (a typo never passes silently). When the key
 * is a peer store's option name, the message names the Fulcrum equivalent (`hints`).
 */
export function checkOptions(path: string, value: unknown, known: readonly string[], hints: Readonly<Record<string, string>> = {}): Record<string, unknown> {
  return optionsObject(path, value, known, { hints, expected: 'must be an options object', allowMissing: false });
}

/**
 * session-file-store's option names (and connect-redis's, which users carry over), each with what
 * to write instead. The README's migration table says the same.
 */
export const PEER_STORE_OPTION_HINTS: Readonly<Record<string, string>> = Object.freeze({
  path: "session-file-store's `path` is `dir` here",
  ttl: "session-file-store's and connect-redis's `ttl` (seconds) is `ttlSeconds` here; a session's own cookie expiry always wins over it",
  reapInterval: "session-file-store's `reapInterval` (seconds; -1 disables) is `cleanupIntervalMs` here (ms; 0 disables)",
  reapAsync: "FileStore always sweeps off the request path, on an unref'd timer: drop the option",
  reapSyncFallback: "FileStore always sweeps off the request path, on an unref'd timer: drop the option",
  reapMaxConcurrent: 'FileStore bounds its sweep to 16 files at a time: drop the option',
  encoder: "session-file-store's `encoder`/`decoder` pair is `serializer: { stringify, parse }` here",
  decoder: "session-file-store's `encoder`/`decoder` pair is `serializer: { stringify, parse }` here",
  fileExtension: 'FileStore names files by a hash of the id (`<sha256>.session`), so no forged id can name a path: drop the option',
  retries: 'FileStore writes atomically (temp file + rename) and never reads a partial file, so it does not retry reads: drop the option',
  disableTouch:
    'FileStore has no switch to turn touch off; `touchAfterSeconds` sets how rarely it writes (capped at half the session lifetime so rolling sessions stay alive)',
  touchAfter: "connect-mongo's `touchAfter` is `touchAfterSeconds` here",
  logFn: "FileStore reports problems through its 'error' event (or one process warning when nobody listens)",
});

export function requiredDirectory(path: string, value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.includes('\u0000')) {
    throw new InvalidOptionError(path, value, 'must be a non-empty directory path');
  }
  return value;
}

export function optionalFileMode(path: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0o777 || (value & 0o600) !== 0o600) {
    throw new InvalidOptionError(path, value, 'must be a file mode between 0o600 and 0o777 that lets the owner read and write');
  }
  return value;
}
