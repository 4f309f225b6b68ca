/**
 * The option checks every Fulcrum package validates with, so that one option is refused with one
 * wording wherever it is given. Each check throws an `InvalidOptionError` naming the option's path,
 * the value given and what is allowed; validation happens once, at construction, and the hot path
 * never re-checks.
 *
 * The wordings, one per kind of check:
 *   - numbers: `must be an integer ≥ 1 and ≤ 65535`, `must be a finite number > 0` (`describeBounds`);
 *   - objects: `must be an object` (or the caller's description of the shape);
 *   - keys:    `is not an option (known: a, b, c)`, or `is not an option: <hint>` for a known mistake;
 *   - booleans `must be true or false`, functions `must be a function`.
 */
import { InvalidOptionError } from '../errors';

/**
 * The longest delay a timer holds (2^31 − 1 ms, about 24.8 days) in Node, browsers, Deno and Bun: a
 * larger one overflows and fires at once, so every timer option is capped here.
 */
export const MAX_TIMER_MS = 2_147_483_647;

/** Bounds of a number option; `minExclusive` makes `min` a strict bound (`> 0`). */
export interface NumberBounds {
  min?: number;
  max?: number;
  minExclusive?: boolean;
  integer?: boolean;
}

/** True for `{}`-literals and `Object.create(null)` objects — not arrays, class instances or null. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

/** The one wording of a number's allowed range: `must be an integer ≥ 1 and ≤ 10`. */
export function describeBounds(bounds: NumberBounds = {}): string {
  const kind = bounds.integer ? 'an integer' : 'a finite number';
  const parts: string[] = [];
  if (bounds.min !== undefined) parts.push(`${bounds.minExclusive ? '>' : '≥'} ${bounds.min}`);
  if (bounds.max !== undefined) parts.push(`≤ ${bounds.max}`);
  return `must be ${kind}${parts.length > 0 ? ` ${parts.join(' and ')}` : ''}`;
}

/** A number within `bounds` (finite; an integer when asked). */
export function finiteNumber(path: string, value: unknown, bounds: NumberBounds = {}): number {
  const { min, max, minExclusive, integer } = bounds;
  const ok =
    typeof value === 'number' &&
    Number.isFinite(value) &&
    (!integer || Number.isInteger(value)) &&
    (min === undefined || (minExclusive ? value > min : value >= min)) &&
    (max === undefined || value <= max);
  if (!ok) throw new InvalidOptionError(path, value, describeBounds(bounds));
  return value;
}

/** `fallback` when absent, else a number within `bounds`. */
export function optionalNumber(path: string, value: unknown, fallback: number, bounds?: NumberBounds): number;
export function optionalNumber(path: string, value: unknown, fallback: number | undefined, bounds?: NumberBounds): number | undefined;
export function optionalNumber(path: string, value: unknown, fallback: number | undefined, bounds: NumberBounds = {}): number | undefined {
  return value === undefined ? fallback : finiteNumber(path, value, bounds);
}

/** `fallback` when absent, else an integer in [min, max]. */
export function optionalInteger(path: string, value: unknown, fallback: number, min: number, max: number): number {
  return value === undefined ? fallback : finiteNumber(path, value, { min, max, integer: true });
}

/**
 * A timer delay in milliseconds: finite, > 0 (≥ `min` when given) and at most `MAX_TIMER_MS`, so no
 * platform fires it early.
 */
export function timerMs(path: string, value: unknown, min?: number): number {
  return finiteNumber(path, value, min === undefined ? { min: 0, minExclusive: true, max: MAX_TIMER_MS } : { min, max: MAX_TIMER_MS });
}

/** `fallback` when absent, else a timer delay (`timerMs`). */
export function optionalTimerMs(path: string, value: unknown, fallback: number, min?: number): number;
export function optionalTimerMs(path: string, value: unknown, fallback: number | undefined, min?: number): number | undefined;
export function optionalTimerMs(path: string, value: unknown, fallback: number | undefined, min?: number): number | undefined {
  return value === undefined ? fallback : timerMs(path, value, min);
}

export function optionalBoolean(path: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new InvalidOptionError(path, value, 'must be true or false');
  return value;
}

export function optionalFunction<F extends (...args: never[]) => unknown>(path: string, value: unknown, fallback: F): F {
  if (value === undefined) return fallback;
  if (typeof value !== 'function') throw new InvalidOptionError(path, value, 'must be a function');
  return value as F;
}

/** `fallback` when absent, else a string matching `pattern`; `expected` says what is allowed. */
export function optionalString(path: string, value: unknown, fallback: string, pattern: RegExp, expected: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !pattern.test(value)) throw new InvalidOptionError(path, value, expected);
  return value;
}

/** A plain object; `expected` describes the shape (default `must be an object`). */
export function plainObject(path: string, value: unknown, expected = 'must be an object'): Record<string, unknown> {
  if (!isPlainObject(value)) throw new InvalidOptionError(path, value, expected);
  return value;
}

/** `undefined` when absent, else a plain object. */
export function optionalObject(path: string, value: unknown, expected?: string): Record<string, unknown> | undefined {
  return value === undefined ? undefined : plainObject(path, value, expected);
}

/**
 * Refuses keys of `options` outside `known`, so a typo or an option carried over from another
 * library never passes silently. When the key is in `hints` (another library's name for an option),
 * the message says what to write instead.
 */
export function checkKnownKeys(path: string, options: object, known: readonly string[], hints: Readonly<Record<string, string>> = {}): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const hint = Object.prototype.hasOwnProperty.call(hints, key) ? hints[key] : undefined;
    throw new InvalidOptionError(
      path === '' ? key : `${path}.${key}`,
      (options as Record<string, unknown>)[key],
      hint === undefined ? `is not an option (known: ${known.join(', ')})` : `is not an option: ${hint}`,
    );
  }
}

/**
 * An options object: `{}` when absent (`allowMissing`, the default), else a plain object whose keys
 * are all in `known`.
 */
export function optionsObject(
  path: string,
  value: unknown,
  known: readonly string[],
  { hints, expected, allowMissing = true }: { hints?: Readonly<Record<string, string>>; expected?: string; allowMissing?: boolean } = {},
): Record<string, unknown> {
  if (value === undefined && allowMissing) return {};
  const object = plainObject(path, value, expected);
  checkKnownKeys(path, object, known, hints);
  return object;
}
