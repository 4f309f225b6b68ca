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
 * Map an ioredis failure to what the store reports: outages become `StoreUnavailableError` (the
 * original error as `cause`), conflicts and option errors stay as they are, other server replies pass
 * through.
 */
export function toStoreError(error: unknown, what: string): unknown {
  if (isFulcrumError(error)) return error;
  const name = (error as { name?: unknown } | null)?.name;
  const message = String((error as { message?: unknown } | null)?.message ?? error);
  if (name === 'ReplyError' && !UNAVAILABLE_REPLY.test(message)) return error;
  // The message names the kind of failure only: ioredis messages carry host:port, and a store
  // error may end up in a response body. The full error stays reachable as `cause`.
  const code = (error as { code?: unknown } | null)?.code;
  const kind = typeof code === 'string' ? code : typeof name === 'string' && name !== 'Error' ? name : message.split(/[\s:.]/, 1)[0];
  return new StoreUnavailableError(`redis unavailable: ${what} failed (${kind || 'error'})`, { cause: error });
}
