import { describe, expect, it } from 'vitest';
import { isInvalidOptionError } from '@fulcrum/core';
import type { Balancer } from '../../src/balancers/balancer';
import { createBackends, setBackendLoad, simulateAcquire, simulateRelease } from '@fulcrum/core/testing';

describe('createBackends', () => {
  it('builds idle, up backends with effectiveWeight equal to weight', () => {
    const [a, b] = createBackends(
      [
        { id: 'a', address: 'http://10.0.0.1:80', weight: 3 },
        { id: 'b', address: 'b:80' },
      ],
      500,
    );
    expect(a).toMatchObject({ id: 'a', weight: 3, effectiveWeight: 3, inflight: 0, state: 'up', latencyUpdatedAt: 500 });
    expect(b).toMatchObject({ id: 'b', weight: 1, effectiveWeight: 1 });
  });

  it('validates specs like createLoadBalancer', () => {
    let error: unknown;
    try {
      createBackends([
        { id: 'a', address: 'a:80' },
        { id: 'a', address: 'b:80' },
      ]);
    } catch (e) {
      error = e;
    }
    expect(isInvalidOptionError(error)).toBe(true);
    expect(String(error)).toMatch(/backends\[1\]\.id/);
    expect(() => createBackends([{ id: 'a', address: 'a:80', weight: -1 }])).toThrow(/weight/);
  });
});

describe('setBackendLoad', () => {
  it('writes only the fields given', () => {
    const [a] = createBackends([{ id: 'a', address: 'a:80', weight: 4 }]);
    setBackendLoad(a!, { inflight: 3, effectiveWeight: 1.5, latencyEwma: 20, latencyUpdatedAt: 7, state: 'draining' });
    expect(a).toMatchObject({ inflight: 3, effectiveWeight: 1.5, latencyEwma: 20, latencyUpdatedAt: 7, state: 'draining', weight: 4 });
    setBackendLoad(a!, { ejectedUntil: 99 });
    expect(a!.isEjected(50)).toBe(true);
    expect(a!.inflight).toBe(3);
  });

  it('rejects impossible values with the field named', () => {
    const [a] = createBackends([{ id: 'a', address: 'a:80' }]);
    expect(() => setBackendLoad(a!, { inflight: -1 })).toThrow(/load\.inflight/);
    expect(() => setBackendLoad(a!, { inflight: 1.5 })).toThrow(/load\.inflight/);
    expect(() => setBackendLoad(a!, { effectiveWeight: Number.NaN })).toThrow(/load\.effectiveWeight/);
    expect(() => setBackendLoad(a!, { state: 'gone' as never })).toThrow(/load\.state/);
  });
});

describe('simulateAcquire / simulateRelease', () => {
  it('changes inflight before calling the hooks, as the load balancer does', () => {
    const [a] = createBackends([{ id: 'a', address: 'a:80' }]);
    const seen: string[] = [];
    const balancer: Balancer = {
      name: 'spy',
      update: () => undefined,
      pick: () => undefined,
      acquired: (b) => seen.push(`acquired ${b.inflight}`),
      released: (b, outcome) => seen.push(`released ${b.inflight} ${outcome.ok}`),
    };
    simulateAcquire(balancer, a!);
    simulateAcquire(balancer, a!);
    simulateRelease(balancer, a!, { ok: false, error: 'timeout' });
    simulateRelease(balancer, a!);
    simulateRelease(balancer, a!);
    expect(seen).toEqual(['acquired 1', 'acquired 2', 'released 1 false', 'released 0 true', 'released 0 true']);
  });
});
