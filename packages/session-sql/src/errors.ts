/**
 * The errors this package adds to core's. A store call that cannot complete fails with core's
 * `StoreUnavailableError` (server down, timed out, connection lost); `SqlContentionError` is the
 * `StoreUnavailableError` for "the server answered, but deadlock or lock-wait retries ran out", so
 * code that handles "store unavailable" handles it too. `SessionConflictError` is the optimistic
 * mode's refusal of a write made from a stale copy (the compare-and-set idea of connect-redis
 * users' WATCH/MULTI recipes and of row-version columns in ORMs); it is core's, shared by every
 * session store.
 */
import { StoreUnavailableError } from '@fulcrum/core';

/** Deadlock (1213) or lock-wait timeout (1205) retries were exhausted. Is a `StoreUnavailableError`. */
export class SqlContentionError extends StoreUnavailableError {
  /** MySQL error number of the last attempt: 1213 or 1205. */
  readonly errno: number;
  /** Attempts made, the first included. */
  readonly attempts: number;
  constructor(errno: number, attempts: number, options?: { cause?: unknown; operation?: string | undefined }) {
    super(
      `${options?.operation ?? 'session store'} failed: ${errno === 1205 ? 'lock wait timeouts' : 'deadlocks'} (${errno}) on every one of ${attempts} attempts; ` +
        'the write was not applied and is not retried further (retry the request, or raise retry.maxAttempts)',
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.errno = errno;
    this.attempts = attempts;
  }
}
