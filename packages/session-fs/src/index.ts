// The public surface of @fulcrum/session-fs. Re-exports only; no logic lives here.
export { FileStore } from './file-store';
export type { CleanupResult, FileStoreOptions } from './file-store';
export { FileReplicator } from './file-replicator';
export type { FileReplicatorOptions } from './file-replicator';
export { CorruptFileError, isCorruptFileError } from './errors';
export type { CorruptFileReason } from './errors';
export { InvalidOptionError, StoreUnavailableError, isInvalidOptionError, isStoreUnavailableError } from '@fulcrum/core';
