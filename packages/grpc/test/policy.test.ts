import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { waitFor } from '../../../test-support/wait-for';
import { connect, startBackend, testTarget, unary, uniquePolicyName } from './fixtures';
import type { Backend, EchoClient, EchoReply, EchoRequest } from './fixtures';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function backends(n: number, options: { health?: boolean } = {}): Promise<Backend[]> {
  const list = await Promise.all(Array.from({ length: n }, (_, i) => startBackend(`b${i}`, options)));
  for (const b of list) cleanup.push(() => b.close());
  return list;
}

async function client(addresses: string[], policy: Parameters<typeof connect>[1]) {
  const t = testTarget(addresses);
  const c = await connect(t.target, { ...policy, name: uniquePolicyName(policy.algorithm ?? 'p2c') });
  cleanup.push(() => c.close());
  return { ...c, setAddresses: t.setAddresses };
}

function serverStream(c: EchoClient, request: EchoRequest): Promise<EchoReply[]> {
  return new Promise((resolve, reject) => {
    const replies: EchoReply[] = [];
    const call = (c as unknown as { ServerStream(r: EchoRequest): grpc.ClientReadableStream<EchoReply> }).ServerStream(request);
    call.on('data', (m: EchoReply) => replies.push(m));
    call.on('error', reject);
    call.on('end', () => resolve(replies));
  });
}

function clientStream(c: EchoClient, texts: string[]): Promise<EchoReply> {
  return new Promise((resolve, reject) => {
    const call = (
      c as unknown as { ClientStream(cb: (e: grpc.ServiceError | null, r: EchoReply) => void): grpc.ClientWritableStream<EchoRequest> }
    ).ClientStream((e, r) => (e ? reject(e) : resolve(r)));
    for (const text of texts) call.write({ text });
    call.end();
  });
}

function bidi(c: EchoClient, texts: string[]): Promise<EchoReply[]> {
  return new Promise((resolve, reject) => {
    const replies: EchoReply[] = [];
    const call = (c as unknown as { Bidi(): grpc.ClientDuplexStream<EchoRequest, EchoReply> }).Bidi();
    call.on('data', (m: EchoReply) => replies.push(m));
    call.on('error', reject);
    call.on('end', () => resolve(replies));
    for (const text of texts) call.write({ text });
    call.end();
  });
}

describe("the fulcrum policy spreads one channel's calls", () => {
  it('sends round-robin unary calls to each of three backends in turn', async () => {
    const bs = await backends(3);
    const c = await client(
      bs.map((b) => b.address),
      { algorithm: 'round-robin' },
    );
    const seen: string[] = [];
    for (let i = 0; i < 30; i++) seen.push((await unary(c.client, { text: String(i) })).backend);
    for (const b of bs) expect(b.calls.Unary).toBe(10);
    // A cycle visits every backend once.
    for (let i = 0; i + 3 <= seen.length; i += 3) expect(new Set(seen.slice(i, i + 3)).size).toBe(3);
    const snapshot = c.lb().snapshot();
    expect(snapshot.backends.map((b) => b.requests).sort()).toEqual([10, 10, 10]);
    expect(snapshot.backends.every((b) => b.inflight === 0)).toBe(true);
  });

  it('balances server-streaming, client-streaming and bidi calls per call, on one connection per backend', async () => {
    const bs = await backends(3);
    const c = await client(
      bs.map((b) => b.address),
      { algorithm: 'round-robin' },
    );
    for (let i = 0; i < 6; i++) {
      const replies = await serverStream(c.client, { count: 4 });
      expect(replies.map((r) => r.seq)).toEqual([0, 1, 2, 3]);
      expect(new Set(replies.map((r) => r.backend)).size).toBe(1);
    }
    for (let i = 0; i < 6; i++) expect((await clientStream(c.client, ['a', 'b', 'c'])).text).toBe('a,b,c');
    for (let i = 0; i < 6; i++) {
      const echoed = await bidi(c.client, ['x', 'y']);
      expect(echoed.map((r) => r.text)).toEqual(['x', 'y']);
      expect(new Set(echoed.map((r) => r.backend)).size).toBe(1);
    }
    for (const b of bs) {
      expect(b.calls.ServerStream).toBe(2);
      expect(b.calls.ClientStream).toBe(2);
      expect(b.calls.Bidi).toBe(2);
    }
    expect(
      c
        .lb()
        .snapshot()
        .backends.every((b) => b.inflight === 0 && b.requests === 6),
    ).toBe(true);
  });

  it('sends a least-connections call to the backend that holds none while the others each hold one', async () => {
    const bs = await backends(3);
    const c = await client(
      bs.map((b) => b.address),
      { algorithm: 'least-connections' },
    );
    // Hold one call on each of two backends: least-connections must send the next to the third.
    const first = unary(c.client, { hold: true });
    await waitFor(() => bs.filter((b) => b.calls.Unary === 1).length === 1, { what: 'the first held call' });
    const second = unary(c.client, { hold: true });
    await waitFor(() => bs.filter((b) => b.calls.Unary === 1).length === 2, { what: 'the second held call' });
    const third = await unary(c.client, { text: 'free' });
    const idle = bs.find((b) => b.calls.Unary === 1 && b.name === third.backend);
    expect(idle).toBeDefined();
    expect(bs.every((b) => b.calls.Unary === 1)).toBe(true);
    for (const b of bs) b.release();
    await Promise.all([first, second]);
    const many = await Promise.all(Array.from({ length: 60 }, (_, i) => unary(c.client, { text: String(i) })));
    const counts = new Map<string, number>();
    for (const r of many) counts.set(r.backend, (counts.get(r.backend) ?? 0) + 1);
    expect(counts.size).toBe(3);
  });

  it('spreads p2c and peak-EWMA calls over all backends', async () => {
    const bs = await backends(3);
    for (const algorithm of ['p2c', 'peak-ewma']) {
      const c = await client(
        bs.map((b) => b.address),
        { algorithm },
      );
      const replies = await Promise.all(Array.from({ length: 90 }, (_, i) => unary(c.client, { text: String(i) })));
      const counts = new Map<string, number>();
      for (const r of replies) counts.set(r.backend, (counts.get(r.backend) ?? 0) + 1);
      expect([...counts.keys()].sort()).toEqual(['b0', 'b1', 'b2']);
      expect(
        c
          .lb()
          .snapshot()
          .backends.reduce((n, b) => n + b.requests, 0),
      ).toBe(90);
    }
  });
});
