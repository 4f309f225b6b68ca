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

/** Refuses anything but a plain object, and unknown keys (a typo never passes silently). */
export function checkOptions(path: string, value: unknown, known: readonly string[]): Record<string, unknown> {
  if (!isPlainObject(value)) throw new InvalidOptionError(path, value, 'must be an options object');
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) throw new InvalidOptionError(`${path}.${key}`, value[key], `is not an option (known: ${known.join(', ')})`);
  }
  return value;
}

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
