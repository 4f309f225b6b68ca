import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  MAX_BACKEND_WEIGHT,
  MIN_BACKEND_WEIGHT,
  createBalancer,
  createLoadBalancer,
  isInvalidOptionError,
  type Backend,
  type Lease,
  type LoadBalancer,
  type ProbeResult,
} from '@fulcrum/core';
import { FakeClock, seededRandom } from '@fulcrum/core/testing';

const spec = (i: number, weight: number) => ({ id: `b${i}`, address: `http://127.0.0.1:${3001 + i}`, weight });

function invalidOption(fn: () => unknown): { path: string; value: unknown; message: string } {
  try {
    fn();
  } catch (error) {
    if (isInvalidOptionError(error)) return { path: error.path, value: error.value, message: error.message };
    throw error;
  }
  throw new Error('expected an InvalidOptionError');
}

/**
 * Each backend's share of `picks` acquisitions. `held` leases stay in flight (the oldest released
 * first), so the load-aware balancers see load build up as it does under traffic; hashing balancers
 * get a distinct key per pick.
 */
function shares(lb: LoadBalancer, ids: readonly string[], picks: number, held: number): number[] {
  const counts = new Map<string, number>(ids.map((id) => [id, 0]));
  const window: Lease[] = [];
  for (let i = 0; i < picks; i++) {
    const lease = lb.acquire({ key: `key-${i}` });
    if (lease === undefined) throw new Error('no backend');
    counts.set(lease.backend.id, counts.get(lease.backend.id)! + 1);
    window.push(lease);
    if (window.length > held) window.shift()!.release({ ok: true });
  }
  for (const lease of window) lease.release({ ok: true });
  return ids.map((id) => counts.get(id)! / picks);
}

describe('backend weight bounds', () => {
  it('refuses weights that cannot be honoured, naming the option and the value — [1e308, 1e308, 1] among them', () => {
    const refused = invalidOption(() => createLoadBalancer({ backends: [spec(0, 1e308), spec(1, 1e308), spec(2, 1)], algorithm: 'weighted-round-robin' }));
    expect(refused.path).toBe('backends[0].weight');
    expect(refused.value).toBe(1e308);
    expect(refused.message).toContain('1e+308');
    expect(refused.message).toContain(String(MAX_BACKEND_WEIGHT));
    for (const weight of [MAX_BACKEND_WEIGHT * 1.000001, 1e7, Number.MAX_VALUE, MIN_BACKEND_WEIGHT / 2, 5e-324, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      const error = invalidOption(() => createLoadBalancer({ backends: [spec(0, 1), spec(1, weight)] }));
      expect(error.path, String(weight)).toBe('backends[1].weight');
      expect(error.value).toBe(weight);
    }
  });

  it('refuses the same weights in setWeight, add and update, and changes nothing', () => {
    const lb = createLoadBalancer({ backends: [spec(0, 1), spec(1, 2)], algorithm: 'weighted-round-robin' });
    for (const weight of [1e308, 1e7, 0.001, -0.5, Number.NaN]) {
      expect(invalidOption(() => lb.setWeight('b1', weight))).toMatchObject({ path: 'weight', value: weight });
      expect(invalidOption(() => lb.add(spec(2, weight))).path).toMatch(/weight$/);
      expect(invalidOption(() => lb.update([spec(0, 1), spec(1, weight)])).path).toMatch(/weight$/);
    }
    expect(lb.get('b1')!.weight).toBe(2);
    expect(lb.get('b2')).toBeUndefined();
    lb.setWeight('b1', MAX_BACKEND_WEIGHT);
    lb.setWeight('b0', -0);
    expect(Object.is(lb.get('b0')!.weight, 0)).toBe(true);
    lb.close();
  });

  it('accepts 0 and both bounds, and weighted round robin honours them: a weight-1 backend beside two at the maximum gets next to nothing', () => {
    const lb = createLoadBalancer({
      backends: [spec(0, MAX_BACKEND_WEIGHT), spec(1, MAX_BACKEND_WEIGHT), spec(2, 1), spec(3, 0), spec(4, MIN_BACKEND_WEIGHT)],
      algorithm: 'weighted-round-robin',
    });
    const [a, b, c, d, e] = shares(lb, ['b0', 'b1', 'b2', 'b3', 'b4'], 20_000, 0);
    expect(a).toBeCloseTo(0.5, 3);
    expect(b).toBeCloseTo(0.5, 3);
    expect(c! + e!).toBeLessThan(0.001);
    expect(d).toBe(0);
    lb.close();
  });

  it('keeps agent weight percentages within 0–100 %, so an agent cannot lift a backend past its weight (1e308 %)', async () => {
    const clock = new FakeClock(0);
    const verdicts = new Map<string, ProbeResult>();
    const probe = async (backend: Backend) => verdicts.get(backend.id) ?? { ok: true };
    const lb = createLoadBalancer({
      backends: [spec(0, MAX_BACKEND_WEIGHT), spec(1, 1)],
      algorithm: 'weighted-round-robin',
      clock,
      health: { probe, intervalMs: 1000, jitter: 0, initialState: 'fully-up' },
    });
    verdicts.set('b1', { ok: true, weightPercent: 1e308 });
    verdicts.set('b0', { ok: true, weightPercent: Number.POSITIVE_INFINITY });
    await clock.advance(1000);
    expect(lb.get('b1')!.effectiveWeight).toBe(1);
    expect(lb.get('b0')!.effectiveWeight).toBe(MAX_BACKEND_WEIGHT);
    expect(shares(lb, ['b0', 'b1'], 10_000, 0)[1]).toBeLessThan(0.001);
    verdicts.set('b0', { ok: true, weightPercent: 50 });
    await clock.advance(1000);
    expect(lb.get('b0')!.effectiveWeight).toBe(MAX_BACKEND_WEIGHT / 2);
    lb.close();
  });

  // The weighted algorithms; 'round-robin' ignores weights beyond 0 and 'first' fills in order, by design.
  // Ring-hash gets a 2^16-point ring cap (its default 2^23 takes seconds to build at 10^6 weights);
  // its placement noise is part of its tolerance below.
  const RING_CAP = 65_536;
  const ALGORITHMS = [
    { algorithm: 'weighted-round-robin', held: 0, random: false },
    { algorithm: 'random', held: 0, random: true },
    { algorithm: 'p2c', held: 64, random: true },
    { algorithm: 'least-connections', held: 64, random: false },
    { algorithm: 'peak-ewma', held: 64, random: true },
    { algorithm: 'ring-hash', held: 0, random: true },
    { algorithm: 'maglev', held: 0, random: true },
    { algorithm: 'rendezvous', held: 0, random: true },
    // Consistent hashing with bounded loads over Maglev, with no load to bound: Maglev's shares.
    { algorithm: 'bounded-load', held: 0, random: true },
  ] as const;
  const extremeWeight = fc.oneof(
    fc.constantFrom(0, MIN_BACKEND_WEIGHT, 1, 256, MAX_BACKEND_WEIGHT),
    fc.double({ min: MIN_BACKEND_WEIGHT, max: MAX_BACKEND_WEIGHT, noNaN: true }),
    fc.integer({ min: 0, max: 40 }).map((e) => 10 ** (e / 5 - 2)), // log-uniform 0.01 … 10^6
  );

  /**
   * Extra tolerance of ring-hash: its share is set by where its points land, a Beta(k, N − k) draw
   * (standard deviation √(p(1 − p)/(N + 1))), and by rounding w × points-per-weight to whole points,
   * exactly as `ring-hash.ts` counts them; the README states the ≈ 1/√points deviation.
   */
  function ringSlack(weights: readonly number[], i: number): number {
    const total = weights.reduce((sum, w) => sum + w, 0);
    const perWeight = Math.min(1024, RING_CAP / total);
    const points = weights.map((w) => (w > 0 ? Math.max(1, Math.round(w * perWeight)) : 0));
    const n = points.reduce((sum, k) => sum + k, 0);
    const p = points[i]! / n;
    return 5 * Math.sqrt((p * (1 - p)) / (n + 1)) + Math.abs(p - weights[i]! / total);
  }

  it.each(ALGORITHMS)('$algorithm gives every backend the share its accepted weight asks for, at extreme weights (property)', ({ algorithm, held, random }) => {
    const picks = 3000;
    fc.assert(
      fc.property(
        fc.array(extremeWeight, { minLength: 2, maxLength: 5 }).filter((w) => w.some((x) => x > 0)),
        fc.integer({ min: 1, max: 1_000_000 }),
        (weights, seed) => {
          const clock = new FakeClock(0);
          const base = { random: seededRandom(seed), clock };
          const options =
            algorithm === 'ring-hash' ? { ...base, maxRingSize: RING_CAP } : algorithm === 'bounded-load' ? { ...base, inner: 'maglev' as const } : base;
          const lb = createLoadBalancer({
            backends: weights.map((w, i) => spec(i, w)),
            algorithm: createBalancer(algorithm, options),
            clock,
            random: seededRandom(seed),
            panicThreshold: 0,
          });
          try {
            const total = weights.reduce((sum, w) => sum + w, 0);
            expect(Number.isFinite(total)).toBe(true);
            const observed = shares(
              lb,
              weights.map((_, i) => `b${i}`),
              picks,
              held,
            );
            weights.forEach((w, i) => {
              const expected = w / total;
              // A table's resolution (a WRR slot in a hundred, a Maglev slot) plus, for random
              // draws and hashed keys, 5σ of sampling noise; the load-aware ones also carry up to
              // one held request per backend of rounding.
              const noise = random ? 5 * Math.sqrt((expected * (1 - expected)) / picks) + 0.02 : 0;
              const slack = 0.012 + (held > 0 ? weights.length / held : 0) + noise + (algorithm === 'ring-hash' ? ringSlack(weights, i) : 0);
              if (w === 0) expect(observed[i], `weights ${weights.join(',')}`).toBe(0);
              else expect(Math.abs(observed[i]! - expected), `${algorithm} weights ${weights.join(',')} backend ${i}`).toBeLessThanOrEqual(slack);
            });
          } finally {
            lb.close();
          }
        },
      ),
      { seed: 1916, numRuns: 25 },
    );
  });
});
