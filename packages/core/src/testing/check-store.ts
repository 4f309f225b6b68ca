/**
 * `checkStore(factory)`: the conformance suite every session store in Fulcrum runs (Redis, SQL,
 * files) and any third-party express-session / @fastify/session store can run too. It drives the
 * store through its public methods only, in both calling styles (node callbacks, and promises when
 * the callback is omitted), and throws an Error naming the first case that failed.
 *
 * What it holds a store to, beyond "what was set comes back": a destroyed session never comes back
 * (not even through `touch`), the cookie's expiry is the session's TTL, hostile ids either round-trip
 * or fail with an error without touching another session (path traversal, NUL, SQL and glob
 * metacharacters, prototype keys, very long and non-ASCII ids), and concurrent writes of one id
 * leave one whole value. Timing is only ever asserted as "expired after its expiry", never as speed.
 *
 * Test-runner agnostic: a plain async function, usable from vitest, jest or `node:test`.
 */
import { ErrorCodes, FulcrumError } from '../errors';

/** The cookie part of a session, as express-session stores it (`expires` is a Date or its JSON). */
export interface SessionCookieData {
  maxAge?: number | null;
  originalMaxAge?: number | null;
  expires?: Date | string | null;
  [field: string]: unknown;
}

/** A session as a store receives it: any JSON data plus `cookie`. */
export interface SessionData {
  cookie: SessionCookieData;
  [field: string]: unknown;
}

/** Node-style callback: `error` is null/undefined on success. */
export type StoreCallback<T> = (error: unknown, result?: T) => void;

/**
 * The store interface the suite checks: express-session's `Store` methods, all required, each
 * taking an optional node-style callback and returning a promise when the callback is omitted.
 * (`ids` is Fulcrum's addition, as in connect-redis.) `all` may answer an array of sessions or an
 * object keyed by id (express-session's MemoryStore shape; then each key must be the session's id).
 */
export interface StoreUnderTest {
  get(sid: string, callback?: StoreCallback<SessionData | null | undefined>): Promise<SessionData | null | undefined> | void;
  set(sid: string, session: SessionData, callback?: StoreCallback<void>): Promise<void> | void;
  destroy(sid: string, callback?: StoreCallback<void>): Promise<void> | void;
  touch(sid: string, session: SessionData, callback?: StoreCallback<void>): Promise<void> | void;
  all(
    callback?: StoreCallback<SessionData[] | Record<string, SessionData> | null | undefined>,
  ): Promise<SessionData[] | Record<string, SessionData> | null | undefined> | void;
  length(callback?: StoreCallback<number>): Promise<number> | void;
  clear(callback?: StoreCallback<void>): Promise<void> | void;
  ids(callback?: StoreCallback<string[]>): Promise<string[]> | void;
}

export interface CheckStoreOptions {
  /**
   * Lifetime given to the short-lived sessions of the TTL cases, ms. Default 1000. Lower it for a
   * store with ms-precise expiry (e.g. Redis PX) to make the suite faster.
   */
  ttlMs?: number;
  /**
   * Extra wait past a session's expiry before it must be gone, ms: the store's expiry granularity
   * (a store that keeps expiry in whole seconds needs 1000). Default 1000.
   */
  expiryGraceMs?: number;
  /**
   * Skip the cases that wait for a session to expire (the "expires in the past" case still runs).
   * Only for a store that cannot expire sessions under a few seconds (e.g. a cleanup job that runs
   * every minute); document why where you set it. Default false.
   */
  skipExpiryWait?: boolean;
  /** How many concurrent writes of one id the concurrency case makes. Default 16. */
  concurrentWrites?: number;
  /**
   * The longest id the store accepts, in UTF-16 code units. When given, the suite checks that an id
   * of exactly this length round-trips and that `set()` of a longer one is refused with an error
   * (and `get()` of it finds nothing). Fulcrum's stores use core's `MAX_SESSION_ID_LENGTH` (1024).
   * Default: not checked.
   */
  maxIdLength?: number;
  /** Called once the store is no longer needed (close its client, remove its directory…). */
  teardown?: (store: StoreUnderTest) => unknown;
}

type Method = 'get' | 'set' | 'destroy' | 'touch' | 'all' | 'length' | 'clear' | 'ids';
const METHODS: readonly Method[] = ['get', 'set', 'destroy', 'touch', 'all', 'length', 'clear', 'ids'];

const HOSTILE_IDS: readonly string[] = [
  '../x',
  '../../../../etc/passwd',
  'a/b',
  'a\\b',
  '.',
  '..',
  '\u0000',
  'a\u0000b',
  'x'.repeat(4096),
  'ünïcödé-会话-🍪',
  '*',
  'sess:*',
  '%',
  '_',
  '%00',
  "'",
  '"',
  '`',
  "' OR 1=1 --",
  '"; DROP TABLE sessions; --',
  '__proto__',
  'constructor',
  'prototype',
  '\r\nX-Injected: 1',
  ' ',
  'CON',
];

/**
 * Ids a custom express-session `genid` can make and express-session's MemoryStore keeps: a store
 * must round-trip every one (refusing them breaks users migrating from MemoryStore, connect-redis
 * or express-mysql-session), list them exactly in `ids()` and `all()`, and keep each apart from
 * the others — including the pairs that a case-insensitive or space-padding collation, a lossy
 * encoding or a percent-decoding file name would merge.
 */
const GENID_IDS: readonly string[] = [
  '%',
  '%25',
  '/foo',
  '%2Ffoo',
  '../x',
  '../../etc/x',
  '/abs',
  '\\x',
  '.',
  '..',
  '.hidden',
  'a b',
  'a',
  'A',
  'a ',
  ' a',
  'a\u0000b',
  'a\nb',
  'ünïcödé-会话-🍪',
  'u\u0308',
  'ü',
  '__proto__',
  "' OR 1=1 --",
  '*',
  '?',
  'CON',
  'sess:x',
  '{tag}a',
  '{tag}b',
  '{}',
];

/** Thrown by the suite; `case` names the failed case. */
export class StoreConformanceError extends FulcrumError {
  readonly code = ErrorCodes.STORE_CONFORMANCE;
  readonly case: string;
  constructor(caseName: string, message: string, options?: { cause?: unknown }) {
    super(`checkStore: ${caseName}: ${message}`, options);
    this.name = 'StoreConformanceError';
    this.case = caseName;
  }
}

const host = globalThis as { setTimeout?: (fn: () => void, ms: number) => unknown };

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (typeof host.setTimeout !== 'function') throw new Error('checkStore needs a global setTimeout');
    host.setTimeout(resolve, ms);
  });
}

function describeError(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** JSON form of a session, minus the derived `cookie.maxAge` (a getter over `expires` in express-session). */
function normalize(session: unknown): unknown {
  if (session === null || session === undefined) return session;
  const copy = JSON.parse(JSON.stringify(session)) as Record<string, unknown>;
  const cookie = copy.cookie as Record<string, unknown> | undefined;
  if (cookie && typeof cookie === 'object') {
    delete cookie.maxAge;
    if (typeof cookie.expires === 'string') cookie.expires = Date.parse(cookie.expires);
  }
  return sortKeys(copy);
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (typeof value !== 'object' || value === null) return value;
  const sorted: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) sorted[key] = sortKeys((value as Record<string, unknown>)[key]);
  return sorted;
}

function sameSession(a: unknown, b: unknown): boolean {
  return JSON.stringify(normalize(a)) === JSON.stringify(normalize(b));
}

let sessionCounter = 0;

/** A session expiring `ttlMs` from now, with some payload. */
function makeSession(ttlMs: number, data: Record<string, unknown> = {}): SessionData {
  sessionCounter++;
  return {
    cookie: {
      originalMaxAge: ttlMs,
      maxAge: ttlMs,
      expires: new Date(Date.now() + ttlMs),
      httpOnly: true,
      path: '/',
    },
    user: { id: sessionCounter, name: 'Zoë "the tester" O\'Neil' },
    visits: sessionCounter,
    ...data,
  };
}

const LONG_TTL = 60 * 60 * 1000;

/**
 * Runs the store conformance suite against stores from `factory` (one store for the whole run; it
 * calls `clear()`, so give it a store of its own: its own prefix, table or directory). Resolves when
 * every case passed; rejects with a `StoreConformanceError` naming the first failed case.
 */
export async function checkStore(factory: () => Promise<StoreUnderTest> | StoreUnderTest, options: CheckStoreOptions = {}): Promise<void> {
  const ttlMs = options.ttlMs ?? 1000;
  const graceMs = options.expiryGraceMs ?? 1000;
  const writers = options.concurrentWrites ?? 16;
  const maxIdLength = options.maxIdLength;
  if (!(ttlMs > 0) || !(graceMs >= 0) || !(writers >= 2)) {
    throw new RangeError('checkStore: ttlMs must be > 0, expiryGraceMs ≥ 0 and concurrentWrites ≥ 2');
  }
  if (maxIdLength !== undefined && !(Number.isSafeInteger(maxIdLength) && maxIdLength >= 64)) {
    throw new RangeError(`checkStore: maxIdLength must be an integer ≥ 64, got ${String(maxIdLength)}`);
  }
  const store = await factory();
  for (const method of METHODS) {
    if (typeof (store as unknown as Record<string, unknown>)?.[method] !== 'function') {
      throw new StoreConformanceError('interface', `the store has no ${method}() method`);
    }
  }
  const run = `chk${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  const id = (name: string) => `${run}-${name}`;

  /** Call a method in callback style; fails the case on a double or missing callback. */
  const viaCallback = <T>(caseName: string, method: Method, ...args: unknown[]): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      let calls = 0;
      const callback: StoreCallback<T> = (error, result) => {
        calls++;
        if (calls > 1) {
          reject(new StoreConformanceError(caseName, `${method}() called its callback twice`));
          return;
        }
        if (error !== null && error !== undefined) reject(error);
        else resolve(result as T);
      };
      try {
        const returned = (store[method] as (...a: unknown[]) => unknown)(...args, callback);
        // A store that also returns a promise in callback style must not leave it rejecting unhandled.
        if (returned && typeof (returned as PromiseLike<unknown>).then === 'function') {
          Promise.resolve(returned).catch(() => undefined);
        }
      } catch (error) {
        reject(error);
      }
    });

  /** Call a method without a callback; it must return a promise. */
  const viaPromise = async <T>(caseName: string, method: Method, ...args: unknown[]): Promise<T> => {
    const returned = (store[method] as (...a: unknown[]) => unknown)(...args);
    if (!returned || typeof (returned as PromiseLike<unknown>).then !== 'function') {
      throw new StoreConformanceError(caseName, `${method}() without a callback must return a promise`);
    }
    return await (returned as PromiseLike<T>);
  };

  const fail = (caseName: string, message: string, cause?: unknown): never => {
    throw new StoreConformanceError(caseName, message, cause === undefined ? undefined : { cause });
  };

  const step = async <T>(caseName: string, what: string, action: Promise<T>): Promise<T> => {
    try {
      return await action;
    } catch (error) {
      if (error instanceof StoreConformanceError) throw error;
      return fail(caseName, `${what} failed: ${describeError(error)}`, error);
    }
  };

  const getSession = (caseName: string, sid: string, style: 'callback' | 'promise' = 'promise') =>
    step(
      caseName,
      `get(${JSON.stringify(sid.slice(0, 40))})`,
      style === 'callback'
        ? viaCallback<SessionData | null | undefined>(caseName, 'get', sid)
        : viaPromise<SessionData | null | undefined>(caseName, 'get', sid),
    );

  const idsOf = async (caseName: string): Promise<string[]> => {
    const ids = await step(caseName, 'ids()', viaPromise<unknown>(caseName, 'ids'));
    if (!Array.isArray(ids) || ids.some((x) => typeof x !== 'string')) fail(caseName, 'ids() must answer an array of strings');
    return [...(ids as string[])].sort();
  };

  const allOf = async (caseName: string, style: 'callback' | 'promise'): Promise<SessionData[]> => {
    const all = await step(caseName, 'all()', style === 'callback' ? viaCallback<unknown>(caseName, 'all') : viaPromise<unknown>(caseName, 'all'));
    if (all === null || all === undefined) return [];
    if (Array.isArray(all)) return all as SessionData[];
    if (typeof all === 'object') return Object.values(all as Record<string, SessionData>);
    return fail(caseName, `all() must answer an array or an object, got ${typeof all}`);
  };

  const lengthOf = async (caseName: string, style: 'callback' | 'promise'): Promise<number> => {
    const length = await step(caseName, 'length()', style === 'callback' ? viaCallback<unknown>(caseName, 'length') : viaPromise<unknown>(caseName, 'length'));
    if (typeof length !== 'number' || !Number.isInteger(length) || length < 0) {
      fail(caseName, `length() must answer a non-negative integer, got ${String(length)}`);
    }
    return length as number;
  };

  try {
    // ── round trip, both styles ────────────────────────────────────────────────────────────────
    {
      const c = 'round trip';
      const a = makeSession(LONG_TTL);
      const b = makeSession(LONG_TTL, { nested: { list: [1, 'two', { three: null }], flag: false } });
      await step(c, 'set() with a callback', viaCallback(c, 'set', id('rt-a'), a));
      await step(c, 'set() without a callback', viaPromise(c, 'set', id('rt-b'), b));
      if (!sameSession(await getSession(c, id('rt-a'), 'promise'), a)) fail(c, 'get() did not return what set() stored');
      if (!sameSession(await getSession(c, id('rt-b'), 'callback'), b)) fail(c, 'get() with a callback did not return what was stored');
      const updated = { ...a, visits: 99 };
      await step(c, 'set() over an existing id', viaPromise(c, 'set', id('rt-a'), updated));
      if (!sameSession(await getSession(c, id('rt-a')), updated)) fail(c, 'set() over an existing id did not replace it');
    }

    // ── missing ids ────────────────────────────────────────────────────────────────────────────
    {
      const c = 'missing id';
      for (const style of ['callback', 'promise'] as const) {
        const got = await getSession(c, id('never-set'), style);
        if (got !== null && got !== undefined) fail(c, `get() of an unknown id (${style}) must answer null or undefined`);
      }
      await step(c, 'destroy() of an unknown id', viaPromise(c, 'destroy', id('never-set')));
    }

    // ── destroy ────────────────────────────────────────────────────────────────────────────────
    {
      const c = 'destroy';
      await step(c, 'set()', viaPromise(c, 'set', id('d1'), makeSession(LONG_TTL)));
      await step(c, 'set()', viaPromise(c, 'set', id('d2'), makeSession(LONG_TTL)));
      await step(c, 'destroy() with a callback', viaCallback(c, 'destroy', id('d1')));
      await step(c, 'destroy() without a callback', viaPromise(c, 'destroy', id('d2')));
      if ((await getSession(c, id('d1'))) != null) fail(c, 'a destroyed session (callback style) came back');
      if ((await getSession(c, id('d2'))) != null) fail(c, 'a destroyed session (promise style) came back');
    }

    // ── touch never revives ─────────────────────────────────────────────────────────────────────
    {
      const c = 'touch never revives a destroyed session';
      const session = makeSession(LONG_TTL);
      await step(c, 'set()', viaPromise(c, 'set', id('t1'), session));
      await step(c, 'destroy()', viaPromise(c, 'destroy', id('t1')));
      // Either answer is fine (an error or success); what matters is the session staying gone.
      await viaCallback(c, 'touch', id('t1'), makeSession(LONG_TTL)).catch(() => undefined);
      await Promise.resolve()
        .then(() => viaPromise(c, 'touch', id('t1'), makeSession(LONG_TTL)))
        .catch(() => undefined);
      await Promise.resolve()
        .then(() => viaPromise(c, 'touch', id('t-never'), makeSession(LONG_TTL)))
        .catch(() => undefined);
      if ((await getSession(c, id('t1'))) != null) fail(c, 'touch() brought a destroyed session back');
      if ((await getSession(c, id('t-never'))) != null) fail(c, 'touch() created a session that was never set');
    }

    // ── expiry in the past ─────────────────────────────────────────────────────────────────────
    {
      const c = 'a session whose cookie already expired';
      const session = makeSession(LONG_TTL);
      session.cookie.expires = new Date(Date.now() - 60_000);
      session.cookie.maxAge = -60_000;
      await viaPromise(c, 'set', id('past'), session).catch(() => undefined);
      if ((await getSession(c, id('past'))) != null) fail(c, 'get() returned a session whose cookie expired a minute ago');
    }

    // ── TTL from the cookie, and touch extending it ─────────────────────────────────────────────
    if (!options.skipExpiryWait) {
      const c = 'expiry from the cookie';
      const short = makeSession(ttlMs);
      const touched = makeSession(ttlMs);
      const written = Date.now();
      await step(c, 'set()', viaPromise(c, 'set', id('ttl-short'), short));
      await step(c, 'set()', viaPromise(c, 'set', id('ttl-touched'), touched));
      if (!sameSession(await getSession(c, id('ttl-short')), short)) fail(c, 'a session was gone before its expiry');
      const extended = { ...touched, cookie: { ...touched.cookie, expires: new Date(Date.now() + LONG_TTL), maxAge: LONG_TTL } };
      await step('touch extends a session', 'touch() with a callback', viaCallback('touch extends a session', 'touch', id('ttl-touched'), extended));
      await sleep(Math.max(0, written + ttlMs + graceMs - Date.now()));
      if ((await getSession(c, id('ttl-short'))) != null) {
        fail(c, `a session was still returned ${graceMs} ms after its cookie expired`);
      }
      if ((await getSession('touch extends a session', id('ttl-touched'))) == null) {
        fail('touch extends a session', 'a session touched with a later expiry was gone at its original expiry');
      }
    }

    // ── all / length / ids / clear ─────────────────────────────────────────────────────────────
    {
      const c = 'all, length, ids and clear agree';
      await step(c, 'clear() with a callback', viaCallback(c, 'clear'));
      if ((await lengthOf(c, 'promise')) !== 0) fail(c, 'length() is not 0 after clear()');
      if ((await idsOf(c)).length !== 0) fail(c, 'ids() is not empty after clear()');
      if ((await allOf(c, 'callback')).length !== 0) fail(c, 'all() is not empty after clear()');
      const sessions = [1, 2, 3].map((n) => makeSession(LONG_TTL, { n }));
      const names = sessions.map((_, i) => id(`all-${i}`));
      for (let i = 0; i < sessions.length; i++) await step(c, 'set()', viaPromise(c, 'set', names[i], sessions[i]));
      if ((await lengthOf(c, 'callback')) !== 3) fail(c, 'length() is not 3 after 3 set()s');
      const ids = await idsOf(c);
      if (JSON.stringify(ids) !== JSON.stringify([...names].sort())) fail(c, `ids() answered ${JSON.stringify(ids)}`);
      const all = await allOf(c, 'promise');
      const expected = sessions.map((s) => JSON.stringify(normalize(s))).sort();
      const actual = all.map((s) => JSON.stringify(normalize(s))).sort();
      if (JSON.stringify(actual) !== JSON.stringify(expected)) fail(c, 'all() does not hold exactly the sessions stored');
      // Keyed by id (express-session's MemoryStore shape): each key must be the id it was stored under.
      const keyed = await step(c, 'all()', viaPromise<unknown>(c, 'all'));
      if (keyed !== null && typeof keyed === 'object' && !Array.isArray(keyed)) {
        const byId = keyed as Record<string, SessionData>;
        if (JSON.stringify(Object.keys(byId).sort()) !== JSON.stringify([...names].sort()))
          fail(c, `all() is keyed by ${JSON.stringify(Object.keys(byId))}, not by the stored ids`);
        names.forEach((name, i) => {
          if (JSON.stringify(normalize(byId[name]!)) !== JSON.stringify(normalize(sessions[i]!)))
            fail(c, `all()[${JSON.stringify(name)}] is not the session stored under that id`);
        });
      }
      await step(c, 'destroy()', viaPromise(c, 'destroy', names[0]));
      if ((await lengthOf(c, 'promise')) !== 2) fail(c, 'length() is not 2 after destroying one of 3');
      if ((await idsOf(c)).includes(names[0]!)) fail(c, 'ids() still lists a destroyed session');
      await step(c, 'clear() without a callback', viaPromise(c, 'clear'));
      if ((await lengthOf(c, 'callback')) !== 0) fail(c, 'length() is not 0 after clear()');
      if ((await getSession(c, names[1]!)) != null) fail(c, 'get() returned a session after clear()');
    }

    // ── hostile ids ─────────────────────────────────────────────────────────────────────────────
    {
      const c = 'hostile ids';
      const canaryId = id('canary');
      const canary = makeSession(LONG_TTL, { canary: true });
      await step(c, 'set() of the canary', viaPromise(c, 'set', canaryId, canary));
      const checkCanary = async (after: string) => {
        if (!sameSession(await getSession(c, canaryId), canary)) fail(c, `another session changed after ${after}`);
      };
      for (const hostile of HOSTILE_IDS) {
        const shown = JSON.stringify(hostile.length > 40 ? `${hostile.slice(0, 20)}…(${hostile.length} chars)` : hostile);
        // Before anything was stored under it, the id must find nothing (a LIKE or glob must not match the canary).
        let before: unknown;
        try {
          before = await viaPromise(c, 'get', hostile);
        } catch (error) {
          if (error instanceof StoreConformanceError) throw error;
          before = null; // rejecting the id is allowed
        }
        if (before !== null && before !== undefined) fail(c, `get(${shown}) found a session before any was stored under it`);
        const session = makeSession(LONG_TTL, { hostile });
        let stored = true;
        try {
          await viaPromise(c, 'set', hostile, session);
        } catch (error) {
          if (error instanceof StoreConformanceError) throw error;
          stored = false;
        }
        await checkCanary(`set(${shown})`);
        if (stored) {
          const got = await getSession(c, hostile);
          if (!sameSession(got, session)) fail(c, `set(${shown}) succeeded but get() did not return the same session`);
        }
        try {
          await viaPromise(c, 'touch', hostile, session);
        } catch (error) {
          if (error instanceof StoreConformanceError) throw error;
        }
        try {
          await viaPromise(c, 'destroy', hostile);
        } catch (error) {
          if (error instanceof StoreConformanceError) throw error;
          if (stored) fail(c, `destroy(${shown}) failed for an id set() accepted: ${describeError(error)}`, error);
        }
        await checkCanary(`destroy(${shown})`);
        if ((await getSession(c, hostile).catch(() => null)) != null) fail(c, `destroy(${shown}) left the session in place`);
      }
      await step(c, 'destroy() of the canary', viaPromise(c, 'destroy', canaryId));
    }

    // ── ids a custom genid makes ────────────────────────────────────────────────────────────────
    {
      const c = 'ids a custom genid makes';
      await step(c, 'clear()', viaPromise(c, 'clear'));
      const ids = [...GENID_IDS];
      if (maxIdLength !== undefined) ids.push(`${'L'.repeat(maxIdLength - 3)}/é%`);
      const shown = (sid: string) => JSON.stringify(sid.length > 40 ? `${sid.slice(0, 20)}…(${sid.length} chars)` : sid);
      const sessions = new Map<string, SessionData>();
      for (const sid of ids) {
        if ((await getSession(c, sid)) != null) fail(c, `get(${shown(sid)}) found a session before any was stored under it`);
        const session = makeSession(LONG_TTL, { genid: sid });
        sessions.set(sid, session);
        await step(c, `set(${shown(sid)})`, viaPromise(c, 'set', sid, session));
      }
      for (const sid of ids) {
        const got = await getSession(c, sid);
        if (!sameSession(got, sessions.get(sid))) fail(c, `get(${shown(sid)}) did not return the session set under that id (ids collided or were altered)`);
      }
      const listed = await idsOf(c);
      if (JSON.stringify(listed) !== JSON.stringify([...ids].sort())) {
        fail(c, `ids() did not list exactly the ids set: got ${JSON.stringify(listed.map((x) => (x.length > 40 ? `${x.slice(0, 20)}…` : x)))}`);
      }
      const all = await step(c, 'all()', viaPromise<unknown>(c, 'all'));
      if (all !== null && typeof all === 'object' && !Array.isArray(all)) {
        const keys = Object.keys(all).sort();
        if (JSON.stringify(keys) !== JSON.stringify([...ids].sort())) fail(c, 'all() is not keyed by exactly the ids set');
        for (const sid of ids) {
          if (!sameSession((all as Record<string, unknown>)[sid], sessions.get(sid))) fail(c, `all()[${shown(sid)}] is not the session set under that id`);
        }
      } else if (!Array.isArray(all) || all.length !== ids.length) {
        fail(c, `all() did not answer ${ids.length} sessions`);
      }
      const first = ids[0]!;
      const touched = makeSession(LONG_TTL * 2, { genid: first });
      await step(c, `touch(${shown(first)})`, viaPromise(c, 'touch', first, touched));
      for (const sid of ids) {
        await step(c, `destroy(${shown(sid)})`, viaPromise(c, 'destroy', sid));
        if ((await getSession(c, sid)) != null) fail(c, `destroy(${shown(sid)}) left the session in place`);
      }
      if ((await lengthOf(c, 'promise')) !== 0) fail(c, 'length() is not 0 after destroying every genid id');
      if (maxIdLength !== undefined) {
        const tooLong = 'L'.repeat(maxIdLength + 1);
        let refused = false;
        try {
          await viaPromise(c, 'set', tooLong, makeSession(LONG_TTL));
        } catch (error) {
          if (error instanceof StoreConformanceError) throw error;
          refused = true;
        }
        if (!refused) fail(c, `set() of an id of ${maxIdLength + 1} characters (over maxIdLength) succeeded`);
        let found: unknown = null;
        try {
          found = await viaPromise(c, 'get', tooLong);
        } catch (error) {
          if (error instanceof StoreConformanceError) throw error;
        }
        if (found != null) fail(c, `get() of an id over maxIdLength found a session`);
      }
    }

    // ── concurrent writes ──────────────────────────────────────────────────────────────────────
    {
      const c = 'concurrent writes of one id';
      const sid = id('race');
      // Big, writer-specific payloads: a torn or interleaved write shows as a payload that does not
      // match its writer.
      const sessions = Array.from({ length: writers }, (_, writer) =>
        makeSession(LONG_TTL, { writer, payload: String.fromCharCode(65 + (writer % 26)).repeat(32_768 + writer) }),
      );
      const results = await Promise.allSettled(sessions.map((s) => Promise.resolve().then(() => viaPromise(c, 'set', sid, s))));
      if (results.every((r) => r.status === 'rejected')) fail(c, 'every concurrent set() failed');
      const got = await getSession(c, sid);
      if (got == null) fail(c, 'no value after concurrent set()s');
      const writer = (got as SessionData).writer;
      const match = typeof writer === 'number' ? sessions[writer] : undefined;
      if (match === undefined || !sameSession(got, match)) fail(c, 'the value left by concurrent set()s is not one of the values written');
      await step(c, 'destroy()', viaPromise(c, 'destroy', sid));
    }
  } finally {
    if (options.teardown) await options.teardown(store);
  }
}
