import { describe, expect, it } from 'vitest';
import { Backend, mutable, normalizeBackendSpec } from '../../src/backend';
import { gcd, isSelectable, selectableBackends } from '../../src/balancers/weights';

describe('weights', () => {
  it('selects the backends with a positive effective weight, in order', () => {
    const backends = [1, 0, 2, 1].map((weight, i) => new Backend(normalizeBackendSpec({ id: `s${i}`, address: '127.0.0.1:1', weight })));
    mutable(backends[3]!).effectiveWeight = 0;
    mutable(backends[1]!).effectiveWeight = 0.01;
    expect(selectableBackends(backends).map((b) => b.id)).toEqual(['s0', 's1', 's2']);
    mutable(backends[2]!).effectiveWeight = Number.NaN;
    expect(isSelectable(backends[2]!)).toBe(false);
  });

  it('computes greatest common divisors', () => {
    expect(gcd(12, 18)).toBe(6);
    expect(gcd(7, 0)).toBe(7);
    expect(gcd(0, 5)).toBe(5);
    expect(gcd(17, 5)).toBe(1);
  });
});
