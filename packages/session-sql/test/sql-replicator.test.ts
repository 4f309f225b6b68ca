import type mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInvalidOptionError, type StickEntry } from '@fulcrum/core';
import { FakeClock, checkReplicator } from '@fulcrum/core/testing';
import { SqlReplicator } from '@fulcrum/session-sql';
import { createPool, dropTables, requireMysql, uniqueTable } from './helpers';
import { waitFor } from '../../../test-support/wait-for';

const available = await requireMysql('SqlReplicator tests');

describe('SqlReplicator options', () => {
  it('refuses a table name that is not a plain identifier, a zero poll interval and a clock that is not a Clock', () => {
    const pool = { getConnection: () => Promise.reject(new Error('must not be called')) };
    expect(() => new SqlReplicator({ pool, table: 'x`; DROP TABLE y' })).toThrow(/sqlReplicator\.table/);
    let caught: unknown;
    try {
      new SqlReplicator({ pool, pollIntervalMs: 0 });
    } catch (error) {
      caught = error;
    }
    expect(isInvalidOptionError(caught)).toBe(true);
    expect(() => new SqlReplicator({ pool, clock: { now: () => 0 } as never })).toThrow(/sqlReplicator\.clock: must be a Clock/);
  });
});

describe.skipIf(!available)('SqlReplicator on MariaDB', () => {
  let pool: mysql.Pool;
  const tables: string[] = [];
  beforeAll(() => {
    pool = createPool();
  });
  afterAll(async () => {
    await dropTables(pool, ...tables);
    await pool.end();
  });

  it('passes the checkReplicator conformance suite', async () => {
    const table = uniqueTable('rep_conf');
    tables.push(table);
    // One table per case (cluster): the cases stay independent, as on separate sites.
    await checkReplicator(({ cluster }) => {
      const name = `rc_${cluster.replace(/[^A-Za-z0-9]/g, '_')}`.slice(0, 48);
      if (!tables.includes(name)) tables.push(name);
      return new SqlReplicator<string>({
        pool,
        table: name,
        pollIntervalMs: 20,
        purgeIntervalMs: 0,
        onError: (e) => {
          throw e;
        },
      });
    });
  });

  it('keeps the last writer in SQL whatever order entries arrive in', async () => {
    const table = uniqueTable('rep_lww');
    tables.push(table);
    const replicator = new SqlReplicator<string>({ pool, table, purgeIntervalMs: 0 });
    const now = Date.now();
    const entry = (value: string, updatedAt: number, origin: string): StickEntry<string> => ({
      key: 'k',
      value,
      updatedAt,
      expiresAt: now + 60_000,
      origin,
    });
    await replicator.publish([entry('newest', now + 2, 'a')]);
    await replicator.publish([entry('older', now + 1, 'z')]);
    await replicator.publish([entry('tie-lower-origin', now + 2, '0')]);
    expect((await replicator.snapshot()).map((e) => e.value)).toEqual(['newest']);
    await replicator.publish([entry('tie-higher-origin', now + 2, 'b')]);
    expect((await replicator.snapshot()).map((e) => e.value)).toEqual(['tie-higher-origin']);
    await replicator.publish([{ key: 'k', updatedAt: now + 2, expiresAt: now + 60_000, origin: 'b', deleted: true }]);
    const [tombstone] = await replicator.snapshot();
    expect(tombstone?.deleted).toBe(true);
    await replicator.publish([entry('late', now + 1.5, 'z')]);
    expect((await replicator.snapshot())[0]?.deleted).toBe(true);
    await replicator.close();
  });

  // Expiry here is the replicator's clock only: `expires_at` is compared with the time the replicator
  // passes in each statement, never with the database's NOW(). So a FakeClock decides it entirely, and
  // these tests check what MariaDB really stores and returns.
  it('drops, hides and purges expired rows on its clock option, not the wall clock', async () => {
    const table = uniqueTable('rep_purge');
    tables.push(table);
    // Years before the wall clock: a replicator that read Date.now() would write nothing at all.
    const clock = new FakeClock(Date.UTC(2020, 0, 1));
    const replicator = new SqlReplicator<string>({ pool, table, purgeIntervalMs: 0, clock });
    const now = clock.now();
    await replicator.publish([
      { key: 'short', value: 'x', updatedAt: now, expiresAt: now + 150, origin: 'a' },
      { key: 'long', value: 'y', updatedAt: now, expiresAt: now + 60_000, origin: 'a' },
    ]);
    expect((await replicator.snapshot()).map((e) => e.key).sort()).toEqual(['long', 'short']);
    await clock.advance(150);
    expect((await replicator.snapshot()).map((e) => e.key)).toEqual(['long']);
    await replicator.publish([{ key: 'late', value: 'z', updatedAt: now, expiresAt: now + 150, origin: 'a' }]);
    expect(await rowKeys(pool, table)).toEqual(['long', 'short']);
    expect(await replicator.purge()).toBe(1);
    expect(await rowKeys(pool, table)).toEqual(['long']);
    await replicator.close();
  });

  it('runs its poll and purge timers on its clock option', async () => {
    const table = uniqueTable('rep_timers');
    tables.push(table);
    const clock = new FakeClock(Date.UTC(2020, 0, 1));
    const now = clock.now();
    const writer = new SqlReplicator<string>({ pool, table, purgeIntervalMs: 0, clock });
    await writer.publish([
      { key: 'short', value: 'x', updatedAt: now, expiresAt: now + 30_000, origin: 'a' },
      { key: 'long', value: 'y', updatedAt: now, expiresAt: now + 3_600_000, origin: 'a' },
    ]);
    const reader = new SqlReplicator<string>({ pool, table, purgeIntervalMs: 0, clock });
    const received: StickEntry<string>[] = [];
    reader.subscribe((entries) => received.push(...entries));
    // The first poll is due at once, and only the clock can fire it.
    expect(clock.pending).toBe(1);
    await clock.advance(0);
    await until(() => received.length === 2);
    expect(received.map((e) => e.key).sort()).toEqual(['long', 'short']);
    await reader.close();
    // No poll in flight from here on: a statement's deadline is on the clock too, and advancing past
    // it would fail the statement, as a database that long silent would.
    // random 0.5: the purge timer fires exactly at purgeIntervalMs (±10% jitter around it otherwise).
    const purger = new SqlReplicator<string>({ pool, table, purgeIntervalMs: 60_000, random: () => 0.5, clock });
    await clock.advance(59_999);
    expect(await rowKeys(pool, table)).toEqual(['long', 'short']);
    await clock.advance(1);
    await waitFor(async () => (await rowKeys(pool, table)).length === 1, { what: 'the purge timer to delete the expired row' });
    expect(await rowKeys(pool, table)).toEqual(['long']);
    await Promise.all([writer.close(), purger.close()]);
  });

  it('delivers a change committed late with an older stamp (the overlap window)', async () => {
    const table = uniqueTable('rep_late');
    tables.push(table);
    const writer = new SqlReplicator<string>({ pool, table, purgeIntervalMs: 0 });
    const reader = new SqlReplicator<string>({ pool, table, pollIntervalMs: 20, pollOverlapMs: 5000, purgeIntervalMs: 0 });
    const received: StickEntry<string>[] = [];
    const stop = reader.subscribe((entries) => received.push(...entries));
    const now = Date.now();
    await writer.publish([{ key: 'fresh', value: 'v1', updatedAt: now, expiresAt: now + 60_000, origin: 'a' }]);
    await until(() => received.some((e) => e.key === 'fresh'));
    // A row whose change stamp is 2 s behind the newest one seen, as a slow commit or a lagging node would leave.
    await pool.query(
      `INSERT INTO \`${table}\` (k, value, deleted, updated_at, expires_at, origin, changed_us) VALUES ('late', '"v2"', 0, ?, ?, 'b', CAST(UNIX_TIMESTAMP(NOW(6)) * 1000000 AS SIGNED) - 2000000)`,
      [now, now + 60_000],
    );
    await until(() => received.some((e) => e.key === 'late'));
    expect(received.filter((e) => e.key === 'fresh')).toHaveLength(1);
    stop();
    await Promise.all([writer.close(), reader.close()]);
  });
});

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  await waitFor(condition, { timeoutMs });
}

/** The keys of the rows the table holds, expired or not, sorted. */
async function rowKeys(pool: mysql.Pool, table: string): Promise<string[]> {
  const [rows] = (await pool.query(`SELECT k FROM \`${table}\` ORDER BY k`)) as unknown as [{ k: Buffer | string }[]];
  return rows.map((row) => String(row.k));
}
