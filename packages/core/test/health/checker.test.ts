import { afterEach, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import type { Backend } from '../../src/backend';
import { createSeededRandom } from '../../src/random';
import {
  checkPhase,
  HealthChecker,
  initialHealth,
  interpretProbeValue,
  normalizeHealthOptions,
  reduceHealth,
  type CheckPhase,
  type HealthOptions,
  type HealthStatus,
  type InitialHealthState,
  type NormalizedHealthOptions,
  type ProbeResult,
} from '../../src/health';
import { backend, backends, FakeClock, flushEventLoop, PROPERTY_RUNS, ScriptedProbe, trackUnhandledRejections, type ProbeBehaviour } from './helpers';

interface Recorded {
  readonly id: string;
  readonly at: number;
  readonly result: ProbeResult;
}

/**
 * A checker wired the way the load balancer wires it: results folded into a per-backend health
 * status with `reduceHealth`, and `phase` read from that status with `checkPhase`.
 */
function harness(
  script: ProbeBehaviour[],
  options: Partial<HealthOptions> = {},
  extra: { random?: () => number; onError?: (error: unknown, b: Backend) => void; onResult?: (b: Backend) => void; defaultIntervals?: boolean } = {},
) {
  const clock = new FakeClock(0);
  const scripted = new ScriptedProbe(clock, script);
  // The timings below were written for three distinct cadences (2000 / 1000 / 5000 ms); a test of
  // the defaults themselves asks for `defaultIntervals`.
  const cadence = extra.defaultIntervals === true ? {} : { fastIntervalMs: 1000, downIntervalMs: 5000 };
  const config = normalizeHealthOptions({ probe: scripted.probe, jitter: 0, ...cadence, ...options }) as NormalizedHealthOptions;
  const results: Recorded[] = [];
  const statuses = new Map<Backend, HealthStatus>();
  const statusOf = (b: Backend): HealthStatus => statuses.get(b) ?? initialHealth(config, config.initialState);
  const checker = new HealthChecker(config, {
    clock,
    random: extra.random ?? (() => 0.5),
    onResult(b, result) {
      results.push({ id: b.id, at: clock.now(), result });
      statuses.set(b, reduceHealth(statusOf(b), result.ok ? 'pass' : 'fail', config));
      extra.onResult?.(b);
    },
    phase: (b) => checkPhase(statusOf(b), config),
    ...(extra.onError ? { onError: extra.onError } : {}),
  });
  return { clock, scripted, config, results, statusOf, checker };
}

const rejections = trackUnhandledRejections();
afterEach(async () => {
  await flushEventLoop();
  expect(rejections.reasons).toEqual([]);
});

describe('HealthChecker scheduling', () => {
  it('probes at intervalMs while up, fastIntervalMs while transitioning and downIntervalMs while down', async () => {
    const script: ProbeBehaviour[] = ['pass', 'pass', 'fail', 'fail', 'fail', 'fail', 'pass', 'pass', 'pass'].map((kind) => ({ kind }) as ProbeBehaviour);
    const { clock, scripted, results, statusOf, checker } = harness(script);
    const a = backend('a');
    checker.add(a);
    await clock.advance(19_500);
    // First probe: 0.5 × the shortest interval. Then: up → +2000, transitioning → +1000, down → +5000.
    expect(scripted.calls.map((c) => c.startedAt)).toEqual([500, 2_500, 4_500, 5_500, 6_500, 11_500, 16_500, 17_500, 19_500]);
    expect(results.map((r) => r.result.ok)).toEqual([true, true, false, false, false, false, true, true, true]);
    expect(statusOf(a)).toEqual({ health: 4, up: true });
    checker.close();
  });

  it('probes a down backend at intervalMs when only intervalMs is given, as HAProxy probes at inter', async () => {
    // HAProxy: `fastinter` and `downinter` default to `inter`. A backend that recovers is seen again
    // within one interval (then rise − 1 more), not after a longer down interval.
    const script: ProbeBehaviour[] = ['fail', 'fail', 'fail', 'fail', 'pass', 'pass'].map((kind) => ({ kind }) as ProbeBehaviour);
    const { clock, scripted, statusOf, checker } = harness(script, { intervalMs: 200, initialState: 'fully-up' }, { defaultIntervals: true });
    const a = backend('a');
    checker.add(a);
    await clock.advance(1_100);
    // Every gap is 200 ms: up, transitioning and down alike.
    expect(scripted.calls.map((c) => c.startedAt)).toEqual([100, 300, 500, 700, 900, 1_100]);
    expect(statusOf(a).up).toBe(true);
    checker.close();
  });

  it('spreads the first probes of many backends over the shortest interval', async () => {
    const { clock, scripted, checker } = harness([{ kind: 'pass' }], {}, { random: createSeededRandom(7) });
    for (const b of backends(20)) checker.add(b);
    await clock.advance(999);
    const firsts = scripted.calls.map((c) => c.startedAt);
    expect(firsts).toHaveLength(20);
    for (const t of firsts) expect(t).toBeLessThan(1_000);
    expect(new Set(firsts).size).toBeGreaterThanOrEqual(18);
    checker.close();
  });

  it('spreads later probes over ±jitter of the interval', async () => {
    const { clock, scripted, checker } = harness([{ kind: 'pass' }], { jitter: 0.1, initialState: 'fully-up' }, { random: createSeededRandom(11) });
    checker.add(backend('a'));
    await clock.advance(200_000);
    const starts = scripted.calls.map((c) => c.startedAt);
    const gaps = starts.slice(1).map((t, i) => t - (starts[i] as number));
    expect(gaps.length).toBeGreaterThan(80);
    for (const gap of gaps) {
      expect(gap).toBeGreaterThanOrEqual(1_800);
      expect(gap).toBeLessThanOrEqual(2_200);
    }
    expect(Math.min(...gaps)).toBeLessThan(1_850);
    expect(Math.max(...gaps)).toBeGreaterThan(2_150);
    checker.close();
  });

  it('keeps at most one probe in flight per backend, even when probes outlast the interval', async () => {
    const { clock, scripted, checker } = harness([{ kind: 'pass', afterMs: 1_500 }, { kind: 'hang' }, { kind: 'pass', afterMs: 2_500 }], {
      timeoutMs: 3_000,
      intervalMs: 500,
      fastIntervalMs: 250,
    });
    checker.add(backend('a'));
    await clock.advance(60_000);
    expect(scripted.calls.length).toBeGreaterThan(15);
    expect(scripted.maxInflight).toBe(1);
    checker.close();
  });
});

describe('HealthChecker failures', () => {
  it('fails a probe that hangs past timeoutMs, aborts its signal and ignores its late result', async () => {
    const { clock, scripted, results, checker } = harness([{ kind: 'pass', afterMs: 3_000 }], { timeoutMs: 1_000 });
    checker.add(backend('a'));
    await clock.advance(1_499);
    expect(results).toEqual([]);
    expect(checker.isProbing(backend('other'))).toBe(false);
    await clock.advance(1);
    expect(results).toEqual([{ id: 'a', at: 1_500, result: { ok: false, detail: 'timed out after 1000 ms' } }]);
    const { signal } = scripted.calls[0] as { signal: AbortSignal };
    expect(signal.aborted).toBe(true);
    expect((signal.reason as Error).name).toBe('TimeoutError');
    // The probe resolves `true` at 3500; the next probe (down after the failure) is due at 6500.
    await clock.advance(5_000);
    expect(results).toHaveLength(1);
    expect(scripted.calls).toHaveLength(2);
    checker.close();
  });

  it('turns a throwing, rejecting or garbage-returning probe into a failure with a detail, never an unhandled rejection', async () => {
    const badThenable = {
      then() {
        throw new Error('bad thenable');
      },
    };
    const cases: [ProbeBehaviour, RegExp][] = [
      [{ kind: 'throw' }, /^probe threw: probe exploded$/],
      [{ kind: 'reject' }, /^probe failed: connection refused$/],
      [{ kind: 'reject', afterMs: 5_000 }, /^timed out after 1000 ms$/],
      [{ kind: 'result', value: undefined }, /^probe returned an invalid result: undefined$/],
      [{ kind: 'result', value: 'yes' }, /invalid result: "yes"/],
      [{ kind: 'result', value: { ok: 'true' } }, /invalid result/],
      [{ kind: 'result', value: 42 }, /invalid result: 42/],
      [{ kind: 'result', value: badThenable }, /^probe failed: bad thenable$/],
    ];
    for (const [behaviour, detail] of cases) {
      const { clock, results, checker } = harness([behaviour]);
      checker.add(backend('a'));
      await clock.advance(1_500);
      expect(results).toHaveLength(1);
      expect(results[0]?.result.ok).toBe(false);
      expect(results[0]?.result.detail).toMatch(detail);
      await clock.advance(10_000);
      checker.close();
    }
    await flushEventLoop();
    expect(rejections.reasons).toEqual([]);
  });

  it('accepts a probe that returns a plain value instead of a promise', async () => {
    const clock = new FakeClock(0);
    const results: ProbeResult[] = [];
    const config = normalizeHealthOptions({ probe: (() => true) as never, jitter: 0 }) as NormalizedHealthOptions;
    const checker = new HealthChecker(config, { clock, random: () => 0, onResult: (_b, r) => results.push(r), phase: () => 'up' });
    checker.add(backend('a'));
    await clock.advance(0);
    expect(results).toEqual([{ ok: true }]);
    checker.close();
  });

  it('passes agent-check fields through, clamped and cleaned', () => {
    expect(interpretProbeValue(true)).toEqual({ ok: true });
    expect(interpretProbeValue(false)).toEqual({ ok: false });
    expect(interpretProbeValue({ ok: true, weightPercent: 150, drain: true, ready: false, maintenance: 'yes', extra: 1 })).toEqual({
      ok: true,
      weightPercent: 100,
      drain: true,
    });
    expect(interpretProbeValue({ ok: true, weightPercent: -3 })).toEqual({ ok: true, weightPercent: 0 });
    expect(interpretProbeValue({ ok: true, weightPercent: Number.NaN })).toEqual({ ok: true });
    expect(interpretProbeValue({ ok: false, detail: 'x'.repeat(500) }).detail).toHaveLength(200);
    expect(interpretProbeValue(null)).toEqual({ ok: false, detail: 'probe returned an invalid result: null' });
  });

  it('reports an exception from onResult to onError and keeps checking', async () => {
    const errors: unknown[] = [];
    const { clock, scripted, checker } = harness(
      [{ kind: 'pass' }],
      {},
      {
        onResult: () => {
          throw new Error('listener bug');
        },
        onError: (error) => errors.push(error),
      },
    );
    checker.add(backend('a'));
    await clock.advance(10_000);
    expect(scripted.calls.length).toBeGreaterThan(3);
    expect(errors).toHaveLength(scripted.calls.length);
    expect((errors[0] as Error).message).toBe('listener bug');
    checker.close();
  });

  it('rethrows an exception from onResult on a clock timer when there is no onError', async () => {
    const { clock, checker } = harness(
      [{ kind: 'pass' }],
      {},
      {
        onResult: () => {
          throw new Error('listener bug');
        },
      },
    );
    checker.add(backend('a'));
    await expect(clock.advance(1_000)).rejects.toThrow('listener bug');
    checker.close();
  });
});

describe('HealthChecker lifecycle', () => {
  it('remove() aborts the probe in flight, ignores its result and schedules nothing more', async () => {
    const { clock, scripted, results, checker } = harness([{ kind: 'pass', afterMs: 300 }]);
    const a = backend('a');
    const b = backend('b');
    checker.add(a);
    checker.add(b);
    await clock.advance(600);
    expect(checker.isProbing(a)).toBe(true);
    checker.remove(a);
    expect(checker.isProbing(a)).toBe(false);
    expect(scripted.calls.find((c) => c.backend === a)?.signal.aborted).toBe(true);
    await clock.advance(30_000);
    expect(scripted.calls.filter((c) => c.backend === a)).toHaveLength(1);
    expect(results.filter((r) => r.id === 'a')).toEqual([]);
    expect(results.filter((r) => r.id === 'b').length).toBeGreaterThan(5);
    expect(checker.size).toBe(1);
    checker.close();
  });

  it('close() stops everything: no timer left, in-flight probes aborted, their results ignored, add() ignored', async () => {
    const { clock, scripted, results, checker } = harness([{ kind: 'hang' }], { timeoutMs: 10_000 });
    for (const b of backends(3)) checker.add(b);
    await clock.advance(1_000);
    expect(scripted.calls).toHaveLength(3);
    expect(clock.pending).toBe(3); // the three timeouts
    checker.close();
    expect(checker.closed).toBe(true);
    expect(clock.pending).toBe(0);
    for (const call of scripted.calls) expect(call.signal.aborted).toBe(true);
    checker.add(backend('late'));
    checker.close();
    expect(clock.pending).toBe(0);
    await clock.advance(120_000);
    expect(scripted.calls).toHaveLength(3);
    expect(results).toEqual([]);
  });

  it('ignores the result of a probe that settles after close()', async () => {
    const { clock, scripted, results, checker } = harness([{ kind: 'pass', afterMs: 400 }]);
    checker.add(backend('a'));
    await clock.advance(700);
    expect(scripted.calls).toHaveLength(1);
    checker.close();
    await clock.advance(1_000);
    expect(results).toEqual([]);
  });

  it('adds a backend once, however often add() is called', async () => {
    const { clock, scripted, checker } = harness([{ kind: 'pass' }]);
    const a = backend('a');
    checker.add(a);
    checker.add(a);
    await clock.advance(999);
    expect(scripted.calls).toHaveLength(1);
    checker.close();
  });
});

/** What the probe in the property does, and what the checker must make of it. */
const behaviourArb: fc.Arbitrary<ProbeBehaviour> = fc.oneof(
  fc.record({ kind: fc.constantFrom('pass' as const, 'fail' as const), afterMs: fc.constantFrom(0, 100, 700, 1_500, 2_500) }),
  fc.record({ kind: fc.constant('reject' as const), afterMs: fc.constantFrom(0, 700, 1_500) }),
  fc.constant({ kind: 'throw' as const }),
  fc.constant({ kind: 'hang' as const }),
  fc.record({ kind: fc.constant('result' as const), value: fc.constantFrom<unknown>(undefined, null, 'ok', 1, { ok: 1 }, { ok: true }) }),
);

describe('HealthChecker against a reference schedule', () => {
  it('starts every probe when the reference says and reports the result it predicts', async () => {
    const timeoutMs = 1_000;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 4 }),
        fc.constantFrom<InitialHealthState>('fully-up', 'up', 'down', 'fully-down'),
        fc.array(behaviourArb, { minLength: 1, maxLength: 15 }),
        async (rise, fall, initialState, script) => {
          const { clock, scripted, config, results, checker } = harness(script, { rise, fall, initialState, timeoutMs });
          checker.add(backend('a'));

          // The reference: start, end and verdict of each probe, with HAProxy's interval choice.
          const interval = (phase: CheckPhase) => (phase === 'up' ? config.intervalMs : phase === 'down' ? config.downIntervalMs : config.fastIntervalMs);
          let status = initialHealth(config, initialState);
          let t = 0.5 * Math.min(config.intervalMs, config.fastIntervalMs, config.downIntervalMs);
          const expected: { start: number; end: number; ok: boolean }[] = [];
          for (const b of script) {
            let duration = 0;
            let ok = false;
            if (b.kind === 'pass' || b.kind === 'fail' || b.kind === 'reject') duration = b.afterMs ?? 0;
            if (b.kind === 'hang') duration = Number.POSITIVE_INFINITY;
            if (b.kind === 'pass') ok = true;
            if (b.kind === 'result') ok = typeof b.value === 'object' && b.value !== null && (b.value as { ok?: unknown }).ok === true;
            if (duration >= timeoutMs) {
              duration = timeoutMs;
              ok = false;
            }
            expected.push({ start: t, end: t + duration, ok });
            status = reduceHealth(status, ok ? 'pass' : 'fail', config);
            t = t + duration + interval(checkPhase(status, config));
          }

          const last = expected.at(-1) as { end: number };
          await clock.advance(last.end);
          checker.close();
          expect(scripted.calls.map((c) => c.startedAt)).toEqual(expected.map((e) => e.start));
          expect(results.map((r) => r.at)).toEqual(expected.map((e) => e.end));
          expect(results.map((r) => r.result.ok)).toEqual(expected.map((e) => e.ok));
          for (const r of results) if (!r.result.ok && r.result.detail !== undefined) expect(r.result.detail.length).toBeGreaterThan(0);
          expect(scripted.maxInflight).toBeLessThanOrEqual(1);
        },
      ),
      PROPERTY_RUNS,
    );
    await flushEventLoop();
    expect(rejections.reasons).toEqual([]);
  });
});
