/**
 * Option validation shared by every component: each check throws an `InvalidOptionError` naming the
 * option's path, the value given and what is allowed. Validation happens once, at construction; the
 * hot path never re-checks.
 */
import { InvalidOptionError } from './errors';

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

export function optionalObject(path: string, value: unknown): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  if (!isPlainObject(value)) throw new InvalidOptionError(path, value, 'must be an object');
  return value;
}

export function finiteNumber(
  path: string,
  value: unknown,
  bounds: { min?: number; max?: number; minExclusive?: boolean; integer?: boolean } = {},
): number {
  const { min, max, minExclusive, integer } = bounds;
  const expected = describeBounds(bounds);
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new InvalidOptionError(path, value, expected);
  if (integer && !Number.isInteger(value)) throw new InvalidOptionError(path, value, expected);
  if (min !== undefined && (minExclusive ? value <= min : value < min)) throw new InvalidOptionError(path, value, expected);
  if (max !== undefined && value > max) throw new InvalidOptionError(path, value, expected);
  return value;
}

export function optionalNumber(
  path: string,
  value: unknown,
  fallback: number,
  bounds: { min?: number; max?: number; minExclusive?: boolean; integer?: boolean } = {},
): number {
  return value === undefined ? fallback : finiteNumber(path, value, bounds);
}

export function optionalBoolean(path: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new InvalidOptionError(path, value, 'must be true or false');
  return value;
}

export function optionalFunction<F extends (...args: never[]) => unknown>(
  path: string,
  value: unknown,
  fallback: F,
): F {
  if (value === undefined) return fallback;
  if (typeof value !== 'function') throw new InvalidOptionError(path, value, 'must be a function');
  return value as F;
}

function describeBounds(b: { min?: number; max?: number; minExclusive?: boolean; integer?: boolean }): string {
  const kind = b.integer ? 'an integer' : 'a finite number';
  const parts: string[] = [];
  if (b.min !== undefined) parts.push(`${b.minExclusive ? '>' : '≥'} ${b.min}`);
  if (b.max !== undefined) parts.push(`≤ ${b.max}`);
  return `must be ${kind}${parts.length ? ` ${parts.join(' and ')}` : ''}`;
}
