import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backend, mutable } from '../../src/backend';
import type { Balancer, Outcome } from '../../src/balancers/balancer';
import { BoundedLoad } from '../../src/balancers/bounded-load';
import { Maglev } from '../../src/balancers/maglev';
import { Rendezvous } from '../../src/balancers/rendezvous';
import { RingHash } from '../../src/balancers/ring-hash';
import { isInvalidOptionError } from '../../src/errors';
import { backend, catchError } from './fixtures';

const OK: Outcome = { ok: true };

const inners: Record<string, () => Balancer> = {
  'ring-hash': () => new RingHash({ minRingSize: 256 }),
  maglev: () => new Maglev({ tableSize: 1009 }),
  rendezvous: () => new Rendezvous(),
};

function bounded(backends: readonly Backend[], factor?: number, inner: Balancer = new Rendezvous()): BoundedLoad {
  const balancer = new BoundedLoad(inner, factor === undefined ? {} : { factor });
  balancer.update(backends);
  return balancer;
}

/** What the load balancer does around a pick: count the request on the backend, then tell the balancer. */
function acquire(balancer: BoundedLoad, backend: Backend): void {
  mutable(backend).inflight += 1;
  balancer.acquired(backend);
}

function release(balancer: BoundedLoad, backend: Backend): void {
  mutable(backend).inflight -= 1;
  balancer.released(backend, OK);
}

describe('BoundedLoad', () => {
  it('is a hashing balancer named bounded-load with a default factor of 1.25', () => {
    const balancer = new BoundedLoad(new Rendezvous());
    expect(balancer.name).toBe('bounded-load');
    expect(balancer.hashing).toBe(true);
    expect(balancer.config.factor).toBe(1.25);
  });

  it('rejects a factor below 1 or not a finite number, naming the option', () => {
    for (const factor of [0.99, 0, -1, Number.NaN, Infinity, '2' as unknown as number]) {
      const error = catchError(() => new BoundedLoad(new Rendezvous(), { factor }));
      expect(isInvalidOptionError(error)).toBe(true);
      expect((error as { path: string }).path).toBe('factor');
    }
    expect(new BoundedLoad(new Rendezvous(), { factor: 1 }).config.factor).toBe(1);
  });

  it('rejects an inner balancer that is not a balancer', () => {
    const error = catchError(() => new BoundedLoad({} as Balancer));
    expect(isInvalidOptionError(error)).toBe(true);
    expect((error as { path: string }).path).toBe('inner');
  });

  it('follows the inner balancer while no backend is loaded', () => {
    const backends = Array.from({ length: 6 }, (_, i) => backend(`node-${i}`));
    const inner = new Maglev();
    const balancer = bounded(backends, 1.25, inner);
    for (let i = 0; i < 200; i++) expect(balancer.pick(`key-${i}`)).toBe(inner.pick(`key-${i}`));
  });

  it('computes capacity as ⌈factor × (total inflight + 1) / n⌉ over eligible backends', () => {
    const backends = [backend('a'), backend('b'), backend('c'), backend('idle', 0)];
    mutable(backends[0] as Backend).inflight = 4;
    mutable(backends[1] as Backend).inflight = 2;
    // The zero-weight backend's requests do not count: it takes no new traffic.
    mutable(backends[3] as Backend).inflight = 50;
    const balancer = bounded(backends, 1.5);
    expect(balancer.capacity).toBe(Math.ceil((1.5 * (6 + 1)) / 3));
  });

  it('sends a key to the next backend in its preference order when its own is full', () => {
    const backends = Array.from({ length: 4 }, (_, i) => backend(`node-${i}`));
    const inner = new Rendezvous();
    const balancer = bounded(backends, 1, inner);
    const key = 'sticky-user';
    const first = inner.pick(key) as Backend;
    const second = inner.pick(key, 1) as Backend;
    // Load the key's first choice to capacity: 2 requests on it, capacity ⌈1 × 3 / 4⌉ = 1.
    acquire(balancer, first);
    acquire(balancer, first);
    expect(balancer.pick(key)).toBe(second);
    release(balancer, first);
    release(balancer, first);
    expect(balancer.pick(key)).toBe(first);
  });

  it('returns a different backend with room on a retry', () => {
    const backends = Array.from({ length: 5 }, (_, i) => backend(`node-${i}`));
    const balancer = bounded(backends);
    for (let i = 0; i < 50; i++) {
      const key = `key-${i}`;
      const order = Array.from({ length: 5 }, (_, attempt) => balancer.pick(key, attempt));
      expect(new Set(order).size).toBe(5);
      expect(balancer.pick(key, 5)).toBe(order[0]);
    }
  });

  it('sends retries to backends with room first, then to full ones, never repeating while one is left', () => {
    const backends = Array.from({ length: 4 }, (_, i) => backend(`node-${i}`));
    const inner = new Rendezvous();
    const balancer = bounded(backends, 1, inner);
    const key = 'retrying-user';
    const preference = backends.map((_, attempt) => inner.pick(key, attempt) as Backend);
    // Fill the first two preferences: 3 in flight each, capacity ⌈1 × 7 / 4⌉ = 2.
    for (const b of preference.slice(0, 2)) for (let i = 0; i < 3; i++) acquire(balancer, b);
    const chain = backends.map((_, attempt) => balancer.pick(key, attempt));
    expect(chain).toEqual([preference[2], preference[3], preference[0], preference[1]]);
    expect(balancer.pick(key, 4)).toBe(preference[2]);
  });

  it('tracks total inflight through the hooks, ignoring backends outside the set, and forwards them', () => {
    const calls: string[] = [];
    const rendezvous = new Rendezvous();
    const inner: Balancer = {
      name: 'spy',
      hashing: true,
      update: (backends) => rendezvous.update(backends),
      pick: (key, attempt) => rendezvous.pick(key, attempt),
      acquired: (b) => calls.push(`acquired ${b.id}`),
      released: (b, outcome) => calls.push(`released ${b.id} ${outcome.ok}`),
    };
    const members = [backend('a'), backend('b')];
    const stranger = backend('stranger');
    const balancer = bounded(members, 1, inner);
    expect(balancer.capacity).toBe(1);
    acquire(balancer, members[0] as Backend);
    acquire(balancer, members[1] as Backend);
    expect(balancer.capacity).toBe(2);
    acquire(balancer, stranger);
    expect(balancer.capacity).toBe(2);
    release(balancer, members[0] as Backend);
    expect(balancer.capacity).toBe(1);
    release(balancer, stranger);
    expect(balancer.capacity).toBe(1);
    expect(calls).toEqual(['acquired a', 'acquired b', 'acquired stranger', 'released a true', 'released stranger true']);
  });

  it('recomputes total inflight from the backends on update', () => {
    const backends = [backend('a'), backend('b')];
    const balancer = bounded(backends, 1);
    mutable(backends[0] as Backend).inflight = 7;
    mutable(backends[1] as Backend).inflight = 3;
    balancer.update(backends);
    expect(balancer.capacity).toBe(Math.ceil(11 / 2));
    balancer.update([backends[1] as Backend]);
    expect(balancer.capacity).toBe(4);
  });

  it('returns undefined only when no backend has a positive weight', () => {
    expect(bounded([]).pick('k')).toBeUndefined();
    expect(bounded([backend('zero', 0)]).pick('k')).toBeUndefined();
    expect(bounded([backend('zero', 0), backend('one')]).pick('k')?.id).toBe('one');
  });

  for (const [innerName, makeInner] of Object.entries(inners)) {
    it(`never places a request above capacity under random acquires and releases (${innerName})`, () => {
      const step = fc.oneof(
        { weight: 3, arbitrary: fc.record({ kind: fc.constant('acquire' as const), key: fc.option(fc.nat(30)) }) },
        { weight: 2, arbitrary: fc.record({ kind: fc.constant('release' as const), which: fc.nat() }) },
      );
      fc.assert(
        fc.property(
          fc.integer({ min: 1, max: 8 }),
          fc.double({ min: 1, max: 3, noNaN: true }),
          fc.array(step, { minLength: 1, maxLength: 300 }),
          (count, factor, steps) => {
            const backends = Array.from({ length: count }, (_, i) => backend(`node-${i}`, 1 + (i % 3)));
            const balancer = bounded(backends, factor, makeInner());
            const open: Backend[] = [];
            for (const s of steps) {
              if (s.kind === 'acquire') {
                const capacity = balancer.capacity;
                const picked = balancer.pick(s.key === null ? undefined : `key-${s.key}`);
                expect(picked).toBeDefined();
                const b = picked as Backend;
                expect(b.inflight).toBeLessThan(capacity);
                acquire(balancer, b);
                const total = open.length + 1;
                expect(b.inflight).toBeLessThanOrEqual(Math.ceil((factor * total) / count));
                open.push(b);
              } else if (open.length > 0) {
                const [b] = open.splice(s.which % open.length, 1);
                release(balancer, b as Backend);
              }
            }
          },
        ),
        { seed: 4242, numRuns: 60 },
      );
    });
  }

  it('keeps most keys on their consistent-hash backend under balanced load', () => {
    // Every key holds one request; with factor 1.25, few keys need to spill.
    const backends = Array.from({ length: 10 }, (_, i) => backend(`node-${i}`));
    const inner = new Maglev();
    const balancer = bounded(backends, 1.25, inner);
    let kept = 0;
    for (let i = 0; i < 1000; i++) {
      const key = `key-${i}`;
      const picked = balancer.pick(key) as Backend;
      if (picked === inner.pick(key)) kept++;
      acquire(balancer, picked);
    }
    expect(kept).toBeGreaterThan(800);
    expect(Math.max(...backends.map((b) => b.inflight))).toBeLessThanOrEqual(Math.ceil(1.25 * 100));
  });
});
