import { afterAll, describe, expect, it } from 'vitest';
import { FakeClock, checkReplicator } from '@fulcrum/core/testing';
import { StickTable, createLoadBalancer, isInvalidOptionError, type StickEntry } from '@fulcrum/core';
import { RedisReplicator } from '@fulcrum/session-redis';
import { closeClients, newClient, redisReachable, REDIS_URL, skipUnless, uniquePrefix } from './helpers';
import { waitFor } from '../../../test-support/wait-for';

const skip = skipUnless(await redisReachable(), `Redis at ${REDIS_URL}`);

async function eventually(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 3000): Promise<void> {
  await waitFor(condition, { what, timeoutMs, intervalMs: 10 });
}

describe.skipIf(skip)('RedisReplicator', () => {
  const prefix = uniquePrefix('replicator');
  const admin = newClient();
  const replicators: RedisReplicator<string>[] = [];
  const make = (name: string, extra: Partial<ConstructorParameters<typeof RedisReplicator>[0]> = {}) => {
    const replicator = new RedisReplicator<string>({ client: newClient(), channel: `${prefix}${name}`, key: `${prefix}${name}`, ...extra });
    replicators.push(replicator);
    return replicator;
  };

  afterAll(async () => {
    await Promise.all(replicators.map((r) => r.close()));
    const keys = await admin.keys(`{${prefix}*`);
    if (keys.length > 0) await admin.del(keys);
    await closeClients();
  });

  it('passes the checkReplicator conformance suite, each table with its own connections', async () => {
    await checkReplicator(({ cluster }) => make(`chk:${cluster}`));
  });

  it('refuses invalid options with errors naming the option', () => {
    const client = newClient();
    const cases: [Record<string, unknown>, string][] = [
      [{ client: null }, 'redisReplicator.client'],
      [{ client, channel: '' }, 'redisReplicator.channel'],
      [{ client, key: 'a\r\nb' }, 'redisReplicator.key'],
      [{ client, subscriber: client }, 'redisReplicator.subscriber'],
      [{ client, maxEntriesPerCall: 0 }, 'redisReplicator.maxEntriesPerCall'],
      [{ client, onError: 'log' }, 'redisReplicator.onError'],
      [{ client, clock: { now: () => 0 } }, 'redisReplicator.clock'],
    ];
    for (const [options, path] of cases) {
      let caught: unknown;
      try {
        new RedisReplicator(options as never);
      } catch (error) {
        caught = error;
      }
      expect(isInvalidOptionError(caught), path).toBe(true);
      expect((caught as { path: string }).path).toBe(path);
    }
  });

  it('sends a whole batch in one round trip', async () => {
    const replicator = make('batch');
    const client = newClient();
    const counted = new RedisReplicator<string>({ client, channel: replicator.channel, key: `${prefix}batch` });
    replicators.push(counted);
    await client.ping();
    const sent: string[] = [];
    const original = client.sendCommand.bind(client);
    client.sendCommand = ((command: { name: string }) => {
      sent.push(command.name);
      return original(command as never);
    }) as typeof client.sendCommand;
    const now = Date.now();
    await counted.publish(Array.from({ length: 500 }, (_, i) => ({ key: `k${i}`, value: `b${i % 3}`, updatedAt: now, expiresAt: now + 60_000, origin: 'n1' })));
    expect(sent).toEqual(['evalsha']);
    expect(await admin.hlen(replicator.hashKey)).toBe(500);
  });

  it('keeps the newest write in the snapshot whatever order batches arrive in', async () => {
    const replicator = make('lww');
    const now = Date.now();
    const entry = (value: string, updatedAt: number, origin: string, deleted = false): StickEntry<string> =>
      deleted ? { key: 'k', updatedAt, expiresAt: now + 60_000, origin, deleted: true } : { key: 'k', value, updatedAt, expiresAt: now + 60_000, origin };
    await replicator.publish([entry('newer', now + 10, 'a')]);
    await replicator.publish([entry('older', now, 'z')]);
    expect((await replicator.snapshot()).map((e) => e.value)).toEqual(['newer']);
    await replicator.publish([entry('tie-higher-origin', now + 10, 'b')]);
    expect((await replicator.snapshot()).map((e) => e.value)).toEqual(['tie-higher-origin']);
    await replicator.publish([entry('', now + 10, 'b', true)]); // tombstone beats a value at the same stamp
    expect((await replicator.snapshot()).map((e) => e.deleted)).toEqual([true]);
    await replicator.publish([entry('late value', now + 5, 'c')]);
    expect((await replicator.snapshot()).map((e) => e.deleted)).toEqual([true]);
  });

  it('keeps stamps, origins and odd keys exactly as sent', async () => {
    const replicator = make('exact');
    const now = Date.now();
    const sent: StickEntry<string> = { key: 'ü "q" \\ 🍪', value: 'v "x" \u00e9', updatedAt: now + 0.25, expiresAt: now + 60_000.5, origin: 'peer.y:1' };
    await replicator.publish([sent]);
    expect(await replicator.snapshot()).toEqual([sent]);
  });

  // Expiry has two judges here: the replicator's `clock` (what it sends and what its snapshots return)
  // and Redis's own clock (what the merge script accepts, what it purges, when the keys expire).
  // A FakeClock moves only the first; each test below says which one it checks.
  it("drops and filters entries on its clock option, while Redis keeps them until they expire on Redis's clock", async () => {
    const clock = new FakeClock(Date.now());
    const replicator = make('clock', { clock });
    const now = clock.now();
    await replicator.publish([
      { key: 'short', value: 'x', updatedAt: now, expiresAt: now + 10_000, origin: 'a' },
      { key: 'long', value: 'y', updatedAt: now, expiresAt: now + 30_000, origin: 'a' },
    ]);
    // The keys' TTL follows the latest entry, counted by Redis from its own clock.
    const ttl = await admin.pttl(replicator.hashKey);
    expect(ttl).toBeGreaterThan(20_000);
    expect(ttl).toBeLessThanOrEqual(30_000);
    expect(await admin.pttl(replicator.expiryKey)).toBeGreaterThan(20_000);
    await clock.advance(10_000);
    // Expired on the replicator's clock: left out of the snapshot, and not sent any more…
    expect((await replicator.snapshot()).map((e) => e.key)).toEqual(['long']);
    await replicator.publish([{ key: 'late', value: 'z', updatedAt: now, expiresAt: now + 10_000, origin: 'a' }]);
    // …while Redis, whose clock has not moved 10 s, still holds 'short' (and would have taken 'late').
    expect((await admin.hkeys(replicator.hashKey)).sort()).toEqual(['long', 'short']);
  });

  it("never stores an entry expired on Redis's clock, even when the replicator's clock says it is live", async () => {
    // Years before the wall clock: the replicator's own filter lets the entry through, so what is
    // checked is the merge script's refusal.
    const clock = new FakeClock(Date.UTC(2020, 0, 1));
    const replicator = make('redis-clock', { clock });
    const now = clock.now();
    await replicator.publish([{ key: 'dead', value: 'x', updatedAt: now, expiresAt: now + 60_000, origin: 'a' }]);
    expect(await admin.exists(replicator.hashKey)).toBe(0);
  });

  it("purges entries that expired on Redis's clock while stored, on the next merge or snapshot", async () => {
    const replicator = make('purge');
    const now = Date.now();
    await replicator.publish([{ key: 'live', value: 'y', updatedAt: now, expiresAt: now + 30_000, origin: 'a' }]);
    // An entry whose expiry passed while it sat in the snapshot, written as the script writes one;
    // waiting for a live one to expire would only make the test slower, not more honest.
    const stale = { key: 'stale', value: 'x', updatedAt: now - 2000, expiresAt: now - 1000, origin: 'a' };
    await admin.hset(replicator.hashKey, 'stale', JSON.stringify(stale));
    await admin.zadd(replicator.expiryKey, stale.expiresAt, 'stale');
    expect((await replicator.snapshot()).map((e) => e.key)).toEqual(['live']);
    expect(await admin.hkeys(replicator.hashKey)).toEqual(['live']);
    expect(await admin.zrange(replicator.expiryKey, 0, -1)).toEqual(['live']);
    await admin.hset(replicator.hashKey, 'stale', JSON.stringify(stale));
    await admin.zadd(replicator.expiryKey, stale.expiresAt, 'stale');
    await replicator.publish([{ key: 'other', value: 'z', updatedAt: now, expiresAt: now + 30_000, origin: 'a' }]);
    expect((await admin.hkeys(replicator.hashKey)).sort()).toEqual(['live', 'other']);
  });

  it('publishes only the entries that won, as one message per batch', async () => {
    const publisher = make('won');
    const listener = make('won');
    const batches: StickEntry<string>[][] = [];
    listener.subscribe((entries) => batches.push([...entries]));
    await listener.snapshot(); // subscription established
    const now = Date.now();
    await publisher.publish([{ key: 'a', value: 'new', updatedAt: now + 5, expiresAt: now + 60_000, origin: 'x' }]);
    await publisher.publish([
      { key: 'a', value: 'stale', updatedAt: now, expiresAt: now + 60_000, origin: 'x' },
      { key: 'b', value: 'fresh', updatedAt: now, expiresAt: now + 60_000, origin: 'x' },
    ]);
    await eventually(() => batches.length >= 2, 'two batches delivered');
    expect(batches.map((b) => b.map((e) => e.value))).toEqual([['new'], ['fresh']]);
  });

  it('makes two load balancers with their own tables and connections send a client to the same backend', async () => {
    const backends = ['a', 'b', 'c', 'd', 'e'].map((id, i) => ({ id, address: `http://127.0.0.1:${9000 + i}` }));
    const tables = [0, 1].map((i) => new StickTable<string>({ capacity: 1000, ttlMs: 60_000, nodeId: `lb-${i}`, batchMs: 5, replicator: make('lbs') }));
    await Promise.all(tables.map((t) => t.ready));
    const [first, second] = tables.map((stickTable) => createLoadBalancer({ backends, algorithm: 'random', stickTable }));
    try {
      const clients = Array.from({ length: 20 }, (_, i) => `client-${i}`);
      const chosen = new Map<string, string>();
      for (const affinityKey of clients) {
        const lease = first!.acquire({ affinityKey })!;
        chosen.set(affinityKey, lease.backend.id);
        lease.release({ ok: true });
      }
      expect(new Set(chosen.values()).size).toBeGreaterThan(1);
      await eventually(() => clients.every((k) => tables[1]!.get(k) === chosen.get(k)), 'the second table learned every client');
      for (const affinityKey of clients) {
        const lease = second!.acquire({ affinityKey })!;
        expect(lease.backend.id).toBe(chosen.get(affinityKey));
        expect(lease.decision.reason).toBe('sticky');
        lease.release({ ok: true });
      }
      // A third instance that starts later loads the same map from the snapshot.
      const late = new StickTable<string>({ capacity: 1000, ttlMs: 60_000, nodeId: 'lb-2', replicator: make('lbs') });
      tables.push(late);
      await late.ready;
      expect(clients.every((k) => late.get(k) === chosen.get(k))).toBe(true);
    } finally {
      await Promise.all(tables.map((t) => t.close()));
    }
  });
});
