/**
 * An in-process replicator: one instance shared by several stick-tables connects them, like HAProxy
 * peers on a loopback. For tests, and for several tables (or load balancers) in one process.
 *
 * - `publish` delivers the batch to every subscriber in a microtask, never synchronously: a table's
 *   write must not re-enter another table's code (or its own) before the write returns, exactly as
 *   with a network replicator. The sender receives its own batch too — the replicator cannot tell
 *   which subscriber is the sender, and the merge rule makes an echo a no-op (as with Redis pub/sub).
 * - `snapshot` returns, per key, the winning entry among all published ones (the same merge rule),
 *   without those expired by the replicator's clock.
 * - By default batches travel as JSON text and every receiver parses its own copy (`serialize`),
 *   as over a wire: tables never share mutable value objects, and a value that is not JSON data
 *   fails here as it would in production instead of working only in tests.
 */
import { realClock, type Clock } from '../clock';
import { InvalidOptionError } from '../errors';
import { optionalBoolean, optionalFunction, optionalObject } from '../validate/checks';
import { isStickEntry, mergeStickEntry } from './merge';
import type { Replicator, StickEntry } from './replicator';

export interface MemoryReplicatorOptions {
  /** Decides which snapshot entries have expired. Default: the real clock. */
  clock?: Clock;
  /** Copy batches through JSON text, as a network would. Default true. */
  serialize?: boolean;
  /** A subscriber callback threw. Default: rethrown in a later task, like an uncaught error. */
  onError?: (error: unknown) => void;
}

type Listener<V> = (entries: readonly StickEntry<V>[]) => void;

const enqueueMicrotask: (task: () => void) => void = (() => {
  const native = (globalThis as { queueMicrotask?: (task: () => void) => void }).queueMicrotask;
  if (typeof native === 'function') return (task: () => void) => native(task);
  return (task: () => void) => void Promise.resolve().then(task);
})();

function rethrowLater(error: unknown): void {
  enqueueMicrotask(() => {
    throw error;
  });
}

/** Connects the stick-tables that share this instance (see the file header). */
export class MemoryReplicator<V> implements Replicator<V> {
  readonly #clock: Clock;
  readonly #serialize: boolean;
  readonly #onError: (error: unknown) => void;
  readonly #listeners = new Set<Listener<V>>();
  readonly #latest = new Map<string, StickEntry<V>>();
  /** Size of `#latest` after the last expiry pass; another pass runs when it doubles. */
  #prunedSize = 0;
  #closed = false;

  constructor(options: MemoryReplicatorOptions = {}) {
    optionalObject('memoryReplicator', options);
    this.#clock = options.clock ?? realClock;
    if (typeof this.#clock?.now !== 'function') {
      throw new InvalidOptionError('memoryReplicator.clock', options.clock, 'must be a Clock');
    }
    this.#serialize = optionalBoolean('memoryReplicator.serialize', options.serialize, true);
    this.#onError = optionalFunction('memoryReplicator.onError', options.onError, rethrowLater);
  }

  /** Number of tables currently subscribed. */
  get subscriberCount(): number {
    return this.#listeners.size;
  }

  publish(entries: readonly StickEntry<V>[]): void {
    if (this.#closed) throw new Error('MemoryReplicator is closed');
    const text = this.#serialize ? JSON.stringify(entries) : undefined;
    const now = this.#clock.now();
    for (const entry of text === undefined ? entries : (JSON.parse(text) as StickEntry<V>[])) {
      if (!isStickEntry(entry) || entry.expiresAt <= now) continue;
      this.#latest.set(entry.key, mergeStickEntry(this.#latest.get(entry.key), entry));
    }
    if (this.#latest.size > 2 * this.#prunedSize + 1024) this.#prune(now);
    for (const listener of this.#listeners) {
      enqueueMicrotask(() => {
        // Unsubscribed (or closed) after the publish: deliver nothing, as a network would not.
        if (!this.#listeners.has(listener)) return;
        try {
          listener(text === undefined ? entries.slice() : (JSON.parse(text) as StickEntry<V>[]));
        } catch (error) {
          this.#onError(error);
        }
      });
    }
  }

  subscribe(onEntries: (entries: readonly StickEntry<V>[]) => void): () => void {
    if (this.#closed) throw new Error('MemoryReplicator is closed');
    // A wrapper per subscription, so one function subscribed twice is two subscriptions.
    const listener: Listener<V> = (entries) => onEntries(entries);
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  snapshot(): Promise<readonly StickEntry<V>[]> {
    if (this.#closed) return Promise.reject(new Error('MemoryReplicator is closed'));
    this.#prune(this.#clock.now());
    const entries = Array.from(this.#latest.values());
    return Promise.resolve(this.#serialize ? (JSON.parse(JSON.stringify(entries)) as StickEntry<V>[]) : entries);
  }

  close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    this.#latest.clear();
    return Promise.resolve();
  }

  #prune(now: number): void {
    for (const [key, entry] of this.#latest) if (entry.expiresAt <= now) this.#latest.delete(key);
    this.#prunedSize = this.#latest.size;
  }
}
