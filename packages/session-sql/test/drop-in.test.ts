// What someone coming from express-mysql-session meets: their option names refused with the
// Fulcrum equivalent, all() keyed by id, a touch throttle capped at half the lifetime (and 0 when
// asked), and errors that say which call failed, why, and what the store does next.
import { afterAll, describe, expect, it, vi } from 'vitest';
import { isInvalidOptionError, isStoreUnavailableError } from '@fulcrum/core';
import { SqlStore } from '@fulcrum/session-sql';
import { createPool, dropTables, freePort, requireMysql, uniqueTable } from './helpers';

const available = await requireMysql('SqlStore for express-mysql-session users');

function refusal(options: Record<string, unknown>): { path: string; message: string } {
  try {
    new SqlStore(options as never);
  } catch (error) {
    expect(isInvalidOptionError(error)).toBe(true);
    return { path: (error as { path: string }).path, message: (error as Error).message };
  }
  throw new Error(`accepted ${JSON.stringify(Object.keys(options))}`);
}

const cookie = (expiresAt: number) => ({ originalMaxAge: 10_000, expires: new Date(expiresAt).toISOString() });

describe.skipIf(!available)('SqlStore for express-mysql-session users', () => {
  const pool = createPool();
  const tables: string[] = [];
  const stores: SqlStore[] = [];
  const store = (options: Record<string, unknown> = {}) => {
    const table = uniqueTable('dropin');
    tables.push(table);
    const made = new SqlStore({ pool, table, cleanupIntervalMs: 0, ...options });
    stores.push(made);
    return made;
  };
  afterAll(async () => {
    for (const s of stores) await s.close();
    await dropTables(pool, ...tables);
    await pool.end();
  });

  it('refuses express-mysql-session and connect-redis option names and names the Fulcrum equivalent', () => {
    const cases: [string, unknown, RegExp][] = [
      ['expiration', 600_000, /`ttlSeconds`/],
      ['clearExpired', false, /`cleanupIntervalMs: 0`/],
      ['checkExpirationInterval', 900_000, /`cleanupIntervalMs`/],
      ['createDatabaseTable', true, /`createTable`/],
      ['schema', { tableName: 'sessions' }, /`table`/],
      ['endConnectionOnClose', true, /never ends your pool/],
      ['disableTouch', true, /`touchAfterSeconds`/],
      ['ttl', 600, /`ttlSeconds`/],
      ['prefix', 'sess:', /`table`/],
      ['host', '127.0.0.1', /pass it as `pool`/],
    ];
    for (const [key, value, hint] of cases) {
      const { path, message } = refusal({ pool, [key]: value });
      expect(path).toBe(`sqlStore.${key}`);
      expect(message).toMatch(hint);
    }
  });

  it('refuses an unknown option and lists the known ones', () => {
    const { path, message } = refusal({ pool, tabel: 'x' });
    expect(path).toBe('sqlStore.tabel');
    expect(message).toMatch(/is not an option \(known: pool, table, createTable/);
  });

  it('answers all() as an object keyed by session id', async () => {
    const s = store();
    const expiresAt = Date.now() + 600_000;
    await s.set('a', { cookie: cookie(expiresAt), n: 1 } as never);
    await s.set('b', { cookie: cookie(expiresAt), n: 2 } as never);
    const all = (await s.all()) as unknown as Record<string, { n: number }>;
    expect(Array.isArray(all)).toBe(false);
    expect(Object.getPrototypeOf(all)).toBeNull();
    expect(Object.keys(all).sort()).toEqual(['a', 'b']);
    expect(all.b!.n).toBe(2);
  });

  it('caps the default 60 s touch throttle at half a 10 s session, so a touch 5 s in is stored', async () => {
    const s = store();
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const start = Date.now();
      await s.set('short', { cookie: cookie(start + 10_000), n: 1 } as never);
      const read = await s.get('short');
      // 5 s later the 10 s session is half gone: the touch is due, although 5 s is far below 60 s.
      vi.setSystemTime(start + 5000);
      await s.touch('short', { ...(read as object), cookie: cookie(start + 15_000) } as never);
      const expiresOf = async () => ((await s.get('short')) as unknown as { cookie: { expires: string } }).cookie.expires;
      expect(await expiresOf()).toBe(cookie(start + 15_000).expires);
      // 1 s after that, an extension of 1 s is below the cap: not written.
      vi.setSystemTime(start + 6000);
      await s.touch('short', { ...(read as object), cookie: cookie(start + 16_000) } as never);
      expect(await expiresOf()).toBe(cookie(start + 15_000).expires);
    } finally {
      vi.useRealTimers();
    }
  });

  it('stores every touch with the throttle at 0, however small the extension', async () => {
    const s = store({ touchAfterSeconds: 0 });
    const now = Date.now();
    await s.set('zero', { cookie: cookie(now + 600_000) } as never);
    await s.touch('zero', { cookie: cookie(now + 600_001) } as never);
    expect(((await s.get('zero')) as unknown as { cookie: { expires: string } }).cookie.expires).toBe(cookie(now + 600_001).expires);
  });

  it('never writes a touched cookie over a newer set, nor back into a destroyed session', async () => {
    const s = store({ touchAfterSeconds: 0 });
    const now = Date.now();
    await s.set('race', { cookie: cookie(now + 600_000), v: 'old' } as never);
    const read = (await s.get('race')) as unknown as Record<string, unknown>;
    await s.set('race', { cookie: cookie(now + 600_000), v: 'new' } as never);
    await s.touch('race', { ...read, cookie: cookie(now + 700_000) } as never);
    expect(((await s.get('race')) as unknown as { v: string }).v).toBe('new');
    await s.destroy('race');
    await s.touch('race', { ...read, cookie: cookie(now + 800_000) } as never);
    expect(await s.get('race')).toBeNull();
  });

  it('says which call failed, why, and what it does next', async () => {
    const port = await freePort(); // nothing listens there
    const down = createPool(`mysql://root@127.0.0.1:${port}/test`, { connectTimeout: 500 });
    const s = new SqlStore({ pool: down, createTable: false, cleanupIntervalMs: 0, timeoutMs: 2000 });
    const error = await s.get('any')!.then(
      () => undefined,
      (e: unknown) => e,
    );
    await s.close();
    await down.end();
    expect(isStoreUnavailableError(error)).toBe(true);
    const message = (error as Error).message;
    expect(message).toMatch(/^SqlStore\.get failed: the connection was refused \(is the database running\?\); /);
    expect(message).toMatch(/this call fails now without queueing/);
    expect(message).not.toMatch(/127\.0\.0\.1|:\d{4,5}/);
  });
});
