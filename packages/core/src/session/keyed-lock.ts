/**
 * A per-key promise chain: tasks for one key run one after another, tasks for different keys run
 * freely. It is how the session stores serialise the writes of one session id inside a process, the
 * way a database serialises writers of one row with a row lock (and how ioredis pipelines the
 * commands of one connection in order): the file store needs it because a replicated directory has
 * no lock that works between hosts, the SQL store so that one id's writes keep their order and never
 * sit in two concurrent batches.
 *
 * A task's failure does not break the chain: the next task runs whatever the previous one answered.
 * Idle keys are forgotten, so memory is bounded by the keys with work in flight.
 */

const ignore = (): void => undefined;

export class KeyedLock {
  readonly #tails = new Map<string, Promise<void>>();

  /** Number of keys with a task queued or running. */
  get size(): number {
    return this.#tails.size;
  }

  /** Runs `task` once every earlier task of `key` has settled; answers what `task` answers. */
  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key);
    const result = previous === undefined ? task() : previous.then(task);
    const tail = result.then(ignore, ignore);
    this.#tails.set(key, tail);
    void tail.then(() => {
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    });
    return result;
  }

  /**
   * Settles once every task of `key` queued so far has settled (never rejects); `undefined` when none
   * is queued, so a caller with nothing to wait for does not yield (read-your-writes at no cost).
   */
  settled(key: string): Promise<void> | undefined {
    return this.#tails.get(key);
  }

  /** Resolves once every task queued so far has settled. */
  async idle(): Promise<void> {
    while (this.#tails.size > 0) await Promise.all(this.#tails.values());
  }
}
