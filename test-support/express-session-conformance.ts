/**
 * The express-session behaviours a store must get right, driven through real express-session in a
 * real Express app over real HTTP on 127.0.0.1 — the store-facing part of express-session's own
 * `test/session.js` (save, touch resets the stored expiration, rolling, regenerate, destroy,
 * `resave: false`, `saveUninitialized: false`, cookie `maxAge`), written for Fulcrum's stores.
 *
 * Time is a fake clock, not sleeps: `Date` is faked (timers stay real, so sockets and pools work),
 * and each package says how its backing service follows the clock (`advance`): SQL and file stores
 * compare stored expiries with `Date.now()`, so faking `Date` is enough; Redis keeps TTLs on the
 * server, so the Redis suite also moves every key's TTL back by the same amount.
 *
 * Every case runs with the touch throttle at 0 and at the store's default (`touchAfterSeconds`
 * undefined), with sessions short enough (`maxAge` 10 s) that an uncapped 60 s throttle would log
 * an active rolling user out.
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest';

/** A store method, whatever its exact callback types (each store declares its own). */
type StoreMethod = (...args: never[]) => unknown;

/** What the suite needs from express-session's `Store` (the methods it calls in assertions). */
export interface ConformanceStore {
  get: StoreMethod;
  set: StoreMethod;
  touch: StoreMethod;
  all: StoreMethod;
  length: StoreMethod;
}

type Callback<T> = (error: unknown, value?: T) => void;
/** Calls `method` of `store` in callback style. */
function call<T>(store: ConformanceStore, method: keyof ConformanceStore, ...args: unknown[]): Promise<T | undefined> {
  return new Promise((resolve, reject) => {
    const callback: Callback<T> = (error, value) => (error ? reject(error) : resolve(value));
    (store[method] as unknown as (...a: unknown[]) => unknown).apply(store, [...args, callback]);
  });
}

interface StoredSession {
  cookie: { expires?: string | Date | null; originalMaxAge?: number | null };
  [field: string]: unknown;
}

export interface ExpressSessionConformanceOptions<S extends ConformanceStore> {
  /** Appears in the suite's name. */
  name: string;
  /** The `express` default export (passed in, so this file resolves no package itself). */
  express: () => ExpressApp;
  /** The `express-session` default export. */
  session: (options: Record<string, unknown>) => unknown;
  /** A new, empty store; `touchAfterSeconds` undefined means the store's default. */
  makeStore(touchAfterSeconds: number | undefined): S | Promise<S>;
  /** Releases what `makeStore` made. */
  closeStore(store: S): unknown;
  /**
   * Moves the backing service's clock forward by `ms` after `Date` moved (e.g. shorten every Redis
   * TTL). Default: nothing (the store compares with `Date.now()`).
   */
  advance?(store: S, ms: number): Promise<void>;
}

interface ExpressApp {
  use(handler: unknown): void;
  get(path: string, handler: (req: Request, res: Response, next: (error?: unknown) => void) => void): void;
  listen(port: number, host: string): Server;
}

interface Request {
  session: Record<string, unknown> & {
    id: string;
    regenerate(callback: (error?: unknown) => void): void;
    destroy(callback: (error?: unknown) => void): void;
  };
  sessionID: string;
}

interface Response {
  json(body: unknown): void;
}

const MAX_AGE_MS = 10_000;
const SECRET = 'conformance secret';

/** A one-cookie client: keeps the latest session cookie the app set. */
class Client {
  cookie: string | undefined;
  constructor(readonly base: string) {}
  async get(path: string): Promise<{ status: number; body: Record<string, unknown>; setCookie: string | null }> {
    const response = await fetch(this.base + path, { headers: this.cookie ? { cookie: this.cookie } : {} });
    const setCookie = response.headers.get('set-cookie');
    if (setCookie) this.cookie = setCookie.split(';')[0];
    return { status: response.status, body: (await response.json()) as Record<string, unknown>, setCookie };
  }
}

/** Registers the suite (one `describe` per throttle setting) in the calling test file. */
export function describeExpressSessionConformance<S extends ConformanceStore>(options: ExpressSessionConformanceOptions<S>): void {
  const servers: Server[] = [];
  const stores: S[] = [];

  afterAll(async () => {
    await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
    for (const store of stores.splice(0)) await options.closeStore(store);
  });

  for (const touchAfterSeconds of [0, undefined]) {
    describe(`${options.name} behind express-session, touch throttle ${touchAfterSeconds === undefined ? 'at its default' : 'at 0'}`, () => {
      beforeEach(() => {
        vi.useFakeTimers({ toFake: ['Date'] });
        vi.setSystemTime(new Date('2030-01-01T00:00:00Z'));
      });
      afterEach(() => {
        vi.useRealTimers();
      });

      async function start(sessionOptions: Record<string, unknown> = {}) {
        const store = await options.makeStore(touchAfterSeconds);
        stores.push(store);
        const calls = { set: 0, touch: 0 };
        const set = store.set as unknown as (...args: unknown[]) => unknown;
        const touch = store.touch as unknown as (...args: unknown[]) => unknown;
        // Counted, not replaced: the real methods run.
        store.set = ((...args: unknown[]) => {
          calls.set++;
          return set.apply(store, args);
        }) as S['set'];
        store.touch = ((...args: unknown[]) => {
          calls.touch++;
          return touch.apply(store, args);
        }) as S['touch'];
        const app = options.express();
        app.use(
          options.session({
            store,
            secret: SECRET,
            name: 'sid',
            resave: false,
            saveUninitialized: false,
            cookie: { maxAge: MAX_AGE_MS },
            ...sessionOptions,
          }),
        );
        app.get('/inc', (req, res) => {
          req.session.views = ((req.session.views as number | undefined) ?? 0) + 1;
          res.json({ views: req.session.views, id: req.sessionID });
        });
        app.get('/peek', (req, res) => res.json({ views: req.session.views ?? 0, id: req.sessionID }));
        app.get('/regenerate', (req, res, next) => {
          const before = req.sessionID;
          const views = req.session.views;
          req.session.regenerate((error) => {
            if (error) return next(error);
            req.session.views = views;
            res.json({ before, id: req.sessionID, views });
          });
        });
        app.get('/logout', (req, res, next) => {
          const id = req.sessionID;
          req.session.destroy((error) => (error ? next(error) : res.json({ id })));
        });
        const server = app.listen(0, '127.0.0.1');
        servers.push(server);
        await new Promise((resolve) => server.once('listening', resolve));
        const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        const advance = async (ms: number) => {
          vi.setSystemTime(Date.now() + ms);
          await options.advance?.(store, ms);
        };
        const stored = (sid: string) => call<StoredSession | null>(store, 'get', sid);
        return { store, calls, client: () => new Client(base), advance, stored };
      }

      it('saves a modified new session and hands it back on the next request', async () => {
        const { client, stored } = await start();
        const visitor = client();
        const first = await visitor.get('/inc');
        expect(first.body.views).toBe(1);
        expect(first.setCookie).toMatch(/^sid=s%3A/);
        expect((await stored(first.body.id as string))?.views).toBe(1);
        expect((await visitor.get('/inc')).body).toEqual({ views: 2, id: first.body.id });
        expect((await stored(first.body.id as string))?.views).toBe(2);
      });

      it('stores nothing and sets no cookie for an untouched session (saveUninitialized: false)', async () => {
        const { client, store, calls } = await start();
        const response = await client().get('/peek');
        expect(response.setCookie).toBeNull();
        expect(calls.set).toBe(0);
        expect(await call<number>(store, 'length')).toBe(0);
      });

      it('does not write back an unmodified session (resave: false) but touches it', async () => {
        const { client, calls } = await start();
        const visitor = client();
        await visitor.get('/inc');
        expect(calls).toEqual({ set: 1, touch: 0 });
        await visitor.get('/peek');
        expect(calls).toEqual({ set: 1, touch: 1 });
      });

      it('resets the stored expiration when express-session touches the session', async () => {
        const { client, stored, advance } = await start();
        const visitor = client();
        const id = (await visitor.get('/inc')).body.id as string;
        const before = new Date((await stored(id))!.cookie.expires!).getTime();
        expect(before).toBe(Date.now() + MAX_AGE_MS);
        // With the throttle at 0 any extension is written; at the default, the cap (half of the
        // 10 s lifetime) decides: an extension of 5 s must be written.
        const step = touchAfterSeconds === 0 ? 1000 : MAX_AGE_MS / 2;
        await advance(step);
        await visitor.get('/peek');
        const after = new Date((await stored(id))!.cookie.expires!).getTime();
        expect(after).toBe(before + step);
      });

      it('keeps an active user’s rolling session alive long past maxAge, and expires it once idle', async () => {
        const { client, advance } = await start({ rolling: true });
        const visitor = client();
        const id = (await visitor.get('/inc')).body.id;
        // Twelve requests that do not change the session, 4 s apart: 48 s of activity against a
        // 10 s lifetime. Only touch keeps the session; an uncapped 60 s throttle would lose it.
        for (let i = 0; i < 12; i++) {
          await advance(4000);
          const response = await visitor.get('/peek');
          expect(response.body, `request ${i + 1}, ${(i + 1) * 4} s in`).toEqual({ views: 1, id });
          expect(response.setCookie, 'rolling: every response renews the cookie').toMatch(/^sid=/);
        }
        await advance(MAX_AGE_MS + 1);
        expect((await visitor.get('/peek')).body.views).toBe(0);
      });

      it('gives a new id on regenerate and removes the old session from the store', async () => {
        const { client, stored } = await start();
        const visitor = client();
        const old = (await visitor.get('/inc')).body.id as string;
        const regenerated = (await visitor.get('/regenerate')).body;
        expect(regenerated.before).toBe(old);
        expect(regenerated.id).not.toBe(old);
        expect(await stored(old)).toBeNull();
        expect((await stored(regenerated.id as string))?.views).toBe(1);
        expect((await visitor.get('/peek')).body).toEqual({ views: 1, id: regenerated.id });
      });

      it('removes a destroyed session, and its cookie then starts a new one', async () => {
        const { client, stored } = await start();
        const visitor = client();
        const id = (await visitor.get('/inc')).body.id as string;
        const cookie = visitor.cookie;
        expect((await visitor.get('/logout')).body.id).toBe(id);
        expect(await stored(id)).toBeNull();
        visitor.cookie = cookie;
        const after = await visitor.get('/peek');
        expect(after.body.views).toBe(0);
        expect(after.body.id).not.toBe(id);
      });

      it('expires a session at its cookie maxAge, and keeps it until then', async () => {
        const { client, stored, advance } = await start();
        const visitor = client();
        const first = await visitor.get('/inc');
        const id = first.body.id as string;
        expect(new Date(/expires=([^;]+)/i.exec(first.setCookie!)![1]!).getTime()).toBe(Math.floor((Date.now() + MAX_AGE_MS) / 1000) * 1000);
        expect((await stored(id))?.cookie.originalMaxAge).toBe(MAX_AGE_MS);
        await advance(MAX_AGE_MS - 1000);
        expect(await stored(id)).not.toBeNull();
        await advance(1001);
        expect(await stored(id)).toBeNull();
        expect((await visitor.get('/peek')).body.views).toBe(0);
      });

      it('lists sessions with all() keyed by session id, as express-session’s MemoryStore does', async () => {
        const { client, store } = await start();
        const a = (await client().get('/inc')).body.id as string;
        const b = (await client().get('/inc')).body.id as string;
        const all = (await call<unknown>(store, 'all')) as Record<string, StoredSession>;
        expect(Array.isArray(all)).toBe(false);
        expect(Object.keys(all).sort()).toEqual([a, b].sort());
        expect(all[a]!.views).toBe(1);
        expect(all[a]!.cookie.originalMaxAge).toBe(MAX_AGE_MS);
      });
    });
  }
}
