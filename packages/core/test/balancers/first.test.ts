import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backend, mutable, normalizeBackendSpec } from '../../src/backend';
import type { Balancer } from '../../src/balancers/balancer';
import { FirstAvailable } from '../../src/balancers/first';

const letter = (i: number): string => (i < 26 ? String.fromCharCode(97 + i) : `b${i}`);

function makeBackends(caps: readonly (number | undefined)[], weight = 1): Backend[] {
  return caps.map(
    (maxConnections, i) => new Backend(normalizeBackendSpec({ id: letter(i), address: '127.0.0.1:1', weight, ...(maxConnections ? { maxConnections } : {}) })),
  );
}

/** What the load balancer does: count first, then call the hook if the balancer has one. */
function acquire(balancer: Balancer, backend: Backend): void {
  mutable(backend).inflight++;
  balancer.acquired?.(backend);
}

function release(balancer: FirstAvailable, backend: Backend): void {
  mutable(backend).inflight--;
  balancer.released(backend, { ok: true });
}

/** Start `count` requests that stay open; returns who took each. */
function fill(balancer: FirstAvailable, count: number): string {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const backend = balancer.pick()!;
    out.push(backend.id);
    acquire(balancer, backend);
  }
  return out.join(' ');
}

/** The definition, by brute force: the first with room, else the lowest inflight / cap (first on a tie). */
function reference(backends: readonly Backend[]): Backend | undefined {
  const members = backends.filter((b) => b.effectiveWeight > 0);
  const free = members.find((b) => b.inflight < b.maxConnections);
  if (free) return free;
  let best: Backend | undefined;
  for (const b of members) if (!best || b.inflight / b.maxConnections < best.inflight / best.maxConnections) best = b;
  return best;
}

describe('FirstAvailable', () => {
  it('is named first', () => {
    expect(new FirstAvailable().name).toBe('first');
  });

  it('fills backends in the order given, each up to its maxConnections', () => {
    const balancer = new FirstAvailable();
    balancer.update(makeBackends([2, 1, 3]));
    expect(fill(balancer, 6)).toBe('a a b c c c');
  });

  it('sends everything to the first backend when none has a cap', () => {
    const balancer = new FirstAvailable();
    balancer.update(makeBackends([undefined, undefined]));
    expect(fill(balancer, 5)).toBe('a a a a a');
  });

  it('returns to an earlier backend as soon as it frees a slot', () => {
    const [a, b, c] = makeBackends([1, 1, 1]) as [Backend, Backend, Backend];
    const balancer = new FirstAvailable();
    balancer.update([a, b, c]);
    expect(fill(balancer, 2)).toBe('a b');
    release(balancer, a);
    expect(balancer.pick()).toBe(a);
    acquire(balancer, a);
    expect(balancer.pick()).toBe(c);
  });

  it('queues on the least loaded backend relative to its cap when every one is full', () => {
    const [a, b, c] = makeBackends([2, 4, 4]) as [Backend, Backend, Backend];
    mutable(a).inflight = 3; // 1.5
    mutable(b).inflight = 5; // 1.25
    mutable(c).inflight = 5; // 1.25, later than b
    const balancer = new FirstAvailable();
    balancer.update([a, b, c]);
    expect(balancer.pick()).toBe(b);
    acquire(balancer, b); // b: 1.5
    expect(balancer.pick()).toBe(c);
  });

  it('notices a slot freed without a hook when every backend looked full', () => {
    const [a, b] = makeBackends([1, 1]) as [Backend, Backend];
    const balancer = new FirstAvailable();
    balancer.update([a, b]);
    fill(balancer, 2);
    mutable(b).inflight = 0;
    expect(balancer.pick()).toBe(b);
  });

  it('skips backends whose effective weight is 0', () => {
    const backends = makeBackends([1, 1, 1]);
    mutable(backends[0]!).effectiveWeight = 0;
    const balancer = new FirstAvailable();
    balancer.update(backends);
    expect(fill(balancer, 3)).toBe('b c b');
  });

  it('returns undefined for an empty set and for a set whose weights are all 0', () => {
    const balancer = new FirstAvailable();
    expect(balancer.pick()).toBeUndefined();
    balancer.update([]);
    expect(balancer.pick()).toBeUndefined();
    balancer.update(makeBackends([1, 2], 0));
    expect(balancer.pick()).toBeUndefined();
    expect(balancer.pick(undefined, 2)).toBeUndefined();
  });

  it('ignores hooks for backends outside the current set', () => {
    const [a, b] = makeBackends([1, 1]) as [Backend, Backend];
    const [outsider] = makeBackends([1]) as [Backend];
    const balancer = new FirstAvailable();
    balancer.update([a, b]);
    acquire(balancer, outsider);
    release(balancer, outsider);
    acquire(balancer, outsider);
    expect(fill(balancer, 2)).toBe('a b');
  });

  it('answers retries with the next backends that have room', () => {
    const balancer = new FirstAvailable();
    balancer.update(makeBackends([1, 1, 1, 1]));
    expect(fill(balancer, 1)).toBe('a');
    expect(balancer.pick()?.id).toBe('b');
    expect(balancer.pick(undefined, 1)?.id).toBe('c');
    expect(balancer.pick(undefined, 2)?.id).toBe('d');
    // Wrapping past the end finds b again rather than the full a.
    expect(balancer.pick(undefined, 3)?.id).toBe('b');
  });

  it('sends a retry to another full backend rather than the least loaded one when all are full', () => {
    const balancer = new FirstAvailable();
    balancer.update(makeBackends([1, 1, 1]));
    fill(balancer, 3);
    const first = balancer.pick();
    expect(balancer.pick(undefined, 1)).not.toBe(first);
  });

  it('agrees with the definition after any sequence of acquires, releases and updates', () => {
    type Op = { kind: 'acquire' } | { kind: 'release'; which: number } | { kind: 'update'; drop: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 5, arbitrary: fc.constant<Op>({ kind: 'acquire' }) },
      { weight: 4, arbitrary: fc.nat(100).map<Op>((which) => ({ kind: 'release', which })) },
      { weight: 1, arbitrary: fc.nat(6).map<Op>((drop) => ({ kind: 'update', drop })) },
    );
    fc.assert(
      fc.property(
        fc.array(fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.boolean(), { minLength: 6, maxLength: 6 }),
        fc.array(op, { maxLength: 150 }),
        (caps, zero, ops) => {
          const all = makeBackends(caps);
          all.forEach((b, i) => (mutable(b).effectiveWeight = zero[i] && i > 0 ? 0 : 1));
          let members = all;
          const balancer = new FirstAvailable();
          balancer.update(members);
          for (const step of ops) {
            const expected = reference(members);
            if (balancer.pick() !== expected) return false;
            if (step.kind === 'acquire') {
              if (expected) acquire(balancer, expected);
            } else if (step.kind === 'release') {
              // Releases may come from backends no longer in the set.
              const busy = all.filter((b) => b.inflight > 0);
              const backend = busy[step.which % Math.max(1, busy.length)];
              if (backend) release(balancer, backend);
            } else {
              members = all.filter((_, i) => i !== step.drop);
              balancer.update(members);
            }
          }
          return true;
        },
      ),
      { seed: 1234, numRuns: 100 },
    );
  });
});
