import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backend, mutable } from '../../src/backend';
import { RingHash } from '../../src/balancers/ring-hash';
import { isInvalidOptionError } from '../../src/errors';
import { murmur3 } from '../../src/hash';
import { backend, keys, weightedSet } from './fixtures';

function ring(backends: readonly Backend[], options: ConstructorParameters<typeof RingHash>[0] = {}): RingHash {
  const balancer = new RingHash(options);
  balancer.update(backends);
  return balancer;
}

describe('RingHash', () => {
  it('is a hashing balancer named ring-hash with Envoy’s default bounds', () => {
    const balancer = new RingHash();
    expect(balancer.name).toBe('ring-hash');
    expect(balancer.hashing).toBe(true);
    expect(balancer.config).toEqual({ minRingSize: 1024, maxRingSize: 8_388_608 });
  });

  it('rejects invalid ring sizes naming the option', () => {
    for (const [options, path] of [
      [{ minRingSize: 0 }, 'minRingSize'],
      [{ minRingSize: 1.5 }, 'minRingSize'],
      [{ maxRingSize: 8_388_609 }, 'maxRingSize'],
      [{ maxRingSize: Number.NaN }, 'maxRingSize'],
      [{ minRingSize: 2048, maxRingSize: 1024 }, 'maxRingSize'],
    ] as const) {
      let error: unknown;
      try {
        new RingHash(options);
      } catch (e) {
        error = e;
      }
      expect(isInvalidOptionError(error)).toBe(true);
      expect((error as { path: string }).path).toBe(path);
    }
  });

  it('places points at murmur3 of "id_i" and gives a key to the first point clockwise', () => {
    // minRingSize 1 with weight-1 backends: exactly one point each, at murmur3(`${id}_0`).
    const backends = ['alpha', 'beta', 'gamma', 'delta'].map((id) => backend(id));
    const balancer = ring(backends, { minRingSize: 1 });
    expect(balancer.ringSize).toBe(4);
    const points = backends.map((b) => ({ id: b.id, hash: murmur3(`${b.id}_0`) })).sort((a, b) => a.hash - b.hash);
    for (const key of keys(500)) {
      const hash = murmur3(key);
      const owner = points.find((p) => p.hash >= hash) ?? points[0];
      expect(balancer.pick(key)?.id).toBe(owner?.id);
    }
  });

  it('keeps a golden mapping, so every instance and every release agrees', () => {
    const balancer = ring(['a', 'b', 'c'].map((id) => backend(id)));
    const mapping = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank', 'grace', 'heidi'].map((k) => balancer.pick(k)?.id);
    // Also what a C build of MurmurHash3_x86_32 with the same 1024 points per backend gives.
    expect(mapping.join('')).toBe('cbbbaacb');
  });

  it('moves only the keys of a removed backend, about its share of the ring', () => {
    fc.assert(
      fc.property(weightedSet(3, 12), fc.nat(), (backends, which) => {
        const removed = backends[which % backends.length] as Backend;
        const before = ring(backends);
        const after = ring(backends.filter((b) => b !== removed));
        const sample = keys(2000);
        let moved = 0;
        for (const key of sample) {
          const from = before.pick(key);
          const to = after.pick(key);
          if (from !== to) {
            moved++;
            expect(from).toBe(removed);
          } else {
            expect(from).not.toBe(removed);
          }
        }
        const share = removed.weight / backends.reduce((sum, b) => sum + b.weight, 0);
        expect(Math.abs(moved / sample.length - share)).toBeLessThanOrEqual(0.3 * share + 0.02);
      }),
      { seed: 4242, numRuns: 30 },
    );
  });

  it('moves only the keys of a removed backend when weights are fractional and sum below 1', () => {
    const backends = [backend('a', 0.3), backend('b', 0.15), backend('c', 4)];
    for (const removed of backends) {
      const before = ring(backends);
      const after = ring(backends.filter((b) => b !== removed));
      for (const key of keys(3000)) {
        const from = before.pick(key);
        if (from !== after.pick(key)) expect(from).toBe(removed);
      }
    }
  });

  it('moves keys only onto a backend whose weight grows, as slow start does', () => {
    const backends = Array.from({ length: 5 }, (_, i) => backend(`node-${i}`));
    const ramping = backends[3] as Backend;
    mutable(ramping).effectiveWeight = 0.1;
    const before = ring(backends);
    mutable(ramping).effectiveWeight = 0.6;
    const after = ring(backends);
    let moved = 0;
    for (const key of keys(5000)) {
      const to = after.pick(key);
      if (before.pick(key) !== to) {
        moved++;
        expect(to).toBe(ramping);
      }
    }
    expect(moved).toBeGreaterThan(0);
  });

  it('moves about 1/N of keys when one of N equal backends leaves', () => {
    for (const count of [5, 10, 20]) {
      const backends = Array.from({ length: count }, (_, i) => backend(`node-${i}`));
      const before = ring(backends);
      const after = ring(backends.slice(1));
      const sample = keys(10_000);
      const moved = sample.filter((key) => before.pick(key) !== after.pick(key)).length / sample.length;
      expect(moved).toBeGreaterThan(0.7 / count);
      expect(moved).toBeLessThan(1.3 / count);
    }
  });

  it('spreads keys in proportion to weight', () => {
    const backends = [backend('w1', 1), backend('w2', 2), backend('w3', 3), backend('w4', 4)];
    const balancer = ring(backends);
    const counts = new Map<Backend | undefined, number>();
    const sample = keys(40_000);
    for (const key of sample) counts.set(balancer.pick(key), (counts.get(balancer.pick(key)) ?? 0) + 1);
    for (const b of backends) {
      expect(Math.abs((counts.get(b) ?? 0) / sample.length - b.weight / 10)).toBeLessThan(0.03);
    }
  });

  it('gives each backend points in proportion to its own weight only', () => {
    const balancer = ring([backend('a', 1), backend('b', 2.5)]);
    expect(balancer.ringSize).toBe(1024 + 2560);
    // Fractional weights too: a backend's points never depend on the others' weights.
    expect(ring([backend('a', 0.25), backend('b', 0.1)]).ringSize).toBe(256 + 102);
    // And the ring never exceeds maxRingSize, while every backend keeps at least one point.
    const capped = ring([backend('heavy', 1000), backend('light', 0.01)], { maxRingSize: 5000 });
    expect(capped.ringSize).toBeLessThanOrEqual(5000);
    expect(new Set(keys(20).map((k) => capped.pick(k, 1)?.id))).toContain('light');
  });

  it('enumerates distinct backends in preference order with attempt, wrapping past the last', () => {
    fc.assert(
      fc.property(weightedSet(1, 12), fc.string({ maxLength: 12 }), (backends, key) => {
        const balancer = ring(backends);
        const order = backends.map((_, attempt) => balancer.pick(key, attempt));
        expect(new Set(order).size).toBe(backends.length);
        expect(order[0]).toBe(balancer.pick(key));
        expect(balancer.pick(key, backends.length)).toBe(order[0]);
        expect(balancer.pick(key, backends.length + 1)).toBe(order[1 % backends.length]);
      }),
      { seed: 4242, numRuns: 40 },
    );
  });

  it('falls back along the ring: a key’s next choice becomes its first when its backend leaves', () => {
    const backends = Array.from({ length: 8 }, (_, i) => backend(`node-${i}`));
    const full = ring(backends);
    for (const key of keys(300)) {
      const first = full.pick(key) as Backend;
      const without = ring(backends.filter((b) => b !== first));
      expect(without.pick(key)).toBe(full.pick(key, 1));
    }
  });
});
