/**
 * Option checks shared by `RedisStore` and `RedisReplicator` (validated once, at construction, into
 * frozen configs; errors name the option path and the value, through core's `InvalidOptionError`),
 * and `redisClientOptions()`: the ioredis settings that make an outage fail fast instead of hanging.
 *
 * Why those client defaults (ioredis's own defaults suit a batch job, not a request path):
 * - `enableOfflineQueue: false` — ioredis queues commands while disconnected, without a bound, and
 *   replays them on reconnect; during an outage every request would wait and memory would grow.
 *   (The store also refuses to queue on its own once it has been connected, whatever the client says.)
 * - `commandTimeout: 2000` — a request should not wait on its session longer than a user waits for
 *   a page; two seconds covers a slow Redis fsync or failover blip (as undici's and HAProxy's
 *   `timeout connect`-style defaults of a few seconds do).
 * - `maxRetriesPerRequest: 1` — ioredis's default 20 retries across reconnects multiplies the wait.
 * - `connectTimeout: 2000` and a reconnect backoff capped at 2 s: recover within a couple of seconds
 *   of Redis coming back, without hammering it while it is down.
 */
import type { RedisOptions } from 'ioredis';
import { InvalidOptionError } from '@fulcrum/core';
import { checkKnownKeys } from '@fulcrum/core/validate';

/** Defaults of `redisClientOptions()` (see the file header for why). */
export const CLIENT_DEFAULTS = Object.freeze({
  enableOfflineQueue: false,
  commandTimeout: 2000,
  maxRetriesPerRequest: 1,
  connectTimeout: 2000,
  retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
} satisfies RedisOptions);

/**
 * ioredis options for a session or replication client: fail fast while Redis is down (no offline
 * queue, 2 s command timeout, one retry), reconnect with backoff capped at 2 s. `overrides` win.
 *
 * @example new Redis(process.env.REDIS_URL, redisClientOptions())
 */
export function redisClientOptions(overrides: RedisOptions = {}): RedisOptions {
  return { ...CLIENT_DEFAULTS, ...overrides };
}

export { isPlainObject, optionalNumber, optionalString } from '@fulcrum/core/validate';

/**
 * Refuses keys that are not options of `path`'s component, so a typo or an option carried over from
 * another store never passes silently (`new RedisStore({ client, ttl: 600 })` would otherwise keep
 * the one-day default). When the key is a peer store's option name, the message names the Fulcrum
 * equivalent (`hints`).
 */
export const checkKnownOptions = checkKnownKeys;

/**
 * connect-redis 9's option names (and a few from earlier majors and connect-mongo that users carry
 * over), each with what to write instead. The README's migration table says the same.
 */
export const PEER_STORE_OPTION_HINTS: Readonly<Record<string, string>> = Object.freeze({
  ttl: "connect-redis's `ttl` (seconds, or a function of the session) is `ttlSeconds` here (seconds); a session's own cookie expiry always wins over it",
  disableTTL:
    "RedisStore always writes an expiry (the cookie's, else `ttlSeconds`), so a session can never outlive its cookie; there is no switch to turn it off",
  disableTouch:
    'RedisStore has no switch to turn touch off; `touchAfterSeconds` sets how rarely it writes (capped at half the session lifetime so rolling sessions stay alive)',
  touchAfter: "connect-mongo's `touchAfter` is `touchAfterSeconds` here",
  logErrors: "RedisStore reports unreadable sessions through its 'error' event (or a process warning when nobody listens)",
  url: 'RedisStore does not open connections: create an ioredis client (`new Redis(url, redisClientOptions())`) and pass it as `client`',
  host: 'RedisStore does not open connections: create an ioredis client and pass it as `client`',
  port: 'RedisStore does not open connections: create an ioredis client and pass it as `client`',
  pass: 'RedisStore does not open connections: create an ioredis client and pass it as `client`',
  db: 'RedisStore does not open connections: create an ioredis client (with its `db`) and pass it as `client`',
});

/** The parts of an ioredis `Redis` or `Cluster` the package uses (checked by duck typing). */
export function checkClient(path: string, client: unknown): void {
  const c = client as Record<string, unknown> | null;
  if (
    typeof c !== 'object' ||
    c === null ||
    typeof c.get !== 'function' ||
    typeof c.set !== 'function' ||
    typeof c.defineCommand !== 'function' ||
    typeof c.on !== 'function'
  ) {
    throw new InvalidOptionError(path, client, 'must be an ioredis Redis or Cluster client');
  }
}

/** Escape Redis glob metacharacters, so a prefix like `app[1]:` matches only itself in SCAN MATCH. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\^]/g, (c) => `\\${c}`);
}
