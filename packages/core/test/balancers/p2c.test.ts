import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backend, mutable, normalizeBackendSpec } from '../../src/backend';
import { PowerOfTwoChoices } from '../../src/balancers/p2c';
import { isInvalidOptionError } from '../../src/errors';
import { createSeededRandom } from '../../src/random';

const letter = (i: number): string => (i < 26 ? String.fromCharCode(97 + i) : `b${i}`);

function makeBackends(weights: readonly number[]): Backend[] {
  return weights.map((weight, i) => new Backend(normalizeBackendSpec({ id: letter(i), address: '127.0.0.1:1', weight })));
}

/** The load p2c compares: in-flight requests per unit of weight (an idle backend is at 0). */
const load = (b: Backend) => b.inflight / b.effectiveWeight;

/** A random that replays `values` in turn and counts the calls. */
function scripted(values: readonly number[]) {
  let calls = 0;
  const random = () => values[calls++ % values.length]!;
  return { random, calls: () => calls };
}

describe('PowerOfTwoChoices', () => {
  it('is named p2c', () => {
    expect(new PowerOfTwoChoices().name).toBe('p2c');
  });

  it('rejects a random that is not a function, naming the option', () => {
    let error: unknown;
    try {
      new PowerOfTwoChoices({ random: 0.5 as never });
    } catch (e) {
      error = e;
    }
    expect(isInvalidOptionError(error)).toBe(true);
    expect((error as { path: string }).path).toBe('random');
    expect(() => new PowerOfTwoChoices(42 as never)).toThrow(/options/);
  });

  it('ignores options it does not use', () => {
    expect(() => new PowerOfTwoChoices({ tableSize: -1, decayMs: 'x' as never })).not.toThrow();
  });

  it('sends the request to the less loaded of the two candidates', () => {
    const backends = makeBackends([1, 1, 1, 1]);
    backends.forEach((b, i) => (mutable(b).inflight = [5, 1, 3, 0][i]!));
    // Four equal weights: one draw gives both candidates. 0.1 · 4 = 0.4 → column 0 (a); the fraction
    // 0.4 · 3 = 1.2 → the second of the other three (b, c, d) → c.
    const { random, calls } = scripted([0.1]);
    const balancer = new PowerOfTwoChoices({ random });
    balancer.update(backends);
    expect(balancer.pick()?.id).toBe('c');
    expect(calls()).toBe(1);
    // Unequal weights: two draws, by weight (the alias table's columns and coins).
    const weighted = makeBackends([1, 1, 1, 2]);
    weighted.forEach((b, i) => (mutable(b).inflight = [5, 1, 3, 0][i]!));
    const two = scripted([0.1, 0.6]);
    const p2 = new PowerOfTwoChoices({ random: two.random });
    p2.update(weighted);
    p2.pick();
    expect(two.calls()).toBe(2);
  });

  it('shares serial requests in proportion to unequal weights, the lightest backend included', () => {
    // One request at a time: every backend is idle at every pick. Weights 3 : 1 : 2 over 60,000 picks
    // once gave 85 % / 0 % / 15 %, because the heavier idle candidate always won.
    const backends = makeBackends([3, 1, 2]);
    const balancer = new PowerOfTwoChoices({ random: createSeededRandom(7) });
    balancer.update(backends);
    const picks = 60_000;
    const counts = new Map<Backend, number>();
    for (let i = 0; i < picks; i++) {
      const picked = balancer.pick()!;
      counts.set(picked, (counts.get(picked) ?? 0) + 1);
      mutable(picked).inflight++;
      mutable(picked).inflight--;
    }
    for (const b of backends) {
      const p = b.weight / 6;
      expect(Math.abs((counts.get(b) ?? 0) - picks * p)).toBeLessThan(5 * Math.sqrt(picks * p * (1 - p)));
    }
  });

  it('gives an idle candidate the request over a loaded one, whatever their weights', () => {
    const [a, b] = makeBackends([10, 1]) as [Backend, Backend];
    mutable(a).inflight = 1;
    const balancer = new PowerOfTwoChoices({ random: createSeededRandom(3) });
    balancer.update([a, b]);
    for (let i = 0; i < 50; i++) expect(balancer.pick()).toBe(b);
  });

  it('compares two distinct backends, so the most loaded one never wins', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ weight: fc.double({ min: 0.1, max: 10, noNaN: true }), inflight: fc.nat(50) }), { minLength: 2, maxLength: 12 }),
        fc.integer(),
        (specs, seed) => {
          const backends = makeBackends(specs.map(() => 1));
          specs.forEach((s, i) => {
            mutable(backends[i]!).effectiveWeight = s.weight;
            mutable(backends[i]!).inflight = s.inflight;
          });
          const worst = Math.max(...backends.map(load));
          const balancer = new PowerOfTwoChoices({ random: createSeededRandom(seed) });
          balancer.update(backends);
          for (let i = 0; i < 200; i++) {
            const picked = balancer.pick();
            if (!picked) return false;
            // The pick is the worst only if its rival is exactly as loaded.
            if (load(picked) === worst && backends.filter((b) => load(b) === worst).length === 1) return false;
          }
          return true;
        },
      ),
      { seed: 1234, numRuns: 100 },
    );
  });

  it('always picks the less loaded of two backends', () => {
    const spec = fc.record({ weight: fc.double({ min: 0.1, max: 10, noNaN: true }), inflight: fc.nat(50) });
    fc.assert(
      fc.property(spec, spec, fc.integer(), (x, y, seed) => {
        const backends = makeBackends([1, 1]);
        [x, y].forEach((s, i) => {
          mutable(backends[i]!).effectiveWeight = s.weight;
          mutable(backends[i]!).inflight = s.inflight;
        });
        const balancer = new PowerOfTwoChoices({ random: createSeededRandom(seed) });
        balancer.update(backends);
        const [loadX, loadY] = backends.map(load) as [number, number];
        if (Math.abs(loadX - loadY) <= 1e-12 * Math.max(loadX, loadY)) return true;
        const lighter = loadX < loadY ? backends[0] : backends[1];
        for (let i = 0; i < 10; i++) if (balancer.pick() !== lighter) return false;
        return true;
      }),
      { seed: 1234, numRuns: 100 },
    );
  });

  it('shares equal, equally loaded backends evenly', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 8 }), fc.integer(), (n, seed) => {
        const balancer = new PowerOfTwoChoices({ random: createSeededRandom(seed) });
        const backends = makeBackends(new Array<number>(n).fill(2));
        balancer.update(backends);
        const draws = 20_000;
        const counts = new Map<Backend | undefined, number>();
        for (let i = 0; i < draws; i++) {
          const picked = balancer.pick();
          counts.set(picked, (counts.get(picked) ?? 0) + 1);
        }
        // Ties go to the first candidate, drawn uniformly: each share within 5 standard deviations.
        const p = 1 / n;
        const bound = 5 * Math.sqrt((p * (1 - p)) / draws);
        return backends.every((b) => Math.abs((counts.get(b) ?? 0) / draws - p) < bound);
      }),
      { seed: 1234, numRuns: 100 },
    );
  });

  it('keeps in-flight counts proportional to weight under sustained load', () => {
    const backends = makeBackends([1, 2, 3, 4]);
    const balancer = new PowerOfTwoChoices({ random: createSeededRandom(99) });
    balancer.update(backends);
    for (let i = 0; i < 1000; i++) mutable(balancer.pick()!).inflight++;
    const loads = backends.map(load);
    // Two choices keep the gap to a few requests' worth of load.
    expect(Math.max(...loads) - Math.min(...loads)).toBeLessThan(3);
    expect(backends.map((b) => b.inflight).reduce((s, x) => s + x, 0)).toBe(1000);
  });

  it('never returns a backend whose effective weight is 0', () => {
    const backends = makeBackends([1, 1, 1]);
    mutable(backends[1]!).effectiveWeight = 0;
    mutable(backends[0]!).inflight = 1000;
    const balancer = new PowerOfTwoChoices({ random: createSeededRandom(3) });
    balancer.update(backends);
    for (let i = 0; i < 500; i++) expect(balancer.pick(undefined, i % 3)).not.toBe(backends[1]);
  });

  it('returns the only backend, and undefined when none has weight', () => {
    const balancer = new PowerOfTwoChoices({ random: createSeededRandom(3) });
    expect(balancer.pick()).toBeUndefined();
    balancer.update(makeBackends([0, 0]));
    expect(balancer.pick()).toBeUndefined();
    const only = makeBackends([0.37]);
    balancer.update(only);
    expect(balancer.pick()).toBe(only[0]);
  });

  it('draws a new pair for a retry', () => {
    // Idle and equal, so the first candidate wins each tie: 0.1 → a (with c); 0.35 → b (with c).
    const { random, calls } = scripted([0.1, 0.35]);
    const balancer = new PowerOfTwoChoices({ random });
    balancer.update(makeBackends([1, 1, 1, 1]));
    expect(balancer.pick()?.id).toBe('a');
    expect(balancer.pick(undefined, 1)?.id).toBe('b');
    expect(calls()).toBe(2);
  });
});
