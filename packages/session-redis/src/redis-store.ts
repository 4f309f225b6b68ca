/**
 * `RedisStore`: an express-session `Store` (also usable by @fastify/session) over an ioredis client
 * — standalone, Sentinel or Cluster. connect-redis 9 dropped ioredis; this is the store an ioredis
 * user would otherwise have to write, with the lessons of connect-redis, connect-mongo and
 * express-session built in:
 *
 * - Keys are `prefix + sid` with the session as JSON text (readable with `redis-cli`, compatible
 *   with connect-redis's layout). Every write sends its expiry with it (`SET … PX`: a plain SET would
 *   clear the TTL), taken from the session cookie's expiry, else `ttlSeconds`; a session whose expiry
 *   is already past is deleted instead of written (core's `sessionExpiresAt`).
 * - `touch` only extends a live key and only when the extension is at least `touchAfterSeconds`
 *   (connect-mongo's `touchAfter`), capped at half the session's TTL so that short rolling
 *   sessions still roll. When due, it stores the new cookie too (as express-session's MemoryStore
 *   does, so `get` shows the expiry in force): a Lua script reads the value, the store puts the
 *   cookie in, and a second script writes it only if the value is unchanged — a touch racing a
 *   `set` or a `destroy` loses, and can never bring a destroyed session back.
 * - Optimistic mode (opt-in) stops the classic express-session lost update — two concurrent
 *   requests read the same session, both save, the second silently overwrites the first — with a
 *   version number checked and bumped by a Lua script in the same atomic step as the write. The
 *   loser gets `SessionConflictError` and nothing is written (see the README for the guarantees).
 * - Failures are typed and bounded: once the client has connected, calls made while it is not
 *   `ready` fail at once with core's `StoreUnavailableError` instead of sitting in ioredis's offline
 *   queue, and every call has a deadline (`commandTimeoutMs`, default 2 s, unless the client's own
 *   `commandTimeout` is at least as tight). The store emits `disconnect` when the client loses its
 *   connection (express-session then lets requests through without a session rather than hang) and
 *   `connect` when it is back; nothing needs restarting.
 * - Any id express-session can make is a session (as in its MemoryStore and connect-redis): the key
 *   is `prefix + id`, binary-safe, one key per id, never a pattern. Only what no store could keep
 *   apart is refused (core's `isValidSessionId`: empty, over 1024 characters, a lone surrogate):
 *   `get`/`destroy`/`touch` of one find nothing, `set` throws `InvalidOptionError`. Corrupt data reads as "no session" and is reported as
 *   an `error` event (or a process warning when nobody listens), never thrown into a request.
 * - `all`/`length`/`ids`/`clear` SCAN (never KEYS) every master of a Cluster.
 */
import { Store } from 'express-session';
import type { SessionData } from 'express-session';
import { InvalidOptionError, StoreUnavailableError, SessionConflictError } from '@fulcrum/core';
import type { Clock } from '@fulcrum/core';
import { MAX_TIMER_MS } from '@fulcrum/core/validate';
import {
  DEFAULT_SESSION_TTL_SECONDS,
  assertSessionId,
  isValidSessionId,
  jsonSerializer,
  sessionExpiresAt,
  sessionStoreClock,
  settle,
  withDeadline,
} from '@fulcrum/core/session';
import type { SessionLike, SessionSerializer, StoreCallback as SessionStoreCallback } from '@fulcrum/core/session';
import { AFTER_FAILURE, toStoreError } from './errors';
import type { Redis } from 'ioredis';
import { getMany, scanTargets, unlinkMany, type RedisClient } from './key-scan';
import { waitForReady } from './connection';
import { PEER_STORE_OPTION_HINTS, checkClient, checkKnownOptions, escapeGlob, isPlainObject, optionalNumber, optionalString } from './options';
import { OPTIMISTIC_SET_LUA, TOUCH_READ_LUA, TOUCH_WRITE_LUA } from './scripts';

/** Optimistic concurrency settings (`optimistic: true` takes the defaults). */
export interface OptimisticOptions {
  /**
   * Session field that carries the version the request read (it travels in the session data, so
   * express-session and @fastify/session hand it back on `set`). 1–64 chars of [A-Za-z0-9_], not
   * starting with a digit. Default `'__version'`.
   */
  versionField?: string;
}

export interface RedisStoreOptions {
  /** An ioredis `Redis` (standalone or Sentinel) or `Cluster`. You own it: the store never quits it. */
  client: RedisClient;
  /** Prepended to every session id to form its key. Up to 256 chars. Default `'sess:'`. */
  prefix?: string;
  /** Lifetime of a session whose cookie has no expiry, seconds > 0. Default 86 400 (one day). */
  ttlSeconds?: number;
  /**
   * `touch` writes only when it extends the stored expiry by at least this much (capped at half the
   * session's TTL, so a rolling session whose user is active never expires), seconds ≥ 0. 0 writes
   * on every touch: exact expiry and a stored cookie that is always current, at two round trips per
   * request that does not change its session. Default 60.
   */
  touchAfterSeconds?: number;
  /** Session ↔ text. Default JSON. Optimistic mode requires the default. */
  serializer?: SessionSerializer;
  /** SCAN's COUNT hint for `all`/`length`/`ids`/`clear`, integer 1–100 000. Default 100. */
  scanCount?: number;
  /**
   * Deadline of every call, ms > 0; a call past it fails with `StoreUnavailableError`. Not armed when
   * the client's own `commandTimeout` is set and no longer than this. Default 2000.
   */
  commandTimeoutMs?: number;
  /** Reject a `set` that would overwrite a newer version or recreate a destroyed session. Default false. */
  optimistic?: boolean | OptimisticOptions;
  /**
   * The time the store computes TTLs from (a session's cookie expiry minus now) and the timer of the
   * `commandTimeoutMs` deadline: core's `Clock`. A test passes a `FakeClock`. Redis itself expires
   * keys on its own clock. Default `realClock`.
   */
  clock?: Clock;
}

/** The validated, defaulted configuration of a store (`store.config`). */
export interface RedisStoreConfig {
  readonly prefix: string;
  readonly ttlSeconds: number;
  readonly touchAfterSeconds: number;
  readonly scanCount: number;
  readonly commandTimeoutMs: number;
  /** The version field in optimistic mode, `undefined` otherwise. */
  readonly versionField: string | undefined;
}

type SessionRecord = Record<string, SessionData>;

const TOUCH_READ_COMMAND = 'fulcrumSessionTouchRead';
const TOUCH_WRITE_COMMAND = 'fulcrumSessionTouchWrite';
const SET_COMMAND = 'fulcrumSessionSetVersioned';
const VERSION_FIELD_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
const PREFIX_PATTERN = /^[^\0\r\n]{0,256}$/;
const OPTION_NAMES = ['client', 'prefix', 'ttlSeconds', 'touchAfterSeconds', 'serializer', 'scanCount', 'commandTimeoutMs', 'optimistic', 'clock'] as const;

interface ScriptedClient {
  [TOUCH_READ_COMMAND](key: string, ttlMs: number, throttleMs: number): Promise<number | string>;
  [TOUCH_WRITE_COMMAND](key: string, read: string, text: string, ttlMs: number): Promise<number>;
  [SET_COMMAND](key: string, expected: string, restText: string, ttlMs: number, field: string): Promise<[number, number]>;
}

function defineScripts(client: RedisClient): void {
  const target = client as unknown as Record<string, unknown>;
  if (typeof target[TOUCH_READ_COMMAND] !== 'function') client.defineCommand(TOUCH_READ_COMMAND, { numberOfKeys: 1, lua: TOUCH_READ_LUA });
  if (typeof target[TOUCH_WRITE_COMMAND] !== 'function') client.defineCommand(TOUCH_WRITE_COMMAND, { numberOfKeys: 1, lua: TOUCH_WRITE_LUA });
  if (typeof target[SET_COMMAND] !== 'function') client.defineCommand(SET_COMMAND, { numberOfKeys: 1, lua: OPTIMISTIC_SET_LUA });
}

function clientCommandTimeout(client: RedisClient): number | undefined {
  const options = (client as { options?: { commandTimeout?: unknown; redisOptions?: { commandTimeout?: unknown } } }).options;
  const value = client.isCluster ? options?.redisOptions?.commandTimeout : options?.commandTimeout;
  return typeof value === 'number' && value > 0 ? value : undefined;
}

/**
 * An express-session / @fastify/session store over ioredis (see the file header). Every method takes
 * an optional node-style callback and returns a promise when it is omitted.
 *
 * Events: `connect` (the client is ready again after a disconnect), `disconnect` (it lost its
 * connection), `error` (a stored value could not be parsed; the read answered "no session").
 */
export class RedisStore extends Store {
  readonly config: RedisStoreConfig;
  readonly #client: RedisClient;
  readonly #serializer: SessionSerializer;
  readonly #pattern: string;
  readonly #armTimer: boolean;
  readonly #clock: Clock;
  /** Session object → the version this store last wrote for it (optimistic mode). */
  readonly #written = new WeakMap<object, { sid: string; read: number | undefined; version: number }>();
  #connected: boolean;
  #connectedOnce: boolean;
  readonly #onReady: () => void;
  readonly #onClose: () => void;

  constructor(options: RedisStoreOptions) {
    super();
    if (!isPlainObject(options)) throw new InvalidOptionError('redisStore', options, 'must be an object');
    checkKnownOptions('redisStore', options, OPTION_NAMES, PEER_STORE_OPTION_HINTS);
    checkClient('redisStore.client', options.client);
    const prefix = optionalString(
      'redisStore.prefix',
      options.prefix,
      'sess:',
      PREFIX_PATTERN,
      'must be a string of up to 256 characters without NUL, CR or LF',
    );
    const ttlSeconds = optionalNumber('redisStore.ttlSeconds', options.ttlSeconds, DEFAULT_SESSION_TTL_SECONDS, { min: 0, minExclusive: true });
    const touchAfterSeconds = optionalNumber('redisStore.touchAfterSeconds', options.touchAfterSeconds, 60, { min: 0 });
    const scanCount = optionalNumber('redisStore.scanCount', options.scanCount, 100, { min: 1, max: 100_000, integer: true });
    const commandTimeoutMs = optionalNumber('redisStore.commandTimeoutMs', options.commandTimeoutMs, 2000, { min: 0, minExclusive: true, max: MAX_TIMER_MS });
    const serializer = options.serializer ?? jsonSerializer;
    if (typeof serializer !== 'object' || serializer === null || typeof serializer.stringify !== 'function' || typeof serializer.parse !== 'function') {
      throw new InvalidOptionError('redisStore.serializer', serializer, 'must be an object with stringify(session) and parse(text) functions');
    }
    let versionField: string | undefined;
    const optimistic = options.optimistic;
    if (optimistic === true) versionField = '__version';
    else if (isPlainObject(optimistic)) {
      versionField = optionalString(
        'redisStore.optimistic.versionField',
        optimistic.versionField,
        '__version',
        VERSION_FIELD_PATTERN,
        'must be 1–64 chars of [A-Za-z0-9_], not starting with a digit',
      );
    } else if (optimistic !== undefined && optimistic !== false) {
      throw new InvalidOptionError('redisStore.optimistic', optimistic, 'must be true, false or { versionField }');
    }
    if (versionField !== undefined && serializer !== jsonSerializer) {
      // The version check reads the version from the front of the stored JSON text.
      throw new InvalidOptionError('redisStore.serializer', serializer, 'must be the default JSON serializer in optimistic mode');
    }
    this.config = Object.freeze({ prefix, ttlSeconds, touchAfterSeconds, scanCount, commandTimeoutMs, versionField });
    this.#client = options.client;
    this.#serializer = serializer;
    this.#clock = sessionStoreClock('redisStore.clock', options.clock);
    this.#pattern = `${escapeGlob(prefix)}*`;
    const clientTimeout = clientCommandTimeout(this.#client);
    this.#armTimer = clientTimeout === undefined || clientTimeout > commandTimeoutMs;
    defineScripts(this.#client);

    this.#connected = this.#client.status === 'ready';
    this.#connectedOnce = this.#connected;
    this.#onReady = () => {
      this.#connectedOnce = true;
      if (this.#connected) return;
      this.#connected = true;
      this.emit('connect');
    };
    this.#onClose = () => {
      if (!this.#connected) return;
      this.#connected = false;
      this.emit('disconnect');
    };
    this.#client.on('ready', this.#onReady);
    this.#client.on('close', this.#onClose);
    this.#client.on('end', this.#onClose);
  }

  /** The session stored under `sid`, or `null` (absent, expired, malformed id, or unreadable data). */
  override get(sid: string): Promise<SessionData | null>;
  override get(sid: string, callback: SessionStoreCallback<SessionData | null>): undefined;
  override get(sid: string, callback?: SessionStoreCallback<SessionData | null>): Promise<SessionData | null> | undefined {
    return settle(async () => {
      if (!isValidSessionId(sid)) return null;
      const text = await this.#run('get', () => this.#client.get(this.config.prefix + sid));
      return text === null ? null : this.#parse(sid, text);
    }, callback);
  }

  /**
   * Store `session` under `sid` until its cookie's expiry (else `ttlSeconds`); delete it when that
   * expiry is past. In optimistic mode, fails with `SessionConflictError` instead of overwriting a
   * newer version or recreating a destroyed session; a later `set` of the same session object
   * continues from the version written.
   */
  override set(sid: string, session: SessionData): Promise<void>;
  override set(sid: string, session: SessionData, callback: SessionStoreCallback<void>): undefined;
  override set(sid: string, session: SessionData, callback?: SessionStoreCallback<void>): Promise<void> | undefined {
    return settle(async () => {
      const key = this.config.prefix + assertSessionId(sid);
      const now = this.#clock.now();
      const ttlMs = Math.ceil(sessionExpiresAt(session as SessionLike, now, this.config.ttlSeconds) - now);
      if (ttlMs <= 0) {
        await this.#run('set', () => this.#client.del(key));
        return;
      }
      const field = this.config.versionField;
      if (field === undefined) {
        const text = this.#serializer.stringify(session as SessionLike);
        await this.#run('set', () => this.#client.set(key, text, 'PX', ttlMs));
        return;
      }
      await this.#setVersioned(sid, key, session, ttlMs, field);
    }, callback);
  }

  /** Delete the session (nothing happens for an absent one or a malformed id). */
  override destroy(sid: string): Promise<void>;
  override destroy(sid: string, callback: SessionStoreCallback<void>): undefined;
  override destroy(sid: string, callback?: SessionStoreCallback<void>): Promise<void> | undefined {
    return settle(async () => {
      if (!isValidSessionId(sid)) return;
      await this.#run('destroy', () => this.#client.del(this.config.prefix + sid));
    }, callback);
  }

  /**
   * Extend a live session's expiry to its cookie's (else `ttlSeconds`), when that extends it by at
   * least `touchAfterSeconds` (capped at half the TTL). Never recreates an absent session; deletes
   * one whose cookie has expired.
   */
  override touch(sid: string, session: SessionData): Promise<void>;
  override touch(sid: string, session: SessionData, callback: SessionStoreCallback<void>): undefined;
  override touch(sid: string, session: SessionData, callback?: SessionStoreCallback<void>): Promise<void> | undefined {
    return settle(async () => {
      if (!isValidSessionId(sid)) return;
      const key = this.config.prefix + sid;
      const now = this.#clock.now();
      const ttlMs = Math.ceil(sessionExpiresAt(session as SessionLike, now, this.config.ttlSeconds) - now);
      if (ttlMs <= 0) {
        await this.#run('touch', () => this.#client.del(key));
        return;
      }
      const throttleMs = Math.max(0, Math.min(this.config.touchAfterSeconds * 1000, Math.floor(ttlMs / 2)));
      const client = this.#client as unknown as ScriptedClient;
      const read = await this.#run('touch', () => client[TOUCH_READ_COMMAND](key, ttlMs, throttleMs));
      if (typeof read !== 'string') return; // gone, or throttled
      const stored = this.#parse(sid, read);
      const cookie = (session as SessionLike).cookie;
      if (stored === null || cookie == null) {
        // Nothing to put the cookie into (unreadable data, or a session without one): extend only.
        await this.#run('touch', () => this.#client.pexpire(key, ttlMs));
        return;
      }
      const text = this.#serializer.stringify({ ...(stored as SessionLike), cookie } as SessionLike);
      await this.#run('touch', () => client[TOUCH_WRITE_COMMAND](key, read, text, ttlMs));
    }, callback);
  }

  /** Every stored session, keyed by id (an object without a prototype). Unreadable ones are skipped. */
  override all(): Promise<SessionRecord>;
  override all(callback: SessionStoreCallback<SessionRecord>): undefined;
  override all(callback?: SessionStoreCallback<SessionRecord>): Promise<SessionRecord> | undefined {
    return settle(async () => {
      const result = Object.create(null) as SessionRecord;
      const prefixLength = this.config.prefix.length;
      await this.#scan('all', async (node, keys, cluster) => {
        const texts = await getMany(node, keys, cluster);
        texts.forEach((text, i) => {
          if (text === null) return;
          const sid = keys[i]!.slice(prefixLength);
          const session = this.#parse(sid, text);
          if (session !== null) result[sid] = session;
        });
      });
      return result;
    }, callback);
  }

  /** How many sessions are stored (a full SCAN: O(keys)). */
  override length(): Promise<number>;
  override length(callback: SessionStoreCallback<number>): undefined;
  override length(callback?: SessionStoreCallback<number>): Promise<number> | undefined {
    return settle(async () => {
      let count = 0;
      await this.#scan('length', (_node, keys) => {
        count += keys.length;
      });
      return count;
    }, callback);
  }

  /** The stored session ids, sorted. */
  ids(): Promise<string[]>;
  ids(callback: SessionStoreCallback<string[]>): undefined;
  ids(callback?: SessionStoreCallback<string[]>): Promise<string[]> | undefined {
    return settle(async () => {
      const ids: string[] = [];
      const prefixLength = this.config.prefix.length;
      await this.#scan('ids', (_node, keys) => {
        for (const key of keys) ids.push(key.slice(prefixLength));
      });
      return ids.sort();
    }, callback);
  }

  /** Delete every session under this store's prefix (and nothing else). */
  override clear(): Promise<void>;
  override clear(callback: SessionStoreCallback<void>): undefined;
  override clear(callback?: SessionStoreCallback<void>): Promise<void> | undefined {
    return settle(async () => {
      await this.#scan('clear', (node, keys, cluster) => unlinkMany(node, keys, cluster));
    }, callback);
  }

  /**
   * Stop following the client's connection events. The client stays open: you created it, you
   * `quit()` it.
   */
  close(): void {
    this.#client.off('ready', this.#onReady);
    this.#client.off('close', this.#onClose);
    this.#client.off('end', this.#onClose);
  }

  // ── internals ────────────────────────────────────────────────────────────────────────────────────

  async #setVersioned(sid: string, key: string, session: SessionData, ttlMs: number, field: string): Promise<void> {
    const record = session as unknown as Record<string, unknown>;
    const read = record[field];
    const readVersion = typeof read === 'number' && Number.isSafeInteger(read) && read >= 0 ? read : undefined;
    let expected = readVersion;
    // A second save of the same session object in one request (req.session.save(), then
    // express-session's automatic one) continues from the version the first one wrote. The version
    // is kept here, not written back into the session: express-session hashes the session to decide
    // whether to save again, and a changed field would trigger a needless second write.
    const written = this.#written.get(record);
    if (written !== undefined && written.sid === sid && written.read === expected) expected = written.version;
    const { [field]: _version, ...data } = record;
    const text = JSON.stringify(data);
    const rest = text === '{}' ? '}' : `,${text.slice(1)}`;
    const client = this.#client as unknown as ScriptedClient;
    const [status, version] = await this.#run('set', () => client[SET_COMMAND](key, expected === undefined ? '' : String(expected), rest, ttlMs, field));
    if (status === 1) {
      this.#written.set(record, { sid, read: readVersion, version });
      return;
    }
    throw new SessionConflictError(sid, status === 0 ? 'changed' : 'destroyed', expected ?? 0, version);
  }

  #parse(sid: string, text: string): SessionData | null {
    let session: unknown;
    try {
      session = this.#serializer.parse(text);
    } catch (error) {
      this.#reportCorrupt(sid, error);
      return null;
    }
    if (typeof session !== 'object' || session === null || Array.isArray(session)) {
      this.#reportCorrupt(sid, new TypeError('stored value is not an object'));
      return null;
    }
    return session as SessionData;
  }

  #reportCorrupt(sid: string, cause: unknown): void {
    const error = new Error(`session ${sid}: stored data could not be parsed; treated as no session`, { cause });
    // An 'error' event without a listener would throw from inside a request: report it as a warning.
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else process.emitWarning(error.message, { code: 'FULCRUM_SESSION_CORRUPT' });
  }

  /** SCAN every target under the prefix; each command (not the whole walk) gets the deadline. */
  async #scan(what: string, onBatch: (node: Redis, keys: string[], cluster: boolean) => Promise<void> | void): Promise<void> {
    const cluster = this.#client.isCluster;
    const targets = await this.#run(what, async () => scanTargets(this.#client));
    for (const node of targets) {
      let cursor = '0';
      do {
        const [next, keys] = await this.#run(what, () => node.scan(cursor, 'MATCH', this.#pattern, 'COUNT', this.config.scanCount));
        cursor = next;
        if (keys.length > 0) await this.#run(what, async () => onBatch(node, keys, cluster));
      } while (cursor !== '0');
    }
  }

  /** Run one Redis operation with the store's failure rules (see the file header). */
  #run<T>(what: string, operation: () => Promise<T>): Promise<T> {
    if (this.#client.status !== 'ready') {
      if (this.#connectedOnce) {
        return Promise.reject(
          new StoreUnavailableError(
            `RedisStore.${what} failed: the client is not connected to Redis (status '${this.#client.status}'); ` +
              'the store fails calls at once instead of queueing them, and they succeed again once ioredis has reconnected',
          ),
        );
      }
      // Start-up: wait for the first connection (bounded) rather than fail the first requests.
      return waitForReady(this.#client, this.config.commandTimeoutMs).then(() => {
        this.#connectedOnce ||= this.#client.status === 'ready';
        return this.#attempt(what, operation);
      });
    }
    return this.#attempt(what, operation);
  }

  #attempt<T>(what: string, operation: () => Promise<T>): Promise<T> {
    let promise: Promise<T>;
    try {
      promise = operation();
    } catch (error) {
      promise = Promise.reject(error);
    }
    if (this.#armTimer) {
      const ms = this.config.commandTimeoutMs;
      promise = withDeadline(
        promise,
        ms,
        this.#clock,
        () => new StoreUnavailableError(`RedisStore.${what} failed: Redis did not answer within ${ms} ms (commandTimeoutMs); ${AFTER_FAILURE}`),
      );
    }
    return promise.catch((error: unknown) => {
      throw toStoreError(error, `RedisStore.${what}`);
    });
  }
}
