import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backend, mutable, normalizeBackendSpec, recordLatency } from '../../src/backend';
import { DEFAULT_DECAY_MS, DEFAULT_RTT_MS, PeakEwma } from '../../src/balancers/peak-ewma';
import type { Clock } from '../../src/clock';
import { isInvalidOptionError } from '../../src/errors';
import { createSeededRandom } from '../../src/random';

const letter = (i: number): string => (i < 26 ? String.fromCharCode(97 + i) : `b${i}`);

function makeBackends(weights: readonly number[], now = 0): Backend[] {
  return weights.map((weight, i) => new Backend(normalizeBackendSpec({ id: letter(i), address: '127.0.0.1:1', weight }), now));
}

class ManualClock implements Clock {
  constructor(public time = 0) {}
  now(): number {
    return this.time;
  }
  setTimeout(): unknown {
    throw new Error('not used by balancers');
  }
  clearTimeout(): void {}
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('PeakEwma', () => {
  it('is named peak-ewma and defaults to tower’s 1 s prior and a 10 s decay', () => {
    expect(new PeakEwma().name).toBe('peak-ewma');
    expect([DEFAULT_RTT_MS, DEFAULT_DECAY_MS]).toEqual([1000, 10_000]);
    const clock = new ManualClock(DEFAULT_DECAY_MS);
    const balancer = new PeakEwma({ clock });
    const [fresh] = makeBackends([1]) as [Backend];
    mutable(fresh).inflight = 1;
    expect(balancer.cost(fresh, clock.now())).toBeCloseTo(1000 * Math.exp(-1) * 2, 9);
  });

  it.each([
    ['decayMs', { decayMs: 0 }],
    ['decayMs', { decayMs: Number.POSITIVE_INFINITY }],
    ['defaultRttMs', { defaultRttMs: -1 }],
    ['defaultRttMs', { defaultRttMs: '1000' }],
    ['clock', { clock: { now: 5 } }],
    ['clock', { clock: Date }],
    ['random', { random: 1 }],
  ])('rejects a bad %s', (path, options) => {
    const error = thrown(() => new PeakEwma(options as never));
    expect(isInvalidOptionError(error)).toBe(true);
    expect((error as { path: string }).path).toBe(path);
  });

  it('costs a backend at rtt × (1 + inflight / weight)', () => {
    const clock = new ManualClock(5000);
    const balancer = new PeakEwma({ clock });
    const [a] = makeBackends([2]) as [Backend];
    recordLatency(a, 80, 5000, 10_000);
    mutable(a).inflight = 3;
    expect(balancer.cost(a, 5000)).toBe(80 * (1 + 3 / 2));
  });

  it('decays an estimate that is not refreshed, by exp(−elapsed / decayMs)', () => {
    const balancer = new PeakEwma({ decayMs: 2000 });
    const [a] = makeBackends([1]) as [Backend];
    recordLatency(a, 300, 1000, 2000);
    expect(balancer.cost(a, 1000)).toBe(300);
    expect(balancer.cost(a, 3000)).toBeCloseTo(300 * Math.exp(-1), 9);
    expect(balancer.cost(a, 9000)).toBeCloseTo(300 * Math.exp(-4), 9);
  });

  it('costs an unmeasured backend at 0 while idle, and at defaultRttMs, decayed from when it joined, while its requests are pending', () => {
    const balancer = new PeakEwma({ defaultRttMs: 500, decayMs: 1000 });
    const [a] = makeBackends([2], 10_000) as [Backend];
    expect(balancer.cost(a, 10_000)).toBe(0);
    mutable(a).inflight = 2;
    expect(balancer.cost(a, 10_000)).toBe(500 * 2);
    expect(balancer.cost(a, 11_000)).toBeCloseTo(500 * Math.exp(-1) * 2, 9);
  });

  it('does not inflate an estimate when the clock runs backwards', () => {
    const balancer = new PeakEwma();
    const [a] = makeBackends([1]) as [Backend];
    recordLatency(a, 40, 50_000, 10_000);
    expect(balancer.cost(a, 20_000)).toBe(40);
  });

  it('prefers the faster of two idle backends', () => {
    const clock = new ManualClock(1000);
    const [fast, slow] = makeBackends([1, 1]) as [Backend, Backend];
    recordLatency(fast, 10, 1000, 10_000);
    recordLatency(slow, 100, 1000, 10_000);
    const balancer = new PeakEwma({ clock, random: createSeededRandom(4) });
    balancer.update([slow, fast]);
    for (let i = 0; i < 50; i++) expect(balancer.pick()).toBe(fast);
  });

  it('moves traffic off a fast backend once its queue outweighs its speed', () => {
    const clock = new ManualClock(1000);
    const [fast, slow] = makeBackends([1, 1]) as [Backend, Backend];
    recordLatency(fast, 10, 1000, 10_000);
    recordLatency(slow, 100, 1000, 10_000);
    mutable(fast).inflight = 10; // 10 × 11 = 110 > 100 × 1
    const balancer = new PeakEwma({ clock, random: createSeededRandom(4) });
    balancer.update([fast, slow]);
    expect(balancer.pick()).toBe(slow);
    mutable(fast).inflight = 8; // 90 < 100
    expect(balancer.pick()).toBe(fast);
  });

  it('gives a weight-2 backend twice the room of a weight-1 one at equal latency', () => {
    const clock = new ManualClock(0);
    const [heavy, light] = makeBackends([2, 1]) as [Backend, Backend];
    recordLatency(heavy, 50, 0, 10_000);
    recordLatency(light, 50, 0, 10_000);
    const balancer = new PeakEwma({ clock, random: createSeededRandom(2) });
    balancer.update([heavy, light]);
    for (let i = 0; i < 30; i++) mutable(balancer.pick()!).inflight++;
    expect([heavy.inflight, light.inflight]).toEqual([20, 10]);
  });

  it('tries a new backend at once, but does not flood it before its first response', () => {
    const clock = new ManualClock(0);
    const [known] = makeBackends([1], 0) as [Backend];
    const [newcomer] = makeBackends([1], 0) as [Backend];
    recordLatency(known, 50, 0, 10_000);
    const balancer = new PeakEwma({ clock, random: createSeededRandom(6) });
    balancer.update([known, newcomer]);
    // Unmeasured and idle: cost 0, against the known backend's 50.
    expect(balancer.pick()).toBe(newcomer);
    mutable(newcomer).inflight = 1;
    // Its first request pending: 1000 × 2 against 50 × (1 + 5) — the known backend takes the rest.
    mutable(known).inflight = 5;
    expect(balancer.pick()).toBe(known);
    recordLatency(newcomer, 40, 0, 10_000);
    expect(balancer.pick()).toBe(newcomer);
  });

  it('sends serial requests to every one of three equal backends, the unmeasured one included', () => {
    // Two backends measured at 10 ms, one not yet: the old 1 s prior kept the third out for good
    // while the clock stood still.
    const clock = new ManualClock(0);
    const backends = makeBackends([1, 1, 1]);
    recordLatency(backends[0]!, 10, 0, 10_000);
    recordLatency(backends[1]!, 10, 0, 10_000);
    const balancer = new PeakEwma({ clock, random: createSeededRandom(9) });
    balancer.update(backends);
    const seen = new Set<Backend>();
    for (let i = 0; i < 30; i++) {
      const picked = balancer.pick()!;
      seen.add(picked);
      mutable(picked).inflight++;
      mutable(picked).inflight--;
    }
    expect(seen.size).toBe(3);
  });

  it('follows weights with one request at a time when the latency estimates are equal', () => {
    const clock = new ManualClock(0);
    const backends = makeBackends([3, 1, 2]);
    for (const b of backends) recordLatency(b, 20, 0, 10_000);
    const balancer = new PeakEwma({ clock, random: createSeededRandom(5) });
    balancer.update(backends);
    const picks = 30_000;
    const counts = new Map<Backend, number>();
    for (let i = 0; i < picks; i++) {
      const picked = balancer.pick()!;
      counts.set(picked, (counts.get(picked) ?? 0) + 1);
    }
    for (const b of backends) {
      const p = b.weight / 6;
      expect(Math.abs((counts.get(b) ?? 0) - picks * p)).toBeLessThan(5 * Math.sqrt(picks * p * (1 - p)));
    }
  });

  it('lets a backend that was slow once back in after its peak decays', () => {
    const clock = new ManualClock(0);
    const [steady, recovered] = makeBackends([1, 1]) as [Backend, Backend];
    recordLatency(recovered, 2000, 0, 10_000);
    const balancer = new PeakEwma({ clock, random: createSeededRandom(6) });
    balancer.update([steady, recovered]);
    clock.time = 1000;
    recordLatency(steady, 100, 1000, 10_000);
    expect(balancer.pick()).toBe(steady);
    // A minute later: 2000 × e^(−6) ≈ 5 against the steady backend's fresh 100.
    clock.time = 60_000;
    recordLatency(steady, 100, 60_000, 10_000);
    expect(balancer.pick()).toBe(recovered);
  });

  it('picks the cheaper of two backends exactly as cost() ranks them at any later time', () => {
    const spec = fc.record({
      weight: fc.double({ min: 0.1, max: 10, noNaN: true }),
      inflight: fc.nat(20),
      latency: fc.oneof(fc.constant(0), fc.double({ min: 0.5, max: 5000, noNaN: true })),
      at: fc.nat(600_000),
    });
    fc.assert(
      fc.property(spec, spec, fc.nat(600_000), fc.integer(), (x, y, later, seed) => {
        const now = Math.max(x.at, y.at) + later;
        const backends = makeBackends([1, 1]);
        [x, y].forEach((s, i) => {
          const b = mutable(backends[i]!);
          b.effectiveWeight = s.weight;
          b.inflight = s.inflight;
          b.latencyEwma = s.latency;
          b.latencyUpdatedAt = s.at;
        });
        const balancer = new PeakEwma({ clock: new ManualClock(now), random: createSeededRandom(seed) });
        balancer.update(backends);
        const [costX, costY] = backends.map((b) => balancer.cost(b, now)) as [number, number];
        // Equal costs (or ones within rounding of each other) may go either way.
        if (Math.abs(costX - costY) <= 1e-9 * Math.max(costX, costY)) return true;
        const cheaper = costX < costY ? backends[0] : backends[1];
        for (let i = 0; i < 10; i++) if (balancer.pick() !== cheaper) return false;
        return true;
      }),
      { seed: 1234, numRuns: 100 },
    );
  });

  it('compares two distinct backends, so the costliest one never wins', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            weight: fc.double({ min: 0.1, max: 10, noNaN: true }),
            inflight: fc.nat(20),
            latency: fc.integer({ min: 0, max: 500 }),
            at: fc.nat(30_000),
          }),
          { minLength: 2, maxLength: 10 },
        ),
        fc.integer(),
        (specs, seed) => {
          const clock = new ManualClock(30_000);
          const backends = makeBackends(specs.map(() => 1));
          specs.forEach((s, i) => {
            const b = mutable(backends[i]!);
            b.effectiveWeight = s.weight;
            b.inflight = s.inflight;
            b.latencyEwma = s.latency;
            b.latencyUpdatedAt = s.at;
          });
          const balancer = new PeakEwma({ clock, random: createSeededRandom(seed) });
          balancer.update(backends);
          const costs = backends.map((b) => balancer.cost(b, clock.now()));
          const worst = Math.max(...costs);
          const unique = costs.filter((c) => c === worst).length === 1;
          for (let i = 0; i < 100; i++) {
            const picked = balancer.pick();
            if (!picked) return false;
            if (unique && balancer.cost(picked, clock.now()) === worst) return false;
          }
          return true;
        },
      ),
      { seed: 1234, numRuns: 100 },
    );
  });

  it('never returns a backend whose effective weight is 0, and undefined when none has weight', () => {
    const backends = makeBackends([1, 1]);
    mutable(backends[0]!).effectiveWeight = 0;
    mutable(backends[1]!).inflight = 50;
    const balancer = new PeakEwma({ clock: new ManualClock(), random: createSeededRandom(1) });
    expect(balancer.pick()).toBeUndefined();
    balancer.update(backends);
    for (let i = 0; i < 20; i++) expect(balancer.pick(undefined, i)).toBe(backends[1]);
    balancer.update(makeBackends([0]));
    expect(balancer.pick()).toBeUndefined();
  });
});
