/**
 * Redis under faults, through `FaultProxy` relays in front of a PRIVATE redis-server (never the
 * shared one): blackholed and restarted under load, the store fails fast with StoreUnavailableError,
 * recovers by itself, and loses no write it acknowledged; a replication link cut and restored leaves
 * both stick-tables serving, resynchronises them and never resurrects a deleted entry.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StickTable, isStoreUnavailableError } from '@fulcrum/core';
import { RedisReplicator, RedisStore, redisClientOptions } from '@fulcrum/session-redis';
import { FaultProxy } from '../../http/test/faults/fault-proxy';
import { closeClients, newClient, PrivateRedis, redisBinariesAvailable, sessionData, skipUnless } from './helpers';
import { writeUntilStopped, type StoreLoad } from '../../../test-support/store-load';
import { waitFor } from '../../../test-support/wait-for';

const skip = skipUnless(redisBinariesAvailable(), 'redis-server / redis-cli (for a private server)');

async function until(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(condition, { what, timeoutMs, intervalMs: 20 });
}

/** Sessions written one after another until stopped: what Redis acknowledged, and what failed. */
function writer(store: RedisStore, prefix: string): StoreLoad {
  return writeUntilStopped((id, n) => store.set(id, sessionData(600_000, { n })), prefix, 10);
}

describe.skipIf(skip)('Redis behind a FaultProxy', () => {
  let server: PrivateRedis;
  let fault: FaultProxy;
  beforeAll(async () => {
    // Persistence on, fsync per write: an acknowledged write must survive a crash of the server.
    server = await PrivateRedis.start(['--appendonly', 'yes', '--appendfsync', 'always']);
    fault = await FaultProxy.start({ host: '127.0.0.1', port: server.port });
  });
  afterAll(async () => {
    await closeClients();
    await fault?.close();
    await server?.stop();
  });

  it('fails fast while blackholed under load, recovers, and keeps every acknowledged write', async () => {
    const client = newClient(`redis://127.0.0.1:${fault.port}`, redisClientOptions());
    const store = new RedisStore({ client, prefix: 'bh:', commandTimeoutMs: 300 });
    const load = writer(store, 'bh');
    await until(() => load.acknowledged.length >= 50, 'writes before the fault');
    await fault.blackhole();
    const marked = load.failures.length;
    await until(() => load.failures.length >= marked + 3, 'calls failing during the blackhole');
    for (const failure of load.failures) expect(isStoreUnavailableError(failure), String(failure)).toBe(true);
    await fault.pass();
    const afterHeal = load.acknowledged.length;
    await until(() => load.acknowledged.length >= afterHeal + 50, 'writes after the partition healed');
    await load.stop();
    const stored = await store.all();
    for (const id of load.acknowledged) expect(stored[id], id).toBeDefined();
    store.close();
  });

  it('fails fast while Redis is killed under load, recovers when it restarts, and loses no acknowledged write', async () => {
    const client = newClient(`redis://127.0.0.1:${fault.port}`, redisClientOptions());
    const store = new RedisStore({ client, prefix: 'kill:', commandTimeoutMs: 500 });
    const load = writer(store, 'kill');
    await until(() => load.acknowledged.length >= 50, 'writes before the crash');
    await server.kill();
    const marked = load.failures.length;
    await until(() => load.failures.length >= marked + 3, 'calls failing while Redis is down');
    await server.start();
    const afterRestart = load.acknowledged.length;
    await until(() => load.acknowledged.length >= afterRestart + 50, 'writes after the restart', 20_000);
    await load.stop();
    for (const failure of load.failures) expect(isStoreUnavailableError(failure), String(failure)).toBe(true);
    const stored = await store.all();
    const lost = load.acknowledged.filter((id) => stored[id] === undefined);
    expect(lost).toEqual([]);
    store.close();
  });

  it('keeps both stick-tables serving through a cut replication link, resyncs them and resurrects nothing', async () => {
    const direct = server.url;
    const viaFault = `redis://127.0.0.1:${fault.port}`;
    const key = `cut-${Date.now()}`;
    const left = new RedisReplicator<string>({ client: newClient(direct, redisClientOptions()), channel: key, key });
    const right = new RedisReplicator<string>({ client: newClient(viaFault, redisClientOptions()), channel: key, key, onError: () => undefined });
    const a = new StickTable<string>({ capacity: 1000, ttlMs: 600_000, nodeId: 'left', replicator: left });
    const b = new StickTable<string>({ capacity: 1000, ttlMs: 600_000, nodeId: 'right', replicator: right, onError: () => undefined } as never);
    try {
      await Promise.all([a.ready, b.ready]);
      a.set('shared', 'b1');
      a.set('doomed', 'b2');
      await a.flush();
      await until(() => b.get('shared') === 'b1' && b.get('doomed') === 'b2', 'replication before the cut');

      await fault.reset();
      // Both sides keep answering and taking writes while the link is down.
      a.set('left-during-cut', 'b3');
      a.delete('doomed');
      await a.flush();
      b.set('right-during-cut', 'b4');
      await b.flush();
      expect(b.get('shared')).toBe('b1');
      expect(b.get('right-during-cut')).toBe('b4');
      expect(a.get('left-during-cut')).toBe('b3');

      await fault.pass();
      // The cut side resyncs from the snapshot: it gets the other side's writes and the delete.
      await until(() => b.get('left-during-cut') === 'b3' && b.get('doomed') === undefined, 'the cut side to resync', 15_000);
      // And its own writes from during the cut reach the other side.
      await until(() => a.get('right-during-cut') === 'b4', 'the other side to learn the cut side’s writes', 5_000);
      // A deleted entry stays deleted on both sides, whatever is replayed.
      expect(a.get('doomed')).toBeUndefined();
      expect(b.get('doomed')).toBeUndefined();
    } finally {
      await Promise.all([a.close(), b.close()]);
      await Promise.all([left.close(), right.close()]);
    }
  });
});
