import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { slowStartFactor } from '../../src/health';
import { PROPERTY_RUNS } from './helpers';

describe('slow start (Envoy)', () => {
  it('ramps linearly from the 10% floor to full weight over the window by default', () => {
    const window = { windowMs: 10_000 };
    expect(slowStartFactor(0, window)).toBe(0.1);
    expect(slowStartFactor(500, window)).toBe(0.1);
    expect(slowStartFactor(2_500, window)).toBe(0.25);
    expect(slowStartFactor(5_000, window)).toBe(0.5);
    expect(slowStartFactor(9_000, window)).toBeCloseTo(0.9, 12);
    expect(slowStartFactor(10_000, window)).toBe(1);
    expect(slowStartFactor(1e12, window)).toBe(1);
  });

  it('ramps faster early with aggression above 1 and slower below 1', () => {
    expect(slowStartFactor(2_500, { windowMs: 10_000, aggression: 2 })).toBeCloseTo(0.5, 12);
    expect(slowStartFactor(5_000, { windowMs: 10_000, aggression: 0.5 })).toBeCloseTo(0.25, 12);
  });

  it('honours the floor: 0 lets the weight start at nothing, 100 disables the ramp', () => {
    expect(slowStartFactor(0, { windowMs: 1_000, minWeightPercent: 0 })).toBe(0);
    expect(slowStartFactor(0, { windowMs: 1_000, minWeightPercent: 100 })).toBe(1);
    expect(slowStartFactor(400, { windowMs: 1_000, minWeightPercent: 50 })).toBe(0.5);
  });

  it('treats a negative or NaN elapsed time (a clock that stepped back) as the start of the window', () => {
    expect(slowStartFactor(-5_000, { windowMs: 10_000 })).toBe(0.1);
    expect(slowStartFactor(Number.NaN, { windowMs: 10_000 })).toBe(0.1);
  });

  it('is monotone in elapsed time and bounded by the floor and 1', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 1, max: 1e7, noNaN: true }),
        fc.double({ min: 0.05, max: 20, noNaN: true }),
        fc.double({ min: 0, max: 100, noNaN: true }),
        fc.double({ min: -1e6, max: 2e7, noNaN: true }),
        fc.double({ min: -1e6, max: 2e7, noNaN: true }),
        (windowMs, aggression, minWeightPercent, t1, t2) => {
          const options = { windowMs, aggression, minWeightPercent };
          const [early, late] = t1 <= t2 ? [t1, t2] : [t2, t1];
          const a = slowStartFactor(early, options);
          const b = slowStartFactor(late, options);
          expect(a).toBeLessThanOrEqual(b);
          for (const f of [a, b]) {
            expect(f).toBeGreaterThanOrEqual(minWeightPercent / 100 - 1e-12);
            expect(f).toBeLessThanOrEqual(1);
          }
          if (late >= windowMs) expect(b).toBe(1);
        },
      ),
      PROPERTY_RUNS,
    );
  });
});
