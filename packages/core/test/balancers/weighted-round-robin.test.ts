import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backend, mutable, normalizeBackendSpec } from '../../src/backend';
import { integerWeights, MAX_CYCLE, SmoothWeightedRoundRobin, smoothWeightedSequence } from '../../src/balancers/weighted-round-robin';

const letter = (i: number): string => (i < 26 ? String.fromCharCode(97 + i) : `b${i}`);

function makeBackends(weights: readonly number[]): Backend[] {
  return weights.map((weight, i) => new Backend(normalizeBackendSpec({ id: letter(i), address: '127.0.0.1:1', weight })));
}

function picks(balancer: SmoothWeightedRoundRobin, count: number): string {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push(balancer.pick()?.id ?? '-');
  return out.join(' ');
}

/** nginx's ngx_http_upstream_get_peer loop, transcribed literally: O(n) per pick. */
function nginxSequence(weights: readonly number[], length: number): number[] {
  const current = weights.map(() => 0);
  const total = weights.reduce((sum, w) => sum + w, 0);
  const out: number[] = [];
  for (let step = 0; step < length; step++) {
    let best = -1;
    for (let i = 0; i < weights.length; i++) {
      current[i]! += weights[i]!;
      if (best === -1 || current[i]! > current[best]!) best = i;
    }
    current[best]! -= total;
    out.push(best);
  }
  return out;
}

const gcdOf = (values: readonly number[]): number =>
  values.reduce((g, v) => {
    let a = g;
    let b = v;
    while (b) [a, b] = [b, a % b];
    return a;
  }, 0);

describe('SmoothWeightedRoundRobin', () => {
  it('is named weighted-round-robin', () => {
    expect(new SmoothWeightedRoundRobin().name).toBe('weighted-round-robin');
  });

  it('gives weights 5,1,1 the sequence a a b a c a a, repeating', () => {
    const balancer = new SmoothWeightedRoundRobin();
    balancer.update(makeBackends([5, 1, 1]));
    expect(picks(balancer, 14)).toBe('a a b a c a a a a b a c a a');
  });

  it.each([
    [[1, 1, 1], 'a b c'],
    [[2, 1], 'a b a'],
    [[3, 2, 1], 'a b a c b a'],
    [[4, 3, 2, 1], 'a b c a b d a c b a'],
    [[1, 2, 3], 'c b a c b c'],
    [[7, 3], 'a b a a a b a a b a'],
    [[3, 3, 2], 'a b c a b c a b'],
    [[10, 5, 5], 'a b c a'],
    [[4, 2], 'a b a'],
    [[5, 0, 1], 'a a a c a a'],
    [[0, 3, 0, 1], 'b b d b'],
  ])('gives weights %j the cycle %s', (weights, cycle) => {
    const balancer = new SmoothWeightedRoundRobin();
    balancer.update(makeBackends(weights));
    expect(picks(balancer, cycle.split(' ').length * 2)).toBe(`${cycle} ${cycle}`);
  });

  it('reproduces nginx’s sequence exactly for any integer weights', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 25 }), (weights) => {
        const divisor = gcdOf(weights);
        const cycle = weights.reduce((sum, w) => sum + w, 0) / divisor;
        const expected = nginxSequence(weights, 2 * cycle);
        const balancer = new SmoothWeightedRoundRobin();
        const backends = makeBackends(weights);
        balancer.update(backends);
        for (const index of expected) if (balancer.pick() !== backends[index]) return false;
        return true;
      }),
      { seed: 1234, numRuns: 100 },
    );
  });

  it('builds the same sequence as nginx’s loop when many weights are large and distinct', () => {
    const weights = Array.from({ length: 300 }, (_, i) => 1 + ((i * 7919) % 97));
    const total = weights.reduce((sum, w) => sum + w, 0);
    expect(Array.from(smoothWeightedSequence(weights))).toEqual(nginxSequence(weights, total));
  });

  it('gives each backend exactly its share in every cycle', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 50 }), { minLength: 1, maxLength: 20 }), fc.integer({ min: 1, max: 3 }), (weights, cycles) => {
        const positive = weights.filter((w) => w > 0);
        const balancer = new SmoothWeightedRoundRobin();
        const backends = makeBackends(weights);
        balancer.update(backends);
        if (positive.length === 0) return balancer.pick() === undefined;
        const divisor = gcdOf(positive);
        const cycle = positive.reduce((sum, w) => sum + w, 0) / divisor;
        const counts = new Map<Backend | undefined, number>();
        for (let i = 0; i < cycles * cycle; i++) {
          const picked = balancer.pick();
          counts.set(picked, (counts.get(picked) ?? 0) + 1);
        }
        return backends.every((b, i) => (counts.get(b) ?? 0) === (cycles * weights[i]!) / divisor);
      }),
      { seed: 1234, numRuns: 100 },
    );
  });

  it('keeps every prefix within one pick of the exact share (smoothness)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 30 }), { minLength: 2, maxLength: 15 }), (weights) => {
        const total = weights.reduce((sum, w) => sum + w, 0);
        const backends = makeBackends(weights);
        const balancer = new SmoothWeightedRoundRobin();
        balancer.update(backends);
        const counts = weights.map(() => 0);
        for (let t = 1; t <= total; t++) {
          counts[backends.indexOf(balancer.pick()!)]!++;
          for (let i = 0; i < weights.length; i++) {
            if (Math.abs(counts[i]! - (t * weights[i]!) / total) >= 1) return false;
          }
        }
        return true;
      }),
      { seed: 1234, numRuns: 100 },
    );
  });

  it('never returns a backend whose effective weight is 0', () => {
    const backends = makeBackends([5, 1, 1]);
    mutable(backends[0]!).effectiveWeight = 0;
    const balancer = new SmoothWeightedRoundRobin();
    balancer.update(backends);
    expect(picks(balancer, 4)).toBe('b c b c');
  });

  it('returns undefined for an empty set and for a set whose weights are all 0', () => {
    const balancer = new SmoothWeightedRoundRobin();
    expect(balancer.pick()).toBeUndefined();
    balancer.update([]);
    expect(balancer.pick()).toBeUndefined();
    balancer.update(makeBackends([0, 0, 0]));
    expect(balancer.pick()).toBeUndefined();
  });

  it('uses effective weights, fractional ones in hundredths of a unit', () => {
    const backends = makeBackends([1, 1]);
    mutable(backends[1]!).effectiveWeight = 0.37;
    const balancer = new SmoothWeightedRoundRobin();
    balancer.update(backends);
    let b = 0;
    for (let i = 0; i < 137 * 3; i++) if (balancer.pick() === backends[1]) b++;
    expect(b).toBe(37 * 3);
  });

  it('keeps the ratio of weights that are all below 1', () => {
    expect(integerWeights([0.002, 0.001], MAX_CYCLE)).toEqual([2, 1]);
    expect(integerWeights([0.5, 0.25, 0.25], MAX_CYCLE)).toEqual([2, 1, 1]);
  });

  it('gives a positive weight at least one slot however small it is', () => {
    expect(integerWeights([1, 0.001], MAX_CYCLE)).toEqual([100, 1]);
    expect(integerWeights([1_000_000_000, 1], MAX_CYCLE)[1]).toBe(1);
  });

  it('uses integer weights as they are, divided by their GCD', () => {
    expect(integerWeights([6, 4, 2], MAX_CYCLE)).toEqual([3, 2, 1]);
    expect(integerWeights([7, 7, 7], MAX_CYCLE)).toEqual([1, 1, 1]);
  });

  it('scales weights down proportionally when the cycle would pass the cap', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 1_000_000 }), { minLength: 1, maxLength: 50 }), (weights) => {
        const cap = 1000;
        const slots = integerWeights(weights, cap);
        const total = slots.reduce((sum, s) => sum + s, 0);
        const weightTotal = weights.reduce((sum, w) => sum + w, 0);
        if (total > cap || slots.some((s) => !Number.isInteger(s) || s < 1)) return false;
        if (weightTotal <= cap) return slots.every((s, i) => s * gcdOf(weights) === weights[i]);
        // The share of each backend is off, relative to itself, by at most 0.5/s (s its unrounded
        // slots) plus n/(cap − n) for the rounding of the whole set, as the header states.
        const factor = (cap - weights.length) / weightTotal;
        const setError = weights.length / (cap - weights.length);
        return slots.every((s, i) => {
          const unrounded = weights[i]! * factor;
          if (unrounded < 1) return s >= 1;
          const ratio = s / total / (weights[i]! / weightTotal);
          return Math.abs(ratio - 1) <= (0.5 / unrounded + setError) / (1 - setError) + 1e-12;
        });
      }),
      { seed: 1234, numRuns: 100 },
    );
  });

  it('caps the cycle of a large, finely weighted set at MAX_CYCLE entries', () => {
    const weights = Array.from({ length: 2000 }, (_, i) => 1 + i);
    const slots = integerWeights(weights, MAX_CYCLE);
    const total = slots.reduce((sum, s) => sum + s, 0);
    expect(total).toBeLessThanOrEqual(MAX_CYCLE);
    expect(total).toBeGreaterThan(MAX_CYCLE / 2);
    // The heaviest backend keeps its share to within one slot.
    expect(Math.abs(slots[1999]! - (2000 * total) / 2_001_000)).toBeLessThanOrEqual(1);
  });

  it('starts the new cycle from its beginning when the set changes mid-sequence', () => {
    const [a, b, c] = makeBackends([5, 1, 1]) as [Backend, Backend, Backend];
    const balancer = new SmoothWeightedRoundRobin();
    balancer.update([a, b, c]);
    expect(picks(balancer, 3)).toBe('a a b');
    balancer.update([a, c]);
    expect(picks(balancer, 6)).toBe('a a a c a a');
  });

  it('starts again when a weight changes', () => {
    const backends = makeBackends([1, 1]);
    const balancer = new SmoothWeightedRoundRobin();
    balancer.update(backends);
    expect(picks(balancer, 1)).toBe('a');
    mutable(backends[1]!).effectiveWeight = 2;
    balancer.update(backends);
    expect(picks(balancer, 3)).toBe('b a b');
  });

  it('keeps its place when update is called with the same backends and weights', () => {
    const backends = makeBackends([5, 1, 1]);
    const balancer = new SmoothWeightedRoundRobin();
    balancer.update(backends);
    expect(picks(balancer, 3)).toBe('a a b');
    balancer.update([...backends]);
    expect(picks(balancer, 4)).toBe('a c a a');
  });

  it('answers a retry with the next entry of the cycle', () => {
    const balancer = new SmoothWeightedRoundRobin();
    balancer.update(makeBackends([5, 1, 1]));
    expect([balancer.pick()?.id, balancer.pick('k', 1)?.id, balancer.pick('k', 2)?.id]).toEqual(['a', 'a', 'b']);
  });
});
