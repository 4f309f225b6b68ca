// The public surface of @fulcrum/session-sql. Re-exports only; no logic lives here.
export { SqlStore } from './sql-store';
export type { OptimisticMode, SessionsById, SqlStoreOptions, StoredSession } from './sql-store';
export { SqlReplicator, MAX_STICK_KEY_BYTES } from './sql-replicator';
export type { SqlReplicatorOptions } from './sql-replicator';
export { SqlContentionError } from './errors';
// The conflict error is core's, shared by every session store.
export { SessionConflictError, isSessionConflictError } from '@fulcrum/core';
export { TABLE_NAME_PATTERN } from './identifiers';
export { classifyFailure } from './executor';
export type { FailureClass, PoolLike, RetryOptions, SqlConnection } from './executor';
export type { GaleraOptions } from './options';
export { InvalidOptionError, StoreUnavailableError, isInvalidOptionError, isStoreUnavailableError } from '@fulcrum/core';
