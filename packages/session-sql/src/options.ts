/**
 * Option checks shared by the store and the replicator: each throws core's `InvalidOptionError`
 * naming the option path, the value and what is allowed, once, at construction.
 */
import { InvalidOptionError } from '@fulcrum/core';
import { checkKnownKeys, optionalInteger } from '@fulcrum/core/validate';
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

/** The shared checks of `@fulcrum/core/validate`, under the names this package's files use. */
export const intOption = optionalInteger;
export const checkKnownOptions = checkKnownKeys;

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

const CONNECTION_HINT =
  'SqlStore does not open connections: create a mysql2 pool (`mysql.createPool({ host, user, password, database })`) and pass it as `pool`';

/**
 * express-mysql-session 3's option names (and connect-redis's, which users carry over), each with
 * what to write instead. The README's migration table says the same.
 */
export const PEER_STORE_OPTION_HINTS: Readonly<Record<string, string>> = Object.freeze({
  expiration: "express-mysql-session's `expiration` (ms) is `ttlSeconds` here (seconds); a session's own cookie expiry always wins over it",
  clearExpired: "express-mysql-session's `clearExpired: false` is `cleanupIntervalMs: 0` here (then call `cleanup()` yourself)",
  checkExpirationInterval: "express-mysql-session's `checkExpirationInterval` (ms) is `cleanupIntervalMs` here (ms)",
  createDatabaseTable: "express-mysql-session's `createDatabaseTable` is `createTable` here",
  schema:
    "express-mysql-session's `schema.tableName` is `table` here; the columns are fixed (id, data, expires_at, version), so an existing table is not reused — see the README's migration section",
  endConnectionOnClose: 'SqlStore never ends your pool: call `await store.close()`, then `pool.end()` yourself',
  disableTouch:
    'SqlStore has no switch to turn touch off; `touchAfterSeconds` sets how rarely it writes (capped at half the session lifetime so rolling sessions stay alive)',
  ttl: "connect-redis's `ttl` (seconds) is `ttlSeconds` here",
  disableTTL: "SqlStore always stores an expiry (the cookie's, else `ttlSeconds`); there is no switch to turn it off",
  prefix: 'SqlStore keeps sessions in a table of their own: name it with `table` instead of a key prefix',
  touchAfter: "connect-mongo's `touchAfter` is `touchAfterSeconds` here",
  host: CONNECTION_HINT,
  port: CONNECTION_HINT,
  user: CONNECTION_HINT,
  password: CONNECTION_HINT,
  database: CONNECTION_HINT,
  charset: CONNECTION_HINT,
  connectionLimit: CONNECTION_HINT,
  socketPath: CONNECTION_HINT,
});
