/**
 * The real Galera test (run by scripts/galera-test.sh, not by the default suite): three MariaDB
 * nodes with Debian's galera-4 on loopback ports, in temp data directories, the first bootstrapped
 * with --wsrep-new-cluster and the others joining by rsync state transfer. Checks what the store
 * promises on a cluster: a write through one node is read through another (wsrep_sync_wait),
 * concurrent writes of one session through two nodes all succeed after certification-conflict
 * retries, a node refusing queries (1047) is skipped by a PoolCluster, and killing a node loses no
 * session whose write was acknowledged.
 */
import mysql from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqlStore } from '@fulcrum/session-sql';
import type { PoolLike } from '@fulcrum/session-sql';
import { freePort, startPrivateMariadb, type PrivateMariadb, readSession } from '../test/helpers';

const provider = process.env.WSREP_PROVIDER ?? '/usr/lib/galera/libgalera_smm.so';
const TABLE = 'galera_sessions';

function sessionFor(data: Record<string, unknown>) {
  return { cookie: { expires: new Date(Date.now() + 600_000), originalMaxAge: 600_000 }, ...data };
}

/** Counts the deadlock / certification-failure errors the store had to retry. */
function countingPool(pool: mysql.Pool, counter: { conflicts: number }): PoolLike {
  return {
    async getConnection() {
      const connection = await pool.getConnection();
      const execute = connection.execute.bind(connection);
      return Object.assign(Object.create(connection) as object, {
        execute: (sql: string, params: unknown[]) =>
          execute(sql, params as never).catch((error: { errno?: number }) => {
            if (error.errno === 1213) counter.conflicts++;
            throw error;
          }),
        release: () => connection.release(),
        destroy: () => connection.destroy(),
      });
    },
  };
}

describe('SqlStore on a 3-node Galera cluster', () => {
  const nodes: PrivateMariadb[] = [];
  const pools: mysql.Pool[] = [];
  const pool = (i: number) => pools[i]!;

  beforeAll(async () => {
    const gcomm = [await freePort(), await freePort(), await freePort()];
    const address = `gcomm://${gcomm.map((p) => `127.0.0.1:${p}`).join(',')}`;
    for (let i = 0; i < 3; i++) {
      const ist = await freePort();
      const sst = await freePort();
      const node = await startPrivateMariadb({
        emptyDatadir: i > 0,
        startTimeoutMs: 90_000,
        args: () => [
          '--wsrep-on=ON',
          `--wsrep-provider=${provider}`,
          `--wsrep-cluster-address=${address}`,
          '--wsrep-cluster-name=fulcrum-test',
          `--wsrep-node-name=node${i + 1}`,
          `--wsrep-node-address=127.0.0.1:${gcomm[i]}`,
          `--wsrep-provider-options=gmcast.listen_addr=tcp://127.0.0.1:${gcomm[i]};ist.recv_addr=127.0.0.1:${ist};gcache.size=16M`,
          '--wsrep-sst-method=rsync',
          `--wsrep-sst-receive-address=127.0.0.1:${sst}`,
          '--binlog-format=ROW',
          '--innodb-autoinc-lock-mode=2',
          ...(i === 0 ? ['--wsrep-new-cluster'] : []),
        ],
      });
      nodes.push(node);
    }
    for (const node of nodes) pools.push(mysql.createPool({ uri: node.url, connectionLimit: 8, connectTimeout: 2000 }));
    const [[size]] = (await pool(0).query("SHOW STATUS LIKE 'wsrep_cluster_size'")) as unknown as [[{ Value: string }]];
    expect(size.Value).toBe('3');
    await new SqlStore({ pool: pool(0), table: TABLE, cleanupIntervalMs: 0 }).ready();
  }, 180_000);

  afterAll(async () => {
    await Promise.all(pools.map((p) => p.end().catch(() => undefined)));
    for (const node of nodes) await node.destroy();
  });

  it('reads through one node a session written through another', async () => {
    const writer = new SqlStore({ pool: pool(0), table: TABLE, cleanupIntervalMs: 0, createTable: false, galera: true });
    const reader = new SqlStore({ pool: pool(2), table: TABLE, cleanupIntervalMs: 0, createTable: false, galera: true });
    for (let i = 0; i < 20; i++) {
      await writer.set(`ryw-${i}`, sessionFor({ i }));
      expect((await readSession(reader, `ryw-${i}`))?.i).toBe(i);
    }
    await Promise.all([writer.close(), reader.close()]);
  });

  it('lets concurrent writes of one session through two nodes all succeed after retries', async () => {
    const counter = { conflicts: 0 };
    const options = {
      table: TABLE,
      cleanupIntervalMs: 0,
      createTable: false,
      galera: true,
      batchSize: 1,
      retry: { maxAttempts: 20, baseDelayMs: 5, maxDelayMs: 100 },
    };
    const a = new SqlStore({ pool: countingPool(pool(0), counter), ...options });
    const b = new SqlStore({ pool: countingPool(pool(1), counter), ...options });
    const writes: Promise<void>[] = [];
    for (let round = 0; round < 30; round++) {
      writes.push(a.set('contended', sessionFor({ by: 'a', round })) as Promise<void>);
      writes.push(b.set('contended', sessionFor({ by: 'b', round })) as Promise<void>);
    }
    const results = await Promise.allSettled(writes);
    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    const seenByA = await a.get('contended');
    const seenByB = await b.get('contended');
    expect(seenByA).toEqual(seenByB);
    console.log(`galera: ${counter.conflicts} certification conflicts (1213) retried across 60 concurrent writes`);
    await Promise.all([a.close(), b.close()]);
  });

  it('keeps every optimistic change made through two nodes at once', async () => {
    const a = new SqlStore({ pool: pool(0), table: TABLE, cleanupIntervalMs: 0, createTable: false, galera: true });
    const b = new SqlStore({ pool: pool(1), table: TABLE, cleanupIntervalMs: 0, createTable: false, galera: true });
    await a.set('merged', sessionFor({}));
    await Promise.all(
      Array.from({ length: 10 }, async (_, i) => {
        const store = i % 2 === 0 ? a : b;
        const copy = (await readSession(store, 'merged'))!;
        copy[`field${i}`] = i;
        await store.set('merged', copy);
      }),
    );
    const final = (await readSession(a, 'merged'))!;
    for (let i = 0; i < 10; i++) expect(final[`field${i}`]).toBe(i);
    await Promise.all([a.close(), b.close()]);
  });

  it('moves past a node that answers 1047 when the pool is a PoolCluster', async () => {
    const admin = await mysql.createConnection({ uri: nodes[2]!.url });
    const cluster = mysql.createPoolCluster({ defaultSelector: 'RR', restoreNodeTimeout: 1000 });
    cluster.add('node1', { uri: nodes[0]!.url, connectionLimit: 4 } as mysql.PoolOptions);
    cluster.add('node3', { uri: nodes[2]!.url, connectionLimit: 4 } as mysql.PoolOptions);
    const store = new SqlStore({ pool: cluster, table: TABLE, cleanupIntervalMs: 0, createTable: false, galera: true });
    try {
      await admin.query('SET GLOBAL wsrep_reject_queries = ALL');
      const direct = await mysql.createConnection({ uri: nodes[2]!.url });
      await expect(direct.query(`SELECT COUNT(*) FROM ${TABLE}`)).rejects.toMatchObject({ errno: 1047 });
      direct.destroy();
      for (let i = 0; i < 10; i++) {
        await store.set(`failover-${i}`, sessionFor({ i }));
        expect((await readSession(store, `failover-${i}`))?.i).toBe(i);
      }
    } finally {
      await admin.query('SET GLOBAL wsrep_reject_queries = NONE').catch(() => undefined);
      await admin.end().catch(() => undefined);
      await store.close();
      await cluster.end();
    }
  });

  it('loses no acknowledged session when a node is killed mid-test', async () => {
    const cluster = mysql.createPoolCluster({ defaultSelector: 'RR', removeNodeErrorCount: 1, restoreNodeTimeout: 0 });
    nodes.forEach((node, i) => cluster.add(`node${i + 1}`, { uri: node.url, connectionLimit: 4, connectTimeout: 1000 } as mysql.PoolOptions));
    const store = new SqlStore({ pool: cluster, table: TABLE, cleanupIntervalMs: 0, createTable: false, galera: true, timeoutMs: 5000 });
    const acknowledged: string[] = [];
    const failed: string[] = [];
    let killed = false;
    const writers = Array.from({ length: 8 }, async (_, w) => {
      for (let i = 0; i < 40; i++) {
        const sid = `kill-${w}-${i}`;
        if (w === 0 && i === 10 && !killed) {
          killed = true;
          void nodes[1]!.stop('SIGKILL');
        }
        try {
          await store.set(sid, sessionFor({ w, i }));
          acknowledged.push(sid);
        } catch {
          failed.push(sid);
        }
      }
    });
    await Promise.all(writers);
    expect(killed).toBe(true);
    expect(acknowledged.length).toBeGreaterThan(200);
    for (const survivor of [pool(0), pool(2)]) {
      const reader = new SqlStore({ pool: survivor, table: TABLE, cleanupIntervalMs: 0, createTable: false, galera: true });
      const ids = new Set(await reader.ids());
      expect(acknowledged.filter((sid) => !ids.has(sid))).toEqual([]);
      await reader.close();
    }
    console.log(`galera: node 2 killed; ${acknowledged.length} writes acknowledged (all found on both survivors), ${failed.length} failed with an error`);
    await store.close();
    await cluster.end();
  });
});
