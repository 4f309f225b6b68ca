/**
 * checkBalancer must accept correct balancers and reject broken ones. The balancers here are small
 * on purpose: a correct reference for each kind (weighted random, smooth WRR, rendezvous hashing) and
 * one deliberately broken variant per invariant.
 */
import { describe, expect, it } from 'vitest';
import type { Backend } from '../../src/backend';
import type { Balancer, ShareContract } from '../../src/balancers/balancer';
import { checkBalancer, defaultMaxMovedFraction, seededRandom, type CheckBalancerOptions } from '@fulcrum/core/testing';

/** FNV-1a over UTF-16 code units with murmur3's finaliser: a uniform 32-bit hash, good enough here. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

const positive = (backends: readonly Backend[]) => backends.filter((b) => b.effectiveWeight > 0);

/** Correct: weighted random over effective weights. */
class ReferenceRandom implements Balancer {
  readonly name: string = 'reference-random';
  private list: Backend[] = [];
  private total = 0;
  constructor(private readonly random = seededRandom(3)) {}
  update(backends: readonly Backend[]): void {
    this.list = positive(backends);
    this.total = this.list.reduce((s, b) => s + b.effectiveWeight, 0);
  }
  pick(): Backend | undefined {
    let x = this.random() * this.total;
    for (const b of this.list) {
      x -= b.effectiveWeight;
      if (x < 0) return b;
    }
    return this.list.at(-1);
  }
}

/** Correct: nginx's smooth weighted round robin, scanning every backend per pick. */
class ReferenceSmoothWrr implements Balancer {
  readonly name: string = 'reference-swrr';
  private list: Backend[] = [];
  private current: number[] = [];
  update(backends: readonly Backend[]): void {
    this.list = positive(backends);
    this.current = this.list.map(() => 0);
  }
  pick(): Backend | undefined {
    let best = -1;
    let total = 0;
    for (let i = 0; i < this.list.length; i++) {
      const w = this.list[i]!.effectiveWeight;
      this.current[i]! += w;
      total += w;
      if (best === -1 || this.current[i]! > this.current[best]!) best = i;
    }
    if (best === -1) return undefined;
    this.current[best]! -= total;
    return this.list[best];
  }
}

/** Correct: weighted rendezvous hashing; attempt n is the n-th highest score. */
class ReferenceRendezvous implements Balancer {
  readonly name: string = 'reference-rendezvous';
  readonly hashing = true;
  protected list: Backend[] = [];
  private next = 0;
  update(backends: readonly Backend[]): void {
    this.list = positive(backends);
  }
  protected ranked(key: string): Backend[] {
    const score = (b: Backend) => -b.effectiveWeight / Math.log((hash32(`${b.id}\u0000${key}`) + 0.5) / 4294967296);
    return this.list
      .map((b) => [score(b), b] as const)
      .sort((x, y) => y[0] - x[0])
      .map(([, b]) => b);
  }
  pick(key?: string, attempt = 0): Backend | undefined {
    if (this.list.length === 0) return undefined;
    if (key === undefined) return this.list[this.next++ % this.list.length];
    const ranked = this.ranked(key);
    return ranked[Math.min(attempt, ranked.length - 1)];
  }
}

/** Broken: never forgets a backend, so it returns backends removed since. */
class StaleBalancer extends ReferenceSmoothWrr {
  override readonly name = 'stale';
  private kept: Backend[] = [];
  override update(backends: readonly Backend[]): void {
    // Forgets everything on an empty update (so the simplest cases pass), nothing otherwise.
    this.kept = backends.length === 0 ? [] : [...this.kept.filter((b) => !backends.includes(b)), ...backends];
    super.update(this.kept);
  }
}

/** Broken: round robin that ignores weights (but still skips weight 0). */
class UnweightedRoundRobin implements Balancer {
  readonly name = 'unweighted';
  private list: Backend[] = [];
  private i = 0;
  update(backends: readonly Backend[]): void {
    this.list = positive(backends);
  }
  pick(): Backend | undefined {
    return this.list.length === 0 ? undefined : this.list[this.i++ % this.list.length];
  }
}

/** Broken: weighted random that gives the first backend in its list double weight. */
class FavouritesFirst extends ReferenceRandom {
  override readonly name = 'favourites-first';
  private favourite: Backend | undefined;
  override update(backends: readonly Backend[]): void {
    super.update(backends);
    this.favourite = positive(backends)[0];
  }
  private readonly coin = seededRandom(9);
  override pick(): Backend | undefined {
    return this.coin() < 0.2 && this.favourite ? this.favourite : super.pick();
  }
}

/** Broken: round robin that returns undefined when its turn lands on a weight-0 backend. */
class GivesUpOnZero implements Balancer {
  readonly name = 'gives-up-on-zero';
  private list: readonly Backend[] = [];
  private i = 0;
  update(backends: readonly Backend[]): void {
    this.list = backends;
  }
  pick(): Backend | undefined {
    if (this.list.length === 0) return undefined;
    const b = this.list[this.i++ % this.list.length]!;
    return b.effectiveWeight > 0 ? b : undefined;
  }
}

/** Broken: reads the configured weight instead of effectiveWeight (so it ignores slow start). */
class ReadsConfiguredWeight extends ReferenceSmoothWrr {
  override readonly name = 'reads-weight';
  override update(backends: readonly Backend[]): void {
    const list = backends.filter((b) => b.weight > 0);
    super.update(list.map((b) => Object.assign(Object.create(b) as Backend, { effectiveWeight: b.weight })));
    // Return the real objects, chosen by the configured weight.
    (this as unknown as { list: Backend[] }).list = list;
  }
}

/** Broken: hashes to a position in the list it was given, so the input order matters. */
class PositionalHash implements Balancer {
  readonly name = 'positional-hash';
  readonly hashing = true;
  private list: Backend[] = [];
  update(backends: readonly Backend[]): void {
    this.list = positive(backends);
  }
  pick(key = '', attempt = 0): Backend | undefined {
    const n = this.list.length;
    return n === 0 ? undefined : this.list[(hash32(key) + attempt) % n];
  }
}

/** Broken: `hash mod n` over ids in sorted order: deterministic, but a removal reshuffles most keys. */
class ModuloHash implements Balancer {
  readonly name = 'modulo-hash';
  readonly hashing = true;
  private list: Backend[] = [];
  update(backends: readonly Backend[]): void {
    this.list = positive(backends).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }
  pick(key = '', attempt = 0): Backend | undefined {
    const n = this.list.length;
    return n === 0 ? undefined : this.list[(hash32(key) + attempt) % n];
  }
}

/** Broken: a rendezvous hash whose retries go back to the same backend. */
class SameRetry extends ReferenceRendezvous {
  override readonly name = 'same-retry';
  override pick(key?: string): Backend | undefined {
    return super.pick(key, 0);
  }
}

/** Broken: a "bounded" hash that never looks at load. */
class UnboundedLoad extends ReferenceRendezvous {
  override readonly name = 'unbounded';
}

/** Broken: fine until a request is in flight, then keeps returning the backend it last acquired. */
class StickyAfterAcquire extends ReferenceSmoothWrr {
  override readonly name = 'sticky-after-acquire';
  private last: Backend | undefined;
  acquired(backend: Backend): void {
    this.last = backend;
  }
  override pick(): Backend | undefined {
    return this.last ?? super.pick();
  }
}

/** Draws an index in proportion to effective weight, skipping `other` (O(n): fine for a test). */
function drawByWeight(list: readonly Backend[], random: () => number, other = -1): number {
  let total = 0;
  for (let i = 0; i < list.length; i++) if (i !== other) total += list[i]!.effectiveWeight;
  let x = random() * total;
  for (let i = 0; i < list.length; i++) {
    if (i === other) continue;
    x -= list[i]!.effectiveWeight;
    if (x < 0) return i;
  }
  for (let i = list.length - 1; i >= 0; i--) if (i !== other) return i;
  return -1;
}

/**
 * Broken the way least-connections was: the lowest (inflight + 1) / weight, ties in requeue order, so
 * an idle pool sends every request of a serial client to its heaviest backend. It claims to be
 * HAProxy's leastconn (a rotation when serial, weighted under load), as the old header did.
 */
class LegacyLeastConnections implements Balancer {
  readonly name = 'legacy-least-connections';
  readonly shares: ShareContract = { serial: 'even', loaded: 'weighted', exact: false };
  private list: Backend[] = [];
  private requeuedAt = new Map<Backend, number>();
  private clock = 0;
  update(backends: readonly Backend[]): void {
    this.list = positive(backends);
    for (const b of this.list) if (!this.requeuedAt.has(b)) this.requeuedAt.set(b, ++this.clock);
  }
  pick(): Backend | undefined {
    const key = (b: Backend) => (b.inflight + 1) / b.effectiveWeight;
    let best: Backend | undefined;
    for (const b of this.list) {
      if (best === undefined || key(b) < key(best) || (key(b) === key(best) && this.requeuedAt.get(b)! < this.requeuedAt.get(best)!)) best = b;
    }
    return best;
  }
  acquired(backend: Backend): void {
    this.requeuedAt.set(backend, ++this.clock);
  }
  released(backend: Backend): void {
    this.requeuedAt.set(backend, ++this.clock);
  }
}

/** Broken the way p2c was: two candidates drawn by weight, the lower (inflight + 1) / weight wins. */
class LegacyP2c implements Balancer {
  readonly name: string = 'legacy-p2c';
  readonly shares: ShareContract = { serial: 'weighted', loaded: 'weighted', exact: false };
  protected list: Backend[] = [];
  constructor(protected readonly random = seededRandom(21)) {}
  update(backends: readonly Backend[]): void {
    this.list = positive(backends);
  }
  protected cost(b: Backend): number {
    return (b.inflight + 1) / b.effectiveWeight;
  }
  pick(): Backend | undefined {
    if (this.list.length === 0) return undefined;
    const first = drawByWeight(this.list, this.random);
    if (this.list.length === 1) return this.list[first];
    const second = drawByWeight(this.list, this.random, first);
    const a = this.list[first]!;
    const b = this.list[second]!;
    return this.cost(b) < this.cost(a) ? b : a;
  }
}

/**
 * Broken the way peak-ewma was: an unmeasured backend costs a 1 s prior (decaying from when it
 * joined), so once the others are measured at 10 ms it is not tried until the prior has faded.
 */
class LegacyPeakEwma extends LegacyP2c {
  override readonly name = 'legacy-peak-ewma';
  override readonly shares: ShareContract = { serial: 'served', loaded: 'weighted', exact: false };
  protected override cost(b: Backend): number {
    const rtt = b.latencyEwma > 0 ? b.latencyEwma : 1000;
    // Decayed to a common origin: e^(t / 10 s) on both sides orders exactly as decaying to "now".
    return rtt * Math.exp(-b.latencyUpdatedAt / 10_000) * ((b.inflight + 1) / b.effectiveWeight);
  }
}

function failure(factory: () => Balancer, options?: CheckBalancerOptions): string {
  try {
    checkBalancer(factory, options);
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  throw new Error('checkBalancer accepted a broken balancer');
}

describe('checkBalancer accepts correct balancers', () => {
  it('passes a weighted random balancer (statistical shares)', () => {
    checkBalancer(() => new ReferenceRandom(seededRandom(11)));
  });

  it('passes nginx smooth weighted round robin with exact shares', () => {
    checkBalancer(() => new ReferenceSmoothWrr(), { share: 'exact' });
  });

  it('passes an unweighted round robin with weighted: false', () => {
    checkBalancer(() => new UnweightedRoundRobin(), { weighted: false, share: 'exact' });
  });

  it('passes weighted rendezvous hashing', () => {
    checkBalancer(() => new ReferenceRendezvous());
  });
});

describe('checkBalancer rejects broken balancers', () => {
  it('rejects one that returns a backend no longer in its set, and names the seed', () => {
    const message = failure(() => new StaleBalancer(), { seed: 1234 });
    expect(message).toMatch(/invariant "membership" failed/);
    expect(message).toMatch(/not in the set last passed to update\(\)/);
    expect(message).toContain('seed: 1234');
    expect(message).toMatch(/Counterexample: /);
  });

  it('uses a fixed default seed and prints it', () => {
    const first = failure(() => new StaleBalancer());
    expect(first).toContain('seed: 20240611');
    expect(failure(() => new StaleBalancer())).toBe(first);
  });

  it('rejects one that ignores weights', () => {
    const message = failure(() => new UnweightedRoundRobin(), { share: 'exact' });
    expect(message).toMatch(/invariant "share" failed/);
    expect(message).toMatch(/expected .* effectiveWeight \/ Σ effectiveWeight/);
    expect(message).toContain('seed: 20240611');
    expect(failure(() => new UnweightedRoundRobin())).toMatch(/invariant "share" failed/);
  });

  it('rejects a random balancer skewed toward one backend', () => {
    const message = failure(() => new FavouritesFirst(seededRandom(5)), { seed: 77 });
    expect(message).toMatch(/invariant "share" failed/);
    expect(message).toContain('seed: 77');
  });

  it('rejects one that returns undefined for a set with an eligible backend', () => {
    const message = failure(() => new GivesUpOnZero(), { share: 'none' });
    expect(message).toMatch(/returned undefined, but \d+ backend\(s\) in the set have a positive effectiveWeight/);
    expect(message).toContain('seed: 20240611');
  });

  it('rejects one that returns a backend whose effective weight is 0', () => {
    const message = failure(() => new ReadsConfiguredWeight(), { seed: 5 });
    expect(message).toMatch(/whose effectiveWeight is 0|no backend in the set has a positive effectiveWeight/);
    expect(message).toContain('seed: 5');
  });

  it('rejects a hashing balancer whose mapping depends on the order of update()', () => {
    const message = failure(() => new PositionalHash(), { invariants: ['hashing-determinism'], seed: 8 });
    expect(message).toMatch(/invariant "hashing-determinism" failed/);
    expect(message).toMatch(/hashing must depend on ids, not positions/);
    expect(message).toContain('seed: 8');
  });

  it('rejects a hashing balancer that reshuffles keys when a backend leaves', () => {
    const message = failure(() => new ModuloHash(), { invariants: ['hashing-removal'] });
    expect(message).toMatch(/only keys of the backend that left may move/);
    expect(message).toContain('seed: 20240611');
    // Without the "only from the leaving backend" rule, the moved fraction alone condemns it.
    const bounded = failure(() => new ModuloHash(), {
      invariants: ['hashing-removal'],
      onlyFromLeaving: false,
      maxMovedFraction: (r) => defaultMaxMovedFraction(r, 1.5),
    });
    expect(bounded).toMatch(/keys moved .* more than the bound/);
  });

  it('rejects a hashing balancer whose retries return the same backend', () => {
    const message = failure(() => new SameRetry());
    expect(message).toMatch(/the same backend as pick\(.*, 0\)/);
    expect(message).toContain('seed: 20240611');
  });

  it('rejects a balancer that misbehaves only once requests are in flight', () => {
    const message = failure(() => new StickyAfterAcquire(), { share: 'none' });
    expect(message).toMatch(/invariant "membership" failed/);
  });

  it('checks bounded load when asked to', () => {
    const message = failure(() => new UnboundedLoad(), { boundedLoadFactor: 1.25, invariants: ['membership'] });
    expect(message).toMatch(/above the bound ⌈1\.25 × \d+ \/ \d+⌉/);
  });

  it('replays a failure from the printed seed and path', () => {
    const message = failure(() => new StaleBalancer(), { seed: 99 });
    const path = /path: ("[^"]*")/.exec(message)?.[1];
    expect(path).toBeDefined();
    const replayed = failure(() => new StaleBalancer(), { seed: 99, path: JSON.parse(path!) as string, invariants: ['membership'] });
    expect(replayed.split('\n')[1]).toBe(message.split('\n')[1]);
  });

  it('rejects a balancer that fails the fixed cases with a plain message', () => {
    const alwaysUndefined: () => Balancer = () => ({ name: 'nothing', update: () => undefined, pick: () => undefined });
    const message = failure(alwaysUndefined);
    expect(message).toMatch(/on a set of one backend: pick\(\) returned undefined/);
    expect(message).toContain('seed: 20240611');
  });

  it('rejects least-connections that sends a serial client to the heaviest backend', () => {
    const message = failure(() => new LegacyLeastConnections());
    expect(message).toMatch(/invariant "serial-share" failed/);
    expect(message).toMatch(/picks made one at a time .* expected .* even shares/);
  });

  it('rejects p2c whose lightest backend never wins a tie between idle candidates', () => {
    const message = failure(() => new LegacyP2c());
    expect(message).toMatch(/invariant "serial-share" failed/);
    expect(message).toMatch(/picks made one at a time .* effectiveWeight \/ Σ effectiveWeight/);
  });

  it('rejects peak-ewma that starves an unmeasured backend, serially and under load', () => {
    expect(failure(() => new LegacyPeakEwma())).toMatch(/invariant "(serial-)?share" failed/);
    const serial = failure(() => new LegacyPeakEwma(), { invariants: ['serial-share'] });
    expect(serial).toMatch(/it is being starved/);
    // Equal weights too: one backend of three never gets a request.
    const equal = failure(() => new LegacyPeakEwma(), { invariants: ['serial-share'], serial: 'even' });
    expect(equal).toMatch(/invariant "serial-share" failed/);
    const loaded = failure(() => new LegacyPeakEwma(), { invariants: ['share'], concurrency: 10 });
    expect(loaded).toMatch(/with 10 in flight/);
  });

  it('checks what a balancer declares about its shares, and lets options override it', () => {
    class DeclaredEven extends UnweightedRoundRobin {
      readonly shares: ShareContract = { serial: 'even', loaded: 'even', exact: true };
    }
    checkBalancer(() => new DeclaredEven());
    expect(failure(() => new DeclaredEven(), { weighted: true })).toMatch(/invariant "share" failed/);
    expect(failure(() => new UnweightedRoundRobin(), { invariants: ['serial-share'], share: 'exact' })).toMatch(/invariant "serial-share" failed/);
    class BadDeclaration extends UnweightedRoundRobin {
      readonly shares = { serial: 'sometimes', loaded: 'even', exact: true } as never;
    }
    expect(() => checkBalancer(() => new BadDeclaration())).toThrow(/unweighted\.shares/);
  });

  it('rejects invalid options', () => {
    expect(() => checkBalancer(() => new ReferenceRandom(), { serial: 'mostly' as never })).toThrow(/options\.serial/);
    expect(() => checkBalancer(() => new ReferenceRandom(), { share: 'sometimes' as never })).toThrow(/options\.share/);
    expect(() => checkBalancer(() => new ReferenceRandom(), { numRuns: 0 })).toThrow(/options\.numRuns/);
    expect(() => checkBalancer('nope' as never)).toThrow(/factory/);
  });
});
