/**
 * Runs statements on a mysql2 pool with the failure rules a session store needs, so that the store
 * and the replicator only say *what* to run.
 *
 * - Any mysql2 pool shape: a `mysql2/promise` pool or PoolCluster (or its namespace), or a
 *   callback pool / PoolCluster (wrapped through `.promise()`), so users pass what they have.
 * - Deadlock (1213) and lock-wait timeout (1205) are retried with "full jitter" exponential backoff
 *   (AWS Architecture Blog, "Exponential Backoff and Jitter"), up to a bound, then fail with
 *   `SqlContentionError`. On Galera a certification failure surfaces as 1213, so this is also the
 *   multi-master conflict retry that Galera's documentation asks applications to do.
 * - 1047 ("WSREP has not yet prepared node for application use": a non-primary or joining node) is
 *   a node failure, not an answer: the connection is destroyed and the statement runs again on a
 *   new one, which a PoolCluster (or a proxy such as MaxScale / HAProxy in front of the nodes)
 *   takes from another node.
 * - Connection-level failures (refused, reset, lost, timed out) become core's
 *   `StoreUnavailableError`, after one retry on a fresh connection for idempotent work — a restarted
 *   server leaves dead idle connections in the pool, and the first use of each should not fail a
 *   request. Nothing waits for the server to come back: fail fast, like ioredis with its offline
 *   queue disabled, so that callers degrade instead of piling up.
 * - Every attempt has a deadline (`timeoutMs`); on expiry the connection is destroyed, so a late
 *   answer can never be mistaken for the next statement's.
 */
import { StoreUnavailableError, realClock } from '@fulcrum/core';
import { withDeadline } from '@fulcrum/core/session';
import type { Clock } from '@fulcrum/core';
import { SqlContentionError } from './errors';

/** The part of a mysql2 promise connection this package uses. */
export interface SqlConnection {
  execute(sql: string, values?: unknown[]): Promise<[unknown, unknown]>;
  query(sql: string, values?: unknown[]): Promise<[unknown, unknown]>;
  release(): void;
  destroy(): void;
  /** The core (callback) connection behind a promise wrapper: stable across checkouts. */
  readonly connection?: object;
}

/** Anything with mysql2's `getConnection` (promise or callback style). */
export interface PoolLike {
  getConnection(...args: never[]): unknown;
}

/** Retry bounds for deadlocks and lock-wait timeouts. */
export interface RetryOptions {
  /** Attempts in all, the first included. Default 5. */
  maxAttempts?: number;
  /** Backoff before the second attempt, ms; doubles each time (full jitter). Default 10. */
  baseDelayMs?: number;
  /** Cap of one backoff, ms. Default 500. */
  maxDelayMs?: number;
}

export interface ExecutorConfig {
  readonly retry: Readonly<Required<RetryOptions>>;
  /** Times a statement moves to a new connection after a 1047. */
  readonly nodeFailovers: number;
  readonly timeoutMs: number;
  /** `wsrep_sync_wait` set on each connection before its first read, or 0 for none. */
  readonly syncWait: number;
  readonly random: () => number;
  /** The timer of the `timeoutMs` deadline. Default `realClock`. */
  readonly clock?: Clock;
}

export type FailureClass = 'contention' | 'node' | 'connection' | 'other';

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'PROTOCOL_ENQUEUE_AFTER_FATAL_ERROR',
  'PROTOCOL_ENQUEUE_AFTER_QUIT',
  'ER_SERVER_SHUTDOWN',
  'ER_CON_COUNT_ERROR',
  'ER_CONNECTION_KILLED',
  'POOL_NONEONLINE',
  'POOL_NOEXIST',
]);
// 1053 shutdown in progress, 1927 connection killed, 2006/2013 gone away / lost (client-side numbers).
const CONNECTION_ERRNOS = new Set([1040, 1053, 1927, 2002, 2003, 2006, 2013]);

/** How a mysql2 error should be handled. */
export function classifyFailure(error: unknown): FailureClass {
  if (typeof error !== 'object' || error === null) return 'other';
  const { errno, code, fatal } = error as { errno?: unknown; code?: unknown; fatal?: unknown };
  if (errno === 1213 || errno === 1205) return 'contention';
  if (errno === 1047) return 'node';
  if (typeof code === 'string' && CONNECTION_CODES.has(code)) return 'connection';
  if (typeof errno === 'number' && CONNECTION_ERRNOS.has(errno)) return 'connection';
  if (fatal === true) return 'connection';
  if (error instanceof Error && /pool is closed|connection is in closed state/i.test(error.message)) return 'connection';
  return 'other';
}

/** Marks a deadline overrun so it is told apart from server errors. */
class DeadlineError extends Error {
  constructor(readonly ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'DeadlineError';
  }
}

export interface RunOptions {
  /** Safe to run twice (a retry after a lost connection may repeat a statement that committed). */
  idempotent: boolean;
  /** Reads that need `wsrep_sync_wait` (read-your-writes on Galera). */
  read?: boolean;
  /** The call this statement serves, for error messages, e.g. `'SqlStore.get'`. Default `'session store'`. */
  operation?: string;
}

/** The failure in words, without host or port (a store error may end up in a response body). */
function describeConnectionFailure(error: unknown): string {
  if (error instanceof DeadlineError) return `the database did not answer within ${error.ms} ms (timeoutMs)`;
  const code = (error as { code?: unknown } | null)?.code;
  if (code === 'ECONNREFUSED') return 'the connection was refused (is the database running?)';
  if (code === 'PROTOCOL_CONNECTION_LOST') return 'the server closed the connection';
  if (typeof code === 'string') return `the database is unreachable (${code})`;
  return 'the database is unreachable';
}

export interface ExecutorEvents {
  /** A statement succeeded. */
  onSuccess(): void;
  /** A statement failed because the server is unreachable (not for SQL errors). */
  onUnavailable(error: unknown): void;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Runs work on pooled connections with retries, failover and deadlines (see the file header). */
export class SqlExecutor {
  readonly #acquire: () => Promise<SqlConnection>;
  readonly #config: ExecutorConfig;
  readonly #events: ExecutorEvents;
  /** Core connections already given `wsrep_sync_wait`. */
  readonly #syncWaitSet = new WeakSet<object>();

  constructor(pool: PoolLike, config: ExecutorConfig, events: ExecutorEvents) {
    this.#config = config;
    this.#events = events;
    const source = typeof (pool as { promise?: unknown }).promise === 'function' ? (pool as unknown as { promise(): PoolLike }).promise() : pool;
    this.#acquire = () =>
      new Promise<SqlConnection>((resolve, reject) => {
        const adopt = (connection: unknown) => {
          const wrapped = connection as SqlConnection & { promise?: () => SqlConnection };
          resolve(typeof wrapped.promise === 'function' && typeof wrapped.execute === 'function' && !('connection' in wrapped) ? wrapped.promise() : wrapped);
        };
        const returned = (source.getConnection as (callback: (error: unknown, connection: unknown) => void) => unknown)((error, connection) => {
          if (error) reject(error);
          else adopt(connection);
        });
        if (returned && typeof (returned as PromiseLike<unknown>).then === 'function') {
          (returned as Promise<unknown>).then(adopt, reject);
        }
      });
  }

  /** Runs `work` on one connection; see the file header for what is retried. */
  async run<T>(work: (connection: SqlConnection) => Promise<T>, options: RunOptions): Promise<T> {
    const { retry, nodeFailovers } = this.#config;
    let attempts = 0;
    let failovers = 0;
    let reconnected = false;
    for (;;) {
      attempts++;
      let connection: SqlConnection | undefined;
      try {
        connection = await this.#deadline(this.#acquire(), undefined);
        const active = connection;
        const result = await this.#deadline(
          (async () => {
            if (options.read && this.#config.syncWait > 0) await this.#applySyncWait(active);
            return work(active);
          })(),
          active,
        );
        active.release();
        this.#events.onSuccess();
        return result;
      } catch (error) {
        const failure = error instanceof DeadlineError ? 'connection' : classifyFailure(error);
        if (connection) {
          // A connection that failed at the protocol level or on a non-primary node is not reused.
          if (failure === 'other' || failure === 'contention') connection.release();
          else if (!(error instanceof DeadlineError)) safeDestroy(connection);
        }
        if (failure === 'contention') {
          const errno = (error as { errno: number }).errno;
          if (attempts >= retry.maxAttempts) throw new SqlContentionError(errno, attempts, { cause: error, operation: options.operation });
          const ceiling = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempts - 1));
          await sleep(Math.floor(this.#config.random() * ceiling));
          continue;
        }
        if (failure === 'node') {
          if (failovers < nodeFailovers) {
            failovers++;
            continue;
          }
          const unavailable = new StoreUnavailableError(
            `${options.operation ?? 'session store'} failed: no database node is ready (WSREP not ready, 1047) after ${failovers} failover(s); ` +
              'this call fails now, later calls try other connections again',
            { cause: error },
          );
          this.#events.onUnavailable(unavailable);
          throw unavailable;
        }
        if (failure === 'connection') {
          if (options.idempotent && !reconnected && !(error instanceof DeadlineError)) {
            reconnected = true;
            continue;
          }
          const unavailable = new StoreUnavailableError(
            `${options.operation ?? 'session store'} failed: ${describeConnectionFailure(error)}; ` +
              `${options.idempotent && !(error instanceof DeadlineError) ? 'retried once on a fresh connection, then gave up: ' : ''}` +
              'this call fails now without queueing, and later calls try fresh connections',
            { cause: error },
          );
          this.#events.onUnavailable(unavailable);
          throw unavailable;
        }
        throw error;
      }
    }
  }

  async #applySyncWait(connection: SqlConnection): Promise<void> {
    const core = connection.connection ?? connection;
    if (this.#syncWaitSet.has(core)) return;
    await connection.query('SET SESSION wsrep_sync_wait = ?', [this.#config.syncWait]);
    this.#syncWaitSet.add(core);
  }

  /** Rejects with a DeadlineError after `timeoutMs`, destroying `connection` (a late answer must not be reused). */
  #deadline<T>(promise: Promise<T>, connection: SqlConnection | undefined): Promise<T> {
    const ms = this.#config.timeoutMs;
    return withDeadline(promise, ms, this.#config.clock ?? realClock, () => {
      if (connection) safeDestroy(connection);
      else {
        // A connection that arrives after the deadline goes back to the pool unused.
        promise.then(
          (late) => (late as SqlConnection | undefined)?.release?.(),
          () => undefined,
        );
      }
      return new DeadlineError(ms);
    });
  }
}

function safeDestroy(connection: SqlConnection): void {
  try {
    connection.destroy();
  } catch {
    // Already gone: nothing left to release.
  }
}
