import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backend, mutable, normalizeBackendSpec } from '../../src/backend';
import { RoundRobin } from '../../src/balancers/round-robin';

function makeBackends(weights: readonly number[]): Backend[] {
  return weights.map((weight, i) => new Backend(normalizeBackendSpec({ id: String.fromCharCode(97 + i), address: '127.0.0.1:1', weight })));
}

function picks(balancer: RoundRobin, count: number): string {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(balancer.pick()?.id ?? '-');
  return out.join(' ');
}

describe('RoundRobin', () => {
  it('is named round-robin', () => {
    expect(new RoundRobin().name).toBe('round-robin');
  });

  it('visits the backends in the order given, then starts again', () => {
    const balancer = new RoundRobin();
    balancer.update(makeBackends([1, 1, 1]));
    expect(picks(balancer, 7)).toBe('a b c a b c a');
  });

  it('ignores weights other than 0', () => {
    const balancer = new RoundRobin();
    balancer.update(makeBackends([5, 1, 0.37]));
    expect(picks(balancer, 6)).toBe('a b c a b c');
  });

  it('never returns a backend whose effective weight is 0', () => {
    const backends = makeBackends([1, 1, 1, 1]);
    mutable(backends[1]!).effectiveWeight = 0;
    mutable(backends[3]!).effectiveWeight = 0;
    const balancer = new RoundRobin();
    balancer.update(backends);
    expect(picks(balancer, 4)).toBe('a c a c');
  });

  it('returns undefined for an empty set and for a set whose weights are all 0', () => {
    const balancer = new RoundRobin();
    expect(balancer.pick()).toBeUndefined();
    balancer.update([]);
    expect(balancer.pick()).toBeUndefined();
    balancer.update(makeBackends([0, 0]));
    expect(balancer.pick()).toBeUndefined();
    expect(balancer.pick(undefined, 1)).toBeUndefined();
  });

  it('resumes with the backend that would have come next when the set changes', () => {
    const [a, b, c, d] = makeBackends([1, 1, 1, 1]) as [Backend, Backend, Backend, Backend];
    const balancer = new RoundRobin();
    balancer.update([a, b, c]);
    expect(picks(balancer, 2)).toBe('a b');
    balancer.update([a, c, d]);
    expect(picks(balancer, 4)).toBe('c d a c');
  });

  it('skips to the next remaining backend when the one due next leaves', () => {
    const [a, b, c, d] = makeBackends([1, 1, 1, 1]) as [Backend, Backend, Backend, Backend];
    const balancer = new RoundRobin();
    balancer.update([a, b, c, d]);
    expect(picks(balancer, 2)).toBe('a b');
    balancer.update([a, b, d]);
    expect(picks(balancer, 4)).toBe('d a b d');
  });

  it('keeps its place when update is called with the same set', () => {
    const backends = makeBackends([1, 1, 1]);
    const balancer = new RoundRobin();
    balancer.update(backends);
    expect(picks(balancer, 2)).toBe('a b');
    balancer.update(backends);
    expect(picks(balancer, 2)).toBe('c a');
  });

  it('answers a retry with the next backend in the rotation', () => {
    const balancer = new RoundRobin();
    balancer.update(makeBackends([1, 1, 1]));
    expect(balancer.pick()?.id).toBe('a');
    expect(balancer.pick('key', 1)?.id).toBe('b');
    expect(balancer.pick('key', 2)?.id).toBe('c');
  });

  it('gives every selectable backend exactly one pick per round, whatever the set', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.constant(0), fc.double({ min: 0.01, max: 100, noNaN: true })), { minLength: 1, maxLength: 30 }),
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 0, max: 40 }),
        (weights, rounds, warmUp) => {
          const backends = makeBackends(weights.map(() => 1));
          weights.forEach((w, i) => (mutable(backends[i]!).effectiveWeight = w));
          const balancer = new RoundRobin();
          balancer.update(backends);
          for (let i = 0; i < warmUp; i++) balancer.pick();
          const selectable = backends.filter((b) => b.effectiveWeight > 0);
          const counts = new Map<Backend | undefined, number>();
          for (let i = 0; i < rounds * selectable.length; i++) {
            const picked = balancer.pick();
            counts.set(picked, (counts.get(picked) ?? 0) + 1);
          }
          if (selectable.length === 0) return balancer.pick() === undefined;
          return counts.size === selectable.length && selectable.every((b) => counts.get(b) === rounds);
        },
      ),
      { seed: 1234, numRuns: 100 },
    );
  });
});
