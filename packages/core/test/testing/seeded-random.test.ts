import { describe, expect, it } from 'vitest';
import { seededRandom } from '@fulcrum/core/testing';

const take = (random: () => number, n: number) => Array.from({ length: n }, () => random());

describe('seededRandom', () => {
  it('gives the same sequence for the same seed', () => {
    expect(take(seededRandom(42), 100)).toEqual(take(seededRandom(42), 100));
  });

  it('gives different sequences for nearby seeds', () => {
    const a = take(seededRandom(1), 20);
    const b = take(seededRandom(2), 20);
    expect(a).not.toEqual(b);
    expect(a.filter((x, i) => x === b[i])).toHaveLength(0);
  });

  it('returns numbers in [0, 1) with a roughly uniform mean', () => {
    const values = take(seededRandom(7), 20_000);
    expect(values.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = values.reduce((s, x) => s + x, 0) / values.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.01);
  });

  it('rejects a seed that is not a finite number', () => {
    expect(() => seededRandom(Number.NaN)).toThrow(RangeError);
  });
});
