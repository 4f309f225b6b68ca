import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkReplicator, checkStore, type StoreUnderTest } from '@fulcrum/core/testing';
import { RedisReplicator, RedisStore, redisClientOptions } from '@fulcrum/session-redis';
import { Cluster, PrivateCluster, redisBinariesAvailable, sessionData, skipUnless } from './helpers';

const skip = skipUnless(redisBinariesAvailable(), 'redis-server / redis-cli (for a private cluster)');

describe.skipIf(skip)('on a private 3-master Redis Cluster', () => {
  let cluster: PrivateCluster;
  const clients: Cluster[] = [];
  const connect = () => {
    const client = new Cluster(cluster.nodes, { redisOptions: redisClientOptions() });
    client.on('error', () => undefined);
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    cluster = await PrivateCluster.start(3);
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.quit().catch(() => c.disconnect())));
    await cluster?.stop();
  });

  it('passes checkStore with an ioredis Cluster client', async () => {
    await checkStore(() => new RedisStore({ client: connect(), prefix: 'chk:' }) as unknown as StoreUnderTest, {
      ttlMs: 300,
      expiryGraceMs: 150,
      maxIdLength: 1024,
    });
  });

  it('lists, counts and clears sessions held by every master', async () => {
    const client = connect();
    const store = new RedisStore({ client, prefix: 'spread:', scanCount: 10 });
    const ids = Array.from({ length: 60 }, (_, i) => `sid-${String(i).padStart(2, '0')}`);
    await Promise.all(ids.map((id) => store.set(id, sessionData(60_000, { id }))));
    const perMaster = await Promise.all(client.nodes('master').map((node) => node.keys('spread:*')));
    expect(perMaster.filter((keys) => keys.length > 0).length).toBe(3);
    expect(await store.ids()).toEqual(ids);
    expect(await store.length()).toBe(60);
    const all = (await store.all()) as unknown as Record<string, { id: string }>;
    expect(Object.keys(all).sort()).toEqual(ids);
    expect(all['sid-07']!.id).toBe('sid-07');
    await store.clear();
    expect(await store.length()).toBe(0);
  });

  it('passes checkReplicator with Cluster clients (snapshot keys share a hash slot)', async () => {
    await checkReplicator(({ cluster: id }) => new RedisReplicator({ client: connect(), channel: `stick:${id}`, key: `stick:${id}` }), { nodes: 2 });
  });
});
