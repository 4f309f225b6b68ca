/**
 * Errors of the Redis session package, and the one place that decides which ioredis failures mean
 * "Redis is unavailable". Modelled on how express-session treats its store: any error passed to a
 * callback becomes a 500 for that request, so the error must say *why* — an outage
 * (`StoreUnavailableError` from core, which a caller can answer with a 503 or a retry) versus a
 * lost-update conflict (`SessionConflictError`, which a caller can answer with a 409 and a retry of
 * the whole request).
 *
 * ioredis reports outages in several shapes — "Connection is closed.", "Stream isn't writeable and
 * enableOfflineQueue options is false", `MaxRetriesPerRequestError`, "Command timed out", socket
 * errors (ECONNREFUSED…) — while server replies arrive as `ReplyError`. Replies that mean the server
 * cannot serve right now (a cluster that lost slots, a replica that is loading or read-only after a
 * failover) count as outages too; every other reply error is a real bug and passes through unchanged.
 */
import { ErrorCodes, StoreUnavailableError, isFulcrumError } from '@fulcrum/core';

/** Stable code of `SessionConflictError` (core's `ErrorCodes.SESSION_CONFLICT`). */
export const SESSION_CONFLICT = ErrorCodes.SESSION_CONFLICT;

/** Reply errors that mean "cannot serve now", not "your command is wrong". */
const UNAVAILABLE_REPLY = /^(CLUSTERDOWN|LOADING|MASTERDOWN|READONLY|TRYAGAIN|BUSY|NOREPLICAS)\b/;

/**
 * What happened, in words, for the kinds of failure ioredis reports. Never the raw message: ioredis
 * messages carry host:port, and a store error may end up in a response body. The full error stays
 * reachable as `cause`.
 */
export function describeRedisFailure(error: unknown): string {
  const name = (error as { name?: unknown } | null)?.name;
  const code = (error as { code?: unknown } | null)?.code;
  const message = String((error as { message?: unknown } | null)?.message ?? error);
  if (name === 'ReplyError') {
    const reply = UNAVAILABLE_REPLY.exec(message)?.[1] ?? 'an error';
    return `Redis answered ${reply} (it cannot serve commands right now: loading, failing over, or read-only)`;
  }
  if (name === 'MaxRetriesPerRequestError') return 'the connection dropped and ioredis gave up resending the command';
  if (code === 'ECONNREFUSED') return 'the connection was refused (is Redis running?)';
  if (code === 'ECONNRESET' || code === 'EPIPE') return `the connection was reset (${code})`;
  if (code === 'ETIMEDOUT' || /timed out/i.test(message)) return 'Redis did not answer in time';
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return `a socket error (${code})`;
  if (/Stream isn't writeable/i.test(message)) return 'the client has no open connection and its offline queue is off';
  if (/Connection is closed/i.test(message)) return 'the connection is closed';
  if (/was quit|Connection is in.*closed|end/i.test(message) && name !== 'Error') return 'the client was closed';
  return `the command failed (${typeof name === 'string' && name !== 'Error' ? name : 'client error'})`;
}

/** What the store does after a failed call, said once for every message. */
export const AFTER_FAILURE = 'this call fails without a retry; ioredis reconnects in the background and calls succeed again once Redis is back';

/**
 * Map an ioredis failure to what the store reports: outages become `StoreUnavailableError` (the
 * original error as `cause`) whose message names the operation, what happened and what the store
 * does next; conflicts and option errors stay as they are, other server replies pass through.
 *
 * @param operation the component and call, e.g. `'RedisStore.get'`.
 */
export function toStoreError(error: unknown, operation: string): unknown {
  if (isFulcrumError(error)) return error;
  const name = (error as { name?: unknown } | null)?.name;
  const message = String((error as { message?: unknown } | null)?.message ?? error);
  if (name === 'ReplyError' && !UNAVAILABLE_REPLY.test(message)) return error;
  return new StoreUnavailableError(`${operation} failed: ${describeRedisFailure(error)}; ${AFTER_FAILURE}`, { cause: error });
}
