/**
 * A deadline on a promise, for the stores' round trips to Redis and SQL servers: a server that never
 * answers must not hang the request that waits on it. The timer comes from the store's `Clock`
 * (`realClock`'s are unref'd, so a pending deadline never keeps a process alive; a `FakeClock` lets a
 * test expire it without waiting).
 */
import type { Clock } from '../clock';

/**
 * Settles as `promise` does, or rejects with `onTimeout()`'s error once `ms` have passed first. The
 * promise is not cancelled: `onTimeout` is where a caller releases what a late answer would hold.
 */
export function withDeadline<T>(promise: Promise<T>, ms: number, clock: Clock, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = clock.setTimeout(() => reject(onTimeout()), ms);
    promise.then(
      (value) => {
        clock.clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clock.clearTimeout(timer);
        reject(error);
      },
    );
  });
}
