/**
 * A stick-table: a bounded key → value map with a TTL per entry, local counters, and replication
 * hooks. It remembers which backend a client, cookie or session was sent to, and shares that with
 * the other instances of the load balancer. Modelled on HAProxy's `stick_table.c` and `peers.c`:
 *
 * - A LOCAL `set`/`delete`/`touch` stamps the entry (`updatedAt` = now, `origin` = this node,
 *   `expiresAt` = now + `ttlMs`) and queues it for the peers. The queue is coalesced per key and
 *   flushed `batchMs` after the first queued write, or at once when it holds `maxBatch` keys, so a
 *   busy table publishes a few batches per second rather than one message per request.
 * - A REMOTE entry (from `subscribe`, a snapshot, or `merge`) goes through the last-writer-wins rule
 *   of `merge.ts`, keeps the sender's expiry, and is never queued again (no echo storms).
 * - Deletes are tombstones that live until their `expiresAt`, so a late, older write is rejected.
 *   Entries that arrive already expired are dropped; an expired entry is never read or resurrected.
 *
 * Convergence: every write, local or remote, is the maximum of what the table held and the new
 * write in one total order, so tables that received the same set of writes hold the same state. To
 * keep that true for local writes, a local stamp is `max(now, stored updatedAt + 1)`: a local write
 * always beats the entry it replaces, even one from a peer whose clock runs ahead.
 *
 * Memory (the design choice): `lru-cache` holds only key → slot number (a small integer, no object)
 * and does the LRU bookkeeping and capacity bound; no lru-cache TTL, whose per-entry timestamps and
 * stale checks are the heavy, clock-bound part. Each slot's metadata lives in parallel typed arrays
 * grown by doubling up to `capacity`: `updatedAt`/`expiresAt` as Float64 (exact wall-clock ms),
 * the origin as a Uint32 index into a reference-counted table of interned node ids, a tombstone flag
 * byte, and the value in a plain array. That is about 8 + 8 + 4 + 1 + 8 bytes per entry on top of
 * lru-cache's key map and lists — roughly 120 B per entry with 16-char keys, values not counted
 * (string values shared with the backend objects cost nothing). Expiry is checked against
 * `clock.now()` on every read; a sweep every `sweepMs` frees expired entries and tombstones, and
 * when full, the least recently used entry (tombstones included) is evicted: `capacity` is a hard
 * bound on everything stored.
 *
 * Counters (`incr`/`rate`/`count`) are local only, like HAProxy's `gpc`/`http_req_rate`: they are
 * per-instance facts (this instance's request rate), so replicating them would double-count. Rates
 * use HAProxy's two-bucket `freq_ctr` estimate over `rateWindowMs`.
 *
 * Defaults: `batchMs` 50 (a sticky client's next request rarely lands on another instance within
 * 50 ms, and 20 batches/s per instance is cheap for Redis or a database), `maxBatch` 1000 (bounds
 * message size and the memory of the queue), `rateWindowMs` 10 000 (HAProxy's customary
 * `http_req_rate(10s)`), `sweepMs` 60 000 (a full pass costs a few ms at 300k entries).
 */
import { LRUCache } from 'lru-cache';
import { coarseClock, type Clock, type Timer } from '../clock';
import { InvalidOptionError } from '../errors';
import { optionalFunction, optionalNumber, finiteNumber, isPlainObject } from '../validate/checks';
import { compareWrites, isStickEntry, NODE_ID_PATTERN } from './merge';
import type { Replicator, StickEntry } from './replicator';

export interface StickTableOptions<V> {
  /** Hard bound on stored entries, tombstones included; the least recently used is evicted. Integer ≥ 1. */
  capacity: number;
  /** Lifetime of an entry after its last local `set`/`touch` (and of a tombstone after `delete`), ms > 0. */
  ttlMs: number;
  /** This instance's id in replicated entries: 1–64 chars of [A-Za-z0-9._:-], unique per instance. */
  nodeId: string;
  /** Default: the real clock. */
  clock?: Clock;
  /** Connects this table to its peers. Default: none (a local table). The table never closes it. */
  replicator?: Replicator<V>;
  /** Delay before a batch of local changes is published, ms ≥ 0. Default 50. */
  batchMs?: number;
  /** A batch is published at once when it holds this many keys. Integer ≥ 1. Default 1000. */
  maxBatch?: number;
  /** Window of `rate()`, ms > 0. Default 10 000. */
  rateWindowMs?: number;
  /** Interval of the sweep that frees expired entries and tombstones, ms ≥ 0; 0 disables. Default 60 000. */
  sweepMs?: number;
  /**
   * `touch` re-stamps and replicates an entry only when it was last written at least this long ago,
   * ms ≥ 0. Default `min(1000, ttlMs / 10)`: a sticky client's every request touches its entry, and
   * without a throttle a hot key would send one replication message per request and, through the
   * "a local write beats what it replaces" rule, stamp itself ever further into the future.
   */
  touchAfterMs?: number;
  /**
   * Replication failures (a publish or snapshot that rejected, a subscriber callback that threw).
   * The table keeps working locally. Default: `console.warn` where a console exists.
   */
  onError?: (error: unknown) => void;
}

interface Counter {
  total: number;
  /** Start of the current rate period (a multiple of `rateWindowMs` after the first event). */
  periodStart: number;
  current: number;
  previous: number;
}

interface CounterSet {
  lastUsed: number;
  readonly counters: Map<string, Counter>;
}

const INITIAL_SLOTS = 1024;
const NO_TIMER: unique symbol = Symbol('no timer');

function warnToConsole(error: unknown): void {
  const console = (globalThis as { console?: { warn?: (...args: unknown[]) => void } }).console;
  console?.warn?.('[fulcrum] stick-table replication error:', error);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * A bounded, expiring, replicated key → value map (see the file header for the model).
 * `V` must be plain JSON data when a replicator is used.
 */
export class StickTable<V> {
  readonly capacity: number;
  readonly ttlMs: number;
  readonly nodeId: string;
  /**
   * Resolves once the replicator's snapshot has been merged (at once without a replicator). Never
   * rejects: a failed snapshot goes to `onError` and the table starts empty.
   */
  readonly ready: Promise<void>;

  readonly #clock: Clock;
  readonly #replicator: Replicator<V> | undefined;
  readonly #batchMs: number;
  readonly #maxBatch: number;
  readonly #rateWindowMs: number;
  readonly #sweepMs: number;
  readonly #touchAfterMs: number;
  readonly #onError: (error: unknown) => void;

  readonly #slots: LRUCache<string, number>;
  #updatedAt: Float64Array;
  #expiresAt: Float64Array;
  #originOf: Uint32Array;
  #tombstone: Uint8Array;
  readonly #values: (V | undefined)[] = [];
  #slotsUsed = 0;
  readonly #freeSlots: number[] = [];
  #tombstones = 0;

  readonly #origins: (string | undefined)[] = [];
  readonly #originIndex = new Map<string, number>();
  readonly #originRefs: number[] = [];
  readonly #freeOrigins: number[] = [];
  readonly #ownOrigin: number;

  readonly #counters: LRUCache<string, CounterSet>;

  readonly #pending = new Map<string, StickEntry<V>>();
  /** Consecutive failed publishes, for the retry backoff. */
  #publishFailures = 0;
  #flushTimer: Timer | typeof NO_TIMER = NO_TIMER;
  #sweepTimer: Timer | typeof NO_TIMER = NO_TIMER;
  #unsubscribe: (() => void) | undefined;
  #closed = false;

  constructor(options: StickTableOptions<V>) {
    if (!isPlainObject(options)) throw new InvalidOptionError('stickTable', options, 'must be an object');
    this.capacity = finiteNumber('stickTable.capacity', options.capacity, { min: 1, integer: true });
    this.ttlMs = finiteNumber('stickTable.ttlMs', options.ttlMs, { min: 0, minExclusive: true });
    if (typeof options.nodeId !== 'string' || !NODE_ID_PATTERN.test(options.nodeId)) {
      throw new InvalidOptionError('stickTable.nodeId', options.nodeId, 'must be 1–64 chars of [A-Za-z0-9._:-]');
    }
    this.nodeId = options.nodeId;
    this.#clock = options.clock ?? coarseClock;
    if (typeof this.#clock?.now !== 'function' || typeof this.#clock.setTimeout !== 'function') {
      throw new InvalidOptionError('stickTable.clock', options.clock, 'must be a Clock (now, setTimeout, clearTimeout)');
    }
    const replicator = options.replicator;
    if (
      replicator !== undefined &&
      (typeof replicator !== 'object' ||
        replicator === null ||
        typeof replicator.publish !== 'function' ||
        typeof replicator.subscribe !== 'function' ||
        typeof replicator.snapshot !== 'function')
    ) {
      throw new InvalidOptionError('stickTable.replicator', replicator, 'must be a Replicator (publish, subscribe, snapshot)');
    }
    this.#replicator = replicator;
    this.#batchMs = optionalNumber('stickTable.batchMs', options.batchMs, 50, { min: 0 });
    this.#maxBatch = optionalNumber('stickTable.maxBatch', options.maxBatch, 1000, { min: 1, integer: true });
    this.#rateWindowMs = optionalNumber('stickTable.rateWindowMs', options.rateWindowMs, 10_000, {
      min: 0,
      minExclusive: true,
    });
    this.#sweepMs = optionalNumber('stickTable.sweepMs', options.sweepMs, 60_000, { min: 0 });
    this.#touchAfterMs = optionalNumber('stickTable.touchAfterMs', options.touchAfterMs, Math.min(1000, this.ttlMs / 10), { min: 0 });
    this.#onError = optionalFunction('stickTable.onError', options.onError, warnToConsole);

    const initial = Math.min(this.capacity, INITIAL_SLOTS);
    this.#updatedAt = new Float64Array(initial);
    this.#expiresAt = new Float64Array(initial);
    this.#originOf = new Uint32Array(initial);
    this.#tombstone = new Uint8Array(initial);
    this.#slots = new LRUCache<string, number>({
      max: this.capacity,
      dispose: (slot) => this.#freeSlot(slot),
    });
    this.#counters = new LRUCache<string, CounterSet>({ max: this.capacity });
    this.#ownOrigin = this.#internOrigin(this.nodeId);
    this.#originRefs[this.#ownOrigin]!++; // held for the table's life: local writes never re-intern

    this.#scheduleSweep();
    this.ready = replicator === undefined ? Promise.resolve() : this.#connect(replicator);
  }

  /** Live (non-tombstone) entries held, including expired ones the sweep has not freed yet. */
  get size(): number {
    return this.#slots.size - this.#tombstones;
  }

  /** Tombstones held; `size + tombstoneCount ≤ capacity` always. */
  get tombstoneCount(): number {
    return this.#tombstones;
  }

  /** The value of `key`, or `undefined` when absent, deleted or expired. Marks it recently used. */
  get(key: string): V | undefined {
    const slot = this.#slots.get(key);
    if (slot === undefined || this.#tombstone[slot] === 1) return undefined;
    if (this.#expiresAt[slot]! <= this.#clock.now()) {
      this.#slots.delete(key);
      return undefined;
    }
    return this.#values[slot];
  }

  /** Whether `get(key)` would return a value (does not mark it used). */
  has(key: string): boolean {
    const slot = this.#slots.peek(key);
    return slot !== undefined && this.#tombstone[slot] === 0 && this.#expiresAt[slot]! > this.#clock.now();
  }

  /** Store `value` (plain JSON data) for `ttlMs` and replicate it. */
  set(key: string, value: V): void {
    this.#writeLocal(key, value, false);
  }

  /**
   * Delete `key` here and, through a tombstone that lives `ttlMs`, on every peer — also when this
   * table does not hold the key (a peer may). Clears the key's local counters. Returns whether a live
   * value was removed here.
   */
  delete(key: string): boolean {
    this.#counters.delete(key);
    const live = this.has(key);
    this.#writeLocal(key, undefined, true);
    return live;
  }

  /** Extend a live entry to `now + ttlMs` and replicate that. Never revives a deleted or expired key. */
  touch(key: string): boolean {
    const slot = this.#slots.peek(key);
    if (slot === undefined || this.#tombstone[slot] === 1) return false;
    const now = this.#clock.now();
    if (this.#expiresAt[slot]! <= now) {
      this.#slots.delete(key);
      return false;
    }
    if (now - this.#updatedAt[slot]! < this.#touchAfterMs) return true;
    this.#writeLocal(key, this.#values[slot] as V, false);
    return true;
  }

  /**
   * Add `by` (default 1) to a local counter of `key` and return its total. Counters are never
   * replicated; a key's counters are dropped `ttlMs` after their last use, on `delete(key)`, and by
   * LRU when more than `capacity` keys have counters.
   */
  incr(key: string, counter: string, by = 1): number {
    if (!Number.isFinite(by)) throw new InvalidOptionError('stickTable.incr.by', by, 'must be a finite number');
    const now = this.#clock.now();
    let set = this.#liveCounterSet(key, now);
    if (set === undefined) {
      set = { lastUsed: now, counters: new Map() };
      this.#counters.set(key, set);
    }
    set.lastUsed = now;
    let state = set.counters.get(counter);
    if (state === undefined) {
      state = { total: 0, periodStart: now, current: 0, previous: 0 };
      set.counters.set(counter, state);
    }
    this.#rotate(state, now);
    state.total += by;
    state.current += by;
    return state.total;
  }

  /** Total of a local counter (0 when unknown or dropped). */
  count(key: string, counter: string): number {
    return this.#liveCounterSet(key, this.#clock.now())?.counters.get(counter)?.total ?? 0;
  }

  /**
   * Events per `rateWindowMs` of a local counter, over a sliding window estimated from two buckets
   * (HAProxy's `freq_ctr`): the current period plus the previous one weighted by the part of it
   * still inside the window.
   */
  rate(key: string, counter: string): number {
    const now = this.#clock.now();
    const state = this.#liveCounterSet(key, now)?.counters.get(counter);
    if (state === undefined) return 0;
    this.#rotate(state, now);
    const window = this.#rateWindowMs;
    const elapsed = Math.min(window, Math.max(0, now - state.periodStart));
    return state.current + (state.previous * (window - elapsed)) / window;
  }

  /**
   * The entries held and not expired, most recently used first. With `tombstones: true`, deletes
   * that are still remembered are included (what a peer needs to resync).
   */
  entries(options?: { tombstones?: boolean }): StickEntry<V>[] {
    const includeTombstones = options?.tombstones === true;
    const now = this.#clock.now();
    const result: StickEntry<V>[] = [];
    for (const [key, slot] of this.#slots.entries()) {
      if (this.#expiresAt[slot]! <= now) continue;
      if (this.#tombstone[slot] === 1 && !includeTombstones) continue;
      result.push(this.#entryAt(key, slot));
    }
    return result;
  }

  /**
   * Apply entries from peers: each one replaces what this table holds for its key if it wins the
   * last-writer-wins order; entries already expired and malformed ones are dropped. Nothing merged is
   * published again. Returns how many entries were applied.
   */
  merge(entries: Iterable<StickEntry<V>>): number {
    const now = this.#clock.now();
    let applied = 0;
    for (const entry of entries) {
      if (!isStickEntry(entry) || entry.expiresAt <= now) continue;
      const deleted = entry.deleted === true;
      const slot = this.#slots.peek(entry.key);
      if (
        slot !== undefined &&
        this.#expiresAt[slot]! > now &&
        compareWrites(
          this.#updatedAt[slot]!,
          this.#origins[this.#originOf[slot]!]!,
          this.#tombstone[slot] === 1,
          this.#expiresAt[slot]!,
          this.#values[slot],
          entry.updatedAt,
          entry.origin,
          deleted,
          entry.expiresAt,
          entry.value,
        ) >= 0
      ) {
        continue;
      }
      this.#store(entry.key, entry.value as V | undefined, deleted, entry.updatedAt, entry.expiresAt, this.#internOrigin(entry.origin));
      applied++;
    }
    return applied;
  }

  /** Free expired entries and tombstones now (the periodic sweep does the same). Returns how many. */
  prune(): number {
    const now = this.#clock.now();
    const expired: string[] = [];
    for (const [key, slot] of this.#slots.entries()) if (this.#expiresAt[slot]! <= now) expired.push(key);
    for (const key of expired) this.#slots.delete(key);
    return expired.length;
  }

  /**
   * Publish the queued local changes now. Resolves when the replicator has accepted them (or failed:
   * failures go to `onError`); never rejects.
   */
  flush(): Promise<void> {
    if (this.#flushTimer !== NO_TIMER) {
      this.#clock.clearTimeout(this.#flushTimer);
      this.#flushTimer = NO_TIMER;
    }
    const replicator = this.#replicator;
    if (replicator === undefined || this.#pending.size === 0) return Promise.resolve();
    const batch = Array.from(this.#pending.values());
    this.#pending.clear();
    try {
      const result = replicator.publish(batch);
      if (isThenable(result)) {
        return Promise.resolve(result).then(
          () => {
            this.#publishFailures = 0;
          },
          (error: unknown) => this.#publishFailed(batch, error),
        );
      }
      this.#publishFailures = 0;
    } catch (error) {
      this.#publishFailed(batch, error);
    }
    return Promise.resolve();
  }

  /**
   * A publish failed (the replication link is down): the local writes in it are not lost. Each goes
   * back in the queue unless a newer local write of the same key replaced it meanwhile or it has
   * expired, and a flush is retried with exponential backoff (batchMs doubling, at most 5 s), so
   * peers catch up once the link heals — HAProxy's peers resend what a peer did not acknowledge.
   */
  #publishFailed(batch: readonly StickEntry<V>[], error: unknown): void {
    this.#onError(error);
    if (this.#closed) return;
    const now = this.#clock.now();
    for (const entry of batch) {
      if (!this.#pending.has(entry.key) && entry.expiresAt > now) this.#pending.set(entry.key, entry);
    }
    if (this.#pending.size === 0 || this.#flushTimer !== NO_TIMER) return;
    this.#publishFailures++;
    const delay = Math.min(5000, Math.max(this.#batchMs, 10) * 2 ** Math.min(this.#publishFailures, 10));
    this.#flushTimer = this.#clock.setTimeout(() => {
      this.#flushTimer = NO_TIMER;
      void this.flush();
    }, delay);
  }

  /**
   * Publish what is queued, stop receiving from the replicator and stop the timers. The table still
   * answers locally afterwards but no longer replicates. The replicator itself stays open.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    const flushed = this.flush();
    this.#closed = true;
    if (this.#sweepTimer !== NO_TIMER) this.#clock.clearTimeout(this.#sweepTimer);
    this.#sweepTimer = NO_TIMER;
    const unsubscribe = this.#unsubscribe;
    this.#unsubscribe = undefined;
    if (unsubscribe !== undefined) {
      try {
        unsubscribe();
      } catch (error) {
        this.#onError(error);
      }
    }
    await flushed;
  }

  // ── internals ────────────────────────────────────────────────────────────────────────────────────

  #connect(replicator: Replicator<V>): Promise<void> {
    // Subscribe before asking for the snapshot so no update falls between the two; merging is
    // order-insensitive, so an update that is also in the snapshot costs nothing.
    try {
      this.#unsubscribe = replicator.subscribe((entries) => {
        if (this.#closed) return;
        try {
          this.merge(entries);
        } catch (error) {
          this.#onError(error);
        }
      });
    } catch (error) {
      this.#onError(error);
    }
    let snapshot: Promise<readonly StickEntry<V>[]>;
    try {
      snapshot = Promise.resolve(replicator.snapshot());
    } catch (error) {
      snapshot = Promise.reject(error);
    }
    return snapshot.then(
      (entries) => {
        if (!this.#closed && entries != null) this.merge(entries);
      },
      (error: unknown) => this.#onError(error),
    );
  }

  #writeLocal(key: string, value: V | undefined, deleted: boolean): void {
    const now = this.#clock.now();
    const slot = this.#slots.peek(key);
    // A local write must beat what it replaces everywhere (see the header), even a peer's entry
    // stamped ahead of our clock. An expired entry replaces nothing: every table ignores it.
    let updatedAt = now;
    if (slot !== undefined && this.#expiresAt[slot]! > now && this.#updatedAt[slot]! >= now) {
      updatedAt = this.#updatedAt[slot]! + 1;
    }
    const expiresAt = now + this.ttlMs;
    this.#store(key, value, deleted, updatedAt, expiresAt, this.#ownOrigin);
    if (this.#replicator === undefined || this.#closed) return;
    const entry: StickEntry<V> = deleted
      ? { key, updatedAt, expiresAt, origin: this.nodeId, deleted: true }
      : { key, value: value as V, updatedAt, expiresAt, origin: this.nodeId };
    this.#pending.set(key, entry);
    if (this.#pending.size >= this.#maxBatch) {
      void this.flush();
    } else if (this.#flushTimer === NO_TIMER) {
      this.#flushTimer = this.#clock.setTimeout(() => {
        this.#flushTimer = NO_TIMER;
        void this.flush();
      }, this.#batchMs);
    }
  }

  /** Write one entry into its slot (allocating one, evicting the LRU entry when full). */
  #store(key: string, value: V | undefined, deleted: boolean, updatedAt: number, expiresAt: number, origin: number): void {
    // Take the reference first: an eviction or the old origin's release below must not free it.
    this.#originRefs[origin]!++;
    let slot = this.#slots.get(key); // marks it recently used
    if (slot === undefined) {
      if (this.#slots.size >= this.capacity) this.#slots.pop(); // frees a slot through dispose
      slot = this.#allocateSlot();
      this.#slots.set(key, slot);
    } else {
      this.#releaseOrigin(this.#originOf[slot]!);
      if (this.#tombstone[slot] === 1) this.#tombstones--;
    }
    this.#originOf[slot] = origin;
    this.#updatedAt[slot] = updatedAt;
    this.#expiresAt[slot] = expiresAt;
    this.#tombstone[slot] = deleted ? 1 : 0;
    if (deleted) this.#tombstones++;
    this.#values[slot] = deleted ? undefined : value;
  }

  #allocateSlot(): number {
    const reused = this.#freeSlots.pop();
    if (reused !== undefined) return reused;
    const slot = this.#slotsUsed++;
    if (slot >= this.#updatedAt.length) {
      const length = Math.min(this.capacity, this.#updatedAt.length * 2);
      this.#updatedAt = grow(this.#updatedAt, new Float64Array(length));
      this.#expiresAt = grow(this.#expiresAt, new Float64Array(length));
      this.#originOf = grow(this.#originOf, new Uint32Array(length));
      this.#tombstone = grow(this.#tombstone, new Uint8Array(length));
    }
    return slot;
  }

  /** lru-cache's dispose hook: the key left the table (evicted, deleted, swept). */
  #freeSlot(slot: number): void {
    if (this.#tombstone[slot] === 1) this.#tombstones--;
    this.#tombstone[slot] = 0;
    this.#values[slot] = undefined;
    this.#releaseOrigin(this.#originOf[slot]!);
    this.#freeSlots.push(slot);
  }

  #entryAt(key: string, slot: number): StickEntry<V> {
    const updatedAt = this.#updatedAt[slot]!;
    const expiresAt = this.#expiresAt[slot]!;
    const origin = this.#origins[this.#originOf[slot]!]!;
    return this.#tombstone[slot] === 1
      ? { key, updatedAt, expiresAt, origin, deleted: true }
      : { key, value: this.#values[slot] as V, updatedAt, expiresAt, origin };
  }

  /** Index of an interned origin. A fresh one starts with no reference: `#store` takes one. */
  #internOrigin(origin: string): number {
    let index = this.#originIndex.get(origin);
    if (index !== undefined) return index;
    index = this.#freeOrigins.pop() ?? this.#origins.length;
    this.#origins[index] = origin;
    this.#originRefs[index] = 0;
    this.#originIndex.set(origin, index);
    return index;
  }

  #releaseOrigin(index: number): void {
    this.#originRefs[index]!--;
    this.#releaseUnusedOrigin(index);
  }

  /** Node ids come from the network: forget those no entry refers to, so churn cannot leak. */
  #releaseUnusedOrigin(index: number): void {
    if (this.#originRefs[index] !== 0) return;
    const origin = this.#origins[index];
    if (origin === undefined) return;
    this.#originIndex.delete(origin);
    this.#origins[index] = undefined;
    this.#freeOrigins.push(index);
  }

  #liveCounterSet(key: string, now: number): CounterSet | undefined {
    const set = this.#counters.peek(key);
    if (set === undefined) return undefined;
    if (now - set.lastUsed >= this.ttlMs) {
      this.#counters.delete(key);
      return undefined;
    }
    return set;
  }

  #rotate(state: Counter, now: number): void {
    const window = this.#rateWindowMs;
    const elapsed = now - state.periodStart;
    if (elapsed < window) return;
    const periods = Math.floor(elapsed / window);
    state.previous = periods === 1 ? state.current : 0;
    state.current = 0;
    state.periodStart += periods * window;
  }

  #scheduleSweep(): void {
    if (this.#sweepMs === 0 || this.#closed) return;
    this.#sweepTimer = this.#clock.setTimeout(() => {
      this.#sweepTimer = NO_TIMER;
      if (this.#closed) return;
      this.prune();
      this.#scheduleSweep();
    }, this.#sweepMs);
  }
}

function grow<T extends Float64Array | Uint32Array | Uint8Array>(from: T, to: T): T {
  to.set(from);
  return to;
}
