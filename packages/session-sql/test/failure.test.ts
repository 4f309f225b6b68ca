/**
 * A private MariaDB (own datadir, socket and port in a temp dir) killed and restarted under a live
 * store: calls in flight fail with a typed error, the store says `disconnect`, then notices the
 * server is back by itself (`connect`) and serves again with its committed sessions intact.
 */
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStoreUnavailableError } from '@fulcrum/core';
import { SqlStore } from '@fulcrum/session-sql';
import { canRunPrivateMariadb, startPrivateMariadb, waitFor, type PrivateMariadb, readSession } from './helpers';

const runnable = await canRunPrivateMariadb();
if (!runnable) {
  if (process.env.CI === 'true') throw new Error('restart tests: mariadbd / mariadb-install-db not found (CI=true: failing instead of skipping)');
  console.warn('skipping SqlStore restart tests: mariadbd and mariadb-install-db are not installed');
}

describe.skipIf(!runnable)('SqlStore when MariaDB restarts', () => {
  let server: PrivateMariadb;
  let pool: mysql.Pool;

  beforeAll(async () => {
    server = await startPrivateMariadb();
    pool = mysql.createPool({ uri: server.url, connectionLimit: 4, connectTimeout: 2000 });
  }, 60_000);
  afterAll(async () => {
    await pool?.end().catch(() => undefined);
    await server?.destroy();
  });

  it('rejects in-flight calls with StoreUnavailableError, then recovers on its own', async () => {
    const store = new SqlStore({ pool, cleanupIntervalMs: 0, probeIntervalMs: 100, timeoutMs: 3000 });
    const events: string[] = [];
    store.on('connect', () => events.push('connect'));
    store.on('disconnect', () => events.push('disconnect'));
    const committed = { cookie: { expires: new Date(Date.now() + 600_000), originalMaxAge: 600_000 }, user: 'kept' };
    await store.set('committed', committed);
    expect(events).toEqual(['connect']);

    // Hold the row's lock from another connection so that a write is surely in flight at the kill.
    const locker = await mysql.createConnection({ uri: server.url });
    await locker.query('BEGIN');
    await locker.query('SELECT * FROM fulcrum_sessions WHERE id = ? FOR UPDATE', ['committed']);
    const inflight = store.set('committed', { ...committed, user: 'in flight' })!.then(
      () => 'resolved',
      (error: unknown) => error,
    );
    // In flight: the server shows the store's upsert waiting for the row lock.
    await waitFor(
      async () => {
        const [rows] = await locker.query("SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE INFO LIKE 'INSERT INTO%fulcrum_sessions%'");
        return Number((rows as { n: number | string }[])[0]?.n) > 0;
      },
      10_000,
      'the write to wait for the row lock',
    );
    await server.stop('SIGKILL');
    locker.destroy();

    const error = await inflight;
    expect(isStoreUnavailableError(error)).toBe(true);
    expect(String((error as Error).message)).not.toMatch(/127\.0\.0\.1|:\d{4,5}/);
    const whileDown = await store.get('committed')!.then(
      () => 'resolved',
      (e: unknown) => e,
    );
    expect(isStoreUnavailableError(whileDown)).toBe(true);
    expect(events).toEqual(['connect', 'disconnect']);

    await server.start();
    await waitFor(() => events.at(-1) === 'connect', 15_000, 'the store to emit connect');
    expect(events).toEqual(['connect', 'disconnect', 'connect']);
    expect((await readSession(store, 'committed'))?.user).toBe('kept');
    await store.set('after', { cookie: { expires: new Date(Date.now() + 60_000) }, ok: true });
    expect((await readSession(store, 'after'))?.ok).toBe(true);
    await store.close();
  }, 60_000);
});
