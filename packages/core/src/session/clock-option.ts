/** The `clock` option every session store and stick-table replicator takes, checked the same way in each. */
import { realClock, type Clock } from '../clock';
import { InvalidOptionError } from '../errors';

/**
 * `value` as the store's clock: `realClock` when omitted, else an object with `now`, `setTimeout`
 * and `clearTimeout` (core's `Clock`, e.g. `FakeClock` from `@fulcrum/core/testing`).
 */
export function sessionStoreClock(path: string, value: unknown): Clock {
  if (value === undefined) return realClock;
  const clock = value as Partial<Clock> | null;
  if (
    typeof clock !== 'object' ||
    clock === null ||
    typeof clock.now !== 'function' ||
    typeof clock.setTimeout !== 'function' ||
    typeof clock.clearTimeout !== 'function'
  ) {
    throw new InvalidOptionError(path, value, 'must be a Clock: an object with now(), setTimeout(fn, ms) and clearTimeout(timer)');
  }
  return clock as Clock;
}
