/**
 * Requests waiting for a backend slot (HAProxy's maxconn + maxqueue + timeout queue). When every
 * candidate backend is at its `maxConnections`, a request waits here — bounded in count
 * (`maxQueue`; beyond it, 503 at once) and in time (`queueTimeoutMs`; then 503) — and is retried
 * whenever a request ends and frees a slot. Waiters are tried in arrival order; one that still cannot
 * be placed (a sticky client whose backend is still full) does not block those behind it.
 */

export interface Waiter {
  /** Try to start: true when it got a backend (and is removed from the queue). */
  tryStart(): boolean;
  /** Give up: the queue timed out or was closed. */
  expire(reason: 'timeout' | 'closed'): void;
}

interface Entry {
  waiter: Waiter;
  timer: NodeJS.Timeout;
  done: boolean;
  owner: object | undefined;
}

/** Told when a waiter with an owner (its pool, for the stats) enters (+1) or leaves (−1) the queue. */
export type QueueObserver = (owner: object, delta: 1 | -1) => void;

export class WaitQueue {
  readonly maxQueue: number;
  readonly timeoutMs: number;
  #entries: Entry[] = [];
  readonly #observer: QueueObserver | undefined;

  constructor(maxQueue: number, timeoutMs: number, observer?: QueueObserver) {
    this.maxQueue = maxQueue;
    this.timeoutMs = timeoutMs;
    this.#observer = observer;
  }

  get length(): number {
    return this.#entries.length;
  }

  /**
   * Queue a waiter; returns a function that removes it (client went away), or undefined when full.
   * `owner` (the request's pool) is passed to the observer as the waiter enters and leaves.
   */
  add(waiter: Waiter, owner?: object): (() => void) | undefined {
    if (this.#entries.length >= this.maxQueue) return undefined;
    const entry: Entry = {
      waiter,
      done: false,
      owner,
      timer: setTimeout(() => {
        this.#remove(entry);
        waiter.expire('timeout');
      }, this.timeoutMs),
    };
    this.#entries.push(entry);
    if (owner !== undefined) this.#observer?.(owner, 1);
    return () => this.#remove(entry);
  }

  /** A slot may have freed: start the first waiter that can start. */
  wake(): void {
    const entries = this.#entries;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      if (entry.waiter.tryStart()) {
        this.#remove(entry);
        return;
      }
    }
  }

  /** Expire every waiter. */
  close(): void {
    const entries = this.#entries;
    this.#entries = [];
    for (const entry of entries) {
      clearTimeout(entry.timer);
      entry.done = true;
      if (entry.owner !== undefined) this.#observer?.(entry.owner, -1);
      entry.waiter.expire('closed');
    }
  }

  #remove(entry: Entry): void {
    if (entry.done) return;
    entry.done = true;
    clearTimeout(entry.timer);
    if (entry.owner !== undefined) this.#observer?.(entry.owner, -1);
    const index = this.#entries.indexOf(entry);
    if (index !== -1) this.#entries.splice(index, 1);
  }
}
