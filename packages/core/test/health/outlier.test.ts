import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Backend } from '../../src/backend';
import type { Outcome } from '../../src/balancers/balancer';
import { normalizeOutlierOptions, OutlierDetector, type NormalizedOutlierOptions, type OutlierOptions } from '../../src/health';
import { backends, FakeClock, PROPERTY_RUNS } from './helpers';

const FAIL: Outcome = { ok: false, status: 503 };
const OK: Outcome = { ok: true, status: 200 };
const ABORTED: Outcome = { ok: false, error: 'aborted' };

interface Event {
  readonly type: 'eject' | 'restore';
  readonly id: string;
  readonly at: number;
  readonly cause?: string;
  readonly until?: number;
}

function harness(options: OutlierOptions, count: number) {
  const clock = new FakeClock(0);
  const config = normalizeOutlierOptions(options) as NormalizedOutlierOptions;
  const events: Event[] = [];
  const detector = new OutlierDetector(config, {
    clock,
    onEject: (b, cause, until) => events.push({ type: 'eject', id: b.id, at: clock.now(), cause, until }),
    onRestore: (b) => events.push({ type: 'restore', id: b.id, at: clock.now() }),
  });
  const hosts = backends(count);
  for (const h of hosts) detector.add(h);
  const record = (h: Backend, outcome: Outcome, times = 1) => {
    for (let i = 0; i < times; i++) detector.record(h, outcome);
  };
  const host = (i: number) => hosts[i] as Backend;
  return { clock, config, detector, events, hosts, host, record };
}

/** Record `successes` and `failures` interleaved, so no run of failures is long. */
function mix(record: (h: Backend, o: Outcome) => void, h: Backend, successes: number, failures: number): void {
  for (let i = 0; i < Math.max(successes, failures); i++) {
    if (i < failures) record(h, FAIL);
    if (i < successes) record(h, OK);
  }
}

describe('OutlierDetector: consecutive failures', () => {
  it('ejects on the fifth consecutive failure, at once, for baseEjectionMs', async () => {
    const { clock, events, host, record, detector } = harness({}, 10);
    await clock.advance(1_234);
    record(host(3), FAIL, 4);
    expect(events).toEqual([]);
    record(host(3), FAIL);
    expect(events).toEqual([{ type: 'eject', id: 'b3', at: 1_234, cause: 'consecutive-failures', until: 31_234 }]);
    expect(detector.stateOf(host(3))).toMatchObject({ ejected: true, until: 31_234, multiplier: 1, ejections: 1, consecutiveFailures: 0 });
    expect(detector.ejectedCount).toBe(1);
    detector.close();
  });

  it('restarts the streak on a success but neither counts nor resets on a client abort', () => {
    const { events, host, record, detector } = harness({}, 10);
    record(host(0), FAIL, 4);
    record(host(0), OK);
    record(host(0), FAIL, 4);
    record(host(0), ABORTED);
    expect(events).toEqual([]);
    expect(detector.stateOf(host(0))).toMatchObject({ consecutiveFailures: 4, successes: 1, failures: 8 });
    record(host(0), FAIL);
    expect(events.map((e) => e.cause)).toEqual(['consecutive-failures']);
    detector.close();
  });

  it('lets isFailure decide what counts against a backend', () => {
    const { events, host, record, detector } = harness({ isFailure: (o) => o.status === 429 }, 10);
    record(host(0), FAIL, 10);
    expect(events).toEqual([]);
    record(host(0), { ok: false, status: 429 }, 5);
    expect(events.map((e) => e.id)).toEqual(['b0']);
    detector.close();
  });

  it('detects but does not eject when consecutive-failure ejection is not enforced', () => {
    const { events, host, record, detector } = harness({ enforceConsecutiveFailures: false }, 10);
    record(host(0), FAIL, 20);
    expect(events).toEqual([]);
    detector.close();
  });
});

describe('OutlierDetector: un-ejection and ejection time', () => {
  it('restores a backend on the first sweep at or after its ejection ends', async () => {
    const { clock, events, host, record, detector } = harness({}, 10);
    await clock.advance(1_000);
    record(host(0), FAIL, 5);
    await clock.advance(38_999); // now 39_999; `until` was 31_000, sweeps run every 10 s from 0
    expect(events.filter((e) => e.type === 'restore')).toEqual([]);
    await clock.advance(1);
    expect(events.at(-1)).toEqual({ type: 'restore', id: 'b0', at: 40_000 });
    expect(detector.stateOf(host(0))).toMatchObject({ ejected: false, until: 0, multiplier: 1 });
    detector.close();
  });

  it('lengthens each ejection by baseEjectionMs, caps it at maxEjectionMs, and shortens it again while healthy', async () => {
    const { clock, events, host, record, detector } = harness({ intervalMs: 10_000, baseEjectionMs: 10_000, maxEjectionMs: 25_000 }, 10);
    const durations: number[] = [];
    for (let i = 0; i < 5; i++) {
      record(host(0), FAIL, 5);
      const eject = events.at(-1) as Event;
      durations.push((eject.until as number) - eject.at);
      while (detector.stateOf(host(0))?.ejected) await clock.advance(10_000);
    }
    expect(durations).toEqual([10_000, 20_000, 25_000, 25_000, 25_000]);
    // Envoy's bound lets the multiplier reach one step past the cap: max/base + 1 = 3.5 → 4.
    expect(detector.stateOf(host(0))?.multiplier).toBe(4);
    // Each sweep after the backend has been back a full interval takes one step off.
    await clock.advance(30_000);
    expect(detector.stateOf(host(0))?.multiplier).toBe(1);
    record(host(0), FAIL, 5);
    const eject = events.at(-1) as Event;
    expect((eject.until as number) - eject.at).toBe(20_000);
    detector.close();
  });

  it('restore() ends an ejection at once, as a passing active check does in Envoy', () => {
    const { events, host, record, detector } = harness({}, 10);
    record(host(0), FAIL, 5);
    expect(detector.restore(host(0))).toBe(true);
    expect(detector.restore(host(0))).toBe(false);
    expect(detector.restore(host(1))).toBe(false);
    expect(events.map((e) => e.type)).toEqual(['eject', 'restore']);
    expect(detector.ejectedCount).toBe(0);
    detector.close();
  });
});

describe('OutlierDetector: the ejection cap', () => {
  it('never ejects more than maxEjectionPercent of the backends', () => {
    const ten = harness({}, 10);
    ten.record(ten.host(0), FAIL, 5);
    ten.record(ten.host(1), FAIL, 5);
    expect(ten.events.map((e) => e.id)).toEqual(['b0']);
    expect(ten.detector.stateOf(ten.host(1))?.consecutiveFailures).toBe(0);
    ten.detector.close();

    const twenty = harness({}, 20);
    for (let i = 0; i < 5; i++) twenty.record(twenty.host(i), FAIL, 5);
    expect(twenty.events.map((e) => e.id)).toEqual(['b0', 'b1']);
    twenty.detector.close();
  });

  it('ejects exactly one host of a small pool by default, and none with alwaysEjectOneHost off', () => {
    const strict = harness({ alwaysEjectOneHost: false }, 3);
    strict.record(strict.host(0), FAIL, 5);
    expect(strict.events).toEqual([]);
    strict.detector.close();

    const lenient = harness({}, 3);
    lenient.record(lenient.host(0), FAIL, 5);
    lenient.record(lenient.host(1), FAIL, 5);
    expect(lenient.events.map((e) => e.id)).toEqual(['b0']);
    lenient.detector.remove(lenient.host(0));
    expect(lenient.detector.ejectedCount).toBe(0);
    lenient.record(lenient.host(1), FAIL, 5);
    expect(lenient.events.map((e) => e.id)).toEqual(['b0', 'b1']);
    lenient.detector.close();
  });
});

describe('OutlierDetector: success rate and failure percentage', () => {
  it('ejects a backend below mean − 1.9 × stdev (Envoy’s example: 50% among four at 100%)', async () => {
    const { clock, events, host, record, detector } = harness({ maxEjectionPercent: 20 }, 5);
    for (let i = 0; i < 4; i++) record(host(i), OK, 100);
    mix(record, host(4), 50, 50);
    await clock.advance(10_000);
    expect(events).toEqual([{ type: 'eject', id: 'b4', at: 10_000, cause: 'success-rate', until: 40_000 }]);
    detector.close();
  });

  it('needs requestVolume per backend, minimumHosts backends, and enforcement', async () => {
    const lowVolume = harness({ maxEjectionPercent: 20 }, 5);
    for (let i = 0; i < 4; i++) lowVolume.record(lowVolume.host(i), OK, 100);
    mix(lowVolume.record, lowVolume.host(4), 49, 50);
    await lowVolume.clock.advance(10_000);
    expect(lowVolume.events).toEqual([]);
    lowVolume.detector.close();

    const fewHosts = harness({ maxEjectionPercent: 20, successRateMinimumHosts: 6 }, 5);
    for (let i = 0; i < 4; i++) fewHosts.record(fewHosts.host(i), OK, 100);
    mix(fewHosts.record, fewHosts.host(4), 50, 50);
    await fewHosts.clock.advance(10_000);
    expect(fewHosts.events).toEqual([]);
    fewHosts.detector.close();

    const off = harness({ maxEjectionPercent: 20, enforceSuccessRate: false }, 5);
    for (let i = 0; i < 4; i++) off.record(off.host(i), OK, 100);
    mix(off.record, off.host(4), 50, 50);
    await off.clock.advance(10_000);
    expect(off.events).toEqual([]);
    off.detector.close();
  });

  it('counts each interval on its own', async () => {
    const { clock, events, host, record, detector } = harness({ maxEjectionPercent: 20 }, 5);
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 4; i++) record(host(i), OK, 60);
      mix(record, host(4), 30, 30);
      await clock.advance(10_000);
    }
    expect(events).toEqual([]);
    detector.close();
  });

  it('ejects on failure percentage ≥ the threshold only when enforced', async () => {
    const base = { maxEjectionPercent: 20, enforceSuccessRate: false, enforceConsecutiveFailures: false, failurePercentageRequestVolume: 100 };
    const run = async (options: OutlierOptions, failures: number) => {
      const h = harness({ ...base, ...options }, 5);
      for (let i = 0; i < 4; i++) h.record(h.host(i), OK, 100);
      mix(h.record, h.host(4), 100 - failures, failures);
      await h.clock.advance(10_000);
      h.detector.close();
      return h.events.map((e) => `${e.id}:${e.cause}`);
    };
    expect(await run({}, 95)).toEqual([]);
    expect(await run({ enforceFailurePercentage: true }, 85)).toEqual(['b4:failure-percentage']);
    expect(await run({ enforceFailurePercentage: true }, 84)).toEqual([]);
    expect(await run({ enforceFailurePercentage: true, failurePercentageMinimumHosts: 6 }, 95)).toEqual([]);
  });
});

describe('OutlierDetector lifecycle', () => {
  it('close() stops the sweep timer and ignores later outcomes', async () => {
    const { clock, events, host, record, detector } = harness({}, 10);
    expect(clock.pending).toBe(1);
    detector.close();
    detector.close();
    expect(clock.pending).toBe(0);
    record(host(0), FAIL, 10);
    await clock.advance(100_000);
    expect(events).toEqual([]);
    expect(detector.closed).toBe(true);
  });

  it('ignores outcomes of backends it does not monitor', () => {
    const { events, detector } = harness({}, 10);
    const [stranger] = backends(1);
    for (let i = 0; i < 10; i++) detector.record(stranger as Backend, FAIL);
    expect(events).toEqual([]);
    expect(detector.stateOf(stranger as Backend)).toBeUndefined();
    detector.close();
  });
});

// ─── Model-based ───────────────────────────────────────────────────────────────────────────────

type Action = { type: 'record'; host: number; outcome: 'fail' | 'ok' | 'aborted' } | { type: 'advance'; ms: number } | { type: 'restore'; host: number };

const OUTCOMES: Record<'fail' | 'ok' | 'aborted', Outcome> = { fail: FAIL, ok: OK, aborted: ABORTED };

function actions(hosts: number): fc.Arbitrary<Action[]> {
  const host = fc.integer({ min: 0, max: hosts - 1 });
  return fc.array(
    fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({
          type: fc.constant('record' as const),
          host,
          outcome: fc.constantFrom('fail' as const, 'fail' as const, 'ok' as const, 'aborted' as const),
        }),
      },
      { weight: 2, arbitrary: fc.record({ type: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 6_000 }) }) },
      { weight: 1, arbitrary: fc.record({ type: fc.constant('restore' as const), host }) },
    ),
    { maxLength: 120 },
  );
}

interface ModelHost {
  ejected: boolean;
  until: number;
  multiplier: number;
  streak: number;
  restoredAt: number | undefined;
}

describe('OutlierDetector against a reference model', () => {
  it('ejects, lengthens, caps, restores and decays exactly as the reference says (consecutive failures)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(0, 10, 25, 34, 50, 100),
        fc.boolean(),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 8 }).chain((n) => actions(n).map((list) => ({ n, list }))),
        async (maxEjectionPercent, alwaysEjectOneHost, consecutiveFailures, { n, list }) => {
          const interval = 1_000;
          const base = 3_000;
          const max = 10_000;
          const h = harness(
            {
              intervalMs: interval,
              baseEjectionMs: base,
              maxEjectionMs: max,
              maxEjectionPercent,
              alwaysEjectOneHost,
              consecutiveFailures,
              enforceSuccessRate: false,
            },
            n,
          );
          const model: ModelHost[] = Array.from({ length: n }, () => ({ ejected: false, until: 0, multiplier: 0, streak: 0, restoredAt: undefined }));
          const expected: Event[] = [];
          let now = 0;
          const ejectedCount = () => model.filter((m) => m.ejected).length;
          const restore = (i: number, at: number) => {
            const m = model[i] as ModelHost;
            Object.assign(m, { ejected: false, until: 0, streak: 0, restoredAt: at });
            expected.push({ type: 'restore', id: `b${i}`, at });
          };

          for (const action of list) {
            if (action.type === 'record') {
              const m = model[action.host] as ModelHost;
              h.record(h.host(action.host), OUTCOMES[action.outcome]);
              if (action.outcome === 'ok') m.streak = 0;
              if (action.outcome === 'fail' && !m.ejected && ++m.streak >= consecutiveFailures) {
                m.streak = 0;
                const count = ejectedCount();
                if ((count + 1) * 100 <= maxEjectionPercent * n || (alwaysEjectOneHost && count === 0)) {
                  if (m.multiplier * base < max + base) m.multiplier++;
                  m.ejected = true;
                  m.until = now + Math.min(base * m.multiplier, max);
                  expected.push({ type: 'eject', id: `b${action.host}`, at: now, cause: 'consecutive-failures', until: m.until });
                }
              }
            } else if (action.type === 'restore') {
              const wasEjected = (model[action.host] as ModelHost).ejected;
              expect(h.detector.restore(h.host(action.host))).toBe(wasEjected);
              if (wasEjected) restore(action.host, now);
            } else {
              await h.clock.advance(action.ms);
              const end = now + action.ms;
              for (let sweep = (Math.floor(now / interval) + 1) * interval; sweep <= end; sweep += interval) {
                model.forEach((m, i) => {
                  if (m.ejected && sweep >= m.until) restore(i, sweep);
                });
                for (const m of model) {
                  if (!m.ejected && m.multiplier > 0 && m.restoredAt !== undefined && sweep - m.restoredAt >= interval) m.multiplier--;
                }
              }
              now = end;
            }

            expect(h.events).toEqual(expected);
            model.forEach((m, i) => {
              expect(h.detector.stateOf(h.host(i))).toMatchObject({
                ejected: m.ejected,
                until: m.until,
                multiplier: m.multiplier,
                consecutiveFailures: m.streak,
              });
            });
            // The cap, stated on its own: never more than maxEjectionPercent, except the one host alwaysEjectOneHost allows.
            const count = ejectedCount();
            expect(count * 100 <= maxEjectionPercent * n || (alwaysEjectOneHost && count === 1)).toBe(true);
            expect(h.detector.ejectedCount).toBe(count);
          }
          h.detector.close();
        },
      ),
      PROPERTY_RUNS,
    );
  });

  it('keeps the cap, bounds every ejection, and restores every ejected backend within one interval of its end (all rules on)', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 12 }),
        fc.constantFrom(10, 20, 50),
        fc.array(
          fc.record({
            outcomes: fc.array(fc.tuple(fc.nat({ max: 11 }), fc.constantFrom('fail' as const, 'ok' as const, 'aborted' as const)), { maxLength: 80 }),
            advance: fc.integer({ min: 0, max: 3_000 }),
          }),
          { maxLength: 12 },
        ),
        async (n, maxEjectionPercent, rounds) => {
          const interval = 1_000;
          const h = harness(
            {
              intervalMs: interval,
              baseEjectionMs: 2_000,
              maxEjectionMs: 7_000,
              maxEjectionPercent,
              consecutiveFailures: 3,
              successRateRequestVolume: 5,
              successRateMinimumHosts: 2,
              enforceFailurePercentage: true,
              failurePercentageRequestVolume: 3,
              failurePercentageMinimumHosts: 2,
            },
            n,
          );
          const check = () => {
            const count = h.detector.ejectedCount;
            // The default alwaysEjectOneHost lets a single ejection through even above the cap.
            expect(count * 100 <= maxEjectionPercent * n || count === 1).toBe(true);
          };
          for (const round of rounds) {
            for (const [i, outcome] of round.outcomes) h.record(h.host(i % n), OUTCOMES[outcome]);
            check();
            await h.clock.advance(round.advance);
            check();
          }
          await h.clock.advance(7_000 + interval);
          expect(h.detector.ejectedCount).toBe(0);
          // Pair each ejection with the restore that follows it.
          const open = new Map<string, Event>();
          for (const e of h.events) {
            if (e.type === 'eject') {
              expect(open.has(e.id)).toBe(false);
              const duration = (e.until as number) - e.at;
              expect([2_000, 4_000, 6_000, 7_000]).toContain(duration);
              open.set(e.id, e);
            } else {
              const eject = open.get(e.id) as Event;
              expect(eject).toBeDefined();
              expect(e.at).toBeGreaterThanOrEqual(eject.until as number);
              expect(e.at).toBeLessThan((eject.until as number) + interval);
              open.delete(e.id);
            }
          }
          expect(open.size).toBe(0);
          h.detector.close();
        },
      ),
      PROPERTY_RUNS,
    );
  });
});
