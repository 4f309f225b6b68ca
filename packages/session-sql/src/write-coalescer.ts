/**
 * Write coalescing (group commit, as InnoDB does it for transactions and ioredis's auto-pipelining
 * for commands): upserts that wait for a connection are sent together as one multi-row
 * `INSERT … ON DUPLICATE KEY UPDATE` — one round trip and one commit (one fsync) for many sessions. A
 * lone write goes out at once. A statement stays under ~1 MiB, well below every server's
 * `max_allowed_packet`. Callers keep one id's writes out of concurrent batches (the store's per-id
 * lock); rows go in id order, so two batches lock shared rows in the same order.
 */
import { isFulcrumError } from '@fulcrum/core';
import type { RunStatement } from './rows';

/** ~1 MiB: well under every server's `max_allowed_packet` (4 MiB on old MySQL, 16 MiB on MariaDB). */
const MAX_BATCH_BYTES = 1 << 20;

interface PendingUpsert {
  readonly sid: string;
  readonly text: string;
  readonly expiresAt: number;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

export interface WriteCoalescerConfig {
  /** The quoted table name. */
  readonly table: string;
  /** Most rows per statement. */
  readonly batchSize: number;
  /** Most statements in flight. */
  readonly concurrency: number;
  readonly run: RunStatement;
}

export class WriteCoalescer {
  readonly #config: WriteCoalescerConfig;
  readonly #statements = new Map<number, string>();
  #queue: PendingUpsert[] = [];
  #inflight = 0;
  #scheduled = false;
  #drained: (() => void)[] = [];

  constructor(config: WriteCoalescerConfig) {
    this.#config = config;
  }

  /** Inserts or replaces the row of `sid` (version 1, or one more than it was). */
  upsert(sid: string, text: string, expiresAt: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#queue.push({ sid, text, expiresAt, resolve, reject });
      this.#schedule();
    });
  }

  /** Resolves once every write queued so far has settled. */
  drained(): Promise<void> {
    if (this.#queue.length === 0 && this.#inflight === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.#drained.push(resolve));
  }

  #schedule(): void {
    if (this.#scheduled || this.#queue.length === 0 || this.#inflight >= this.#config.concurrency) return;
    this.#scheduled = true;
    // A microtask, not a timer: writes made in the same tick share a statement, and a lone write
    // is not delayed.
    queueMicrotask(() => {
      this.#scheduled = false;
      this.#flush();
    });
  }

  #flush(): void {
    while (this.#queue.length > 0 && this.#inflight < this.#config.concurrency) {
      let bytes = 0;
      let count = 0;
      while (count < this.#queue.length && count < this.#config.batchSize) {
        const size = this.#queue[count]!.text.length * 3 + 300;
        if (count > 0 && bytes + size > MAX_BATCH_BYTES) break;
        bytes += size;
        count++;
      }
      const batch = this.#queue.splice(0, count);
      this.#inflight++;
      void this.#writeBatch(batch).finally(() => {
        this.#inflight--;
        if (this.#queue.length > 0) this.#schedule();
        else if (this.#inflight === 0) for (const resolve of this.#drained.splice(0)) resolve();
      });
    }
  }

  async #writeBatch(batch: PendingUpsert[]): Promise<void> {
    // Rows in id order: two batches touching the same rows lock them in the same order.
    if (batch.length > 1) batch.sort((a, b) => (a.sid < b.sid ? -1 : a.sid > b.sid ? 1 : 0));
    const params: unknown[] = [];
    for (const write of batch) params.push(write.sid, write.text, write.expiresAt);
    try {
      await this.#config.run('set', this.#statement(batch.length), params, { idempotent: true });
      for (const write of batch) write.resolve();
    } catch (error) {
      if (batch.length > 1 && !isFulcrumError(error)) {
        // An SQL error (a row too large, a bad value): retry alone so only the culprit fails.
        await Promise.all(batch.map((write) => this.#writeBatch([write])));
        return;
      }
      for (const write of batch) write.reject(error);
    }
  }

  #statement(rows: number): string {
    let sql = this.#statements.get(rows);
    if (sql === undefined) {
      sql =
        `INSERT INTO ${this.#config.table} (id, data, expires_at, version) VALUES ${Array.from({ length: rows }, () => '(?, ?, ?, 1)').join(', ')} ` +
        'ON DUPLICATE KEY UPDATE data = VALUES(data), expires_at = VALUES(expires_at), version = version + 1';
      this.#statements.set(rows, sql);
    }
    return sql;
  }
}
