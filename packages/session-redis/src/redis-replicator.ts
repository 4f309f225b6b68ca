/**
 * `RedisReplicator`: connects stick-tables of several load-balancer instances through Redis, the way
 * HAProxy's peers connect its stick-tables — live updates pushed in batches, plus a snapshot a new
 * instance loads on start (HAProxy's "resync").
 *
 * - Live updates: one Redis PUBLISH per batch on `channel`. The StickTable already coalesces its
 *   writes into batches (`batchMs`), so a batch costs exactly one round trip here: a Lua script
 *   (`MERGE_LUA`) merges the batch into the snapshot and publishes the entries that won, atomically.
 * - Snapshot: a hash (`{key}`: entry key → entry JSON) plus a sorted set of expiries
 *   (`{key}:expiry`), because Redis 7.0 has no per-field expiry (HEXPIRE arrived in 7.4). Each merge
 *   purges a bounded number of expired fields and keeps both keys' TTL at the latest entry's
 *   `expiresAt`, so an abandoned table disappears by itself; readers also filter by `expiresAt`.
 *   The key name is wrapped in a hash tag so both keys live in one Cluster slot.
 * - Ordering: the merge applies core's last-writer-wins rule by `(updatedAt, origin)` inside Redis,
 *   so a late or duplicated batch never replaces a newer entry in the snapshot, and an expired entry
 *   (by Redis's clock; the replicator's own `clock` already dropped what it sees as expired) is never
 *   written. Receivers apply the same rule (`StickTable.merge`), so
 *   pub/sub's at-most-once, unordered delivery is enough.
 * - Gaps: pub/sub drops messages while the subscriber is disconnected. When it reconnects, the
 *   replicator re-reads the snapshot and delivers it to its subscribers, so tables heal without a
 *   restart (the merge rule makes the replay harmless).
 * - Subscriptions need a connection of their own (a subscribed ioredis connection can run nothing
 *   else). Pass `subscriber`, or the replicator duplicates `client` on first `subscribe` and closes
 *   that duplicate in `close()`.
 */
import { InvalidOptionError, StoreUnavailableError } from '@fulcrum/core';
import { MAX_TIMER_MS } from '@fulcrum/core/validate';
import { isStickEntry, sessionStoreClock } from '@fulcrum/core/session';
import type { Clock, Replicator, StickEntry } from '@fulcrum/core';
import { waitForReady } from './connection';
import { toStoreError } from './errors';
import type { RedisClient } from './key-scan';
import { checkClient, isPlainObject, optionalNumber, optionalString } from './options';
import { MERGE_LUA, PURGE_LUA } from './scripts';

export interface RedisReplicatorOptions {
  /** ioredis `Redis` or `Cluster` for the snapshot and publishing. You own it. */
  client: RedisClient;
  /** Pub/sub channel of live updates. 1–256 chars. Default `'fulcrum:stick'`. */
  channel?: string;
  /**
   * Base name of the snapshot keys: the hash is `{key}` and the expiry index `{key}:expiry` (the
   * braces are added unless `key` already holds a `{…}` hash tag). 1–256 chars. Default `'fulcrum:stick'`.
   */
  key?: string;
  /**
   * A connection for SUBSCRIBE. Default: `client.duplicate()`, made on the first `subscribe` and
   * closed by `close()`. One you pass is unsubscribed from `channel` on `close()`, not closed.
   */
  subscriber?: RedisClient;
  /** Entries sent to Redis per script call (bounds the script's run time), 1–10 000. Default 1000. */
  maxEntriesPerCall?: number;
  /** Expired snapshot entries removed per merge or snapshot, 1–100 000. Default 256. */
  purgeLimit?: number;
  /** How long the first command waits for the connection, ms > 0. Default 2000. */
  connectTimeoutMs?: number;
  /**
   * Failures outside a caller's promise: a subscription that failed, a message that was not JSON, a
   * subscriber callback that threw, a resync after reconnect that failed. Default: a process warning.
   */
  onError?: (error: unknown) => void;
  /**
   * The time by which entries count as expired on this side — dropped before they are sent and
   * filtered out of snapshots: core's `Clock`, the same one the stick-table uses (a test passes a
   * `FakeClock`). Redis itself refuses and purges expired entries, and expires the snapshot keys, on
   * its own clock. Default `realClock`.
   */
  clock?: Clock;
}

const MERGE_COMMAND = 'fulcrumStickMerge';
const PURGE_COMMAND = 'fulcrumStickPurge';
const NAME_PATTERN = /^[^\0\r\n]{1,256}$/;
const NAME_EXPECTED = 'must be 1–256 characters without NUL, CR or LF';
const SNAPSHOT_SCAN_COUNT = 1000;

interface ScriptedClient {
  [MERGE_COMMAND](hash: string, expiry: string, channel: string, purgeLimit: number, ...args: string[]): Promise<number>;
  [PURGE_COMMAND](hash: string, expiry: string, purgeLimit: number): Promise<number>;
}

type Listener<V> = (entries: readonly StickEntry<V>[]) => void;

function warn(error: unknown): void {
  process.emitWarning(`stick-table replication: ${error instanceof Error ? error.message : String(error)}`, {
    code: 'FULCRUM_REPLICATION',
  });
}

/** Stick-table replication over Redis pub/sub and a snapshot hash (see the file header). */
export class RedisReplicator<V = string> implements Replicator<V> {
  readonly channel: string;
  /** The snapshot hash's key. */
  readonly hashKey: string;
  /** The expiry index's key (a sorted set scored by `expiresAt`). */
  readonly expiryKey: string;
  readonly #client: RedisClient;
  readonly #givenSubscriber: RedisClient | undefined;
  readonly #maxEntriesPerCall: number;
  readonly #purgeLimit: number;
  readonly #connectTimeoutMs: number;
  readonly #onError: (error: unknown) => void;
  readonly #clock: Clock;
  readonly #listeners = new Set<Listener<V>>();
  #subscriber: RedisClient | undefined;
  #subscribed: Promise<void> | undefined;
  #subscriberReadyOnce = false;
  #closed = false;

  constructor(options: RedisReplicatorOptions) {
    if (!isPlainObject(options)) throw new InvalidOptionError('redisReplicator', options, 'must be an object');
    checkClient('redisReplicator.client', options.client);
    if (options.subscriber !== undefined) {
      checkClient('redisReplicator.subscriber', options.subscriber);
      if (options.subscriber === options.client) {
        throw new InvalidOptionError(
          'redisReplicator.subscriber',
          'the client itself',
          'must be a separate connection (a subscribed connection cannot run other commands)',
        );
      }
    }
    this.channel = optionalString('redisReplicator.channel', options.channel, 'fulcrum:stick', NAME_PATTERN, NAME_EXPECTED);
    const key = optionalString('redisReplicator.key', options.key, 'fulcrum:stick', NAME_PATTERN, NAME_EXPECTED);
    const tagged = /\{[^}]+\}/.test(key) ? key : `{${key}}`;
    this.hashKey = tagged;
    this.expiryKey = `${tagged}:expiry`;
    this.#maxEntriesPerCall = optionalNumber('redisReplicator.maxEntriesPerCall', options.maxEntriesPerCall, 1000, { min: 1, max: 10_000, integer: true });
    this.#purgeLimit = optionalNumber('redisReplicator.purgeLimit', options.purgeLimit, 256, { min: 1, max: 100_000, integer: true });
    this.#connectTimeoutMs = optionalNumber('redisReplicator.connectTimeoutMs', options.connectTimeoutMs, 2000, {
      min: 0,
      minExclusive: true,
      max: MAX_TIMER_MS,
    });
    if (options.onError !== undefined && typeof options.onError !== 'function') {
      throw new InvalidOptionError('redisReplicator.onError', options.onError, 'must be a function');
    }
    this.#onError = options.onError ?? warn;
    this.#clock = sessionStoreClock('redisReplicator.clock', options.clock);
    this.#client = options.client;
    this.#givenSubscriber = options.subscriber;
    const client = this.#client as unknown as Record<string, unknown>;
    if (typeof client[MERGE_COMMAND] !== 'function') this.#client.defineCommand(MERGE_COMMAND, { numberOfKeys: 2, lua: MERGE_LUA });
    if (typeof client[PURGE_COMMAND] !== 'function') this.#client.defineCommand(PURGE_COMMAND, { numberOfKeys: 2, lua: PURGE_LUA });
  }

  /**
   * Merge a batch into the snapshot and publish the entries that won, one script call per
   * `maxEntriesPerCall` entries. Entries already expired or malformed are dropped.
   */
  async publish(entries: readonly StickEntry<V>[]): Promise<void> {
    if (this.#closed) throw new Error('RedisReplicator is closed');
    const now = this.#clock.now();
    const client = this.#client as unknown as ScriptedClient;
    let args: string[] = [];
    const send = async () => {
      const batch = args;
      args = [];
      await this.#run('publish', () => client[MERGE_COMMAND](this.hashKey, this.expiryKey, this.channel, this.#purgeLimit, ...batch));
    };
    for (const entry of entries) {
      if (!isStickEntry(entry) || entry.expiresAt <= now) continue;
      const deleted = entry.deleted === true;
      const valueJson = deleted ? '' : JSON.stringify(entry.value);
      if (valueJson === undefined) continue; // not JSON data: cannot travel
      // Field order matters: the script reads the value text as everything after `,"value":`.
      const stamp = `{"key":${JSON.stringify(entry.key)},"updatedAt":${entry.updatedAt},"expiresAt":${entry.expiresAt},"origin":${JSON.stringify(entry.origin)}`;
      const entryJson = deleted ? `${stamp},"deleted":true}` : `${stamp},"value":${valueJson}}`;
      args.push(entry.key, String(entry.updatedAt), entry.origin, deleted ? '1' : '0', String(entry.expiresAt), valueJson, entryJson);
      if (args.length >= this.#maxEntriesPerCall * 7) await send();
    }
    if (args.length > 0) await send();
  }

  /** Receive the batches every replicator on `channel` publishes (including this one's). */
  subscribe(onEntries: (entries: readonly StickEntry<V>[]) => void): () => void {
    if (this.#closed) throw new Error('RedisReplicator is closed');
    // A wrapper per call, so one function subscribed twice is two subscriptions.
    const listener: Listener<V> = (entries) => onEntries(entries);
    this.#listeners.add(listener);
    this.#ensureSubscribed();
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /**
   * Every live entry of the snapshot (values and tombstones), after purging expired ones. Waits for
   * this replicator's subscription first, so that no update falls between the two.
   */
  async snapshot(): Promise<readonly StickEntry<V>[]> {
    if (this.#closed) throw new Error('RedisReplicator is closed');
    await this.#subscribed;
    const client = this.#client as unknown as ScriptedClient;
    await this.#run('snapshot', () => client[PURGE_COMMAND](this.hashKey, this.expiryKey, this.#purgeLimit));
    const now = this.#clock.now();
    const entries: StickEntry<V>[] = [];
    let cursor = '0';
    do {
      const [next, flat] = await this.#run('snapshot', () => this.#client.hscan(this.hashKey, cursor, 'COUNT', SNAPSHOT_SCAN_COUNT));
      cursor = next;
      for (let i = 1; i < flat.length; i += 2) {
        const entry = parseEntry(flat[i]!);
        if (entry !== undefined && entry.expiresAt > now) entries.push(entry as StickEntry<V>);
      }
    } while (cursor !== '0');
    return entries;
  }

  /** Stop delivery; close the subscriber connection if the replicator made it. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    const subscriber = this.#subscriber;
    this.#subscriber = undefined;
    if (subscriber === undefined) return;
    subscriber.off('message', this.#onMessage);
    subscriber.off('ready', this.#onSubscriberReady);
    if (subscriber === this.#givenSubscriber) {
      await subscriber.unsubscribe(this.channel).catch(() => undefined);
      return;
    }
    await subscriber.quit().catch(() => subscriber.disconnect());
  }

  // ── internals ────────────────────────────────────────────────────────────────────────────────────

  #ensureSubscribed(): void {
    if (this.#subscriber !== undefined) return;
    const subscriber = this.#givenSubscriber ?? this.#client.duplicate();
    this.#subscriber = subscriber;
    if (subscriber !== this.#givenSubscriber) subscriber.on('error', () => undefined); // reported through commands
    subscriber.on('message', this.#onMessage);
    subscriber.on('ready', this.#onSubscriberReady);
    this.#subscribed = waitForReady(subscriber, this.#connectTimeoutMs)
      .then(() => {
        this.#subscriberReadyOnce ||= subscriber.status === 'ready';
        return subscriber.subscribe(this.channel);
      })
      .then(
        () => undefined,
        (error: unknown) => this.#onError(toStoreError(error, 'RedisReplicator.subscribe')),
      );
  }

  readonly #onMessage = (channel: string, message: string): void => {
    if (channel !== this.channel || this.#listeners.size === 0) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(message);
    } catch (error) {
      this.#onError(new Error(`a message on ${this.channel} was not JSON`, { cause: error }));
      return;
    }
    if (!Array.isArray(parsed)) return;
    const entries = parsed.filter(isStickEntry) as StickEntry<V>[];
    if (entries.length > 0) this.#deliver(entries);
  };

  /** After a reconnect: ioredis resubscribes by itself; replay the snapshot to cover the gap. */
  readonly #onSubscriberReady = (): void => {
    if (!this.#subscriberReadyOnce) {
      this.#subscriberReadyOnce = true;
      return;
    }
    if (this.#closed) return;
    this.snapshot().then(
      (entries) => {
        if (entries.length > 0) this.#deliver(entries);
      },
      (error: unknown) => this.#onError(error),
    );
  };

  #deliver(entries: readonly StickEntry<V>[]): void {
    for (const listener of this.#listeners) {
      try {
        listener(entries);
      } catch (error) {
        this.#onError(error);
      }
    }
  }

  async #run<T>(what: string, operation: () => Promise<T>): Promise<T> {
    if (this.#client.status !== 'ready') await waitForReady(this.#client, this.#connectTimeoutMs);
    try {
      return await operation();
    } catch (error) {
      const mapped = toStoreError(error, `RedisReplicator.${what}`);
      throw mapped instanceof Error ? mapped : new StoreUnavailableError(`RedisReplicator.${what} failed: ${String(mapped)}`, { cause: error });
    }
  }
}

function parseEntry(text: string): StickEntry<unknown> | undefined {
  try {
    const entry = JSON.parse(text) as unknown;
    return isStickEntry(entry) ? entry : undefined;
  } catch {
    return undefined;
  }
}
