import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backend, mutable } from '../../src/backend';
import { Rendezvous } from '../../src/balancers/rendezvous';
import { backend, keys } from './fixtures';

function rendezvous(backends: readonly Backend[]): Rendezvous {
  const balancer = new Rendezvous();
  balancer.update(backends);
  return balancer;
}

const weightedSet = (min: number, max: number) =>
  fc
    .uniqueArray(fc.nat(1_000_000), { minLength: min, maxLength: max })
    .chain((ids) => fc.tuple(fc.constant(ids), fc.array(fc.double({ min: 0.05, max: 5, noNaN: true }), { minLength: ids.length, maxLength: ids.length })))
    .map(([ids, weights]) => ids.map((id, i) => backend(`backend-${id}`, weights[i])));

function shares(balancer: Rendezvous, sample: readonly string[]): Map<Backend | undefined, number> {
  const counts = new Map<Backend | undefined, number>();
  for (const key of sample) {
    const picked = balancer.pick(key);
    counts.set(picked, (counts.get(picked) ?? 0) + 1);
  }
  for (const [b, count] of counts) counts.set(b, count / sample.length);
  return counts;
}

describe('Rendezvous', () => {
  it('is a hashing balancer named rendezvous', () => {
    const balancer = new Rendezvous();
    expect(balancer.name).toBe('rendezvous');
    expect(balancer.hashing).toBe(true);
  });

  it('keeps a golden mapping, so every instance and every release agrees', () => {
    const balancer = rendezvous(['a', 'b', 'c'].map((id) => backend(id)));
    const mapping = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'].map((k) => balancer.pick(k)?.id);
    // Also what a C build of MurmurHash3_x86_32 with the same scoring gives.
    expect(mapping.join('')).toBe('cccaccbb');
  });

  it('moves only the keys of a removed backend, about its weight share', () => {
    fc.assert(
      fc.property(weightedSet(3, 15), fc.nat(), (backends, which) => {
        const removed = backends[which % backends.length] as Backend;
        const before = rendezvous(backends);
        const after = rendezvous(backends.filter((b) => b !== removed));
        const sample = keys(2000);
        let moved = 0;
        for (const key of sample) {
          const from = before.pick(key);
          if (from !== after.pick(key)) {
            moved++;
            expect(from).toBe(removed);
          } else {
            expect(from).not.toBe(removed);
          }
        }
        const share = removed.weight / backends.reduce((sum, b) => sum + b.weight, 0);
        expect(Math.abs(moved / sample.length - share)).toBeLessThanOrEqual(0.2 * share + 0.02);
      }),
      { seed: 4242, numRuns: 50 },
    );
  });

  it('moves about 1/N of keys when one of N equal backends leaves', () => {
    for (const count of [5, 10, 20, 50]) {
      const backends = Array.from({ length: count }, (_, i) => backend(`node-${i}`));
      const before = rendezvous(backends);
      const after = rendezvous(backends.slice(1));
      const sample = keys(10_000);
      const moved = sample.filter((key) => before.pick(key) !== after.pick(key)).length / sample.length;
      expect(moved).toBeGreaterThan(0.8 / count);
      expect(moved).toBeLessThan(1.2 / count);
    }
  });

  it('moves keys only onto a backend whose weight grows', () => {
    const backends = Array.from({ length: 6 }, (_, i) => backend(`node-${i}`));
    const before = rendezvous(backends);
    const grown = backends[2] as Backend;
    mutable(grown).effectiveWeight = 3;
    const after = rendezvous(backends);
    let moved = 0;
    for (const key of keys(5000)) {
      const to = after.pick(key);
      if (before.pick(key) !== to) {
        moved++;
        expect(to).toBe(grown);
      }
    }
    expect(moved).toBeGreaterThan(0);
  });

  it('spreads keys in proportion to weight, fractional weights included', () => {
    const backends = [backend('w1', 1), backend('w2', 2), backend('w3', 3), backend('w4', 4), backend('half', 0.5)];
    const measured = shares(rendezvous(backends), keys(40_000));
    for (const b of backends) expect(Math.abs((measured.get(b) ?? 0) - b.weight / 10.5)).toBeLessThan(0.015);
  });

  it('spreads keys evenly over equal backends (the id/key mix is well distributed)', () => {
    const backends = Array.from({ length: 20 }, (_, i) => backend(`10.0.0.${i}:8080`));
    const measured = shares(rendezvous(backends), keys(60_000, 'session-'));
    for (const b of backends) expect(Math.abs((measured.get(b) ?? 0) - 1 / 20)).toBeLessThan(0.006);
  });

  it('ranks the attempt-th choice as the winner once the earlier choices are gone', () => {
    fc.assert(
      fc.property(weightedSet(2, 10), fc.string({ maxLength: 12 }), (backends, key) => {
        const balancer = rendezvous(backends);
        let remaining = backends;
        for (let attempt = 0; attempt < backends.length; attempt++) {
          const expected = rendezvous(remaining).pick(key);
          expect(balancer.pick(key, attempt)).toBe(expected);
          remaining = remaining.filter((b) => b !== expected);
        }
      }),
      { seed: 4242, numRuns: 60 },
    );
  });

  it('enumerates distinct backends with attempt, wrapping past the last', () => {
    fc.assert(
      fc.property(weightedSet(1, 12), fc.string({ maxLength: 12 }), (backends, key) => {
        const balancer = rendezvous(backends);
        const order = backends.map((_, attempt) => balancer.pick(key, attempt));
        expect(new Set(order).size).toBe(backends.length);
        expect(order[0]).toBe(balancer.pick(key));
        expect(balancer.pick(key, backends.length)).toBe(order[0]);
        expect(balancer.pick(key, 2 * backends.length + 1)).toBe(order[1 % backends.length]);
      }),
      { seed: 4242, numRuns: 60 },
    );
  });
});
