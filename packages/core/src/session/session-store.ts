/**
 * What every Fulcrum session store shares, whatever it stores into (Redis, SQL, a directory): how
 * long a session lives, when a `touch` is worth a write, which session ids are acceptable, how a
 * session becomes bytes, and the callback-or-promise calling convention of express-session stores.
 * Pure functions; each store package supplies the I/O.
 *
 * The rules follow express-session's contract and connect-redis's long-standing behaviour:
 * - a session whose cookie has an `expires` date lives until then (a TTL of zero or less means the
 *   session must be destroyed, not written); without one, it lives the store's `ttlSeconds`
 *   (default one day, express-session's and connect-redis's);
 * - `touch` only resets the expiry, and only when the stored expiry is older than
 *   `touchAfterSeconds` — express-session touches on every request, and without a throttle every
 *   read becomes a write (connect-mongo's `touchAfter`);
 * - session ids are any non-empty string up to a length cap, as express-session's MemoryStore takes
 *   them (a custom `genid` may make `'/foo'` or `'%'`); stores keep them safe by never pasting an
 *   id into a path or a statement, not by refusing characters.
 */
import { InvalidOptionError } from '../errors';

/** The part of an express-session / @fastify/session session a store reads. */
export interface SessionLike {
  cookie?: {
    expires?: Date | string | number | null;
    maxAge?: number | null;
    originalMaxAge?: number | null;
  } | null;
  [key: string]: unknown;
}

/** Turns a session into stored text and back. Default: JSON. */
export interface SessionSerializer {
  stringify(session: SessionLike): string;
  parse(text: string): SessionLike;
}

export const jsonSerializer: SessionSerializer = Object.freeze({
  stringify: (session: SessionLike) => JSON.stringify(session),
  parse: (text: string) => JSON.parse(text) as SessionLike,
});

/** The default lifetime of a session without a cookie expiry: one day (express-session's). */
export const DEFAULT_SESSION_TTL_SECONDS = 86_400;

/**
 * When a session expires, in epoch ms: its cookie's `expires` date when it has one, else
 * `now + defaultTtlSeconds`. May be ≤ `now`: the caller must then destroy the session instead of
 * writing it.
 */
export function sessionExpiresAt(session: SessionLike, now: number, defaultTtlSeconds = DEFAULT_SESSION_TTL_SECONDS): number {
  const expires = session.cookie?.expires;
  if (expires !== undefined && expires !== null) {
    const at = expires instanceof Date ? expires.getTime() : new Date(expires).getTime();
    if (Number.isFinite(at)) return at;
  }
  const maxAge = session.cookie?.maxAge;
  if (typeof maxAge === 'number' && Number.isFinite(maxAge)) return now + maxAge;
  return now + defaultTtlSeconds * 1000;
}

/** A session's TTL in whole seconds, rounded up (0 or less: destroy it). */
export function sessionTtlSeconds(session: SessionLike, now: number, defaultTtlSeconds = DEFAULT_SESSION_TTL_SECONDS): number {
  return Math.ceil((sessionExpiresAt(session, now, defaultTtlSeconds) - now) / 1000);
}

/**
 * Whether a `touch` should write: only when the stored expiry is older than the throttle, i.e. the
 * new expiry extends the stored one by at least `touchAfterSeconds`. With a throttle of 0, always.
 */
export function shouldTouch(storedExpiresAt: number, newExpiresAt: number, touchAfterSeconds: number): boolean {
  if (touchAfterSeconds <= 0) return true;
  return newExpiresAt - storedExpiresAt >= touchAfterSeconds * 1000;
}

/**
 * The longest session id a store accepts, in UTF-16 code units (`id.length`). express-session's
 * own ids are 32 characters; 1024 leaves room for any custom `genid` (UUIDs, signed tokens, ids
 * with a tenant prefix) while bounding what a forged cookie can make a store key, query or hash:
 * at most 3072 UTF-8 bytes, which fits the SQL store's `VARBINARY(3072)` primary key.
 */
export const MAX_SESSION_ID_LENGTH = 1024;

/**
 * Whether a store accepts `id`: any non-empty, well-formed string of at most
 * `MAX_SESSION_ID_LENGTH` code units — every id express-session can hand a store, as its
 * MemoryStore, connect-redis and express-mysql-session accept them (`'%'`, `'/foo'`, `'a b'`,
 * Unicode). Well-formed means no lone surrogate: those have no UTF-8 form (they would become U+FFFD
 * in a Redis key or a SQL row, so two distinct ids would share one session), and express-session
 * could not put them in a cookie anyway (`encodeURIComponent` throws on them).
 *
 * Accepting such ids is safe because no store pastes an id into anything: Redis keys are
 * `prefix + id` (binary-safe, one key per id), SQL ids are bound parameters in a byte-exact
 * column, and file names are a hash of the id.
 */
export function isValidSessionId(id: unknown): id is string {
  if (typeof id !== 'string' || id.length === 0 || id.length > MAX_SESSION_ID_LENGTH) return false;
  for (let i = 0; i < id.length; i++) {
    const unit = id.charCodeAt(i);
    if (unit < 0xd800 || unit > 0xdfff) continue;
    if (unit > 0xdbff) return false; // a low surrogate without its high half
    const next = id.charCodeAt(i + 1);
    if (!(next >= 0xdc00 && next <= 0xdfff)) return false; // a high surrogate without its low half
    i++;
  }
  return true;
}

/** Throws `InvalidOptionError` naming `sid` when the id is not acceptable (see `isValidSessionId`). */
export function assertSessionId(id: unknown): string {
  if (!isValidSessionId(id)) {
    throw new InvalidOptionError(
      'sid',
      typeof id === 'string' && id.length > 32 ? `${id.slice(0, 32)}… (${id.length} characters)` : id,
      `must be a non-empty string of at most ${MAX_SESSION_ID_LENGTH} characters without lone surrogates`,
    );
  }
  return id;
}

export type StoreCallback<T> = (error: unknown, result?: T) => void;

/**
 * Run `operation` and report to `callback` when one is given (express-session's style), else return
 * the promise (for `await store.get(id)`). A callback that throws is not turned into a rejection of
 * the store's promise: it surfaces on the next tick, as it would from a plain callback API.
 */
export function settle<T>(operation: () => Promise<T>, callback?: StoreCallback<T>): Promise<T> | undefined {
  let promise: Promise<T>;
  try {
    promise = operation();
  } catch (error) {
    promise = Promise.reject(error);
  }
  if (typeof callback !== 'function') return promise;
  promise.then(
    (result) => queueMicrotask(() => callback(null, result)),
    (error: unknown) => queueMicrotask(() => callback(error)),
  );
  return undefined;
}
