/**
 * gRPC status codes by name, and how a call's final status becomes a Fulcrum `Outcome`.
 *
 * The mapping is the one the issue sets for the proxy, so that a backend is judged the same way
 * whether its calls go through `@fulcrum/http` or through this policy:
 * - a status in `failureStatuses` (default `UNAVAILABLE`, `INTERNAL`, `UNKNOWN`: the statuses gRPC
 *   itself reserves for transport and server faults) is a failure — passive health, outlier
 *   ejection and the failure counters see it;
 * - `CANCELLED` is the client's own doing: neither a failure nor a latency sample (`error: 'aborted'`);
 * - everything else, application errors such as `NOT_FOUND` included, is a success: the backend
 *   answered. `DEADLINE_EXCEEDED` is a success by default too, and its duration (the deadline) is a
 *   latency sample, which is what makes peak-EWMA move calls away from a backend too slow for its
 *   callers' deadlines; list it in `failureStatuses` to count it against the backend as well.
 */
import type { Outcome } from '@fulcrum/core';

/** gRPC status codes (the numbering of `grpc/status.h`). */
export const GRPC_STATUS = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const);

export type GrpcStatusName = keyof typeof GRPC_STATUS;

/** The statuses counted against a backend unless `failureStatuses` says otherwise. */
export const DEFAULT_FAILURE_STATUSES: readonly GrpcStatusName[] = Object.freeze(['UNAVAILABLE', 'INTERNAL', 'UNKNOWN']);

const NAMES_BY_CODE: readonly string[] = Object.keys(GRPC_STATUS);

/** The name of a status code (`14` → `'UNAVAILABLE'`), or the number as a string when unknown. */
export function statusName(code: number): string {
  return NAMES_BY_CODE[code] ?? String(code);
}

/** Shared outcomes: `release` reads them and keeps none, so one frozen object serves every call. */
const OK_OUTCOME: Outcome = Object.freeze({ ok: true });
const CANCELLED_OUTCOME: Outcome = Object.freeze({ ok: true, error: 'aborted' });
const FAILED_OUTCOME: Outcome = Object.freeze({ ok: false, error: 'status' });
const TIMED_OUT_OUTCOME: Outcome = Object.freeze({ ok: false, error: 'timeout' });

/**
 * The outcome of a call that ended with `code`. `failures` is a bit set of status codes (bit n for
 * code n), precomputed from `failureStatuses` so the hot path is one shift and one mask.
 */
export function outcomeOf(code: number, failures: number): Outcome {
  if (code >= 0 && code < 31 && (failures & (1 << code)) !== 0) {
    return code === GRPC_STATUS.DEADLINE_EXCEEDED ? TIMED_OUT_OUTCOME : FAILED_OUTCOME;
  }
  return code === GRPC_STATUS.CANCELLED ? CANCELLED_OUTCOME : OK_OUTCOME;
}
