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
 * - session ids are checked before they reach a key, a path or a query: express-session makes
 *   24-byte base64url ids, but a store must survive whatever a forged cookie carries.
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
 * The session ids a store accepts: 1–256 characters of `[A-Za-z0-9_-]` plus `.`, `:`, `+` and `=`
 * (express-session's ids, @fastify/session's, and UUIDs fit), not starting with a dot. Anything else —
 * `/`, `../`, NUL, spaces, quotes, Unicode — is refused before it touches a key, a path or a query.
 */
export const SESSION_ID_PATTERN = /^[A-Za-z0-9_\-:+=][A-Za-z0-9_\-.:+=]{0,255}$/;

export function isValidSessionId(id: unknown): id is string {
  return typeof id === 'string' && SESSION_ID_PATTERN.test(id) && !id.includes('..');
}

/** Throws `InvalidOptionError` naming `sid` when the id is not acceptable. */
export function assertSessionId(id: unknown): string {
  if (!isValidSessionId(id)) {
    throw new InvalidOptionError('sid', id, 'must be 1–256 characters of A–Z, a–z, 0–9, "_", "-", ".", ":", "+", "=", not starting with "." nor containing ".."');
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
