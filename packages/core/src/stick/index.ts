/**
 * Stick-tables and their replication: the table, the replicator contract, the in-process
 * replicator and the pure merge rule. Re-exports only.
 */
export { StickTable, type StickTableOptions } from './stick-table';
export type { Replicator, StickEntry, StickEntryStamp, StickTombstone, StickValueEntry } from './replicator';
export { MemoryReplicator, type MemoryReplicatorOptions } from './memory-replicator';
export { compareStickEntries, compareWrites, isExpired, isStickEntry, mergeStickEntry, mergeStickStates, NODE_ID_PATTERN } from './merge';
