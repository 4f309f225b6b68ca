import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { StickTable } from '@fulcrum/core';
import { createProxy, type ProxyHandler } from '@fulcrum/http';
import { RedisReplicator } from '@fulcrum/session-redis';
import { closeClients, newClient, redisReachable, REDIS_URL, skipUnless, uniquePrefix } from './helpers';
import { waitFor } from '../../../test-support/wait-for';

const skip = skipUnless(await redisReachable(), `Redis at ${REDIS_URL}`);

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

function get(port: number, headers: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

describe.skipIf(skip)('two proxies sharing stickiness through Redis', () => {
  const servers: Server[] = [];
  const proxies: ProxyHandler[] = [];
  const tables: StickTable<string>[] = [];
  const replicators: RedisReplicator<string>[] = [];

  afterAll(async () => {
    for (const proxy of proxies) await proxy.close();
    for (const table of tables) await table.close();
    for (const replicator of replicators) await replicator.close();
    for (const server of servers) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    await closeClients();
  });

  it('sends a client stuck through one proxy to the same backend through the other', async () => {
    const backends = [];
    for (const id of ['b0', 'b1', 'b2']) {
      const server = createServer((_req, res) => res.end(id));
      servers.push(server);
      backends.push({ id, address: `http://127.0.0.1:${await listen(server)}` });
    }
    const prefix = uniquePrefix('proxy');
    const ports: number[] = [];
    for (const node of ['edge-1', 'edge-2']) {
      const replicator = new RedisReplicator<string>({ client: newClient(), channel: `${prefix}stick`, key: `${prefix}stick` });
      const table = new StickTable<string>({ capacity: 10_000, ttlMs: 60_000, nodeId: node, replicator, batchMs: 5 });
      await table.ready;
      replicators.push(replicator);
      tables.push(table);
      // Each proxy's round robin starts elsewhere, so agreement can only come from the shared table.
      const proxy = createProxy({
        balancer: { backends: node === 'edge-1' ? backends : [...backends].reverse(), algorithm: 'round-robin' },
        stickiness: { header: 'x-user', table },
      });
      proxies.push(proxy);
      const server = createServer(proxy);
      servers.push(server);
      ports.push(await listen(server));
    }
    const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];
    const first = new Map<string, string>();
    for (const user of users) first.set(user, await get(ports[0]!, { 'x-user': user }));
    expect(new Set(first.values()).size).toBeGreaterThan(1);
    // Let the batches travel through Redis pub/sub.
    await waitFor(() => users.every((u) => tables[1]!.get(`hdr:${u}`) !== undefined), {
      what: 'every affinity entry to reach the second proxy',
      timeoutMs: 3000,
      intervalMs: 20,
    });
    for (const user of users) {
      for (let i = 0; i < 3; i++) expect(await get(ports[1]!, { 'x-user': user })).toBe(first.get(user));
    }
  });
});
