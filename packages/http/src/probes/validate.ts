/**
 * Shared option checks for the probes: each throws core's `InvalidOptionError` naming the option
 * path and the value, once, when the probe is created — never while it runs.
 */
import { InvalidOptionError } from '@fulcrum/core';

/** Node's timers overflow (and fire at once) above 2^31 − 1 ms. */
export const MAX_TIMEOUT_MS = 2_147_483_647;

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** `undefined` → `{}`; anything but a plain object, or a key outside `known`, is refused. */
export function optionsObject(path: string, value: unknown, known: readonly string[]): Record<string, unknown> {
  if (value === undefined) return {};
  if (!isPlainObject(value)) throw new InvalidOptionError(path, value, 'must be an object');
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) {
      throw new InvalidOptionError(`${path}.${key}`, value[key], `is not an option (known: ${known.join(', ')})`);
    }
  }
  return value;
}

/** An optional timeout: a finite number of milliseconds > 0 that a Node timer can hold. */
export function optionalTimeout(path: string, value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0 || value > MAX_TIMEOUT_MS) {
    throw new InvalidOptionError(path, value, `must be a number of milliseconds > 0 and ≤ ${MAX_TIMEOUT_MS}`);
  }
  return value;
}
