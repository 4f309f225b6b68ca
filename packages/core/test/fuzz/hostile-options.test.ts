/**
 * Core under hostile and extreme input: arbitrary garbage handed to `createLoadBalancer` only ever
 * throws `InvalidOptionError`; 10,000 backends work with every built-in algorithm through picks,
 * updates and removals; and Maglev with more backends than table slots is refused — at construction
 * and on a later `add`/`update` — never silently dropping a backend (design §2).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ALGORITHM_NAMES, Maglev, createLoadBalancer, isInvalidOptionError, type BackendSpec } from '@fulcrum/core';

const optionKeys = fc.constantFrom(
  'backends', 'algorithm', 'health', 'outlier', 'slowStart', 'panicThreshold', 'stickTable', 'clock', 'random',
  'id', 'address', 'weight', 'backup', 'maxConnections', 'zone', 'metadata', 'windowMs', 'aggression',
  'minWeightPercent', 'consecutiveFailures', 'intervalMs', 'rise', 'fall', 'probe', 'tableSize',
);

const garbage = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    fc.string({ maxLength: 20 }),
    fc.constantFrom('p2c', 'maglev', 'round-robin', 'http://127.0.0.1:1', '127.0.0.1:80', '', '__proto__', 'constructor'),
    fc.integer(),
    fc.double(),
    fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, 2 ** 53),
    fc.boolean(),
    fc.constantFrom(null, undefined),
    fc.func(fc.anything()),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.oneof(optionKeys, fc.string({ maxLength: 8 })), tie('value'), { maxKeys: 6 }),
  ),
})).value;

const plausibleBackend = fc.record(
  { id: garbage, address: fc.oneof(garbage, fc.constant('http://127.0.0.1:3000')), weight: garbage, backup: garbage, maxConnections: garbage },
  { requiredKeys: [] },
);

const plausibleOptions = fc.record(
  {
    backends: fc.oneof(garbage, fc.array(fc.oneof(plausibleBackend, garbage), { maxLength: 4 })),
    algorithm: garbage,
    outlier: garbage,
    slowStart: garbage,
    panicThreshold: garbage,
    health: garbage,
  },
  { requiredKeys: [] },
);

describe('createLoadBalancer with garbage options', () => {
  it('throws nothing but InvalidOptionError, and what it accepts works (property)', () => {
    fc.assert(
      fc.property(fc.oneof(garbage, plausibleOptions), (options) => {
        let lb;
        try {
          lb = createLoadBalancer(options as never);
        } catch (error) {
          if (!isInvalidOptionError(error)) throw error;
          return;
        }
        try {
          const lease = lb.acquire({ key: 'k' });
          lease?.release({ ok: true });
          expect(lb.snapshot().backends.every((b) => b.inflight === 0)).toBe(true);
        } finally {
          lb.close();
        }
      }),
      { seed: 4242, numRuns: 2000 },
    );
  });
});

function specs(n: number, prefix = 'b'): BackendSpec[] {
  return Array.from({ length: n }, (_, i) => ({ id: `${prefix}${i}`, address: `http://10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8080`, weight: 1 + (i % 3) }));
}

describe('10,000 backends', () => {
  it.each(ALGORITHM_NAMES.map((name) => [name]))('%s picks only live backends through picks, updates and removals', (algorithm) => {
    const lb = createLoadBalancer({ backends: specs(10_000), algorithm });
    try {
      const live = () => new Set(lb.backends.map((b) => b.id));
      const check = (allowed: Set<string>) => {
        for (let i = 0; i < 500; i++) {
          const lease = lb.acquire({ key: `client-${i}` });
          expect(lease).toBeDefined();
          expect(allowed.has(lease!.backend.id)).toBe(true);
          lease!.release({ ok: true, durationMs: 1 });
        }
      };
      check(live());
      // Replace the whole set: half leave, 1,000 new ones join.
      lb.update([...specs(10_000).filter((_, i) => i % 2 === 0), ...specs(1000, 'n')]);
      expect(lb.backends).toHaveLength(6000);
      const afterUpdate = live();
      expect(afterUpdate.has('b1')).toBe(false);
      expect(afterUpdate.has('n999')).toBe(true);
      check(afterUpdate);
      // A few single removals (ring-hash rebuilds its ring on each, ~0.6 s at this size).
      for (let i = 0; i < 3; i++) lb.remove(`n${i}`);
      expect(lb.backends).toHaveLength(5997);
      expect(live().has('n0')).toBe(false);
      check(live());
      expect(lb.snapshot().backends.every((b) => b.inflight === 0)).toBe(true);
    } finally {
      lb.close();
    }
  });
});

describe('Maglev with more backends than table slots', () => {
  it('refuses the set at construction, naming tableSize, for any count at or above the table (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 101, max: 160 }), (count) => {
        try {
          createLoadBalancer({ backends: specs(count), algorithm: new Maglev({ tableSize: 101 }) });
          throw new Error(`accepted ${count} backends in 101 slots`);
        } catch (error) {
          expect(isInvalidOptionError(error), String(error)).toBe(true);
        }
      }),
      { seed: 7, numRuns: 20 },
    );
  });

  it('gives every backend at least one slot whenever it accepts the set (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), (count) => {
        const lb = createMaglev(count);
        if (lb === undefined) return;
        try {
          const reached = new Set<string>();
          // 101 slots, keys spread over them: after enough keys every slot has been hit.
          for (let i = 0; i < 20_000 && reached.size < count; i++) {
            const lease = lb.acquire({ key: `k${i}` })!;
            reached.add(lease.backend.id);
            lease.release({ ok: true });
          }
          expect(reached.size).toBe(count);
        } finally {
          lb.close();
        }
      }),
      { seed: 8, numRuns: 15 },
    );
  });

  it('refuses a later add or update past the table size and keeps serving the previous set', () => {
    const lb = createMaglev(100)!;
    try {
      expect(() => lb.add({ id: 'extra', address: 'http://10.9.9.9:80' })).toThrow();
      expect(() => lb.update(specs(101))).toThrow();
      // Whatever was refused, nothing that was there is lost and every backend is still reachable.
      const ids = new Set(lb.backends.map((b) => b.id));
      for (let i = 0; i < 100; i++) expect(ids.has(`b${i}`)).toBe(true);
      const reached = new Set<string>();
      for (let i = 0; i < 20_000 && reached.size < ids.size; i++) {
        const lease = lb.acquire({ key: `k${i}` })!;
        reached.add(lease.backend.id);
        lease.release({ ok: true });
      }
      expect(reached).toEqual(ids);
    } finally {
      lb.close();
    }
  });
});

function createMaglev(count: number) {
  return createLoadBalancer({ backends: specs(count).map((s) => ({ ...s, weight: 1 })), algorithm: new Maglev({ tableSize: 101 }) });
}
