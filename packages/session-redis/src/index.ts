// The public surface of @fulcrum/session-redis. Re-exports only; no logic lives here.
export { RedisStore } from './redis-store';
export type { OptimisticOptions, RedisStoreConfig, RedisStoreOptions } from './redis-store';
export { RedisReplicator } from './redis-replicator';
export type { RedisReplicatorOptions } from './redis-replicator';
export { SESSION_CONFLICT } from './errors';
// The conflict error is core's, shared by every session store.
export { SessionConflictError, isSessionConflictError } from '@fulcrum/core';
export { CLIENT_DEFAULTS, redisClientOptions } from './options';
export type { RedisClient } from './key-scan';
export { StoreUnavailableError, isStoreUnavailableError } from '@fulcrum/core';
export { InvalidOptionError, isInvalidOptionError } from '@fulcrum/core';
