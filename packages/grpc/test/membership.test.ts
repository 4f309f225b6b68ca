import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { deferred, waitFor } from '../../../test-support/wait-for';
import { connect, startBackend, testTarget, unary, uniquePolicyName } from './fixtures';
import type { Backend } from './fixtures';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function backends(n: number, options: { health?: boolean } = {}, prefix = 'b'): Promise<Backend[]> {
  const list = await Promise.all(Array.from({ length: n }, (_, i) => startBackend(`${prefix}${i}`, options)));
  for (const b of list) cleanup.push(() => b.close());
  return list;
}

async function client(addresses: string[], policy: Parameters<typeof connect>[1]) {
  const t = testTarget(addresses);
  const c = await connect(t.target, { ...policy, name: uniquePolicyName(policy.algorithm ?? 'p2c') });
  cleanup.push(() => c.close());
  return { ...c, setAddresses: t.setAddresses };
}

const withKey = (value: string) => {
  const m = new grpc.Metadata();
  m.set('x-user', value);
  return m;
};

describe('hashing by a metadata key', () => {
  for (const algorithm of ['maglev', 'ring-hash', 'rendezvous']) {
    it(`${algorithm}: sends every call with a key to one backend, the same on two channels, and spreads keys`, async () => {
      const bs = await backends(4);
      const addresses = bs.map((b) => b.address);
      const one = await client(addresses, { algorithm, hashKey: { metadata: 'x-user' } });
      // The second channel sees the addresses in another order: ids come from addresses, not order.
      const two = await client([...addresses].reverse(), { algorithm, hashKey: { metadata: 'x-user' } });
      const owners = new Map<string, string>();
      for (let k = 0; k < 40; k++) {
        const key = `user-${k}`;
        const replies = await Promise.all([0, 1, 2].map(() => unary(one.client, {}, { metadata: withKey(key) })));
        const other = await unary(two.client, {}, { metadata: withKey(key) });
        expect(new Set(replies.map((r) => r.backend)).size).toBe(1);
        expect(other.backend).toBe(replies[0]!.backend);
        owners.set(key, other.backend);
      }
      // 40 keys over 4 backends: all of them own some.
      expect(new Set(owners.values()).size).toBe(4);
      // Keys stay put when an unrelated backend leaves; only the leaver's keys move.
      const leaver = bs[3]!;
      one.setAddresses(addresses.filter((a) => a !== leaver.address));
      await waitFor(() => one.lb().eligibleCount === 3, { what: 'the leaver to leave' });
      for (const [key, owner] of owners) {
        const now = (await unary(one.client, {}, { metadata: withKey(key) })).backend;
        if (owner !== leaver.name) expect(now).toBe(owner);
        else expect(now).not.toBe(leaver.name);
      }
    });
  }

  it('balances a call without the key over all backends', async () => {
    const bs = await backends(3);
    const c = await client(
      bs.map((b) => b.address),
      { algorithm: 'maglev', hashKey: { metadata: 'x-user' } },
    );
    const replies = await Promise.all(Array.from({ length: 60 }, () => unary(c.client, {})));
    expect(new Set(replies.map((r) => r.backend)).size).toBeGreaterThan(1);
  });

  it('records the key and the reason in decisions', async () => {
    const bs = await backends(2);
    const c = await client(
      bs.map((b) => b.address),
      { algorithm: 'rendezvous', hashKey: { metadata: 'x-user' } },
    );
    const decision = deferred<{ key?: string; reason: string; backendId: string }>();
    c.lb().once('decision', (d) => decision.resolve(d));
    const reply = await unary(c.client, {}, { metadata: withKey('alice') });
    const d = await decision.promise;
    expect(d.key).toBe('alice');
    expect(d.reason).toBe('hashed');
    expect(bs.find((b) => b.address === d.backendId)!.name).toBe(reply.backend);
  });
});

describe('health from grpc.health.v1.Health/Watch', () => {
  it('takes a backend that turns NOT_SERVING out of the set and brings it back when SERVING', async () => {
    const bs = await backends(3, { health: true });
    const c = await client(
      bs.map((b) => b.address),
      { algorithm: 'round-robin', healthCheck: { serviceName: '' } },
    );
    const lb = c.lb();
    bs[1]!.health.setStatus('', 'NOT_SERVING');
    await waitFor(() => lb.eligibleCount === 2, { what: 'b1 to leave the set' });
    const before = bs[1]!.calls.Unary;
    const replies = await Promise.all(Array.from({ length: 20 }, () => unary(c.client, {})));
    expect(replies.every((r) => r.backend !== 'b1')).toBe(true);
    expect(bs[1]!.calls.Unary).toBe(before);
    bs[1]!.health.setStatus('', 'SERVING');
    await waitFor(() => lb.eligibleCount === 3, { what: 'b1 to come back' });
    const again = await Promise.all(Array.from({ length: 30 }, () => unary(c.client, {})));
    expect(again.some((r) => r.backend === 'b1')).toBe(true);
  });

  it('watches a named service: SERVICE_UNKNOWN is not serving', async () => {
    const bs = await backends(2, { health: true });
    bs[0]!.health.setStatus('fulcrum.test.Echo', 'SERVING');
    const c = await client([bs[0]!.address], { algorithm: 'round-robin', healthCheck: { serviceName: 'fulcrum.test.Echo' } });
    const lb = c.lb();
    expect(lb.eligibleCount).toBe(1);
    // b1 has never heard of the service: it connects but never joins.
    c.setAddresses([bs[0]!.address, bs[1]!.address]);
    const replies = await Promise.all(Array.from({ length: 10 }, () => unary(c.client, {})));
    expect(replies.every((r) => r.backend === 'b0')).toBe(true);
    expect(lb.eligibleCount).toBe(1);
    bs[1]!.health.setStatus('fulcrum.test.Echo', 'SERVING');
    await waitFor(() => lb.eligibleCount === 2, { what: 'b1 to serve the service' });
  });

  it('treats a server without the health service as serving (UNIMPLEMENTED)', async () => {
    const bs = await backends(2, { health: false });
    const c = await client(
      bs.map((b) => b.address),
      { algorithm: 'round-robin', healthCheck: { serviceName: '' } },
    );
    expect(c.lb().eligibleCount).toBe(2);
    const replies = await Promise.all(Array.from({ length: 10 }, () => unary(c.client, {})));
    expect(new Set(replies.map((r) => r.backend)).size).toBe(2);
  });

  it('keeps out a server whose health stream sends malformed messages, without disturbing the channel', async () => {
    const good = (await backends(1, { health: true }))[0]!;
    // A hostile or broken server: its Watch answers bytes that are no HealthCheckResponse.
    const bad = new grpc.Server();
    const raw = { serialize: (b: Buffer) => b, deserialize: (b: Buffer) => b };
    let watches = 0;
    bad.addService(
      {
        Watch: {
          path: '/grpc.health.v1.Health/Watch',
          requestStream: false,
          responseStream: true,
          requestSerialize: raw.serialize,
          requestDeserialize: raw.deserialize,
          responseSerialize: raw.serialize,
          responseDeserialize: raw.deserialize,
        },
      },
      {
        Watch(call: grpc.ServerWritableStream<Buffer, Buffer>) {
          watches++;
          // Wire type 3 (a deprecated group), then a length running past the end.
          call.write(Buffer.from([0x0b, 0x0a, 0xff, 0x01]));
        },
      },
    );
    const port = await new Promise<number>((resolve, reject) =>
      bad.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))),
    );
    cleanup.push(() => bad.forceShutdown());
    const c = await client([good.address], { algorithm: 'round-robin', healthCheck: { serviceName: '' } });
    c.setAddresses([good.address, `127.0.0.1:${port}`]);
    await waitFor(() => watches >= 1, { what: 'the bad server to be watched' });
    const replies = await Promise.all(Array.from({ length: 10 }, () => unary(c.client, {})));
    expect(replies.every((r) => r.backend === 'b0')).toBe(true);
    expect(c.lb().eligibleCount).toBe(1);
  });

  it('fails calls with UNAVAILABLE when every backend is NOT_SERVING', async () => {
    const bs = await backends(1, { health: true });
    const c = await client([bs[0]!.address], { algorithm: 'round-robin', healthCheck: { serviceName: '' } });
    bs[0]!.health.setStatus('', 'NOT_SERVING');
    await waitFor(() => c.lb().eligibleCount === 0, { what: 'the backend to leave the set' });
    await expect(unary(c.client, {})).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    expect(bs[0]!.calls.Unary).toBe(0);
  });
});

describe('resolver address updates', () => {
  it('adds and removes backends as the resolver changes its list, keeping the ones that stay', async () => {
    const bs = await backends(4);
    const c = await client([bs[0]!.address, bs[1]!.address], { algorithm: 'round-robin' });
    const lb = c.lb();
    const kept = lb.get(bs[0]!.address)!;
    const added: string[] = [];
    const removed: string[] = [];
    lb.on('added', (b) => added.push(b.id));
    lb.on('removed', (b) => removed.push(b.id));
    c.setAddresses([bs[0]!.address, bs[2]!.address, bs[3]!.address]);
    await waitFor(() => lb.eligibleCount === 3 && lb.get(bs[1]!.address) === undefined, { what: 'the new set' });
    expect(added.sort()).toEqual([bs[2]!.address, bs[3]!.address].sort());
    expect(removed).toEqual([bs[1]!.address]);
    // The backend that stayed is the same object, with its history.
    expect(lb.get(bs[0]!.address)).toBe(kept);
    const before = bs[1]!.calls.Unary;
    const replies = await Promise.all(Array.from({ length: 30 }, () => unary(c.client, {})));
    expect(new Set(replies.map((r) => r.backend))).toEqual(new Set(['b0', 'b2', 'b3']));
    expect(bs[1]!.calls.Unary).toBe(before);
  });

  it('ramps a backend that joins with slow start, so it takes a small share at first', async () => {
    const bs = await backends(3);
    const c = await client([bs[0]!.address, bs[1]!.address], { algorithm: 'round-robin', slowStart: { windowMs: 600_000, minWeightPercent: 0 } });
    const lb = c.lb();
    // Servers that connect before the channel's first call join at full weight, as a load
    // balancer's first members do (with minWeightPercent 0 the first calls would have nowhere to go).
    expect(lb.backends.map((b) => b.effectiveWeight)).toEqual([1, 1]);
    expect((await Promise.all([unary(c.client, {}), unary(c.client, {})])).map((r) => r.backend).sort()).toEqual(['b0', 'b1']);
    c.setAddresses(bs.map((b) => b.address));
    // At weight 0 (minWeightPercent 0, the start of the window) it is a member but not yet eligible.
    await waitFor(() => lb.get(bs[2]!.address) !== undefined, { what: 'b2 to join' });
    const joined = lb.get(bs[2]!.address)!;
    expect(joined.effectiveWeight).toBeLessThan(0.05);
    expect(lb.snapshot().backends.find((b) => b.id === joined.id)!.slowStart).toBe(true);
  });

  it('lets a call in flight on a removed backend finish there', async () => {
    const bs = await backends(2);
    const c = await client([bs[0]!.address], { algorithm: 'round-robin' });
    const held = unary(c.client, { hold: true, text: 'long' });
    await bs[0]!.held.promise;
    c.setAddresses([bs[1]!.address]);
    await waitFor(() => c.lb().get(bs[1]!.address) !== undefined && c.lb().get(bs[0]!.address) === undefined, { what: 'b1 to replace b0' });
    expect((await unary(c.client, {})).backend).toBe('b1');
    bs[0]!.release();
    expect(await held).toMatchObject({ backend: 'b0', text: 'long' });
  });

  it('fails calls with UNAVAILABLE when the resolver returns no address', async () => {
    const bs = await backends(1);
    const c = await client([bs[0]!.address], { algorithm: 'p2c' });
    c.setAddresses([]);
    await waitFor(() => c.lb().eligibleCount === 0, { what: 'the empty set' });
    await expect(unary(c.client, {})).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
  });
});
