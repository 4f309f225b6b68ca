/**
 * MariaDB under network faults, through a `FaultProxy` in front of the shared server (which is never
 * stopped; the restart-by-kill case lives in failure.test.ts with a private server). Under steady
 * writes, a blackholed link (a partition) and a reset link (a server restart as the client sees it)
 * make the store fail fast with StoreUnavailableError; it recovers by itself once the link is back,
 * and every write it acknowledged is there afterwards.
 */
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStoreUnavailableError } from '@fulcrum/core';
import { SqlStore } from '@fulcrum/session-sql';
import { FaultProxy } from '../../http/test/faults/fault-proxy';
import { MYSQL_URL, dropTables, requireMysql, uniqueTable, waitFor } from './helpers';
import { writeUntilStopped, type StoreLoad } from '../../../test-support/store-load';

const available = await requireMysql('SqlStore fault tests');

function session(n: number) {
  return { cookie: { expires: new Date(Date.now() + 600_000), originalMaxAge: 600_000 }, n };
}

/** Sessions written one after another until stopped: what the database acknowledged, and what failed. */
function writer(store: SqlStore, prefix: string): StoreLoad {
  return writeUntilStopped(
    async (id, n) => {
      await store.set(id, session(n) as never);
    },
    prefix,
    20,
  );
}

describe.skipIf(!available)('SqlStore behind a FaultProxy', () => {
  const table = uniqueTable('faults');
  let fault: FaultProxy;
  let pool: mysql.Pool;
  let direct: mysql.Pool;

  beforeAll(async () => {
    const url = new URL(MYSQL_URL);
    fault = await FaultProxy.start({ host: url.hostname, port: Number(url.port || 3306) });
    const viaFault = new URL(MYSQL_URL);
    viaFault.hostname = fault.host;
    viaFault.port = String(fault.port);
    pool = mysql.createPool({ uri: viaFault.toString(), connectionLimit: 4, connectTimeout: 1000 });
    direct = mysql.createPool({ uri: MYSQL_URL, connectionLimit: 2 });
  });

  afterAll(async () => {
    await fault?.close();
    await pool?.end().catch(() => undefined);
    if (direct) {
      await dropTables(direct, table);
      await direct.end();
    }
  });

  for (const [name, cut] of [
    ['blackholed (a partition)', (f: FaultProxy) => f.blackhole()],
    ['reset (a restart, as the client sees it)', (f: FaultProxy) => f.reset()],
  ] as const) {
    it(`fails fast while the link is ${name} under load, recovers, and keeps every acknowledged write`, async () => {
      const store = new SqlStore({ pool, table, cleanupIntervalMs: 0, probeIntervalMs: 100, timeoutMs: 500 } as never);
      try {
        const prefix = name.split(' ')[0]!;
        const load = writer(store, prefix);
        await waitFor(() => load.acknowledged.length >= 30, 10_000, 'writes before the fault');
        await cut(fault);
        const marked = load.failures.length;
        await waitFor(() => load.failures.length >= marked + 3, 10_000, 'calls failing during the fault');
        await fault.pass();
        const healed = load.acknowledged.length;
        await waitFor(() => load.acknowledged.length >= healed + 30, 20_000, 'writes after the link came back');
        await load.stop();
        for (const failure of load.failures) expect(isStoreUnavailableError(failure), String(failure)).toBe(true);
        // Read through a connection that never went through the fault.
        const [rows] = await direct.query(`SELECT id FROM \`${table}\` WHERE id LIKE ?`, [`${prefix}-%`]);
        const stored = new Set((rows as { id: Buffer | string }[]).map((r) => String(r.id)));
        expect(load.acknowledged.filter((id) => !stored.has(id))).toEqual([]);
      } finally {
        await (store as unknown as { close?: () => Promise<void> | void }).close?.();
      }
    });
  }
});
