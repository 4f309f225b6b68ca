import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { deferred, waitFor } from '../../../test-support/wait-for';
import { connect, startBackend, startProcessBackend, testTarget, unary, uniquePolicyName } from './fixtures';
import type { Backend, ProcessBackend } from './fixtures';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function backends(n: number, options: { health?: boolean } = {}): Promise<Backend[]> {
  const list = await Promise.all(Array.from({ length: n }, (_, i) => startBackend(`b${i}`, options)));
  for (const b of list) cleanup.push(() => b.close());
  return list;
}

async function client(addresses: string[], policy: Parameters<typeof connect>[1], channelOptions: grpc.ChannelOptions = {}) {
  const t = testTarget(addresses);
  const c = await connect(t.target, { ...policy, name: uniquePolicyName(policy.algorithm ?? 'p2c') }, channelOptions);
  cleanup.push(() => c.close());
  return { ...c, setAddresses: t.setAddresses };
}

const codeOf = async (p: Promise<unknown>): Promise<number> => {
  try {
    await p;
    return grpc.status.OK;
  } catch (error) {
    return (error as grpc.ServiceError).code;
  }
};

async function processBackends(n: number): Promise<ProcessBackend[]> {
  const list = await Promise.all(Array.from({ length: n }, (_, i) => startProcessBackend(`p${i}`)));
  for (const b of list) cleanup.push(() => b.kill());
  return list;
}

describe('a backend killed mid-call', () => {
  it('fails the committed unary call with UNAVAILABLE, never replays it, and sends the next calls to the others', async () => {
    const bs = await processBackends(3);
    const c = await client(
      bs.map((b) => b.address),
      { algorithm: 'round-robin' },
    );
    const lb = c.lb();
    const chosen = deferred<string>();
    lb.once('decision', (d) => chosen.resolve(d.backendId));
    const held = codeOf(unary(c.client, { hold: true }));
    const victimId = await chosen.promise;
    const victim = bs.find((b) => victimId === b.address)!;
    await victim.nextHeld();
    const victimBackend = lb.get(victimId)!;
    await victim.kill();
    expect(await held).toBe(grpc.status.UNAVAILABLE);
    // Never replayed: the dead backend received it once, and no other backend received it.
    expect(victim.calls.Unary).toBe(1);
    for (const b of bs) if (b !== victim) expect(b.calls.Unary ?? 0).toBe(0);
    // The call was a failure of the backend that died, and its lease is released.
    expect(victimBackend.failures).toBe(1);
    expect(victimBackend.inflight).toBe(0);
    await waitFor(() => lb.get(victimId) === undefined, { what: 'the dead backend to leave the set' });
    const after = await Promise.all(Array.from({ length: 10 }, () => unary(c.client, {})));
    expect(after.every((r) => r.backend !== victim.name)).toBe(true);
    expect(lb.snapshot().backends.every((b) => b.inflight === 0)).toBe(true);
    expect(bs.reduce((n, b) => n + (b.calls.Unary ?? 0), 0)).toBe(11);
  });

  it('fails an open server stream and an open bidi stream with UNAVAILABLE after the messages already received', async () => {
    const bs = await processBackends(1);
    const c = await client([bs[0]!.address], { algorithm: 'round-robin' });
    const stream = (c.client as unknown as { ServerStream(r: object): grpc.ClientReadableStream<{ seq: number }> }).ServerStream({});
    const received: number[] = [];
    const streamEnd = new Promise<number>((resolve) => {
      stream.on('data', (m: { seq: number }) => received.push(m.seq));
      stream.on('error', (e: grpc.ServiceError) => resolve(e.code));
      stream.on('end', () => resolve(grpc.status.OK));
    });
    const duplex = (c.client as unknown as { Bidi(): grpc.ClientDuplexStream<object, { text: string }> }).Bidi();
    const echoed: string[] = [];
    const duplexEnd = new Promise<number>((resolve) => {
      duplex.on('data', (m: { text: string }) => echoed.push(m.text));
      duplex.on('error', (e: grpc.ServiceError) => resolve(e.code));
      duplex.on('end', () => resolve(grpc.status.OK));
    });
    duplex.write({ text: 'one' });
    await waitFor(() => received.length === 1 && echoed.length === 1, { what: 'a message on each stream' });
    await bs[0]!.kill();
    expect(await streamEnd).toBe(grpc.status.UNAVAILABLE);
    expect(await duplexEnd).toBe(grpc.status.UNAVAILABLE);
    expect(received).toEqual([0]);
    expect(echoed).toEqual(['one']);
    expect(bs[0]!.calls).toEqual({ ServerStream: 1, Bidi: 1 });
    const b = c.lb().snapshot().backends;
    expect(b.every((x) => x.inflight === 0)).toBe(true);
  });

  it('stops balancing to a backend killed between calls; new calls succeed on the others', async () => {
    const bs = await processBackends(3);
    const c = await client(
      bs.map((b) => b.address),
      { algorithm: 'p2c' },
    );
    await bs[0]!.kill();
    await waitFor(() => c.lb().eligibleCount === 2, { what: 'p0 to leave the set' });
    const replies = await Promise.all(Array.from({ length: 20 }, () => unary(c.client, {})));
    expect(replies.every((r) => r.backend !== 'p0')).toBe(true);
    expect(bs[0]!.calls.Unary ?? 0).toBe(0);
  });
});

describe('deadlines', () => {
  it('ends a call past its deadline with DEADLINE_EXCEEDED and releases its lease', async () => {
    const bs = await backends(1);
    const c = await client([bs[0]!.address], { algorithm: 'round-robin' });
    expect(await codeOf(unary(c.client, { hold: true }, { deadlineMs: 200 }))).toBe(grpc.status.DEADLINE_EXCEEDED);
    const b = c.lb().backends[0]!;
    expect(b.inflight).toBe(0);
    // By default a deadline is a success with the deadline as its latency (peak-EWMA shuns slow backends)…
    expect(b.failures).toBe(0);
    expect(b.latencyEwma).toBeGreaterThanOrEqual(150);
  });

  it('counts DEADLINE_EXCEEDED as a failure when failureStatuses lists it', async () => {
    const bs = await backends(1);
    const c = await client([bs[0]!.address], { algorithm: 'round-robin', failureStatuses: ['DEADLINE_EXCEEDED', 'UNAVAILABLE'] });
    expect(await codeOf(unary(c.client, { hold: true }, { deadlineMs: 100 }))).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(c.lb().backends[0]!.failures).toBe(1);
  });

  it('fails a call whose deadline passes while no backend is connected, without leaking a lease', async () => {
    const bs = await backends(1);
    const c = await client([bs[0]!.address], { algorithm: 'round-robin' });
    const lb = c.lb();
    bs[0]!.kill();
    await waitFor(() => lb.eligibleCount === 0, { what: 'the only backend to leave the set' });
    const code = await codeOf(unary(c.client, {}, { deadlineMs: 300 }));
    expect([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]).toContain(code);
    expect(lb.snapshot().backends.every((b) => b.inflight === 0)).toBe(true);
  });
});

describe('statuses become outcomes', () => {
  it('counts UNAVAILABLE, INTERNAL and UNKNOWN against the backend, and not NOT_FOUND or CANCELLED', async () => {
    const bs = await backends(1);
    const c = await client([bs[0]!.address], { algorithm: 'round-robin' });
    const b = () => c.lb().backends[0]!;
    for (const fail of [grpc.status.UNAVAILABLE, grpc.status.INTERNAL, grpc.status.UNKNOWN]) {
      expect(await codeOf(unary(c.client, { fail }))).toBe(fail);
    }
    expect(b().failures).toBe(3);
    expect(await codeOf(unary(c.client, { fail: grpc.status.NOT_FOUND }))).toBe(grpc.status.NOT_FOUND);
    expect(b().failures).toBe(3);
    // A call the client cancels is no failure of the backend.
    const call = (c.client as unknown as grpc.Client & { Unary: (...args: unknown[]) => unknown }).Unary({ hold: true }, () => {}) as grpc.ClientUnaryCall;
    await bs[0]!.held.promise;
    call.cancel();
    await waitFor(() => b().inflight === 0, { what: 'the cancelled call to end' });
    expect(b().failures).toBe(3);
    expect(b().requests).toBe(5);
  });

  it('ejects a backend that keeps failing (outlier detection) and sends every call to the others', async () => {
    const bs = await backends(3);
    const c = await client(
      bs.map((b) => b.address),
      {
        algorithm: 'round-robin',
        outlier: { consecutiveFailures: 3, baseEjectionMs: 60_000, maxEjectionPercent: 50 },
      },
    );
    const lb = c.lb();
    const ejected = deferred<string>();
    lb.on('ejected', (id) => ejected.resolve(id));
    // Every backend fails every call; the cap (50 % of three) lets exactly one be ejected: the first
    // to reach three consecutive failures.
    let ejectedId: string | undefined;
    for (let i = 0; i < 12 && ejectedId === undefined; i++) {
      await codeOf(unary(c.client, { fail: grpc.status.UNAVAILABLE, text: 'x' }));
      if (ejected.settled) ejectedId = await ejected.promise;
    }
    expect(ejectedId).toBeDefined();
    const victim = bs.find((b) => ejectedId!.endsWith(`:${b.port}`))!;
    const replies = await Promise.all(Array.from({ length: 20 }, () => unary(c.client, {})));
    expect(replies.every((r) => r.backend !== victim.name)).toBe(true);
    expect(new Set(replies.map((r) => r.backend)).size).toBe(2);
  });
});
