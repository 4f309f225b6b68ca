/**
 * Read batching (DataLoader's idea): every session read that waits for a connection goes out with
 * the others as one `SELECT … WHERE id IN (…)`, one round trip for many requests; a lone read goes out
 * at once (a microtask, not a timer), so batching adds no latency at low load. Reads of one id in the
 * same batch share its row.
 */
import { idText, type RowRead, type RunStatement, type SessionRow } from './rows';

interface Waiter {
  readonly resolve: (row: RowRead | undefined) => void;
  readonly reject: (error: unknown) => void;
}

export interface ReadBatcherConfig {
  /** The quoted table name. */
  readonly table: string;
  /** Most ids per statement. */
  readonly batchSize: number;
  /** Most statements in flight. */
  readonly concurrency: number;
  /** `SELECT data, version, expires_at … WHERE id = ? AND expires_at > ?`, for a batch of one. */
  readonly singleSql: string;
  /** The store's clock: rows that expired by now are not read. */
  readonly now: () => number;
  readonly run: RunStatement;
}

export class ReadBatcher {
  readonly #config: ReadBatcherConfig;
  readonly #statements = new Map<number, string>();
  readonly #waiters = new Map<string, Waiter[]>();
  #queue: string[] = [];
  #inflight = 0;
  #scheduled = false;

  constructor(config: ReadBatcherConfig) {
    this.#config = config;
  }

  /** The live row of `sid`, or `undefined` when there is none (absent or expired). */
  read(sid: string): Promise<RowRead | undefined> {
    return new Promise((resolve, reject) => {
      const waiting = this.#waiters.get(sid);
      if (waiting) waiting.push({ resolve, reject });
      else {
        this.#waiters.set(sid, [{ resolve, reject }]);
        this.#queue.push(sid);
      }
      this.#schedule();
    });
  }

  #schedule(): void {
    if (this.#scheduled || this.#queue.length === 0 || this.#inflight >= this.#config.concurrency) return;
    this.#scheduled = true;
    queueMicrotask(() => {
      this.#scheduled = false;
      while (this.#queue.length > 0 && this.#inflight < this.#config.concurrency) {
        const sids = this.#queue.splice(0, this.#config.batchSize);
        const waiters = sids.map((sid) => {
          const list = this.#waiters.get(sid)!;
          this.#waiters.delete(sid);
          return list;
        });
        this.#inflight++;
        void this.#readBatch(sids, waiters).finally(() => {
          this.#inflight--;
          this.#schedule();
        });
      }
    });
  }

  async #readBatch(sids: string[], waiters: Waiter[][]): Promise<void> {
    try {
      const sql = sids.length === 1 ? this.#config.singleSql : this.#statement(sids.length);
      const rows = (await this.#config.run('get', sql, [...sids, this.#config.now()], { idempotent: true, read: true })) as (SessionRow & {
        id?: string;
      })[];
      const found = new Map<string, RowRead>();
      for (const row of rows) {
        const read = { text: String(row.data), version: Number(row.version), expiresAt: Number(row.expires_at) };
        found.set(sids.length === 1 ? sids[0]! : idText(row.id), read);
      }
      sids.forEach((sid, i) => {
        for (const waiter of waiters[i]!) waiter.resolve(found.get(sid));
      });
    } catch (error) {
      for (const list of waiters) for (const waiter of list) waiter.reject(error);
    }
  }

  #statement(count: number): string {
    let sql = this.#statements.get(count);
    if (sql === undefined) {
      const marks = Array.from({ length: count }, () => '?').join(', ');
      sql = `SELECT id, data, version, expires_at FROM ${this.#config.table} WHERE id IN (${marks}) AND expires_at > ?`;
      this.#statements.set(count, sql);
    }
    return sql;
  }
}
