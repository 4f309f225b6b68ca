// The simulator's parts against plain references: the event queue against a sort, the histogram
// against exact quantiles of the same samples, the samplers against their distributions' means.
import { createSeededRandom } from '@fulcrum/core';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { EventQueue, Histogram, meanOf, PowerOfDChoices, samplerOf, zipfSampler } from '@fulcrum/sim';
import type { Distribution } from '@fulcrum/sim';

describe('EventQueue', () => {
  it('pops events in time order, ties in push order, like a stable sort of what was pushed', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 50 }), fc.boolean()), { maxLength: 400 }), (ops) => {
        const queue = new EventQueue();
        const reference: Array<{ time: number; id: number }> = [];
        const popped: number[] = [];
        const expected: number[] = [];
        let id = 0;
        for (const [time, popNow] of ops) {
          queue.push(time, 1, id, id * 2, id + 7);
          reference.push({ time, id });
          id++;
          if (popNow) {
            reference.sort((a, b) => a.time - b.time || a.id - b.id);
            expected.push(reference.shift()!.id);
            expect(queue.pop()).toBe(true);
            expect(queue.b).toBe(queue.a * 2);
            expect(queue.c).toBe(queue.a + 7);
            popped.push(queue.a);
          }
        }
        reference.sort((a, b) => a.time - b.time || a.id - b.id);
        while (queue.pop()) popped.push(queue.a);
        expected.push(...reference.map((r) => r.id));
        expect(popped).toEqual(expected);
        expect(queue.size).toBe(0);
        expect(queue.peekTime()).toBe(Infinity);
      }),
      { seed: 7, numRuns: 200 },
    );
  });
});

describe('Histogram', () => {
  it('reads every quantile within 0.8 % of the exact sample quantile, and the mean, min and max exactly', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0.002, max: 1e8, noNaN: true }), { minLength: 1, maxLength: 500 }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        (values, q) => {
          const h = new Histogram();
          for (const v of values) h.record(v);
          const sorted = [...values].sort((a, b) => a - b);
          const exact = sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;
          expect(Math.abs(h.quantile(q) / exact - 1)).toBeLessThanOrEqual(1 / 128 + 1e-12);
          expect(h.min).toBe(sorted[0]);
          expect(h.max).toBe(sorted.at(-1));
          expect(h.mean).toBeCloseTo(values.reduce((a, b) => a + b, 0) / values.length, 6);
          expect(h.count).toBe(values.length);
        },
      ),
      { seed: 11, numRuns: 300 },
    );
  });

  it('puts values below its range in the first bucket and above it in the last', () => {
    const h = new Histogram();
    h.record(0);
    h.record(1e-9);
    h.record(1e12);
    expect(h.counts[0]).toBe(2);
    expect(h.counts[h.counts.length - 1]).toBe(1);
    expect(h.quantile(1)).toBe(1e12);
    expect(h.quantile(0)).toBe(0);
  });

  it('gives a CDF that rises to 1 and merges with another histogram', () => {
    const a = new Histogram();
    const b = new Histogram();
    for (let i = 1; i <= 1000; i++) (i % 2 ? a : b).record(i);
    a.add(b);
    expect(a.count).toBe(1000);
    expect(a.quantile(0.5)).toBeCloseTo(500, -1);
    const cdf = a.cdf(50);
    expect(cdf.length).toBeLessThanOrEqual(51);
    expect(cdf.at(-1)![1]).toBe(1);
    for (let i = 1; i < cdf.length; i++) expect(cdf[i]![1]).toBeGreaterThan(cdf[i - 1]![1]);
  });
});

describe('samplers', () => {
  const cases: Distribution[] = [
    { type: 'fixed', ms: 7 },
    { type: 'exponential', meanMs: 10 },
    { type: 'lognormal', medianMs: 10, sigma: 0.5 },
    { type: 'bimodal', fast: { type: 'exponential', meanMs: 5 }, slow: { type: 'fixed', ms: 200 }, slowProbability: 0.01 },
  ];
  for (const d of cases) {
    it(`draws ${d.type} with the mean it states (within 1 % over 200,000 draws)`, () => {
      const sample = samplerOf(d, createSeededRandom(3));
      let sum = 0;
      const n = 200_000;
      for (let i = 0; i < n; i++) {
        const x = sample();
        expect(x).toBeGreaterThanOrEqual(0);
        sum += x;
      }
      expect(Math.abs(sum / n / meanOf(d) - 1)).toBeLessThan(0.01);
    });
  }

  it('draws a log-normal whose median is medianMs', () => {
    const sample = samplerOf({ type: 'lognormal', medianMs: 20, sigma: 1 }, createSeededRandom(4));
    const draws = Array.from({ length: 100_001 }, sample).sort((a, b) => a - b);
    expect(draws[50_000]! / 20).toBeCloseTo(1, 1);
  });

  it('draws Zipf ranks with frequencies ∝ 1/(k+1)^s', () => {
    const n = 100;
    const next = zipfSampler(n, 1, createSeededRandom(5));
    const counts = new Array<number>(n).fill(0);
    for (let i = 0; i < 500_000; i++) counts[next()]!++;
    const harmonic = Array.from({ length: n }, (_, k) => 1 / (k + 1)).reduce((a, b) => a + b, 0);
    for (const k of [0, 1, 9, 99]) expect(counts[k]! / 500_000 / (1 / (k + 1) / harmonic)).toBeCloseTo(1, 1);
  });
});

describe('PowerOfDChoices', () => {
  it('refuses a d outside 1..16 with an InvalidOptionError naming d', () => {
    expect(() => new PowerOfDChoices(0, Math.random)).toThrow(/^d: /);
    expect(() => new PowerOfDChoices(2.5, Math.random)).toThrow(/^d: /);
  });
});
