/**
 * `SqlStore`: an express-session / @fastify/session store on MySQL, MariaDB or a Galera cluster,
 * through a mysql2 pool the application owns.
 *
 * Where the ideas come from:
 * - express-mysql-session (the store most users have): one row per session, upsert with
 *   `INSERT … ON DUPLICATE KEY UPDATE`, a periodic delete of expired rows. Kept, with parameterised
 *   prepared statements only and the table name checked before it is pasted into SQL.
 * - connect-redis / connect-mongo: TTL from the cookie, `touch` throttled (`touchAfter`) so reads
 *   do not all turn into writes, and a touch never creates a row (`UPDATE … WHERE id = ?` only).
 * - Group commit (InnoDB's, and ioredis's auto-pipelining on the client side): at concurrency,
 *   upserts that wait for a connection are sent together as one multi-row statement — one round trip
 *   and one commit (one fsync) for many sessions — and reads likewise as one `WHERE id IN (…)`
 *   (DataLoader's batching). A lone call goes out at once, so batching adds no latency at low load.
 *   Writes of one id are kept in order, never in two batches at once.
 * - Optimistic concurrency (row versions, as in ORMs and the Redis store's WATCH/Lua recipe): a
 *   session read through this store remembers the version it was read at; writing it back is a
 *   compare-and-set. A stale write is refused (`'reject'`) or three-way merged (`'merge'`, the
 *   default), so two parallel requests of one session no longer overwrite each other's changes, and
 *   a request that ends after a logout cannot bring the session back.
 * - Cleanup off the request path, in `LIMIT` batches on an unref'd timer with jitter: one huge
 *   DELETE holds locks for its whole run and, on Galera, replicates as one huge write set (and may
 *   exceed `wsrep_max_ws_rows`); batches keep each transaction small, and jitter keeps several app
 *   instances from deleting the same rows at the same moment.
 *
 * The parts, one file each: `read-batcher.ts` (batched reads), `write-coalescer.ts` (batched
 * upserts), `compare-and-set.ts` (versions and merges), `connection-state.ts` (connect/disconnect and
 * the recovery probe), `cleanup.ts` (the expiry sweep); per-id serialisation is core's `KeyedLock`.
 * This file holds the options and express-session's Store API, and says which part does what.
 *
 * Defaults: table `fulcrum_sessions`; sessions without a cookie expiry live one day (express-session's);
 * `touch` writes at most once a minute per session (a minute of imprecision on a day-long session
 * is invisible, and it removes a write from nearly every request); cleanup every minute, 1000 rows a
 * batch; a 5 s deadline per statement (longer than any healthy round trip, short enough that a
 * request does not hang on a dead server); 5 attempts on deadlocks with 10–500 ms full-jitter
 * backoff (Galera certification conflicts clear within a few retries); batches of up to 64 sessions,
 * 4 read and 4 write statements in flight (leaves connections of a default 10-connection pool free for reads).
 */
import session from 'express-session';
import type { SessionData } from 'express-session';
import { InvalidOptionError, StoreUnavailableError } from '@fulcrum/core';
import type { Clock } from '@fulcrum/core';
import { MAX_TIMER_MS } from '@fulcrum/core/validate';
import {
  DEFAULT_SESSION_TTL_SECONDS,
  KeyedLock,
  isValidSessionId,
  assertSessionId,
  jsonSerializer,
  sessionExpiresAt,
  sessionStoreClock,
  settle,
} from '@fulcrum/core/session';
import type { SessionLike, SessionSerializer, StoreCallback as SessionStoreCallback } from '@fulcrum/core/session';
import { CleanupSchedule, deleteInBatches } from './cleanup';
import { compareAndSet, type CompareAndSetContext, type OptimisticMode, type ReadRecord } from './compare-and-set';
import { ConnectionState } from './connection-state';
import { SqlExecutor } from './executor';
import type { PoolLike, RetryOptions } from './executor';
import { quoteTableName } from './identifiers';
import { ReadBatcher } from './read-batcher';
import { idText, type RunStatement, type SessionRow, type WriteResult } from './rows';
import { ID_COLUMN_QUERY, TableOnce, idColumnMigration, legacyIdColumnHolds, sessionTableDdl } from './schema';
import { PEER_STORE_OPTION_HINTS, checkKnownOptions, normalizeGalera, normalizeRetry, validatePool, intOption, type GaleraOptions } from './options';
import { WriteCoalescer } from './write-coalescer';

export type { OptimisticMode } from './compare-and-set';

export interface SqlStoreOptions {
  /** A mysql2 pool: `mysql2/promise` or callback `createPool`, or a `createPoolCluster` (Galera). Required. The store never ends it. */
  pool: PoolLike;
  /** Table name: 1–48 of `[A-Za-z0-9_]`, not starting with a digit. Default `'fulcrum_sessions'`. */
  table?: string;
  /** Create the table (and its expiry index) when missing, before the first statement. Default true. */
  createTable?: boolean;
  /** Lifetime of a session whose cookie has no expiry, seconds. Default 86400 (one day). */
  ttlSeconds?: number;
  /**
   * `touch` writes only when it extends the stored expiry by at least this much, seconds, capped at
   * half the session's lifetime (so a rolling session whose user is active never expires); 0 writes
   * on every touch (exact expiry, one UPDATE per request that does not change the session). Default 60.
   */
  touchAfterSeconds?: number;
  /** How often expired rows are deleted, ms (±10% jitter); 0 disables (run `cleanup()` yourself). Default 60000. */
  cleanupIntervalMs?: number;
  /** Rows deleted per cleanup statement. Default 1000. */
  cleanupBatchSize?: number;
  /** Session ↔ text. Default JSON. */
  serializer?: SessionSerializer;
  /**
   * Writes of a session read through this store are compare-and-set on its version. On a stale
   * version: `'merge'` (default) merges field by field and retries, `'reject'` fails the write with
   * `SessionConflictError`, `false` turns the check off (last write wins). A session destroyed
   * since it was read is never written back in either mode (`'reject'` reports it).
   */
  optimistic?: OptimisticMode;
  /** Merge-and-retry rounds before a `'merge'` write gives up with `SessionConflictError`. Default 5. */
  maxMergeAttempts?: number;
  /** Deadline of one statement (connection checkout included), ms. Default 5000. */
  timeoutMs?: number;
  /** Deadlock / lock-wait retries. Defaults: 5 attempts, 10 ms base, 500 ms cap, full jitter. */
  retry?: RetryOptions;
  /** Most sessions read or upserted by one statement; 1 turns batching off. Default 64. */
  batchSize?: number;
  /** Most batched statements in flight at once, for reads and for upserts each. Default 4. */
  batchConcurrency?: number;
  /** Galera settings; `true` = `{ syncWait: 1 }`. Default: no `wsrep_sync_wait`, 2 failovers on 1047. */
  galera?: boolean | GaleraOptions;
  /** While disconnected, how often a `SELECT 1` checks whether the server is back, ms. Default 1000. */
  probeIntervalMs?: number;
  /** Randomness for backoff and cleanup jitter, in [0, 1). Default `Math.random`. */
  random?: () => number;
  /**
   * The time for expiry, TTL and touch decisions (the `expires_at` written and compared in every
   * statement) and the timers of cleanup, the recovery probe and the statement deadline: core's
   * `Clock`. A test passes a `FakeClock` and expires sessions without waiting. Default `realClock`.
   */
  clock?: Clock;
}

/** The label of the statements that create and check the table, renamed to the call that waited on them. */
const TABLE_OPERATION = 'SqlStore.ready';

/** A session as the store hands it out (express-session's `SessionData` is structurally the same). */
export type StoredSession = SessionLike & { cookie: NonNullable<SessionLike['cookie']> };

const BaseStore = session.Store;

const OPTION_NAMES = [
  'pool',
  'table',
  'createTable',
  'ttlSeconds',
  'touchAfterSeconds',
  'cleanupIntervalMs',
  'cleanupBatchSize',
  'serializer',
  'optimistic',
  'maxMergeAttempts',
  'timeoutMs',
  'retry',
  'batchSize',
  'batchConcurrency',
  'galera',
  'probeIntervalMs',
  'random',
  'clock',
] as const;

/** Every live session keyed by its id, in an object without a prototype (express-session's MemoryStore shape). */
export type SessionsById = Record<string, SessionData>;

/**
 * An express-session store on MySQL / MariaDB / Galera (see the file header and the README).
 * Every method takes an optional node-style callback and returns a promise when it is omitted.
 * Emits `connect` and `disconnect` (express-session pauses sessions while disconnected).
 */
export class SqlStore extends BaseStore {
  readonly #executor: SqlExecutor;
  readonly #table: string;
  readonly #createTable: boolean;
  readonly #indexPrefix: string;
  readonly #ttlSeconds: number;
  readonly #touchAfterSeconds: number;
  readonly #cleanupBatchSize: number;
  readonly #serializer: SessionSerializer;
  readonly #clock: Clock;
  readonly #sql: Readonly<Record<'get' | 'cas' | 'touch' | 'touchData' | 'destroy' | 'length' | 'ids' | 'all' | 'clear' | 'cleanup', string>>;

  /** Batched reads: every read of one session goes through it. */
  readonly #reads: ReadBatcher;
  /** Batched upserts, for writes without a version to compare. */
  readonly #upserts: WriteCoalescer;
  /** Sessions read through this store → the version (and text) they were read at. */
  readonly #versions = new WeakMap<object, ReadRecord>();
  readonly #compareAndSet: CompareAndSetContext | undefined;
  /** Per-id chain of writes: keeps one id's writes in order and out of concurrent batches. */
  readonly #writes = new KeyedLock();
  readonly #connection: ConnectionState;
  readonly #cleanup: CleanupSchedule;

  readonly #tableOnce: TableOnce;
  /** The table is an earlier version's, with an ascii `VARCHAR(256)` id column (see `schema.ts`). */
  #legacyIdColumn = false;
  #closed = false;

  constructor(options: SqlStoreOptions) {
    super();
    if (typeof options !== 'object' || options === null) throw new InvalidOptionError('sqlStore', options, 'must be an options object');
    checkKnownOptions('sqlStore', options, OPTION_NAMES, PEER_STORE_OPTION_HINTS);
    const pool = validatePool('sqlStore.pool', options.pool);
    const tableName = options.table ?? 'fulcrum_sessions';
    this.#table = quoteTableName('sqlStore.table', tableName);
    this.#indexPrefix = tableName;
    if (options.createTable !== undefined && typeof options.createTable !== 'boolean') {
      throw new InvalidOptionError('sqlStore.createTable', options.createTable, 'must be true or false');
    }
    this.#createTable = options.createTable ?? true;
    // Always run once, even with createTable: false — the id column of a table made by an earlier
    // version is checked, so ids it would merge are refused instead of silently sharing a row.
    this.#tableOnce = new TableOnce(async () => {
      if (this.#createTable) {
        await this.#executor.run((c) => c.query(sessionTableDdl(this.#table, this.#indexPrefix)), { idempotent: true, operation: TABLE_OPERATION });
      }
      const [rows] = await this.#executor.run((c) => c.execute(ID_COLUMN_QUERY, [tableName]), { idempotent: true, read: true, operation: TABLE_OPERATION });
      const column = (rows as { type?: unknown }[])[0]?.type;
      const type = (typeof column === 'string' ? column : Buffer.isBuffer(column) ? column.toString('utf8') : '').toLowerCase();
      this.#legacyIdColumn = type !== '' && type !== 'varbinary' && type !== 'binary' && type !== 'blob';
    }, false);
    this.#ttlSeconds = intOption('sqlStore.ttlSeconds', options.ttlSeconds, DEFAULT_SESSION_TTL_SECONDS, 1, 10 * 365 * 86_400);
    this.#touchAfterSeconds = intOption('sqlStore.touchAfterSeconds', options.touchAfterSeconds, 60, 0, 365 * 86_400);
    const cleanupIntervalMs = intOption('sqlStore.cleanupIntervalMs', options.cleanupIntervalMs, 60_000, 0, MAX_TIMER_MS);
    this.#cleanupBatchSize = intOption('sqlStore.cleanupBatchSize', options.cleanupBatchSize, 1000, 1, 1_000_000);
    const serializer = options.serializer ?? jsonSerializer;
    if (typeof serializer?.parse !== 'function' || typeof serializer?.stringify !== 'function') {
      throw new InvalidOptionError('sqlStore.serializer', options.serializer, 'must have parse(text) and stringify(session)');
    }
    this.#serializer = serializer;
    const optimistic = options.optimistic ?? 'merge';
    if (optimistic !== 'merge' && optimistic !== 'reject' && optimistic !== false) {
      throw new InvalidOptionError('sqlStore.optimistic', options.optimistic, "must be 'merge', 'reject' or false");
    }
    const maxMergeAttempts = intOption('sqlStore.maxMergeAttempts', options.maxMergeAttempts, 5, 1, 100);
    const batchSize = intOption('sqlStore.batchSize', options.batchSize, 64, 1, 1000);
    const batchConcurrency = intOption('sqlStore.batchConcurrency', options.batchConcurrency, 4, 1, 1000);
    const probeIntervalMs = intOption('sqlStore.probeIntervalMs', options.probeIntervalMs, 1000, 10, 3_600_000);
    if (options.random !== undefined && typeof options.random !== 'function') {
      throw new InvalidOptionError('sqlStore.random', options.random, 'must be a function returning a number in [0, 1)');
    }
    const random = options.random ?? Math.random;
    const clock = sessionStoreClock('sqlStore.clock', options.clock);
    this.#clock = clock;
    const now = () => clock.now();
    const galera = normalizeGalera('sqlStore.galera', options.galera);
    this.#connection = new ConnectionState({
      clock,
      probeIntervalMs,
      probe: () => this.#executor.run((c) => c.query('SELECT 1'), { idempotent: true }),
      emit: (event, error) => (event === 'connect' ? this.emit('connect') : this.emit('disconnect', error)),
    });
    this.#executor = new SqlExecutor(
      pool,
      {
        retry: normalizeRetry('sqlStore.retry', options.retry),
        nodeFailovers: galera.nodeFailovers,
        syncWait: galera.syncWait,
        timeoutMs: intOption('sqlStore.timeoutMs', options.timeoutMs, 5000, 1, 3_600_000),
        random,
        clock,
      },
      { onSuccess: () => this.#connection.markConnected(), onUnavailable: (error) => this.#connection.markDisconnected(error) },
    );
    const t = this.#table;
    this.#sql = Object.freeze({
      get: `SELECT data, version, expires_at FROM ${t} WHERE id = ? AND expires_at > ?`,
      cas: `UPDATE ${t} SET data = ?, expires_at = ?, version = version + 1 WHERE id = ? AND version = ? AND expires_at > ?`,
      touch: `UPDATE ${t} SET expires_at = ? WHERE id = ? AND expires_at > ? AND expires_at <= ?`,
      touchData: `UPDATE ${t} SET data = ?, expires_at = ? WHERE id = ? AND version = ? AND expires_at > ? AND expires_at <= ?`,
      destroy: `DELETE FROM ${t} WHERE id = ?`,
      length: `SELECT COUNT(*) AS n FROM ${t} WHERE expires_at > ?`,
      ids: `SELECT id FROM ${t} WHERE expires_at > ? ORDER BY id`,
      all: `SELECT id, data, version, expires_at FROM ${t} WHERE expires_at > ?`,
      // The batch size is a validated integer, written as a literal: `LIMIT ?` is not portable
      // across server versions in prepared statements.
      clear: `DELETE FROM ${t} LIMIT ${this.#cleanupBatchSize}`,
      cleanup: `DELETE FROM ${t} WHERE expires_at <= ? ORDER BY expires_at LIMIT ${this.#cleanupBatchSize}`,
    });
    const run: RunStatement = (operation, sql, params, { idempotent, read }) => this.#run(operation, sql, params, idempotent, read);
    this.#reads = new ReadBatcher({ table: t, batchSize, concurrency: batchConcurrency, singleSql: this.#sql.get, now, run });
    this.#upserts = new WriteCoalescer({ table: t, batchSize, concurrency: batchConcurrency, run });
    this.#compareAndSet =
      optimistic === false
        ? undefined
        : { mode: optimistic, maxMergeAttempts, serializer, sql: this.#sql.cas, versions: this.#versions, now, run, readRow: (sid) => this.#reads.read(sid) };
    this.#cleanup = new CleanupSchedule({
      clock,
      random,
      intervalMs: cleanupIntervalMs,
      run: () => this.#deleteInBatches('cleanup', this.#sql.cleanup, () => [clock.now()]),
      report: (error) => this.#report(error),
    });
  }

  // ── express-session's Store API ─────────────────────────────────────────────────────────────

  /** The session stored under `sid`, or null (unknown, expired, unreadable, or an id no store would accept). */
  override get(sid: string, callback?: SessionStoreCallback<SessionData | null>): Promise<SessionData | null> | undefined {
    return settle(() => this.#get(sid) as Promise<SessionData | null>, callback);
  }

  /** Stores `session` until its cookie expires (or `ttlSeconds`); an already expired cookie destroys it. */
  override set(sid: string, session: SessionData | SessionLike, callback?: SessionStoreCallback<void>): Promise<void> | undefined {
    return settle(() => this.#set(sid, session as SessionLike), callback);
  }

  /** Extends a live session's expiry (throttled by `touchAfterSeconds`); never creates or revives one. */
  override touch(sid: string, session: SessionData | SessionLike, callback?: SessionStoreCallback<void>): Promise<void> | undefined {
    return settle(() => this.#touch(sid, session as SessionLike), callback);
  }

  /** Deletes the session. An id no store would accept has nothing to delete and succeeds. */
  override destroy(sid: string, callback?: SessionStoreCallback<void>): Promise<void> | undefined {
    return settle(() => this.#destroy(sid), callback);
  }

  /**
   * Every live session keyed by its id, in an object without a prototype — the shape of
   * express-session's MemoryStore and of the other Fulcrum stores. Unreadable rows are skipped.
   */
  override all(callback?: SessionStoreCallback<SessionsById>): Promise<SessionsById> | undefined {
    return settle(() => this.#all(), callback);
  }

  /** Number of live sessions. */
  override length(callback?: SessionStoreCallback<number>): Promise<number> | undefined {
    return settle(() => this.#length(), callback);
  }

  /** Ids of the live sessions, sorted. */
  ids(callback?: SessionStoreCallback<string[]>): Promise<string[]> | undefined {
    return settle(() => this.#ids(), callback);
  }

  /** Deletes every session (in batches, so that Galera never sees one giant transaction). */
  override clear(callback?: SessionStoreCallback<void>): Promise<void> | undefined {
    return settle(async () => {
      await this.#deleteInBatches('clear', this.#sql.clear, () => []);
    }, callback);
  }

  /**
   * express-session builds `req.session` from what `get` returned; the version the session was read
   * at follows it to the new object, so the write at the end of the request is compare-and-set.
   */
  override createSession(req: Parameters<session.Store['createSession']>[0], data: Parameters<session.Store['createSession']>[1]) {
    const record = this.#versions.get(data as object);
    const created = super.createSession(req, data);
    if (record !== undefined) this.#versions.set(created, record);
    return created;
  }

  // ── Fulcrum additions ───────────────────────────────────────────────────────────────────────

  /** Deletes expired rows now, in batches; resolves with how many went. The timer calls this too. */
  cleanup(): Promise<number> {
    return this.#cleanup.run();
  }

  /** Creates the table if `createTable` and it was not done yet; statements call this first anyway. */
  ready(): Promise<void> {
    return this.#tableOnce.ensure();
  }

  /** Stops the timers and waits for queued writes; later calls fail. Never ends the pool (it is yours). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#connection.close();
    const cleanupDone = this.#cleanup.close();
    await this.#upserts.drained();
    await cleanupDone;
  }

  // ── operations ──────────────────────────────────────────────────────────────────────────────

  async #get(sid: string): Promise<StoredSession | null> {
    if (!isValidSessionId(sid)) return null;
    this.#assertOpen();
    if (!(await this.#idFits(sid, 'get'))) return null;
    const pending = this.#writes.settled(sid);
    if (pending) await pending; // read-your-writes within this process
    const row = await this.#reads.read(sid);
    if (row === undefined) return null;
    let parsed: SessionLike;
    try {
      parsed = this.#serializer.parse(row.text);
    } catch (error) {
      this.#report(error);
      return null;
    }
    if (typeof parsed !== 'object' || parsed === null) return null;
    this.#versions.set(parsed, { version: row.version, text: row.text, expiresAt: row.expiresAt });
    return parsed as StoredSession;
  }

  async #set(sid: string, session: SessionLike): Promise<void> {
    assertSessionId(sid);
    this.#assertOpen();
    if (!(await this.#idFits(sid, 'set'))) {
      throw new InvalidOptionError(
        'sid',
        sid.length > 32 ? `${sid.slice(0, 32)}… (${sid.length} characters)` : sid,
        `must be at most 256 ASCII characters not ending in a space, because table ${this.#table} has the id column of an earlier version (VARCHAR(256) CHARACTER SET ascii), which would merge other ids; run \`${idColumnMigration(this.#table)}\` to accept every id`,
      );
    }
    const now = this.#clock.now();
    const expiresAt = Math.round(sessionExpiresAt(session, now, this.#ttlSeconds));
    if (expiresAt <= now) return this.#destroy(sid);
    const text = this.#serializer.stringify(session);
    if (typeof text !== 'string') throw new TypeError('sqlStore.serializer.stringify must return a string');
    const cas = this.#compareAndSet;
    const record = cas === undefined ? undefined : this.#versions.get(session);
    return this.#writes.run(sid, async () => {
      if (cas === undefined || record === undefined) {
        await this.#upserts.upsert(sid, text, expiresAt);
        // The version after an upsert is unknown: a later write of this object is unconditional.
        this.#versions.delete(session);
      } else {
        await compareAndSet(cas, sid, session, record, text, expiresAt);
      }
    });
  }

  async #touch(sid: string, session: SessionLike): Promise<void> {
    if (!isValidSessionId(sid)) return;
    if (!(await this.#idFits(sid, 'touch'))) return;
    this.#assertOpen();
    const now = this.#clock.now();
    const expiresAt = Math.round(sessionExpiresAt(session, now, this.#ttlSeconds));
    if (expiresAt <= now) return;
    // Capped at half the session's lifetime (as the Redis store does): an uncapped throttle longer
    // than a rolling session's maxAge would let an active user's session expire between writes.
    const throttleMs = Math.min(this.#touchAfterSeconds * 1000, Math.floor((expiresAt - now) / 2));
    const record = this.#versions.get(session);
    if (record !== undefined && throttleMs > 0 && expiresAt - record.expiresAt < throttleMs) return;
    // The throttle is also in the WHERE clauses, for rows changed since they were read.
    const bound = throttleMs > 0 ? expiresAt - throttleMs : Number.MAX_SAFE_INTEGER;
    const cookie = session.cookie;
    await this.#writes.run(sid, async () => {
      if (cookie !== undefined && cookie !== null) {
        // Store the new cookie too (as express-session's MemoryStore does, so `get` shows the expiry
        // in force): a compare-and-set on the version read, which a touch does not bump — a `set`
        // that came in between wins, and a destroyed row is never written back.
        let base: ReadRecord | undefined = record;
        if (base === undefined) {
          const row = await this.#reads.read(sid);
          if (row === undefined || row.expiresAt > bound) return; // gone, or throttled
          base = { version: row.version, text: row.text, expiresAt: row.expiresAt };
        }
        const text = this.#withCookie(base.text, cookie);
        if (text !== undefined) {
          const result = await this.#run('touch', this.#sql.touchData, [text, expiresAt, sid, base.version, this.#clock.now(), bound], true);
          if ((result as WriteResult).affectedRows === 1) {
            if (record !== undefined) {
              record.expiresAt = expiresAt;
              record.text = text;
            }
            return;
          }
        }
      }
      // No cookie to store, unreadable data, or a newer write since the read: extend the expiry only.
      const result = await this.#run('touch', this.#sql.touch, [expiresAt, sid, this.#clock.now(), bound], true);
      if (record !== undefined && (result as WriteResult).affectedRows === 1) record.expiresAt = expiresAt;
    });
  }

  /** The stored text with `cookie` in place of its cookie, or undefined when it cannot be parsed. */
  #withCookie(text: string, cookie: NonNullable<SessionLike['cookie']>): string | undefined {
    let data: unknown;
    try {
      data = this.#serializer.parse(text);
    } catch {
      return undefined;
    }
    if (typeof data !== 'object' || data === null) return undefined;
    return this.#serializer.stringify({ ...(data as SessionLike), cookie });
  }

  async #destroy(sid: string): Promise<void> {
    if (!isValidSessionId(sid)) return;
    if (!(await this.#idFits(sid, 'destroy'))) return;
    this.#assertOpen();
    await this.#writes.run(sid, async () => {
      await this.#run('destroy', this.#sql.destroy, [sid], true);
    });
  }

  async #all(): Promise<SessionsById> {
    this.#assertOpen();
    const rows = (await this.#run('all', this.#sql.all, [this.#clock.now()], true, true)) as (SessionRow & { id: string })[];
    const sessions = Object.create(null) as SessionsById;
    for (const row of rows) {
      try {
        const parsed = this.#serializer.parse(String(row.data));
        if (typeof parsed === 'object' && parsed !== null) sessions[idText(row.id)] = parsed as unknown as SessionData;
      } catch (error) {
        this.#report(error);
      }
    }
    return sessions;
  }

  async #length(): Promise<number> {
    this.#assertOpen();
    const rows = (await this.#run('length', this.#sql.length, [this.#clock.now()], true, true)) as { n: number | string }[];
    return Number(rows[0]?.n ?? 0);
  }

  async #ids(): Promise<string[]> {
    this.#assertOpen();
    const rows = (await this.#run('ids', this.#sql.ids, [this.#clock.now()], true, true)) as { id: string | Buffer }[];
    return rows.map((row) => idText(row.id));
  }

  // ── plumbing ────────────────────────────────────────────────────────────────────────────────

  async #deleteInBatches(operation: string, sql: string, params: () => unknown[]): Promise<number> {
    this.#assertOpen();
    const run: RunStatement = (name, statement, values) => this.#run(name, statement, values, true);
    return await deleteInBatches(run, operation, sql, params, this.#cleanupBatchSize, () => this.#closed);
  }

  /** Whether the table's id column keeps `sid` apart from other ids (always, unless it is a legacy column). */
  async #idFits(sid: string, operation: string): Promise<boolean> {
    if (!this.#tableOnce.ready) {
      try {
        await this.#tableOnce.ensure();
      } catch (error) {
        // The table is made and checked once, for whichever call comes first: name that call.
        if (error instanceof StoreUnavailableError && error.message.startsWith(`${TABLE_OPERATION} failed: `)) {
          throw new StoreUnavailableError(`SqlStore.${operation}${error.message.slice(TABLE_OPERATION.length)}`, { cause: error.cause ?? error });
        }
        throw error;
      }
    }
    return !this.#legacyIdColumn || legacyIdColumnHolds(sid);
  }

  async #run(operation: string, sql: string, params: unknown[], idempotent: boolean, read = false): Promise<unknown> {
    if (!this.#tableOnce.ready) await this.#tableOnce.ensure();
    const [result] = await this.#executor.run((c) => c.execute(sql, params), { idempotent, read, operation: `SqlStore.${operation}` });
    return result;
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreUnavailableError('SqlStore: the store is closed (close() was called); every call fails — create a new store');
  }

  /** Background failures go to `error` listeners when there are any; never an unhandled `error` event. */
  #report(error: unknown): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
  }
}
