import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backend, mutable, normalizeBackendSpec } from '../../src/backend';
import { WeightedRandom } from '../../src/balancers/random';
import { isInvalidOptionError } from '../../src/errors';
import { createSeededRandom } from '../../src/random';

const letter = (i: number): string => (i < 26 ? String.fromCharCode(97 + i) : `b${i}`);

function makeBackends(weights: readonly number[]): Backend[] {
  return weights.map((weight, i) => new Backend(normalizeBackendSpec({ id: letter(i), address: '127.0.0.1:1', weight })));
}

describe('WeightedRandom', () => {
  it('is named random', () => {
    expect(new WeightedRandom().name).toBe('random');
  });

  it('rejects a random that is not a function, naming the option', () => {
    expect(() => new WeightedRandom({ random: 'math' as never })).toThrow(/^random: must be a function/);
    try {
      new WeightedRandom({ random: {} as never });
    } catch (e) {
      expect(isInvalidOptionError(e)).toBe(true);
    }
  });

  it('draws each backend with probability effectiveWeight / Σ', () => {
    const weight = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 10 }), fc.double({ min: 0.05, max: 10, noNaN: true }));
    fc.assert(
      fc.property(fc.array(weight, { minLength: 1, maxLength: 10 }), fc.integer(), (weights, seed) => {
        const backends = makeBackends(weights.map(() => 1));
        weights.forEach((w, i) => (mutable(backends[i]!).effectiveWeight = w));
        const balancer = new WeightedRandom({ random: createSeededRandom(seed) });
        balancer.update(backends);
        const total = weights.reduce((s, w) => s + w, 0);
        if (total === 0) return balancer.pick() === undefined;
        const draws = 20_000;
        const counts = new Map<Backend | undefined, number>();
        for (let i = 0; i < draws; i++) {
          const picked = balancer.pick();
          counts.set(picked, (counts.get(picked) ?? 0) + 1);
        }
        // Five standard deviations per backend (plus one draw of slack for tiny shares).
        return backends.every((b, i) => {
          const p = weights[i]! / total;
          const share = (counts.get(b) ?? 0) / draws;
          if (p === 0) return share === 0;
          return Math.abs(share - p) < 5 * Math.sqrt((p * (1 - p)) / draws) + 1 / draws;
        });
      }),
      { seed: 1234, numRuns: 100 },
    );
  });

  it('calls random once per pick', () => {
    let calls = 0;
    const seeded = createSeededRandom(5);
    const balancer = new WeightedRandom({
      random: () => {
        calls++;
        return seeded();
      },
    });
    balancer.update(makeBackends([5, 1, 1, 3]));
    for (let i = 0; i < 100; i++) balancer.pick(undefined, i % 2);
    expect(calls).toBe(100);
  });

  it('maps the random number onto backends by weight', () => {
    const balancer = new WeightedRandom({ random: () => 0.25 });
    balancer.update(makeBackends([1, 1]));
    expect(balancer.pick()?.id).toBe('a');
    const upper = new WeightedRandom({ random: () => 0.75 });
    upper.update(makeBackends([1, 1]));
    expect(upper.pick()?.id).toBe('b');
  });

  it('returns undefined for an empty set and for a set whose weights are all 0', () => {
    const balancer = new WeightedRandom({ random: createSeededRandom(1) });
    expect(balancer.pick()).toBeUndefined();
    balancer.update([]);
    expect(balancer.pick()).toBeUndefined();
    balancer.update(makeBackends([0, 0]));
    expect(balancer.pick()).toBeUndefined();
  });

  it('draws only from the new set after an update', () => {
    const [a, b, c] = makeBackends([1, 1, 1]) as [Backend, Backend, Backend];
    const balancer = new WeightedRandom({ random: createSeededRandom(8) });
    balancer.update([a, b]);
    for (let i = 0; i < 20; i++) balancer.pick();
    balancer.update([c]);
    for (let i = 0; i < 50; i++) expect(balancer.pick()).toBe(c);
  });
});
