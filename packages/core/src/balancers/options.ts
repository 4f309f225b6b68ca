/**
 * Reading the options of the built-in balancers. `createBalancer(name, options)` hands every balancer
 * the same `BalancerOptions` object, so each one validates only the fields it uses and ignores the
 * rest; validation happens once, in the constructor, and the hot path reads plain fields.
 */
import type { Clock } from '../clock';
import { realClock } from '../clock';
import { InvalidOptionError } from '../errors';
import type { Random } from '../random';
import { defaultRandom } from '../random';
import { optionalFunction } from '../validate/checks';
import type { BalancerOptions } from './balancer';

/** The options object itself: `undefined` means all defaults; anything but an object is a mistake. */
export function readOptions(options: unknown): BalancerOptions {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new InvalidOptionError('options', options, 'must be an object');
  }
  return options as BalancerOptions;
}

/** `random`: a function returning numbers in [0, 1). Default `defaultRandom` (unseeded sfc32; see random.ts). */
export function readRandom(options: BalancerOptions): Random {
  return optionalFunction<Random>('random', options.random, defaultRandom);
}

/** `clock`: anything with a `now()` method (class instances such as a fake clock included). */
export function readClock(options: BalancerOptions): Clock {
  const clock: unknown = options.clock;
  if (clock === undefined) return realClock;
  if (typeof clock !== 'object' || clock === null || typeof (clock as { now?: unknown }).now !== 'function') {
    throw new InvalidOptionError('clock', clock, 'must be a Clock with a now() method');
  }
  return clock as Clock;
}
