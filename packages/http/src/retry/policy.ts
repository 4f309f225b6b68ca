/**
 * When a failed attempt may be sent again — the rules that keep retries from duplicating work.
 *
 * Defaults follow nginx's `proxy_next_upstream error timeout` for idempotent methods, with the safety
 * conditions HAProxy and Envoy apply: an attempt is re-sent (to another backend where one exists) only
 * if no response byte has gone to the client, the client has not gone away, the request body can be
 * sent again (absent, or fully buffered within `maxReplayBytes`), and either
 * - nothing reached the backend (the connection was refused or never completed — safe for ANY method,
 *   since the backend never saw the request), or
 * - the method is idempotent (RFC 9110 §9.2.2) and the failure is one listed in `retryOn`.
 * A POST that reached a backend is never replayed unless `retryNonIdempotent` says so: the backend may
 * have acted on it, and doing it twice is worse than a 502.
 */
import type { FailureKind } from '@fulcrum/core';

/** What may trigger a retry: a failure kind, or an upstream status (opt-in, nginx's `http_502` …). */
export type RetryCondition = 'connect' | 'reset' | 'timeout' | 'status-502' | 'status-503' | 'status-504';

export const RETRY_CONDITIONS: readonly RetryCondition[] = Object.freeze(['connect', 'reset', 'timeout', 'status-502', 'status-503', 'status-504']);

const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE']);

export function isIdempotent(method: string): boolean {
  return IDEMPOTENT.has(method);
}

export interface AttemptFailure {
  kind: FailureKind;
  /** The upstream status, for `kind: 'status'`. */
  status?: number;
  /** True when the request certainly never reached the backend (connect refused, connect timeout). */
  notSent: boolean;
}

export interface RetryState {
  method: string;
  /** Attempts made so far, including the failed one. */
  attempts: number;
  maxAttempts: number;
  /** Bytes of the response already sent to the client. */
  responseStarted: boolean;
  clientGone: boolean;
  /** The body can be sent again (absent or fully buffered). */
  replayable: boolean;
}

export interface RetryRules {
  retryOn: ReadonlySet<RetryCondition>;
  retryNonIdempotent: boolean;
}

/** Whether the failed attempt may be retried, budget aside. */
export function mayRetry(failure: AttemptFailure, state: RetryState, rules: RetryRules): boolean {
  if (state.attempts >= state.maxAttempts || state.responseStarted || state.clientGone || !state.replayable) return false;
  if (failure.notSent) return true;
  if (!isIdempotent(state.method) && !rules.retryNonIdempotent) return false;
  if (failure.kind === 'status') {
    return failure.status !== undefined && rules.retryOn.has(`status-${failure.status}` as RetryCondition);
  }
  if (failure.kind === 'aborted') return false;
  return rules.retryOn.has(failure.kind);
}
