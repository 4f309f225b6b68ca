// The standalone proxy's stick-table replication through each real backing service: two instances
// with header stickiness share what they learned, through a directory (session-fs), Redis
// (session-redis, REDIS_URL) and MariaDB (session-sql, MYSQL_URL). An instance that starts after the
// other has learned something serves its first request already knowing it.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startFulcrum, type FulcrumInstance } from '../src';
import { openReplicator } from '../src/replication';
import type { NormalizedReplication } from '../src/config';
import { MYSQL_URL, REDIS_URL, reachable, skipUnless } from '../../http/test/services';
import { get, startBackend, until } from './helpers';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

const skipRedis = skipUnless(await reachable(REDIS_URL), REDIS_URL, '[http/cli] replication through Redis');
const skipSql = skipUnless(await reachable(MYSQL_URL), MYSQL_URL, '[http/cli] replication through SQL');

const USERS = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];
const run = randomBytes(4).toString('hex');

async function threeBackends(): Promise<string[]> {
  const list = await Promise.all(['b1', 'b2', 'b3'].map((name) => startBackend(name)));
  for (const b of list) cleanups.push(() => b.close());
  return list.map((b) => b.url);
}

async function instance(urls: string[], replication: unknown, nodeId: string): Promise<FulcrumInstance & { port: number }> {
  const fulcrum = await startFulcrum(
    {
      frontends: [{ port: 0, host: '127.0.0.1' }],
      nodeId,
      replication,
      pools: { web: { algorithm: 'round-robin', backends: urls.map((url, i) => ({ id: `b${i + 1}`, address: url })), stickiness: { header: 'x-user' } } },
    },
    { logger: () => undefined },
  );
  cleanups.push(() => fulcrum.close(1000));
  return Object.assign(fulcrum, { port: fulcrum.addresses().frontends[0]!.port });
}

const who = async (port: number, user: string) => (await get(port, '/', { headers: { 'x-user': user } })).body;

async function sharesStickiness(replication: Record<string, unknown>, spec: NormalizedReplication): Promise<void> {
  const urls = await threeBackends();
  const a = await instance(urls, replication, 'lb-a');
  const chosen = new Map<string, string>();
  for (const user of USERS) chosen.set(user, await who(a.port, user));
  // Round robin spread them over all three backends, so agreement below is not luck.
  expect(new Set(chosen.values()).size).toBe(3);

  // Wait until what A learned is in the backing service (what a joining instance loads).
  const observer = await openReplicator(spec, 'observer', (name) => import(name));
  cleanups.push(() => observer.close());
  await until(
    async () => {
      const keys = (await observer.replicator.snapshot()).map((entry) => entry.key);
      return USERS.every((user) => keys.some((key) => key.endsWith(`:${user}`)));
    },
    'the entries to reach the backing service',
    15_000,
  );

  // B starts afterwards and is asked in the reverse order: balanced on its own, round robin would
  // send most users elsewhere. Every one goes where A sent it.
  const b = await instance(urls, replication, 'lb-b');
  for (const user of [...USERS].reverse()) expect(await who(b.port, user), user).toBe(chosen.get(user));

  // And live, while both run: a user B sees first sticks on A too.
  const late = `zed-${run}`;
  const onB = await who(b.port, late);
  await until(async () => (await observer.replicator.snapshot()).some((entry) => entry.key.endsWith(`:${late}`)), 'the new entry to reach the service', 15_000);
  await until(async () => (await who(a.port, late)) === onB, 'A to follow what B learned', 15_000).catch(() => undefined);
  expect(await who(a.port, late)).toBe(onB);
}

describe('fulcrum runner: stick-table replication between instances', () => {
  it('through a shared directory (session-fs)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-cli-repl-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    await sharesStickiness({ directory: { dir, pollIntervalMs: 50 } }, { kind: 'directory', dir, pollIntervalMs: 50 } as NormalizedReplication);
  }, 60_000);

  it.skipIf(skipRedis)(
    'through Redis (session-redis)',
    async () => {
      const channel = `fulcrum-cli-${run}`;
      const key = `fulcrum-cli-${run}`;
      cleanups.push(async () => {
        const { Redis } = await import('ioredis');
        const client = new Redis(REDIS_URL);
        await client.del(key).finally(() => client.quit());
      });
      await sharesStickiness({ redis: { url: REDIS_URL, channel, key } }, { kind: 'redis', url: REDIS_URL, channel, key } as NormalizedReplication);
    },
    60_000,
  );

  it.skipIf(skipSql)(
    'through MariaDB (session-sql)',
    async () => {
      const table = `fulcrum_cli_${run}`;
      cleanups.push(async () => {
        const mysql = await import('mysql2/promise');
        const connection = await mysql.createConnection(MYSQL_URL);
        await connection.query(`DROP TABLE IF EXISTS \`${table}\``).finally(() => connection.end());
      });
      await sharesStickiness({ sql: { url: MYSQL_URL, table } }, { kind: 'sql', url: MYSQL_URL, table } as NormalizedReplication);
    },
    60_000,
  );
});
