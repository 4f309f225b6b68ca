/**
 * `SqlReplicator`: connects Fulcrum stick-tables through one SQL table — each load balancer instance
 * publishes its changes into the table and polls it for everyone else's. For sites that already run
 * MySQL / MariaDB / Galera and not Redis.
 *
 * How, and where it comes from:
 * - The table holds the latest entry per key, merged *in SQL* with the stick-table's own
 *   last-writer-wins order `(updated_at, origin, deleted, expires_at, value)` (core's
 *   `compareWrites`): `INSERT … ON DUPLICATE KEY UPDATE col = IF(newer, VALUES(col), col)`. The
 *   assignments run from the least to the most significant column, because MySQL evaluates them
 *   left to right against the row as already updated: once the deciding column is assigned, the
 *   ones left are equal either way, so the outcome is the same as comparing the original row.
 *   Publishing in any order, twice, or from many instances at once converges (the CRDT argument of
 *   core's `merge.ts`), with no read-modify-write round trip and no lock held across statements.
 * - Changes are found by polling an index on `changed_us`, the database's own microsecond clock at
 *   the moment a row last changed (HAProxy peers push; SQL has no push, so this is the "poll a
 *   change column" pattern of transactional-outbox relays). Commits do not become visible in
 *   timestamp order, and on Galera the stamp is the writing node's clock, so each poll re-reads an
 *   overlap window (`pollOverlapMs`) behind the newest stamp it saw and drops rows it already
 *   delivered; duplicates that slip through are harmless, merges are idempotent.
 * - A joining table loads `snapshot()`: every live row, tombstones included (a tombstone must keep
 *   rejecting older writes until it expires).
 * - Expired rows are purged in `LIMIT` batches on an unref'd timer; nothing expired is published,
 *   returned by a snapshot or delivered, so a late message cannot bring one back.
 *
 * Defaults: table `fulcrum_stick_entries`; poll every 250 ms (a sticky client that reaches another
 * instance within that time may be balanced afresh once; far below human think time); 2 s overlap
 * (commit latency plus clock skew between Galera nodes on one site; raise it for wider skew);
 * 1000 rows per poll page; purge every minute.
 */
import { InvalidOptionError } from '@fulcrum/core';
import { MAX_TIMER_MS } from '@fulcrum/core/validate';
import { isStickEntry, sessionStoreClock } from '@fulcrum/core/session';
import type { Clock, Replicator, StickEntry, Timer } from '@fulcrum/core';
import { SqlExecutor } from './executor';
import type { PoolLike, RetryOptions, SqlConnection } from './executor';
import { quoteTableName } from './identifiers';
import { intOption, normalizeGalera, normalizeRetry, validatePool, type GaleraOptions } from './options';
import { TableOnce, stickTableDdl } from './schema';

export interface SqlReplicatorOptions {
  /** A mysql2 pool (promise or callback) or pool cluster. Required. Never ended by the replicator. */
  pool: PoolLike;
  /** Table name: 1–48 of `[A-Za-z0-9_]`, not starting with a digit. Default `'fulcrum_stick_entries'`. */
  table?: string;
  /** Create the table when missing. Default true. */
  createTable?: boolean;
  /** How often subscribers' new entries are looked for, ms. Default 250. */
  pollIntervalMs?: number;
  /** How far behind the newest change seen each poll looks again, ms (commit delay + node clock skew). Default 2000. */
  pollOverlapMs?: number;
  /** Rows per poll page. Default 1000. */
  pollBatchSize?: number;
  /** How often expired rows are deleted, ms; 0 disables. Default 60000. */
  purgeIntervalMs?: number;
  /** Deadline of one statement, ms. Default 5000. */
  timeoutMs?: number;
  /** Deadlock / lock-wait retries. Defaults: 5 attempts, 10 ms base, 500 ms cap. */
  retry?: RetryOptions;
  /** Galera settings (as for `SqlStore`). */
  galera?: boolean | GaleraOptions;
  /** Failures of background polls and purges, and unreadable rows. Default: a process warning. */
  onError?: (error: unknown) => void;
  /** Randomness for backoff and purge jitter. Default `Math.random`. */
  random?: () => number;
  /**
   * The time of every expiry decision — entries dropped before they are written, the `expires_at`
   * compared by snapshots, polls and purges — and the timers of polling, purging and the statement
   * deadline: core's `Clock`, the same one the stick-table uses (as `SqlStore`'s `clock`). A test
   * passes a `FakeClock`, expires entries with `await clock.advance(ms)` and runs polls and purges
   * by advancing it. `changed_us`, which orders changes for polling, stays the database's own
   * clock. Default `realClock`.
   */
  clock?: Clock;
}

interface EntryRow {
  k: Buffer | string;
  value: string | null;
  deleted: number;
  updated_at: number | string;
  expires_at: number | string;
  origin: string;
  changed_us: number | string;
}

/** Longest key, in UTF-8 bytes: the primary key column's width. */
export const MAX_STICK_KEY_BYTES = 3072;
const PUBLISH_BATCH_ROWS = 200;
const PUBLISH_BATCH_BYTES = 1 << 20;
const COLUMNS = 'k, value, deleted, updated_at, expires_at, origin, changed_us';
const NOW_US = 'CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED)';
// Least significant first: see the file header.
const NEWER =
  "(VALUES(updated_at), VALUES(origin), VALUES(deleted), VALUES(expires_at), COALESCE(VALUES(value), '')) > " +
  "(updated_at, origin, deleted, expires_at, COALESCE(value, ''))";
const ON_DUPLICATE = ['changed_us', 'value', 'expires_at', 'deleted', 'origin', 'updated_at']
  .map((column) => `${column} = IF(${NEWER}, VALUES(${column}), ${column})`)
  .join(', ');

type Listener = (entries: readonly StickEntry<string>[]) => void;

function defaultOnError(error: unknown): void {
  process.emitWarning(`SqlReplicator: ${error instanceof Error ? error.message : String(error)}`, 'FulcrumWarning');
}

/** A stick-table `Replicator` over one SQL table (see the file header). */
export class SqlReplicator<V = string> implements Replicator<V> {
  readonly #executor: SqlExecutor;
  readonly #table: string;
  readonly #indexPrefix: string;
  readonly #pollIntervalMs: number;
  readonly #overlapUs: number;
  readonly #pollBatchSize: number;
  readonly #purgeIntervalMs: number;
  readonly #onError: (error: unknown) => void;
  readonly #random: () => number;
  readonly #clock: Clock;
  readonly #listeners = new Set<Listener>();
  readonly #upsertSql = new Map<number, string>();
  /** Rows delivered within the overlap window: key → stamp, to drop re-read duplicates. */
  readonly #delivered = new Map<string, { stamp: string; changedUs: number }>();
  readonly #tableOnce: TableOnce;
  #cursorUs: number | undefined;
  #pollTimer: Timer | undefined;
  #polling: Promise<void> | undefined;
  #purgeTimer: Timer | undefined;
  #closed = false;

  constructor(options: SqlReplicatorOptions) {
    if (typeof options !== 'object' || options === null) throw new InvalidOptionError('sqlReplicator', options, 'must be an options object');
    const pool = validatePool('sqlReplicator.pool', options.pool);
    const tableName = options.table ?? 'fulcrum_stick_entries';
    this.#table = quoteTableName('sqlReplicator.table', tableName);
    this.#indexPrefix = tableName;
    if (options.createTable !== undefined && typeof options.createTable !== 'boolean') {
      throw new InvalidOptionError('sqlReplicator.createTable', options.createTable, 'must be true or false');
    }
    this.#tableOnce = new TableOnce(
      () => this.#executor.run((c) => c.query(stickTableDdl(this.#table, this.#indexPrefix)), { idempotent: true }),
      options.createTable === false,
    );
    this.#pollIntervalMs = intOption('sqlReplicator.pollIntervalMs', options.pollIntervalMs, 250, 1, 3_600_000);
    this.#overlapUs = intOption('sqlReplicator.pollOverlapMs', options.pollOverlapMs, 2000, 0, 3_600_000) * 1000;
    this.#pollBatchSize = intOption('sqlReplicator.pollBatchSize', options.pollBatchSize, 1000, 1, 100_000);
    this.#purgeIntervalMs = intOption('sqlReplicator.purgeIntervalMs', options.purgeIntervalMs, 60_000, 0, MAX_TIMER_MS);
    if (options.onError !== undefined && typeof options.onError !== 'function') {
      throw new InvalidOptionError('sqlReplicator.onError', options.onError, 'must be a function');
    }
    this.#onError = options.onError ?? defaultOnError;
    if (options.random !== undefined && typeof options.random !== 'function') {
      throw new InvalidOptionError('sqlReplicator.random', options.random, 'must be a function returning a number in [0, 1)');
    }
    this.#random = options.random ?? Math.random;
    this.#clock = sessionStoreClock('sqlReplicator.clock', options.clock);
    const galera = normalizeGalera('sqlReplicator.galera', options.galera);
    this.#executor = new SqlExecutor(
      pool,
      {
        retry: normalizeRetry('sqlReplicator.retry', options.retry),
        nodeFailovers: galera.nodeFailovers,
        syncWait: galera.syncWait,
        timeoutMs: intOption('sqlReplicator.timeoutMs', options.timeoutMs, 5000, 1, 3_600_000),
        random: this.#random,
        clock: this.#clock,
      },
      { onSuccess: () => undefined, onUnavailable: () => undefined },
    );
    this.#schedulePurge();
  }

  /** Writes the entries, each only where it wins the last-writer-wins order. Expired ones are dropped. */
  async publish(entries: readonly StickEntry<V>[]): Promise<void> {
    if (this.#closed) throw new Error('SqlReplicator is closed');
    const now = this.#clock.now();
    const rows: { key: Buffer; valueLength: number; params: unknown[] }[] = [];
    for (const entry of entries) {
      if (!isStickEntry(entry) || entry.expiresAt <= now) continue;
      const key = Buffer.from(entry.key, 'utf8');
      if (key.length > MAX_STICK_KEY_BYTES) {
        this.#onError(new RangeError(`SqlReplicator: key of ${key.length} bytes exceeds ${MAX_STICK_KEY_BYTES}; not replicated`));
        continue;
      }
      const deleted = entry.deleted === true;
      const value = deleted ? null : JSON.stringify(entry.value);
      rows.push({ key, valueLength: value === null ? 0 : value.length, params: [key, value, deleted ? 1 : 0, entry.updatedAt, entry.expiresAt, entry.origin] });
    }
    // Key order: concurrent publishers lock rows in the same order.
    rows.sort((a, b) => Buffer.compare(a.key, b.key));
    let start = 0;
    while (start < rows.length) {
      let end = start;
      let bytes = 0;
      while (end < rows.length && end - start < PUBLISH_BATCH_ROWS) {
        const size = rows[end]!.key.length + rows[end]!.valueLength * 3 + 100;
        if (end > start && bytes + size > PUBLISH_BATCH_BYTES) break;
        bytes += size;
        end++;
      }
      const batch = rows.slice(start, end);
      const params = batch.flatMap((row) => row.params);
      await this.#run((c) => c.execute(this.#upsertStatement(batch.length), params), true);
      start = end;
    }
  }

  subscribe(onEntries: (entries: readonly StickEntry<V>[]) => void): () => void {
    if (this.#closed) throw new Error('SqlReplicator is closed');
    const listener: Listener = (entries) => onEntries(entries as unknown as readonly StickEntry<V>[]);
    this.#listeners.add(listener);
    if (this.#pollTimer === undefined && this.#polling === undefined) this.#schedulePoll(0);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Every live entry (tombstones included), for a table that joins. */
  async snapshot(): Promise<readonly StickEntry<V>[]> {
    if (this.#closed) throw new Error('SqlReplicator is closed');
    const rows = (await this.#run(
      (c) => c.execute(`SELECT ${COLUMNS} FROM ${this.#table} WHERE expires_at > ?`, [this.#clock.now()]),
      true,
      true,
    )) as EntryRow[];
    const entries: StickEntry<V>[] = [];
    for (const row of rows) {
      const entry = this.#toEntry(row);
      if (entry !== undefined) entries.push(entry as StickEntry<V>);
    }
    return entries;
  }

  /** Deletes expired rows now, in batches; resolves with how many went. The timer calls this too. */
  async purge(): Promise<number> {
    let total = 0;
    for (;;) {
      const result = (await this.#run(
        (c) => c.execute(`DELETE FROM ${this.#table} WHERE expires_at <= ? ORDER BY expires_at LIMIT 1000`, [this.#clock.now()]),
        true,
      )) as { affectedRows: number };
      total += result.affectedRows;
      if (result.affectedRows < 1000 || this.#closed) return total;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Stops polling and purging; never ends the pool. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    if (this.#pollTimer !== undefined) this.#clock.clearTimeout(this.#pollTimer);
    if (this.#purgeTimer !== undefined) this.#clock.clearTimeout(this.#purgeTimer);
    this.#pollTimer = undefined;
    this.#purgeTimer = undefined;
    await this.#polling?.catch(() => undefined);
  }

  // ── polling ─────────────────────────────────────────────────────────────────────────────────

  #schedulePoll(delay: number): void {
    if (this.#closed || this.#listeners.size === 0) return;
    // realClock's timers are unref'd: polling never keeps a process alive on its own.
    this.#pollTimer = this.#clock.setTimeout(() => {
      this.#pollTimer = undefined;
      this.#polling = this.#poll()
        .catch((error: unknown) => this.#onError(error))
        .finally(() => {
          this.#polling = undefined;
          this.#schedulePoll(this.#pollIntervalMs);
        });
    }, delay);
  }

  async #poll(): Promise<void> {
    if (this.#cursorUs === undefined) {
      const [row] = (await this.#run((c) => c.query(`SELECT ${NOW_US} AS now_us`), true, true)) as { now_us: number | string }[];
      this.#cursorUs = Number(row?.now_us ?? 0);
    }
    const since = this.#cursorUs - this.#overlapUs;
    let afterUs = since;
    let afterKey: Buffer = Buffer.alloc(0);
    const sql =
      `SELECT ${COLUMNS} FROM ${this.#table} WHERE changed_us >= ? AND (changed_us > ? OR k > ?) ` + `ORDER BY changed_us, k LIMIT ${this.#pollBatchSize}`;
    const fresh: StickEntry<string>[] = [];
    const now = this.#clock.now();
    for (;;) {
      const rows = (await this.#run((c) => c.execute(sql, [afterUs, afterUs, afterKey]), true, true)) as EntryRow[];
      for (const row of rows) {
        const changedUs = Number(row.changed_us);
        if (changedUs > this.#cursorUs) this.#cursorUs = changedUs;
        const key = Buffer.isBuffer(row.k) ? row.k.toString('utf8') : String(row.k);
        const stamp = `${row.updated_at}|${row.origin}|${row.deleted}|${row.expires_at}`;
        if (this.#delivered.get(key)?.stamp === stamp) continue;
        this.#delivered.set(key, { stamp, changedUs });
        if (Number(row.expires_at) <= now) continue;
        const entry = this.#toEntry(row);
        if (entry !== undefined) fresh.push(entry);
      }
      if (rows.length < this.#pollBatchSize) break;
      const last = rows[rows.length - 1]!;
      afterUs = Number(last.changed_us);
      afterKey = Buffer.isBuffer(last.k) ? last.k : Buffer.from(String(last.k), 'utf8');
    }
    // Rows older than the next poll's window are never re-read: forget them.
    const horizon = this.#cursorUs - this.#overlapUs;
    for (const [key, seen] of this.#delivered) if (seen.changedUs < horizon) this.#delivered.delete(key);
    if (fresh.length === 0) return;
    for (const listener of this.#listeners) {
      // Checked at delivery: an unsubscribe during the poll must stop this batch too.
      if (!this.#listeners.has(listener) || this.#closed) continue;
      try {
        listener(fresh.map((entry) => ({ ...entry })));
      } catch (error) {
        this.#onError(error);
      }
    }
  }

  #toEntry(row: EntryRow): StickEntry<string> | undefined {
    const key = Buffer.isBuffer(row.k) ? row.k.toString('utf8') : String(row.k);
    const stamp = { key, updatedAt: Number(row.updated_at), expiresAt: Number(row.expires_at), origin: String(row.origin) };
    if (Number(row.deleted) === 1) return { ...stamp, deleted: true };
    try {
      const value = JSON.parse(String(row.value)) as string;
      return { ...stamp, value };
    } catch (error) {
      this.#onError(error);
      return undefined;
    }
  }

  // ── plumbing ────────────────────────────────────────────────────────────────────────────────

  #upsertStatement(rows: number): string {
    let sql = this.#upsertSql.get(rows);
    if (sql === undefined) {
      const tuple = `(?, ?, ?, ?, ?, ?, ${NOW_US})`;
      sql = `INSERT INTO ${this.#table} (${COLUMNS}) VALUES ${Array.from({ length: rows }, () => tuple).join(', ')} ON DUPLICATE KEY UPDATE ${ON_DUPLICATE}`;
      this.#upsertSql.set(rows, sql);
    }
    return sql;
  }

  async #run(work: (connection: SqlConnection) => Promise<[unknown, unknown]>, idempotent: boolean, read = false): Promise<unknown> {
    if (!this.#tableOnce.ready) await this.#tableOnce.ensure();
    const [result] = await this.#executor.run(work, { idempotent, read, operation: 'SqlReplicator' });
    return result;
  }

  #schedulePurge(): void {
    if (this.#purgeIntervalMs === 0 || this.#closed) return;
    this.#purgeTimer = this.#clock.setTimeout(
      () => {
        this.purge()
          .catch((error: unknown) => this.#onError(error))
          .finally(() => this.#schedulePurge());
      },
      Math.round(this.#purgeIntervalMs * (0.9 + 0.2 * this.#random())),
    );
  }
}
