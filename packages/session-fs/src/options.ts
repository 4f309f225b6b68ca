/**
 * Option checks shared by the store and the replicator: each throws core's `InvalidOptionError`
 * naming the option's path, the value given and what is allowed, once, at construction.
 */
import { InvalidOptionError } from '@fulcrum/core';

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/**
 * Refuses anything but a plain object, and unknown keys (a typo never passes silently). When the key
 * is a peer store's option name, the message names the Fulcrum equivalent (`hints`).
 */
export function checkOptions(path: string, value: unknown, known: readonly string[], hints: Readonly<Record<string, string>> = {}): Record<string, unknown> {
  if (!isPlainObject(value)) throw new InvalidOptionError(path, value, 'must be an options object');
  for (const key of Object.keys(value)) {
    if (known.includes(key)) continue;
    const hint = Object.prototype.hasOwnProperty.call(hints, key) ? hints[key] : undefined;
    throw new InvalidOptionError(`${path}.${key}`, value[key], hint === undefined ? `is not an option (known: ${known.join(', ')})` : `is not an option: ${hint}`);
  }
  return value;
}

/**
 * session-file-store's option names (and connect-redis's, which users carry over), each with what
 * to write instead. The README's migration table says the same.
 */
export const PEER_STORE_OPTION_HINTS: Readonly<Record<string, string>> = Object.freeze({
  path: "session-file-store's `path` is `dir` here",
  ttl: "session-file-store's and connect-redis's `ttl` (seconds) is `ttlSeconds` here; a session's own cookie expiry always wins over it",
  reapInterval: "session-file-store's `reapInterval` (seconds; -1 disables) is `cleanupIntervalMs` here (ms; 0 disables)",
  reapAsync: 'FileStore always sweeps off the request path, on an unref\'d timer: drop the option',
  reapSyncFallback: 'FileStore always sweeps off the request path, on an unref\'d timer: drop the option',
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

export function optionalNumber(
  path: string,
  value: unknown,
  fallback: number,
  bounds: { min: number; max?: number; integer?: boolean },
): number {
  if (value === undefined) return fallback;
  const kind = bounds.integer ? 'an integer' : 'a finite number';
  const range = `≥ ${bounds.min}${bounds.max === undefined ? '' : ` and ≤ ${bounds.max}`}`;
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    (bounds.integer === true && !Number.isInteger(value)) ||
    value < bounds.min ||
    (bounds.max !== undefined && value > bounds.max)
  ) {
    throw new InvalidOptionError(path, value, `must be ${kind} ${range}`);
  }
  return value;
}

export function optionalBoolean(path: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new InvalidOptionError(path, value, 'must be true or false');
  return value;
}

export function optionalFileMode(path: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0o777 || (value & 0o600) !== 0o600) {
    throw new InvalidOptionError(path, value, 'must be a file mode between 0o600 and 0o777 that lets the owner read and write');
  }
  return value;
}

/** Longest timer Node accepts (2^31 − 1 ms); a larger delay would fire at once. */
export const MAX_TIMER_MS = 2_147_483_647;
