import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkReplicator } from '@fulcrum/core/testing';
import { RedisReplicator, RedisStore, redisClientOptions } from '@fulcrum/session-redis';
import { PrivateSentinel, Redis, redisBinariesAvailable, sessionData, skipUnless } from './helpers';
import { waitFor } from '../../../test-support/wait-for';

const skip = skipUnless(redisBinariesAvailable(), 'redis-server (for a private master, replica and sentinel)');

/** Retry `fn` until it resolves (a failover in progress), for at most `ms`. */
async function eventually<T>(fn: () => Promise<T>, ms = 20_000): Promise<T> {
  const { value } = await waitFor(async () => ({ value: await fn() }), { what: 'the call to succeed (failover)', timeoutMs: ms, intervalMs: 100 });
  return value;
}

describe.skipIf(skip)('through Redis Sentinel (a private master, replica and sentinel)', () => {
  let setup: PrivateSentinel;
  const clients: Redis[] = [];
  const connect = () => {
    const client = new Redis({ sentinels: setup.sentinels, name: PrivateSentinel.NAME, ...redisClientOptions() });
    client.on('error', () => undefined);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    setup = await PrivateSentinel.start();
  }, 60_000);
  afterAll(async () => {
    for (const client of clients) client.disconnect();
    await setup?.stop();
  });

  it('finds the master through the sentinel, and keeps every session across a failover', async () => {
    const client = connect();
    const store = new RedisStore({ client, prefix: 'sentinel:' });
    const ids = Array.from({ length: 20 }, (_, i) => `before-${i}`);
    for (const id of ids) await store.set(id, sessionData(600_000, { id }));
    expect(((await store.get('before-3')) as unknown as { id: string }).id).toBe('before-3');
    // The sentinel names the first master, and the sessions reached the replica before the failover.
    expect(await setup.masterPort()).toBe(setup.master.port);
    expect(await client.call('WAIT', '1', '5000')).toBe(1);

    await setup.failover();

    // While ioredis moves to the new master, calls may fail (StoreUnavailableError); then they work.
    await eventually(() => store.set('after', sessionData(600_000, { id: 'after' })));
    const role = (await eventually(() => client.call('ROLE'))) as [string];
    expect(role[0]).toBe('master');
    expect(await eventually(() => store.length())).toBe(21);
    for (const id of ids) expect(((await store.get(id)) as unknown as { id: string }).id).toBe(id);
    // And the new master is the former replica: the client followed the sentinel.
    const direct = new Redis(setup.replica.port, '127.0.0.1', { lazyConnect: true });
    direct.on('error', () => undefined);
    try {
      expect(await direct.get('sentinel:after')).not.toBeNull();
    } finally {
      direct.disconnect();
    }
  }, 90_000);

  it('passes checkReplicator with Sentinel-discovered clients', async () => {
    await checkReplicator(({ cluster: id }) => new RedisReplicator({ client: connect(), channel: `stick:${id}`, key: `stick:${id}` }), { nodes: 2 });
  }, 60_000);
});
