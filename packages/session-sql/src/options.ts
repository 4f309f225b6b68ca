/**
 * Option checks shared by the store and the replicator: each throws core's `InvalidOptionError`
 * naming the option path, the value and what is allowed, once, at construction.
 */
import { InvalidOptionError } from '@fulcrum/core';
import type { PoolLike, RetryOptions } from './executor';

/** Galera-specific settings. */
export interface GaleraOptions {
  /**
   * `wsrep_sync_wait` set on each pooled connection before its first read: 1 makes reads wait until
   * the node has applied every write the cluster committed before the read began (read-your-writes
   * across nodes), at the cost of that wait. 0 = leave the server's setting. Default 1 with
   * `galera: true` or `galera: {}`, else 0.
   */
  syncWait?: number;
  /** Times a statement moves to another connection (node) after error 1047. Default 2. */
  nodeFailovers?: number;
}

export function intOption(path: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(path, value, `must be an integer from ${min} to ${max}`);
  }
  return value;
}

export function validatePool(path: string, pool: unknown): PoolLike {
  if ((typeof pool !== 'object' && typeof pool !== 'function') || pool === null || typeof (pool as PoolLike).getConnection !== 'function') {
    throw new InvalidOptionError(path, pool, 'must be a mysql2 pool or pool cluster (an object with getConnection())');
  }
  return pool as PoolLike;
}

export function normalizeRetry(path: string, retry: unknown): Readonly<Required<RetryOptions>> {
  if (retry !== undefined && (typeof retry !== 'object' || retry === null)) throw new InvalidOptionError(path, retry, 'must be an object');
  const r = (retry ?? {}) as RetryOptions;
  const baseDelayMs = intOption(`${path}.baseDelayMs`, r.baseDelayMs, 10, 0, 60_000);
  const maxDelayMs = intOption(`${path}.maxDelayMs`, r.maxDelayMs, 500, 0, 600_000);
  if (maxDelayMs < baseDelayMs) throw new InvalidOptionError(`${path}.maxDelayMs`, maxDelayMs, `must be ≥ baseDelayMs (${baseDelayMs})`);
  return Object.freeze({ maxAttempts: intOption(`${path}.maxAttempts`, r.maxAttempts, 5, 1, 100), baseDelayMs, maxDelayMs });
}

export function normalizeGalera(path: string, galera: unknown): { syncWait: number; nodeFailovers: number } {
  if (galera === undefined || galera === false) return { syncWait: 0, nodeFailovers: 2 };
  if (galera === true) return { syncWait: 1, nodeFailovers: 2 };
  if (typeof galera !== 'object' || galera === null) throw new InvalidOptionError(path, galera, 'must be true, false or an object');
  const g = galera as GaleraOptions;
  return {
    syncWait: intOption(`${path}.syncWait`, g.syncWait, 1, 0, 15),
    nodeFailovers: intOption(`${path}.nodeFailovers`, g.nodeFailovers, 2, 0, 100),
  };
}
