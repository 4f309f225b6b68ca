import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AliasTable } from '../../src/balancers/alias-table';
import { createSeededRandom } from '../../src/random';

const weightsArb = fc.array(fc.double({ min: 0.001, max: 1000, noNaN: true }), { minLength: 1, maxLength: 60 });

/** Feed `sample` a grid of evenly spaced numbers and count where each lands. */
function gridShares(table: AliasTable, points: number): number[] {
  const counts = new Array<number>(table.size).fill(0);
  for (let k = 0; k < points; k++) {
    const u = (k + 0.5) / points;
    counts[table.sample(() => u)]!++;
  }
  return counts.map((c) => c / points);
}

describe('AliasTable', () => {
  it('gives every index exactly its weight over the total', () => {
    fc.assert(
      fc.property(weightsArb, (weights) => {
        const table = new AliasTable();
        table.build(weights);
        const total = weights.reduce((s, w) => s + w, 0);
        return weights.every((w, i) => Math.abs(table.probability(i) - w / total) < 1e-9);
      }),
      { seed: 1234, numRuns: 100 },
    );
  });

  it('maps the unit interval onto indices in proportion to their weights', () => {
    fc.assert(
      fc.property(weightsArb, (weights) => {
        const table = new AliasTable();
        table.build(weights);
        const total = weights.reduce((s, w) => s + w, 0);
        const points = weights.length * 4096;
        // Each index owns at most its own column plus pieces of others: a few grid steps of error.
        const shares = gridShares(table, points);
        return weights.every((w, i) => Math.abs(shares[i]! - w / total) <= (2 * weights.length + 2) / points);
      }),
      { seed: 1234, numRuns: 100 },
    );
  });

  it('reproduces the weights statistically with a seeded generator', () => {
    const weights = [5, 1, 1, 0.37, 3];
    const table = new AliasTable();
    table.build(weights);
    const random = createSeededRandom(42);
    const draws = 200_000;
    const counts = weights.map(() => 0);
    for (let i = 0; i < draws; i++) counts[table.sample(random)]!++;
    const total = weights.reduce((s, w) => s + w, 0);
    weights.forEach((w, i) => {
      const p = w / total;
      // Five standard deviations: a false alarm is about one in three million runs (the seed is fixed).
      expect(Math.abs(counts[i]! / draws - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / draws));
    });
  });

  it('returns -1 when empty and 0 when it has one column', () => {
    const table = new AliasTable();
    expect(table.sample(Math.random)).toBe(-1);
    table.build([0.2]);
    expect(table.sample(() => 0.99)).toBe(0);
    table.build([]);
    expect(table.sample(Math.random)).toBe(-1);
  });

  it('stays in range when random misbehaves', () => {
    const table = new AliasTable();
    table.build([1, 2, 3]);
    for (const u of [1, 1.5, -0.5, Number.NaN, 0.9999999999999999]) {
      const index = table.sample(() => u);
      expect(index).toBeGreaterThanOrEqual(0);
      expect(index).toBeLessThan(3);
    }
  });

  it('draws a second index different from the first, even from a random stuck on one value', () => {
    const table = new AliasTable();
    table.build([1, 1, 1, 1]);
    const stuck = () => 0.3;
    const first = table.sample(stuck);
    const second = table.sampleOther(stuck, first);
    expect(second).not.toBe(first);
    expect(second).toBeGreaterThanOrEqual(0);
    expect(second).toBeLessThan(4);
    table.build([7]);
    expect(table.sampleOther(stuck, 0)).toBe(0);
  });

  it('draws the second index by weight among the others', () => {
    const table = new AliasTable();
    table.build([4, 2, 1, 1]);
    const random = createSeededRandom(7);
    const counts = [0, 0, 0, 0];
    const draws = 100_000;
    for (let i = 0; i < draws; i++) counts[table.sampleOther(random, 0)]!++;
    expect(counts[0]).toBe(0);
    // Conditioned on "not index 0": 2/4, 1/4, 1/4.
    for (const [i, p] of [
      [1, 0.5],
      [2, 0.25],
      [3, 0.25],
    ] as const) {
      expect(Math.abs(counts[i]! / draws - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / draws));
    }
  });

  it('draws the second index by weight among the others when the first holds most of the weight', () => {
    const table = new AliasTable();
    table.build([97, 1, 2, 1]);
    const random = createSeededRandom(11);
    const counts = [0, 0, 0, 0];
    const draws = 40_000;
    for (let i = 0; i < draws; i++) counts[table.sampleOther(random, 0)]!++;
    expect(counts[0]).toBe(0);
    for (const [i, p] of [
      [1, 0.25],
      [2, 0.5],
      [3, 0.25],
    ] as const) {
      expect(Math.abs(counts[i]! / draws - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / draws));
    }
  });

  it('with equal weights, maps the unit interval onto indices exactly evenly', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 50 }), fc.double({ min: 0.01, max: 100, noNaN: true }), (n, weight) => {
        const table = new AliasTable();
        table.build(new Array<number>(n).fill(weight));
        const points = n * 64;
        return gridShares(table, points).every((share) => share === 1 / n);
      }),
      { seed: 4321, numRuns: 100 },
    );
  });

  it('with equal weights, draws the second index evenly among the others, never the first', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 40 }), fc.nat(), (n, firstSeed) => {
        const table = new AliasTable();
        table.build(new Array<number>(n).fill(3));
        const first = firstSeed % n;
        const counts = new Array<number>(n).fill(0);
        const points = (n - 1) * 32;
        for (let k = 0; k < points; k++) {
          const u = (k + 0.5) / points;
          counts[table.sampleOther(() => u, first)]!++;
        }
        return counts.every((c, i) => (i === first ? c === 0 : c === 32));
      }),
      { seed: 8765, numRuns: 100 },
    );
  });

  it('with equal weights, draws every ordered pair of distinct indices equally often from one number', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 30 }), (n) => {
        const table = new AliasTable();
        table.build(new Array<number>(n).fill(2));
        const pairs = n * (n - 1);
        const perPair = 16;
        const points = pairs * perPair;
        const counts = new Map<number, number>();
        for (let k = 0; k < points; k++) {
          const u = (k + 0.5) / points;
          let draws = 0;
          const first = table.samplePair(() => (draws++, u));
          const second = table.pairSecond;
          if (draws !== 1 || first === second || first < 0 || second < 0 || first >= n || second >= n) return false;
          counts.set(first * n + second, (counts.get(first * n + second) ?? 0) + 1);
        }
        return counts.size === pairs && [...counts.values()].every((c) => Math.abs(c - perPair) <= 1);
      }),
      { seed: 5150, numRuns: 60 },
    );
  });

  it('draws a weighted pair with two draws, the second never the first', () => {
    const table = new AliasTable();
    table.build([4, 2, 1, 1]);
    const random = createSeededRandom(3);
    const firsts = [0, 0, 0, 0];
    for (let i = 0; i < 40_000; i++) {
      const first = table.samplePair(random);
      expect(table.pairSecond).not.toBe(first);
      firsts[first]!++;
    }
    for (const [i, p] of [
      [0, 0.5],
      [1, 0.25],
      [2, 0.125],
      [3, 0.125],
    ] as const) {
      expect(Math.abs(firsts[i]! / 40_000 - p)).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / 40_000));
    }
    table.build([9]);
    expect([table.samplePair(random), table.pairSecond]).toEqual([0, 0]);
    table.build([]);
    expect(table.samplePair(random)).toBe(-1);
  });

  it('leaves the equal-weights shortcut when a rebuild makes the weights unequal', () => {
    const table = new AliasTable();
    table.build([1, 1, 1, 1]);
    table.build([3, 1, 1, 1]);
    expect(gridShares(table, 6000)).toEqual([0.5, 1 / 6, 1 / 6, 1 / 6].map((p) => expect.closeTo(p, 3)));
    const counts = [0, 0, 0, 0];
    for (let k = 0; k < 3000; k++) counts[table.sampleOther(() => (k + 0.5) / 3000, 1)]!++;
    expect(counts[1]).toBe(0);
    // Weighted now: index 0 (weight 3 of the remaining 5) is drawn far more than a third of the time.
    expect(counts[0]! / 3000).toBeGreaterThan(0.5);
  });

  it('can be rebuilt smaller and larger', () => {
    const table = new AliasTable();
    table.build([1, 1, 1, 1, 1, 1]);
    table.build([1, 3]);
    expect(table.size).toBe(2);
    expect(table.probability(1)).toBeCloseTo(0.75, 12);
    table.build([1, 1, 2, 4, 8, 16, 32, 64]);
    expect(table.probability(7)).toBeCloseTo(64 / 128, 12);
  });
});
