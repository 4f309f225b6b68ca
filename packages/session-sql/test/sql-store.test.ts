import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import session from 'express-session';
import type mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInvalidOptionError, isStoreUnavailableError } from '@fulcrum/core';
import { MAX_SESSION_ID_LENGTH } from '@fulcrum/core/session';
import { FakeClock, checkStore, type StoreUnderTest } from '@fulcrum/core/testing';
import { deferred, waitFor } from '../../../test-support/wait-for';
import { SqlStore, SqlContentionError, isSessionConflictError, classifyFailure } from '@fulcrum/session-sql';
import type { PoolLike } from '@fulcrum/session-sql';
import { createPool, dropTables, requireMysql, uniqueTable, readSession } from './helpers';

const available = await requireMysql('SqlStore tests');

/** Wraps a promise pool and records every statement sent through it. */
function spyPool(pool: mysql.Pool) {
  const statements: { sql: string; params: unknown[] }[] = [];
  const spied: PoolLike = {
    async getConnection() {
      const connection = await pool.getConnection();
      return new Proxy(connection, {
        get(target, property, receiver) {
          if (property === 'execute' || property === 'query') {
            return (sql: string, params: unknown[] = []) => {
              statements.push({ sql, params });
              return (target[property] as (s: string, p: unknown[]) => unknown).call(target, sql, params);
            };
          }
          const value = Reflect.get(target, property, receiver) as unknown;
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      });
    },
  };
  return { pool: spied, statements };
}

function sessionFor(ttlMs: number, data: Record<string, unknown> = {}, now = Date.now()) {
  return { cookie: { originalMaxAge: ttlMs, expires: new Date(now + ttlMs), httpOnly: true, path: '/' }, ...data };
}

describe('SqlStore options', () => {
  const pool = { getConnection: () => Promise.reject(new Error('must not be called')) };

  it('refuses a table name that is not a plain identifier before any SQL runs', () => {
    for (const table of ['sessions; DROP TABLE x', 'a`b', 'db.sessions', '1abc', '', 'x'.repeat(49), 'sess ions']) {
      let caught: unknown;
      try {
        new SqlStore({ pool, table, cleanupIntervalMs: 0 });
      } catch (error) {
        caught = error;
      }
      expect(isInvalidOptionError(caught), table).toBe(true);
      expect((caught as { path: string }).path).toBe('sqlStore.table');
    }
  });

  it('names the option path and the value of an invalid option', () => {
    expect(() => new SqlStore({ pool, touchAfterSeconds: -1 })).toThrow(/sqlStore\.touchAfterSeconds.*-1/);
    expect(() => new SqlStore({ pool, optimistic: 'yes' as never })).toThrow(/sqlStore\.optimistic/);
    expect(() => new SqlStore({ pool, retry: { baseDelayMs: 100, maxDelayMs: 10 } })).toThrow(/sqlStore\.retry\.maxDelayMs/);
    expect(() => new SqlStore({ pool, galera: { syncWait: 99 } })).toThrow(/sqlStore\.galera\.syncWait/);
    expect(() => new SqlStore({ pool: {} as never })).toThrow(/sqlStore\.pool/);
  });
});

describe('failure classification', () => {
  it('tells deadlocks, non-primary nodes and lost connections apart', () => {
    expect(classifyFailure({ errno: 1213, code: 'ER_LOCK_DEADLOCK' })).toBe('contention');
    expect(classifyFailure({ errno: 1205, code: 'ER_LOCK_WAIT_TIMEOUT' })).toBe('contention');
    expect(classifyFailure({ errno: 1047, code: 'ER_UNKNOWN_COM_ERROR' })).toBe('node');
    expect(classifyFailure({ code: 'ECONNREFUSED' })).toBe('connection');
    expect(classifyFailure({ code: 'PROTOCOL_CONNECTION_LOST', fatal: true })).toBe('connection');
    expect(classifyFailure({ errno: 1062, code: 'ER_DUP_ENTRY' })).toBe('other');
  });
});

describe.skipIf(!available)('SqlStore on MariaDB', () => {
  let pool: mysql.Pool;
  const tables: string[] = [];
  const table = (name: string) => {
    const t = uniqueTable(`st_${name}`);
    tables.push(t);
    return t;
  };

  beforeAll(() => {
    pool = createPool();
  });
  afterAll(async () => {
    await dropTables(pool, ...tables);
    await pool.end();
  });

  it('passes the checkStore conformance suite', async () => {
    const store = new SqlStore({ pool, table: table('conformance'), cleanupIntervalMs: 0 });
    await checkStore(() => store as unknown as StoreUnderTest, { teardown: () => store.close(), maxIdLength: MAX_SESSION_ID_LENGTH });
  });

  it('passes checkStore with batching off, optimistic mode off and a callback pool', async () => {
    const callbackPool = (await import('mysql2')).createPool({ uri: process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test', connectionLimit: 4 });
    const store = new SqlStore({ pool: callbackPool, table: table('callback'), cleanupIntervalMs: 0, batchSize: 1, optimistic: false });
    try {
      await checkStore(() => store as unknown as StoreUnderTest, { teardown: () => store.close(), skipExpiryWait: true, maxIdLength: MAX_SESSION_ID_LENGTH });
    } finally {
      await new Promise<void>((resolve) => callbackPool.end(() => resolve()));
    }
  });

  it('creates a primary key on the id and an index on the expiry', async () => {
    const name = table('schema');
    const store = new SqlStore({ pool, table: name, cleanupIntervalMs: 0 });
    await store.ready();
    const [rows] = (await pool.query(`SHOW INDEX FROM \`${name}\``)) as unknown as [{ Key_name: string; Column_name: string }[]];
    expect(rows.map((r) => `${r.Key_name}:${r.Column_name}`).sort()).toEqual(['PRIMARY:id', `${name}_expires_at:expires_at`].sort());
    await store.close();
  });

  it('keeps ids that differ only in case apart', async () => {
    const store = new SqlStore({ pool, table: table('case'), cleanupIntervalMs: 0 });
    await store.set('SessionA', sessionFor(60_000, { who: 'upper' }));
    await store.set('sessiona', sessionFor(60_000, { who: 'lower' }));
    expect((await readSession(store, 'SessionA'))?.who).toBe('upper');
    expect((await readSession(store, 'sessiona'))?.who).toBe('lower');
    await store.close();
  });

  it('sends hostile-but-valid ids only as bound parameters and keeps each in its own row', async () => {
    const spy = spyPool(pool);
    const name = table('anyid');
    const store = new SqlStore({ pool: spy.pool, table: name, cleanupIntervalMs: 0 });
    await store.ready();
    spy.statements.length = 0;
    const ids = [
      "' OR 1=1 --",
      "x'); DROP TABLE t; --",
      '/foo',
      '%',
      '_',
      'a',
      'a ',
      'A',
      'é',
      'e\u0301',
      '😀',
      'a\u0000b',
      'x'.repeat(MAX_SESSION_ID_LENGTH),
      '\u0800'.repeat(MAX_SESSION_ID_LENGTH),
      '😀'.repeat(MAX_SESSION_ID_LENGTH / 2),
    ];
    for (const id of ids) await store.set(id, sessionFor(60_000, { id }));
    for (const id of ids) expect((await readSession(store, id))?.id, JSON.stringify(id.slice(0, 10))).toBe(id);
    for (const { sql } of spy.statements) for (const id of ids.filter((x) => x.includes("'"))) expect(sql.includes(id), sql).toBe(false);
    const [rows] = (await pool.query(`SELECT HEX(id) AS hex FROM \`${name}\``)) as unknown as [{ hex: string }[]];
    expect(rows.map((r) => r.hex).sort()).toEqual(ids.map((id) => Buffer.from(id, 'utf8').toString('hex').toUpperCase()).sort());
    expect((await store.ids())!.sort()).toEqual([...ids].sort());
    await store.close();
  });

  it('refuses an id over 1024 characters or with a lone surrogate without sending it to SQL', async () => {
    const spy = spyPool(pool);
    const store = new SqlStore({ pool: spy.pool, table: table('forged'), cleanupIntervalMs: 0 });
    await store.ready();
    spy.statements.length = 0;
    for (const id of ['x'.repeat(MAX_SESSION_ID_LENGTH + 1), '', 'a\ud800']) {
      expect(await readSession(store, id)).toBeNull();
      await expect(store.set(id, sessionFor(60_000))).rejects.toSatisfy(isInvalidOptionError);
      await store.destroy(id);
    }
    expect(spy.statements).toEqual([]);
    await store.close();
  });

  it('on a table of an earlier version (ascii VARCHAR id) keeps the ids it holds exactly and refuses the others, naming the ALTER', async () => {
    const name = table('legacy');
    await pool.query(
      `CREATE TABLE \`${name}\` (\`id\` VARCHAR(256) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, \`data\` MEDIUMTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \`expires_at\` BIGINT NOT NULL, \`version\` BIGINT UNSIGNED NOT NULL DEFAULT 1, PRIMARY KEY (\`id\`), KEY \`${name}_expires_at\` (\`expires_at\`)) ENGINE=InnoDB`,
    );
    const legacy = new SqlStore({ pool, table: name, cleanupIntervalMs: 0, createTable: false });
    await legacy.set('/foo', sessionFor(60_000, { who: 'slash' }));
    await legacy.set('a', sessionFor(60_000, { who: 'a' }));
    expect((await readSession(legacy, '/foo'))?.who).toBe('slash');
    for (const id of ['é', 'a ', 'x'.repeat(257)]) {
      const error = await Promise.resolve(legacy.set(id, sessionFor(60_000, { who: id }))).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isInvalidOptionError(error), JSON.stringify(id.slice(0, 10))).toBe(true);
      expect((error as Error).message).toContain(`ALTER TABLE \`${name}\` MODIFY \`id\` VARBINARY(3072) NOT NULL`);
      expect(await readSession(legacy, id)).toBeNull();
      await legacy.destroy(id);
    }
    // 'a ' was refused rather than written over 'a' (which the PAD SPACE column would have done).
    expect((await readSession(legacy, 'a'))?.who).toBe('a');
    await legacy.close();
    await pool.query(`ALTER TABLE \`${name}\` MODIFY \`id\` VARBINARY(3072) NOT NULL`);
    const migrated = new SqlStore({ pool, table: name, cleanupIntervalMs: 0 });
    expect((await readSession(migrated, '/foo'))?.who).toBe('slash');
    await migrated.set('a ', sessionFor(60_000, { who: 'a space' }));
    await migrated.set('é', sessionFor(60_000, { who: 'e acute' }));
    expect((await readSession(migrated, 'a'))?.who).toBe('a');
    expect((await readSession(migrated, 'a '))?.who).toBe('a space');
    expect((await readSession(migrated, 'é'))?.who).toBe('e acute');
    await migrated.close();
  });

  it('expires, counts and sweeps sessions on its clock option, not the wall clock', async () => {
    // Years before the wall clock: a store that read Date.now() would find every session expired.
    const clock = new FakeClock(Date.UTC(2020, 0, 1));
    const store = new SqlStore({ pool, table: table('clock'), cleanupIntervalMs: 0, clock });
    await store.set('short', sessionFor(1000, { n: 1 }, clock.now()));
    await store.set('long', sessionFor(60_000, { n: 2 }, clock.now()));
    expect(await readSession(store, 'short')).toMatchObject({ n: 1 });
    expect(await store.length()).toBe(2);
    await clock.advance(1000);
    expect(await readSession(store, 'short')).toBeNull();
    expect(await store.ids()).toEqual(['long']);
    expect(await store.cleanup()).toBe(1);
    const [rows] = (await pool.query(`SELECT id FROM \`${tables.at(-1)}\``)) as unknown as [{ id: Buffer }[]];
    expect(rows.map((row) => row.id.toString())).toEqual(['long']);
    await store.close();
  });

  it('runs its cleanup timer on its clock option, and refuses cleanup() once closed', async () => {
    const clock = new FakeClock(Date.UTC(2020, 0, 1));
    const name = table('clock_cleanup');
    // random 0.5: the timer fires exactly at cleanupIntervalMs (±10% jitter around it otherwise).
    const store = new SqlStore({ pool, table: name, cleanupIntervalMs: 60_000, random: () => 0.5, clock });
    await store.set('gone', sessionFor(1000, {}, clock.now()));
    await store.set('kept', sessionFor(3_600_000, {}, clock.now()));
    const count = async () => {
      const [[row]] = (await pool.query(`SELECT COUNT(*) AS n FROM \`${name}\``)) as unknown as [[{ n: number }]];
      return Number(row.n);
    };
    await clock.advance(59_999);
    expect(await count()).toBe(2);
    await clock.advance(1);
    await waitFor(async () => (await count()) === 1, { what: 'the timer’s cleanup to delete the expired row' });
    await store.close();
    await expect(store.cleanup()).rejects.toSatisfy(isStoreUnavailableError);
  });

  it('decides touch throttling on its clock option', async () => {
    const clock = new FakeClock(Date.UTC(2020, 0, 1));
    const store = new SqlStore({ pool, table: table('clock_touch'), cleanupIntervalMs: 0, touchAfterSeconds: 60, clock });
    await store.set('t', sessionFor(3_600_000, {}, clock.now()));
    const storedExpiry = async () => {
      const [[row]] = (await pool.query(`SELECT expires_at FROM \`${tables.at(-1)}\` WHERE id = 't'`)) as unknown as [[{ expires_at: number }]];
      return Number(row.expires_at);
    };
    const first = await storedExpiry();
    // 30 s later the same rolling session extends its expiry by 30 s: under the 60 s throttle.
    await clock.advance(30_000);
    await store.touch('t', sessionFor(3_600_000, {}, clock.now()));
    expect(await storedExpiry()).toBe(first);
    // 90 s after the write it extends it by 90 s: written.
    await clock.advance(60_000);
    const later = sessionFor(3_600_000, {}, clock.now());
    await store.touch('t', later);
    expect(await storedExpiry()).toBe(later.cookie.expires.getTime());
    await store.close();
  });

  it('throttles touch: no write unless it extends the expiry by touchAfterSeconds', async () => {
    const spy = spyPool(pool);
    const store = new SqlStore({ pool: spy.pool, table: table('touch'), cleanupIntervalMs: 0, touchAfterSeconds: 60 });
    await store.set('t1', sessionFor(3_600_000));
    const read = (await readSession(store, 't1'))!;
    spy.statements.length = 0;
    read.cookie = { ...read.cookie, expires: new Date(Date.now() + 3_600_000 + 10_000) };
    await store.touch('t1', read);
    expect(spy.statements.filter((s) => s.sql.startsWith('UPDATE'))).toHaveLength(0);
    // A session this process did not read: the throttle is in the WHERE clause instead.
    await store.touch('t1', sessionFor(3_600_000 + 10_000));
    const [[row1]] = (await pool.query(`SELECT expires_at FROM \`${tables.at(-1)}\` WHERE id = 't1'`)) as unknown as [[{ expires_at: number }]];
    const far = sessionFor(3_600_000 + 600_000);
    await store.touch('t1', far);
    const [[row2]] = (await pool.query(`SELECT expires_at FROM \`${tables.at(-1)}\` WHERE id = 't1'`)) as unknown as [[{ expires_at: number }]];
    expect(Number(row2.expires_at)).toBe(far.cookie.expires.getTime());
    expect(Number(row1.expires_at)).toBeLessThan(far.cookie.expires.getTime() - 500_000);
    await store.close();
  });

  it('deletes expired rows in LIMIT batches and leaves live ones', async () => {
    const name = table('cleanup');
    const spy = spyPool(pool);
    const store = new SqlStore({ pool: spy.pool, table: name, cleanupIntervalMs: 0, cleanupBatchSize: 10 });
    await store.ready();
    const values = Array.from({ length: 25 }, (_, i) => [`old${i}`, '{}', Date.now() - 1000, 1]);
    await pool.query(`INSERT INTO \`${name}\` (id, data, expires_at, version) VALUES ?`, [values]);
    await store.set('live1', sessionFor(60_000));
    await store.set('live2', sessionFor(60_000));
    spy.statements.length = 0;
    expect(await store.cleanup()).toBe(25);
    expect(spy.statements.filter((s) => /^DELETE .* LIMIT 10$/.test(s.sql))).toHaveLength(3);
    const [[count]] = (await pool.query(`SELECT COUNT(*) AS n FROM \`${name}\``)) as unknown as [[{ n: number }]];
    expect(Number(count.n)).toBe(2);
    await store.close();
  });

  it('sends concurrent upserts, and concurrent reads, of different sessions as one statement each', async () => {
    const spy = spyPool(pool);
    const store = new SqlStore({ pool: spy.pool, table: table('batch'), cleanupIntervalMs: 0, batchConcurrency: 1 });
    await store.ready();
    spy.statements.length = 0;
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.set(`b${i}`, sessionFor(60_000, { i }))));
    const inserts = spy.statements.filter((s) => s.sql.startsWith('INSERT'));
    expect(inserts.length).toBeLessThanOrEqual(2);
    spy.statements.length = 0;
    const read = await Promise.all(Array.from({ length: 20 }, (_, i) => readSession(store, `b${i}`)));
    expect(read.map((s) => s?.i)).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(spy.statements.filter((s) => s.sql.startsWith('SELECT')).length).toBeLessThanOrEqual(2);
    await store.close();
  });

  it("refuses a stale write with SessionConflictError in 'reject' mode", async () => {
    const store = new SqlStore({ pool, table: table('reject'), cleanupIntervalMs: 0, optimistic: 'reject' });
    await store.set('r1', sessionFor(60_000, { n: 0 }));
    const first = (await readSession(store, 'r1'))!;
    const second = (await readSession(store, 'r1'))!;
    second.n = 2;
    await store.set('r1', second);
    first.n = 1;
    const error = await store.set('r1', first)!.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isSessionConflictError(error)).toBe(true);
    expect(error).toMatchObject({ reason: 'changed', expectedVersion: 1, storedVersion: 2 });
    expect((await readSession(store, 'r1'))?.n).toBe(2);
    await store.close();
  });

  it("merges field by field in 'merge' mode, and never writes back a destroyed session", async () => {
    const store = new SqlStore({ pool, table: table('merge'), cleanupIntervalMs: 0 });
    await store.set('m1', sessionFor(60_000, { cart: [], user: null }));
    const a = (await readSession(store, 'm1'))!;
    const b = (await readSession(store, 'm1'))!;
    a.cart = ['book'];
    b.user = 'zoë';
    await store.set('m1', a);
    await store.set('m1', b);
    const merged = (await readSession(store, 'm1'))!;
    expect(merged.cart).toEqual(['book']);
    expect(merged.user).toBe('zoë');

    const stale = (await readSession(store, 'm1'))!;
    await store.destroy('m1');
    stale.cart = ['late'];
    await store.set('m1', stale);
    expect(await readSession(store, 'm1')).toBeNull();
    await store.close();
  });

  it('retries deadlocks with backoff and gives up with SqlContentionError', async () => {
    let failuresLeft = 2;
    const flaky: PoolLike = {
      async getConnection() {
        const connection = await pool.getConnection();
        const execute = connection.execute.bind(connection);
        return Object.assign(Object.create(connection) as object, {
          execute: (sql: string, params: unknown[]) => {
            if (sql.startsWith('INSERT') && failuresLeft-- > 0) {
              return Promise.reject(Object.assign(new Error('Deadlock found when trying to get lock'), { errno: 1213, code: 'ER_LOCK_DEADLOCK' }));
            }
            return execute(sql, params as never);
          },
          release: () => connection.release(),
          destroy: () => connection.destroy(),
        });
      },
    };
    const store = new SqlStore({ pool: flaky, table: table('deadlock'), cleanupIntervalMs: 0, retry: { baseDelayMs: 1, maxDelayMs: 5, maxAttempts: 3 } });
    await store.set('d1', sessionFor(60_000, { ok: true }));
    expect((await readSession(store, 'd1'))?.ok).toBe(true);
    failuresLeft = 3;
    const error = await store.set('d1', sessionFor(60_000))!.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(SqlContentionError);
    expect((error as SqlContentionError).attempts).toBe(3);
    expect(isStoreUnavailableError(error)).toBe(true);
    await store.close();
  });

  it('moves to another connection after 1047 (node not ready) and destroys the failed one', async () => {
    let notReady = 1;
    let destroyed = 0;
    const partitioned: PoolLike = {
      async getConnection() {
        const connection = await pool.getConnection();
        const execute = connection.execute.bind(connection);
        const failing = notReady-- > 0;
        return Object.assign(Object.create(connection) as object, {
          execute: (sql: string, params: unknown[]) =>
            failing
              ? Promise.reject(Object.assign(new Error('WSREP has not yet prepared node for application use'), { errno: 1047 }))
              : execute(sql, params as never),
          release: () => connection.release(),
          destroy: () => {
            destroyed++;
            connection.destroy();
          },
        });
      },
    };
    const store = new SqlStore({ pool: partitioned, table: table('wsrep'), cleanupIntervalMs: 0, createTable: false });
    await new SqlStore({ pool, table: tables.at(-1)!, cleanupIntervalMs: 0 }).ready();
    await store.set('w1', sessionFor(60_000, { ok: 1 }));
    expect(destroyed).toBe(1);
    expect((await readSession(store, 'w1'))?.ok).toBe(1);
    await store.close();
  });

  describe('parallel requests of one session through express-session', () => {
    let server: Server | undefined;
    afterAll(() => new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve())));

    async function raceThroughApp(optimistic: 'merge' | false): Promise<Record<string, unknown>> {
      const fields = ['a', 'b', 'c', 'd'];
      // Every request has read the session before any of them changes it: the race, made certain.
      const allRead = deferred<void>();
      let read = 0;
      const store = new SqlStore({ pool, table: table(`race_${optimistic || 'off'}`), cleanupIntervalMs: 0, optimistic });
      const app = express();
      app.use(session({ store, secret: 'test-secret', resave: false, saveUninitialized: true, name: 'sid' }));
      app.get('/start', (req, res) => {
        (req.session as unknown as Record<string, unknown>).started = true;
        res.send('ok');
      });
      // Each request reads the session, waits until the others have read it too, then changes its own field.
      app.get('/set/:field', async (req, res) => {
        if (++read === fields.length) allRead.resolve();
        await allRead.promise;
        (req.session as unknown as Record<string, unknown>)[req.params.field] = true;
        res.send('ok');
      });
      app.get('/show', (req, res) => res.json(req.session));
      server = createServer(app);
      await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const first = await fetch(`${base}/start`);
      const cookie = first.headers.get('set-cookie')!.split(';')[0]!;
      await Promise.all(fields.map((field) => fetch(`${base}/set/${field}`, { headers: { cookie } }).then((r) => r.text())));
      const shown = (await (await fetch(`${base}/show`, { headers: { cookie } })).json()) as Record<string, unknown>;
      await new Promise<void>((resolve) => server!.close(() => resolve()));
      server = undefined;
      await store.close();
      return shown;
    }

    it('keeps every request’s change with the default optimistic merge', async () => {
      const shown = await raceThroughApp('merge');
      expect(shown).toMatchObject({ started: true, a: true, b: true, c: true, d: true });
    });

    it('loses changes with the optimistic mode off (the race the mode exists for)', async () => {
      const shown = await raceThroughApp(false);
      const kept = ['a', 'b', 'c', 'd'].filter((field) => shown[field] === true);
      expect(kept.length).toBeLessThan(4);
    });
  });
});
