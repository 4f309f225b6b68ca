import type mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInvalidOptionError, type StickEntry } from '@fulcrum/core';
import { checkReplicator } from '@fulcrum/core/testing';
import { SqlReplicator } from '@fulcrum/session-sql';
import { createPool, dropTables, requireMysql, uniqueTable } from './helpers';
import { waitFor } from '../../../test-support/wait-for';

const available = await requireMysql('SqlReplicator tests');

describe('SqlReplicator options', () => {
  it('refuses a table name that is not a plain identifier', () => {
    const pool = { getConnection: () => Promise.reject(new Error('must not be called')) };
    expect(() => new SqlReplicator({ pool, table: 'x`; DROP TABLE y' })).toThrow(/sqlReplicator\.table/);
    let caught: unknown;
    try {
      new SqlReplicator({ pool, pollIntervalMs: 0 });
    } catch (error) {
      caught = error;
    }
    expect(isInvalidOptionError(caught)).toBe(true);
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

  it('purges expired rows and never returns them', async () => {
    const table = uniqueTable('rep_purge');
    tables.push(table);
    const replicator = new SqlReplicator<string>({ pool, table, purgeIntervalMs: 0 });
    const now = Date.now();
    await replicator.publish([
      { key: 'short', value: 'x', updatedAt: now, expiresAt: now + 150, origin: 'a' },
      { key: 'long', value: 'y', updatedAt: now, expiresAt: now + 60_000, origin: 'a' },
    ]);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect((await replicator.snapshot()).map((e) => e.key)).toEqual(['long']);
    expect(await replicator.purge()).toBe(1);
    const [[count]] = (await pool.query(`SELECT COUNT(*) AS n FROM \`${table}\``)) as unknown as [[{ n: number }]];
    expect(Number(count.n)).toBe(1);
    await replicator.close();
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
