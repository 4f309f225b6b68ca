import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backend, mutable, normalizeBackendSpec } from '../../src/backend';
import { LeastConnections } from '../../src/balancers/least-connections';

const letter = (i: number): string => (i < 26 ? String.fromCharCode(97 + i) : `b${i}`);

function makeBackends(weights: readonly number[]): Backend[] {
  return weights.map((weight, i) => new Backend(normalizeBackendSpec({ id: letter(i), address: '127.0.0.1:1', weight })));
}

/** What the load balancer does around a balancer: count first, then call the hook. */
function acquire(balancer: LeastConnections, backend: Backend): void {
  mutable(backend).inflight++;
  balancer.acquired(backend);
}

function release(balancer: LeastConnections, backend: Backend): void {
  mutable(backend).inflight--;
  balancer.released(backend, { ok: true });
}

/** One request after another: each is released before the next starts. */
function sequential(balancer: LeastConnections, count: number): string {
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const backend = balancer.pick()!;
    out.push(backend.id);
    acquire(balancer, backend);
    release(balancer, backend);
  }
  return out.join(' ');
}

/**
 * A brute-force reference: scan every selectable backend for the lowest HAProxy fwlc key (0 when
 * idle, else (inflight + 1) / weight); ties go to the backend requeued longest ago (requeued =
 * joined, acquired or released).
 */
class Reference {
  private requeuedAt = new Map<Backend, number>();
  private members: Backend[] = [];
  private clock = 0;

  update(backends: readonly Backend[]): void {
    const previous = this.requeuedAt;
    this.members = backends.filter((b) => b.effectiveWeight > 0);
    this.requeuedAt = new Map();
    for (const b of this.members) this.requeuedAt.set(b, previous.get(b) ?? ++this.clock);
  }

  touched(backend: Backend): void {
    if (this.requeuedAt.has(backend)) this.requeuedAt.set(backend, ++this.clock);
  }

  ranked(): Backend[] {
    const load = (b: Backend) => (b.inflight === 0 ? 0 : (b.inflight + 1) / b.effectiveWeight);
    return [...this.members].sort((x, y) => load(x) - load(y) || this.requeuedAt.get(x)! - this.requeuedAt.get(y)!);
  }
}

describe('LeastConnections', () => {
  it('is named least-connections', () => {
    expect(new LeastConnections().name).toBe('least-connections');
  });

  it('picks the backend with the lowest (inflight + 1) / weight', () => {
    const [a, b, c] = makeBackends([1, 2, 4]) as [Backend, Backend, Backend];
    mutable(a).inflight = 1; // 2 / 1 = 2
    mutable(b).inflight = 3; // 4 / 2 = 2
    mutable(c).inflight = 7; // 8 / 4 = 2
    const balancer = new LeastConnections();
    balancer.update([a, b, c]);
    expect(balancer.pick()).toBe(a);
    mutable(c).inflight = 6; // 7 / 4 = 1.75
    balancer.update([a, b, c]);
    expect(balancer.pick()).toBe(c);
  });

  it('keys an idle backend at 0 whatever its weight, as HAProxy does, so serial requests take turns', () => {
    // HAProxy 2.6 leastconn with weights 1, 2, 3 and one request at a time: a, b, c, a, b, c.
    const balancer = new LeastConnections();
    balancer.update(makeBackends([1, 2, 3]));
    expect(sequential(balancer, 9)).toBe('a b c a b c a b c');
    const heavy = new LeastConnections();
    heavy.update(makeBackends([1, 10, 1]));
    expect(heavy.pick()?.id).toBe('a');
  });

  it('prefers an idle light backend to a busy heavy one', () => {
    const [a, b] = makeBackends([10, 1]) as [Backend, Backend];
    const balancer = new LeastConnections();
    balancer.update([a, b]);
    acquire(balancer, balancer.pick()!);
    // a: (1 + 1) / 10 = 0.2; b: idle, 0.
    expect(balancer.pick()).toBe(b);
  });

  it('alternates between equal backends when requests come one at a time', () => {
    const balancer = new LeastConnections();
    balancer.update(makeBackends([1, 1, 1]));
    expect(sequential(balancer, 7)).toBe('a b c a b c a');
  });

  it('spreads concurrent requests in proportion to weight', () => {
    const backends = makeBackends([3, 1]);
    const balancer = new LeastConnections();
    balancer.update(backends);
    for (let i = 0; i < 40; i++) acquire(balancer, balancer.pick()!);
    expect(backends.map((b) => b.inflight)).toEqual([30, 10]);
  });

  it('moves a backend forward as soon as its requests end', () => {
    const [a, b] = makeBackends([1, 1]) as [Backend, Backend];
    const balancer = new LeastConnections();
    balancer.update([a, b]);
    acquire(balancer, a);
    acquire(balancer, a);
    acquire(balancer, b);
    expect(balancer.pick()).toBe(b);
    release(balancer, a);
    release(balancer, a);
    expect(balancer.pick()).toBe(a);
  });

  it('uses fractional effective weights', () => {
    const [a, b] = makeBackends([1, 1]) as [Backend, Backend];
    mutable(a).effectiveWeight = 0.37;
    const balancer = new LeastConnections();
    balancer.update([a, b]);
    // Both idle (0): a first. Then a: 2 / 0.37 ≈ 5.4; b: 0, 2, 3, 4, 5, 6 with 0…5 in flight.
    const order = [];
    for (let i = 0; i < 7; i++) {
      const picked = balancer.pick()!;
      order.push(picked.id);
      acquire(balancer, picked);
    }
    expect(order.join(' ')).toBe('a b b b b b a');
  });

  it('never returns a backend whose effective weight is 0, even when it is idle', () => {
    const [a, b] = makeBackends([1, 1]) as [Backend, Backend];
    mutable(a).effectiveWeight = 0;
    mutable(b).inflight = 100;
    const balancer = new LeastConnections();
    balancer.update([a, b]);
    expect(balancer.pick()).toBe(b);
    expect(balancer.pick(undefined, 1)).toBe(b);
  });

  it('returns undefined for an empty set and for a set whose weights are all 0', () => {
    const balancer = new LeastConnections();
    expect(balancer.pick()).toBeUndefined();
    balancer.update([]);
    expect(balancer.pick()).toBeUndefined();
    balancer.update(makeBackends([0, 0]));
    expect(balancer.pick()).toBeUndefined();
    expect(balancer.pick(undefined, 3)).toBeUndefined();
  });

  it('ignores hooks for backends outside the current set', () => {
    const [a, b, draining] = makeBackends([1, 1, 1]) as [Backend, Backend, Backend];
    const [zero] = makeBackends([0]) as [Backend];
    const balancer = new LeastConnections();
    balancer.update([a, b, zero]);
    for (let i = 0; i < 5; i++) acquire(balancer, draining);
    acquire(balancer, zero);
    release(balancer, draining);
    release(balancer, zero);
    expect(sequential(balancer, 4)).toBe('a b a b');
  });

  it('reads every load afresh on update and keeps the tie order of known backends', () => {
    const [a, b, c] = makeBackends([1, 1, 1]) as [Backend, Backend, Backend];
    const balancer = new LeastConnections();
    balancer.update([a, b]);
    expect(sequential(balancer, 1)).toBe('a');
    // b was requeued before a: it stays ahead; the newcomer c queues behind both.
    balancer.update([c, a, b]);
    expect(sequential(balancer, 3)).toBe('b a c');
  });

  it('answers retries with the runner-up, then with distinct backends', () => {
    const backends = makeBackends([1, 1, 1, 1, 1]);
    backends.forEach((b, i) => (mutable(b).inflight = [4, 0, 3, 1, 2][i]!));
    const balancer = new LeastConnections();
    balancer.update(backends);
    expect(balancer.pick()?.id).toBe('b');
    expect(balancer.pick(undefined, 1)?.id).toBe('d');
    const seen = new Set<string | undefined>();
    for (let attempt = 0; attempt < 5; attempt++) seen.add(balancer.pick(undefined, attempt)?.id);
    expect(seen.size).toBe(5);
  });

  it('agrees with a brute-force scan after any sequence of acquires, releases and updates', () => {
    type Op =
      | { kind: 'acquire' }
      | { kind: 'release'; which: number }
      | { kind: 'stray'; which: number }
      | { kind: 'update'; members: boolean[] }
      | { kind: 'retry'; attempt: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 5, arbitrary: fc.constant<Op>({ kind: 'acquire' }) },
      { weight: 4, arbitrary: fc.nat(100).map<Op>((which) => ({ kind: 'release', which })) },
      { weight: 1, arbitrary: fc.nat(100).map<Op>((which) => ({ kind: 'stray', which })) },
      { weight: 1, arbitrary: fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }).map<Op>((members) => ({ kind: 'update', members })) },
      { weight: 1, arbitrary: fc.integer({ min: 1, max: 10 }).map<Op>((attempt) => ({ kind: 'retry', attempt })) },
    );
    const weight = fc.oneof(fc.constant(0), fc.constant(1), fc.constant(2), fc.double({ min: 0.05, max: 5, noNaN: true }));
    fc.assert(
      fc.property(fc.array(weight, { minLength: 8, maxLength: 8 }), fc.array(op, { maxLength: 200 }), (weights, ops) => {
        const all = makeBackends(weights.map(() => 1));
        weights.forEach((w, i) => (mutable(all[i]!).effectiveWeight = w));
        let members = all.slice(0, 5);
        const balancer = new LeastConnections();
        const reference = new Reference();
        balancer.update(members);
        reference.update(members);
        const hook = (backend: Backend, delta: 1 | -1) => {
          mutable(backend).inflight += delta;
          if (delta === 1) balancer.acquired(backend);
          else balancer.released(backend, { ok: true });
          reference.touched(backend);
        };
        for (const step of ops) {
          const ranked = reference.ranked();
          const picked = balancer.pick();
          if (picked !== ranked[0]) return false;
          if (step.kind === 'acquire') {
            if (picked) hook(picked, 1);
          } else if (step.kind === 'release' || step.kind === 'stray') {
            // 'stray' also releases backends outside the set (sticky traffic on a draining backend).
            const pool = (step.kind === 'release' ? members : all).filter((b) => b.inflight > 0);
            const backend = pool[step.which % Math.max(1, pool.length)];
            if (backend) hook(backend, -1);
          } else if (step.kind === 'update') {
            members = all.filter((_, i) => step.members[i]);
            balancer.update(members);
            reference.update(members);
          } else {
            const retry = balancer.pick(undefined, step.attempt);
            if (ranked.length === 0 ? retry !== undefined : !ranked.includes(retry!)) return false;
            if (step.attempt === 1 && ranked.length > 1 && retry !== ranked[1]) return false;
          }
        }
        return true;
      }),
      { seed: 1234, numRuns: 100 },
    );
  });
});
