/**
 * Expired rows are deleted off the request path, in `LIMIT` batches on a timer with ±10% jitter: one
 * huge `DELETE` holds locks for its whole run and, on Galera, replicates as one huge write set (and
 * may exceed `wsrep_max_ws_rows`); batches keep each transaction small, and jitter keeps several app
 * instances from deleting the same rows at the same moment.
 */
import type { Clock, Timer } from '@fulcrum/core';
import type { RunStatement, WriteResult } from './rows';

/**
 * Runs `sql` (a `DELETE … LIMIT batchSize`) until a run deletes fewer than `batchSize` rows or
 * `stopped()`; answers how many rows went. Requests get the event loop between batches.
 */
export async function deleteInBatches(
  run: RunStatement,
  operation: string,
  sql: string,
  params: () => unknown[],
  batchSize: number,
  stopped: () => boolean,
): Promise<number> {
  let total = 0;
  for (;;) {
    const result = (await run(operation, sql, params(), { idempotent: true })) as WriteResult;
    total += result.affectedRows;
    if (result.affectedRows < batchSize || stopped()) return total;
    await new Promise((resolve) => setImmediate(resolve));
  }
}

export interface CleanupScheduleConfig {
  readonly clock: Clock;
  readonly random: () => number;
  /** 0 disables the timer. */
  readonly intervalMs: number;
  /** One cleanup run (shared by concurrent callers); answers the rows deleted. */
  readonly run: () => Promise<number>;
  readonly report: (error: unknown) => void;
}

/** The cleanup timer, and one run at a time however many callers ask. */
export class CleanupSchedule {
  readonly #config: CleanupScheduleConfig;
  #timer: Timer | undefined;
  #running: Promise<number> | undefined;
  #closed = false;

  constructor(config: CleanupScheduleConfig) {
    this.#config = config;
    this.#schedule();
  }

  /** Deletes expired rows now; a run already under way is shared. */
  run(): Promise<number> {
    if (this.#running) return this.#running;
    const run = this.#config.run().finally(() => {
      this.#running = undefined;
    });
    this.#running = run;
    return run;
  }

  /** Stops the timer and waits for a run under way (its failure is not repeated). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) this.#config.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    await this.#running?.catch(() => undefined);
  }

  #schedule(): void {
    const { intervalMs, clock, random, report } = this.#config;
    if (intervalMs === 0 || this.#closed) return;
    const delay = Math.round(intervalMs * (0.9 + 0.2 * random()));
    this.#timer = clock.setTimeout(() => {
      this.run()
        .catch(report)
        .finally(() => this.#schedule());
    }, delay);
  }
}
