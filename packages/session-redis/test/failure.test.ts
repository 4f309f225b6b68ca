import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isStoreUnavailableError, type StickEntry } from '@fulcrum/core';
import { RedisReplicator, RedisStore, redisClientOptions } from '@fulcrum/session-redis';
import { closeClients, newClient, PrivateRedis, redisBinariesAvailable, sessionData, skipUnless } from './helpers';
import { waitFor } from '../../../test-support/wait-for';

const skip = skipUnless(redisBinariesAvailable(), 'redis-server / redis-cli (for a private server)');

describe.skipIf(skip)('failure behaviour against a private redis-server', () => {
  let server: PrivateRedis;
  beforeAll(async () => {
    server = await PrivateRedis.start();
  });
  afterAll(async () => {
    await closeClients();
    await server?.stop();
  });

  it('fails fast while Redis is down, emits disconnect then connect, and recovers without a restart', async () => {
    for (const options of [redisClientOptions(), {}]) {
      // With the recommended options and with ioredis's defaults (offline queue, no timeout).
      const client = newClient(server.url, options);
      const store = new RedisStore({ client, prefix: 'down:' });
      await store.set('s1', sessionData(60_000, { n: 1 }));
      const disconnected = once(store, 'disconnect');
      await server.kill();
      await disconnected;
      const failures = await Promise.allSettled([
        store.get('s1'),
        store.set('s1', sessionData(60_000)),
        store.touch('s1', sessionData(60_000)),
        store.destroy('s1'),
        store.length(),
      ]);
      for (const failure of failures) {
        expect(failure.status).toBe('rejected');
        expect(isStoreUnavailableError((failure as PromiseRejectedResult).reason)).toBe(true);
        expect(String((failure as PromiseRejectedResult).reason.message)).not.toContain(String(server.port));
      }
      const connected = once(store, 'connect');
      await server.start();
      await connected;
      expect(await store.get('s1')).toBeNull(); // a new, empty server (no persistence)
      await store.set('s2', sessionData(60_000, { n: 2 }));
      expect(await store.get('s2')).toMatchObject({ n: 2 });
      store.close();
    }
  });

  it('fails a call that gets no answer within commandTimeoutMs', async () => {
    const client = newClient(server.url, { ...redisClientOptions(), commandTimeout: undefined });
    const store = new RedisStore({ client, prefix: 'slow:', commandTimeoutMs: 200 });
    await store.set('s', sessionData(60_000));
    const admin = newClient(server.url);
    await admin.client('PAUSE', 1500, 'ALL');
    const error = await store.get('s').catch((e: unknown) => e);
    expect(isStoreUnavailableError(error)).toBe(true);
    expect(String((error as Error).message)).toMatch(
      /^RedisStore.get failed: Redis did not answer within \d+ ms \(commandTimeoutMs\); this call fails without a retry/,
    );
    store.close();
  });

  it('waits for the first connection instead of failing the first call', async () => {
    const client = newClient(server.url, { ...redisClientOptions(), lazyConnect: true });
    const store = new RedisStore({ client, prefix: 'lazy:' });
    await store.set('s', sessionData(60_000, { first: true }));
    expect(await store.get('s')).toMatchObject({ first: true });
    store.close();
  });

  it('replays the snapshot to subscribers after their connection was lost, healing missed updates', async () => {
    const options = redisClientOptions();
    const writer = new RedisReplicator<string>({ client: newClient(server.url, options), channel: 'heal', key: 'heal' });
    const reader = new RedisReplicator<string>({ client: newClient(server.url, options), channel: 'heal', key: 'heal' });
    try {
      const received: StickEntry<string>[] = [];
      reader.subscribe((entries) => received.push(...entries));
      await reader.snapshot();
      const now = Date.now();
      const admin = newClient(server.url);
      await admin.client('KILL', 'TYPE', 'pubsub');
      // Written while the reader's subscription is down: pub/sub drops it, the resync brings it.
      await writer.publish([{ key: 'missed', value: 'b1', updatedAt: now, expiresAt: now + 60_000, origin: 'w' }]);
      await waitFor(() => received.some((e) => e.key === 'missed'), { what: 'the resync to bring the missed entry', timeoutMs: 5000 });
      expect(received.find((e) => e.key === 'missed')).toMatchObject({ value: 'b1', origin: 'w' });
    } finally {
      await Promise.all([writer.close(), reader.close()]);
    }
  });
});
