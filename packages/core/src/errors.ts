/**
 * Fulcrum's errors: one class per failure, each with a stable `code`, a default message a user
 * understands, and an optional `cause`. Guards (`isFulcrumError`, `isInvalidOptionError`, …) check a
 * brand stored under a global symbol rather than `instanceof`, so they work across duplicate installs
 * of the package (two copies of `@fulcrum/core` in one `node_modules` tree).
 */

const BRAND: unique symbol = Symbol.for('fulcrum.error') as never;

/**
 * Every code a Fulcrum error carries, in every package: the one list. A code never changes once
 * released; each is documented in the README of the package that throws it (a test checks).
 */
export const ErrorCodes = Object.freeze({
  /** `InvalidOptionError` (every package): an option failed validation. */
  INVALID_OPTION: 'FULCRUM_INVALID_OPTION',
  /** `NoBackendAvailableError`: no backend is eligible. */
  NO_BACKEND: 'FULCRUM_NO_BACKEND',
  /** `StoreUnavailableError` (the session packages): the backing service could not be reached in time. */
  STORE_UNAVAILABLE: 'FULCRUM_STORE_UNAVAILABLE',
  /** `UpstreamError` (`@fulcrum/http`): an upstream attempt failed. */
  UPSTREAM: 'FULCRUM_UPSTREAM',
  /** `SessionConflictError` (the session packages' optimistic mode): a write lost a race. */
  SESSION_CONFLICT: 'FULCRUM_SESSION_CONFLICT',
  /** `DnsDiscoveryError` (`@fulcrum/http`): a DNS discovery refresh failed. */
  DNS_DISCOVERY: 'FULCRUM_DNS_DISCOVERY',
  /** `ConfigFileError` (`@fulcrum/cli`, the `fulcrum` command): a config file could not be read or parsed. */
  CONFIG_FILE: 'FULCRUM_CONFIG_FILE',
  /**
   * `ConfigPathError` (`@fulcrum/http`, the `fulcrum` CLI): a file a config refers to (a certificate,
   * a key, the access log) is not a usable file.
   */
  CONFIG_PATH: 'FULCRUM_CONFIG_PATH',
  /** `CorruptFileError` (`@fulcrum/session-fs`): a session file or stick-log record failed its checks. */
  CORRUPT_FILE: 'FULCRUM_FS_CORRUPT_FILE',
  /** `InvariantViolation` (`@fulcrum/core/testing`): `checkBalancer` found a broken invariant. */
  INVARIANT_VIOLATION: 'FULCRUM_INVARIANT_VIOLATION',
  /** `StoreConformanceError` (`@fulcrum/core/testing`): a store failed a `checkStore` case. */
  STORE_CONFORMANCE: 'FULCRUM_STORE_CONFORMANCE',
  /** `ReplicatorConformanceError` (`@fulcrum/core/testing`): a replicator failed a `checkReplicator` case. */
  REPLICATOR_CONFORMANCE: 'FULCRUM_REPLICATOR_CONFORMANCE',
} as const);

export type FulcrumErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/** What went wrong with an upstream attempt. */
export type FailureKind = 'connect' | 'timeout' | 'reset' | 'status' | 'aborted';

export abstract class FulcrumError extends Error {
  abstract readonly code: FulcrumErrorCode;
  declare readonly [BRAND]: true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    Object.defineProperty(this, BRAND, { value: true });
    this.name = new.target.name;
  }
}

/** Describe a value for an error message: short, unambiguous, never throws. */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 77)}...` : value);
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (value === undefined || value === null || typeof value === 'boolean') return String(value);
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return value.toString();
  if (Array.isArray(value)) return `an array of ${value.length}`;
  try {
    const json = JSON.stringify(value);
    return json.length > 80 ? `${json.slice(0, 77)}...` : json;
  } catch {
    return 'an object';
  }
}

/** An option failed validation. `path` names it (`backends[2].weight`); `value` is what was given. */
export class InvalidOptionError extends FulcrumError {
  readonly code = ErrorCodes.INVALID_OPTION;
  readonly path: string;
  readonly value: unknown;
  readonly expected: string;

  constructor(path: string, value: unknown, expected: string, options?: { cause?: unknown }) {
    super(`${path}: ${expected}, got ${describeValue(value)}`, options);
    this.path = path;
    this.value = value;
    this.expected = expected;
  }
}

/** No backend is eligible: all are down, in maintenance, ejected, or the set is empty. */
export class NoBackendAvailableError extends FulcrumError {
  readonly code = ErrorCodes.NO_BACKEND;
  constructor(message = 'no backend available', options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A session store or replication service could not be reached in time. */
export class StoreUnavailableError extends FulcrumError {
  readonly code = ErrorCodes.STORE_UNAVAILABLE;
  constructor(message = 'session store unavailable', options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** An upstream attempt failed; `kind` says how. */
export class UpstreamError extends FulcrumError {
  readonly code = ErrorCodes.UPSTREAM;
  readonly kind: FailureKind;
  constructor(kind: FailureKind, message = `upstream failed (${kind})`, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
  }
}

/**
 * An optimistic session write lost: the session changed (`'changed'`) or was destroyed
 * (`'destroyed'`) after this copy was read, so the write was refused rather than overwriting another
 * request's update. Raised by the session stores' optimistic mode.
 */
export class SessionConflictError extends FulcrumError {
  readonly code = ErrorCodes.SESSION_CONFLICT;
  /** The session id (stores check ids before use, so it is safe to log). */
  readonly sid: string;
  readonly reason: 'changed' | 'destroyed';
  /** The version the request read. */
  readonly expectedVersion: number;
  /** The version the store holds (0 when the session is gone). */
  readonly storedVersion: number;

  constructor(sid: string, reason: 'changed' | 'destroyed', expectedVersion: number, storedVersion: number, options?: { cause?: unknown }) {
    super(
      reason === 'destroyed'
        ? `session ${sid} was destroyed after it was read (version ${expectedVersion}); not recreated`
        : `session ${sid} changed after it was read (read version ${expectedVersion}, stored ${storedVersion}); not overwritten`,
      options,
    );
    this.sid = sid;
    this.reason = reason;
    this.expectedVersion = expectedVersion;
    this.storedVersion = storedVersion;
  }
}

/** True for any Fulcrum error (of any installed copy), optionally of one `code`. */
export function isFulcrumError(error: unknown, code?: FulcrumErrorCode): error is FulcrumError {
  if (typeof error !== 'object' || error === null) return false;
  if ((error as { [BRAND]?: unknown })[BRAND] !== true) return false;
  return code === undefined || (error as { code?: unknown }).code === code;
}

export const isInvalidOptionError = (e: unknown): e is InvalidOptionError => isFulcrumError(e, ErrorCodes.INVALID_OPTION);
export const isNoBackendAvailableError = (e: unknown): e is NoBackendAvailableError => isFulcrumError(e, ErrorCodes.NO_BACKEND);
export const isStoreUnavailableError = (e: unknown): e is StoreUnavailableError => isFulcrumError(e, ErrorCodes.STORE_UNAVAILABLE);
export const isUpstreamError = (e: unknown): e is UpstreamError => isFulcrumError(e, ErrorCodes.UPSTREAM);
export const isSessionConflictError = (e: unknown): e is SessionConflictError => isFulcrumError(e, ErrorCodes.SESSION_CONFLICT);
