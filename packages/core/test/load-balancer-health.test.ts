import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { createLoadBalancer, type Backend, type LoadBalancer, type ProbeResult } from '@fulcrum/core';
import { FakeClock, seededRandom } from '@fulcrum/core/testing';

const specs = (n: number, extra: Record<string, unknown> = {}) =>
  Array.from({ length: n }, (_, i) => ({ id: `b${i}`, address: `http://127.0.0.1:${3001 + i}`, ...extra }));

/** A probe whose verdict per backend the test sets. */
function scriptedProbe() {
  const verdicts = new Map<string, boolean | ProbeResult>();
  const probe = async (backend: Backend) => verdicts.get(backend.id) ?? true;
  return { verdicts, probe };
}

function idsOf(lb: LoadBalancer, n = 60): Set<string> {
  const seen = new Set<string>();
  for (let i = 0; i < n; i++) {
    const lease = lb.acquire({ key: `k${i}` });
    if (lease) {
      seen.add(lease.backend.id);
      lease.release();
    }
  }
  return seen;
}

describe('active health checks in the load balancer', () => {
  it('takes a backend down after fall failures and brings it back after rise passes', async () => {
    const clock = new FakeClock(0);
    const { verdicts, probe } = scriptedProbe();
    const lb = createLoadBalancer({
      backends: specs(3),
      algorithm: 'round-robin',
      clock,
      random: seededRandom(1),
      health: { probe, rise: 2, fall: 3, intervalMs: 1000, fastIntervalMs: 1000, downIntervalMs: 1000, jitter: 0, initialState: 'fully-up' },
    });
    const events: string[] = [];
    lb.on('state', (id, from, to, cause) => events.push(`${id}:${from}->${to}:${cause}`));
    verdicts.set('b1', false);
    await clock.advance(2500);
    expect(lb.get('b1')!.state).toBe('up');
    await clock.advance(1000);
    expect(lb.get('b1')!.state).toBe('down');
    expect(idsOf(lb)).toEqual(new Set(['b0', 'b2']));
    verdicts.set('b1', true);
    await clock.advance(2000);
    expect(lb.get('b1')!.state).toBe('up');
    expect(idsOf(lb)).toEqual(new Set(['b0', 'b1', 'b2']));
    expect(events).toEqual(['b1:up->down:probe', 'b1:down->up:probe']);
    lb.close();
    expect(clock.pending).toBe(0);
  });

  it('applies agent words: weight percentage, drain and ready', async () => {
    const clock = new FakeClock(0);
    const { verdicts, probe } = scriptedProbe();
    const lb = createLoadBalancer({
      backends: specs(2, { weight: 4 }),
      algorithm: 'weighted-round-robin',
      clock,
      random: seededRandom(2),
      health: { probe, intervalMs: 1000, jitter: 0 },
    });
    verdicts.set('b0', { ok: true, weightPercent: 25 });
    await clock.advance(1000);
    expect(lb.get('b0')!.effectiveWeight).toBe(1);
    verdicts.set('b1', { ok: true, drain: true });
    await clock.advance(1000);
    expect(lb.get('b1')!.state).toBe('draining');
    verdicts.set('b1', { ok: true, ready: true });
    await clock.advance(1000);
    expect(lb.get('b1')!.state).toBe('up');
    lb.close();
  });

  it('starts over from initial health when a backend leaves maintenance', async () => {
    const clock = new FakeClock(0);
    const { verdicts, probe } = scriptedProbe();
    const lb = createLoadBalancer({ backends: specs(2), clock, health: { probe, intervalMs: 1000, jitter: 0 } });
    verdicts.set('b0', false);
    await clock.advance(1000);
    expect(lb.get('b0')!.state).toBe('down');
    lb.maintain('b0');
    expect(lb.get('b0')!.state).toBe('maintenance');
    lb.ready('b0');
    expect(lb.get('b0')!.state).toBe('up');
    lb.close();
  });
});

describe("the 'check' event", () => {
  it('reports every check with its result, duration on the clock and detail, before the state change it causes', async () => {
    const clock = new FakeClock(0);
    const lb = createLoadBalancer({
      backends: specs(1),
      clock,
      random: seededRandom(1),
      health: {
        // Answers after 40 ms of the clock: the duration is the probe's, measured on the clock.
        probe: () => new Promise((resolve) => clock.setTimeout(() => resolve({ ok: false, detail: 'HTTP 503' }), 40)),
        rise: 1,
        fall: 1,
        intervalMs: 1000,
        fastIntervalMs: 1000,
        downIntervalMs: 1000,
        jitter: 0,
        initialState: 'fully-up',
      },
    });
    const seen: string[] = [];
    lb.on('check', (id, ok, durationMs, detail) => seen.push(`${id}:${ok}:${durationMs}:${detail}`));
    lb.on('state', (id, _from, to) => seen.push(`${id}->${to}`));
    await clock.advance(2_100);
    expect(seen.slice(0, 3)).toEqual(['b0:false:40:HTTP 503', 'b0->down', 'b0:false:40:HTTP 503']);
    lb.close();
  });
});

describe('panic', () => {
  it('spreads traffic over every primary when too few are healthy, and says so', async () => {
    const clock = new FakeClock(0);
    const { verdicts, probe } = scriptedProbe();
    const lb = createLoadBalancer({
      backends: specs(4),
      algorithm: 'round-robin',
      clock,
      panicThreshold: 0.5,
      health: { probe, intervalMs: 1000, jitter: 0, fall: 1 },
    });
    const panics: boolean[] = [];
    lb.on('panic', (active) => panics.push(active));
    verdicts.set('b0', false);
    verdicts.set('b1', false);
    await clock.advance(1000);
    expect(lb.tier).toBe('primary'); // 2 of 4 healthy = 0.5, not below
    verdicts.set('b2', false);
    await clock.advance(1000);
    expect(lb.tier).toBe('panic');
    const lease = lb.acquire()!;
    expect(lease.decision.reason).toBe('panic');
    expect(idsOf(lb)).toEqual(new Set(['b0', 'b1', 'b2', 'b3']));
    expect(panics).toEqual([true]);
    lb.close();
  });

  it('prefers backups to panic, and with panic disabled uses the healthy few', async () => {
    const clock = new FakeClock(0);
    const { verdicts, probe } = scriptedProbe();
    const health = { probe, intervalMs: 1000, jitter: 0, fall: 1 };
    const withBackup = createLoadBalancer({
      backends: [...specs(3), { id: 'spare', address: 'h:9', backup: true }],
      algorithm: 'round-robin',
      clock,
      health,
    });
    const noPanic = createLoadBalancer({ backends: specs(3), algorithm: 'round-robin', clock, health, panicThreshold: 0 });
    verdicts.set('b0', false);
    verdicts.set('b1', false);
    await clock.advance(1000);
    expect(withBackup.tier).toBe('backup');
    expect(idsOf(withBackup)).toEqual(new Set(['spare']));
    expect(noPanic.tier).toBe('primary');
    expect(idsOf(noPanic)).toEqual(new Set(['b2']));
    withBackup.close();
    noPanic.close();
  });
});

describe('outlier ejection in the load balancer', () => {
  it('ejects a backend after consecutive failures and restores it when the ejection ends', async () => {
    const clock = new FakeClock(0);
    const lb = createLoadBalancer({
      backends: specs(3),
      algorithm: 'round-robin',
      clock,
      outlier: { consecutiveFailures: 3, baseEjectionMs: 5000, intervalMs: 1000 },
    });
    const events: string[] = [];
    lb.on('ejected', (id, cause) => events.push(`ejected ${id} ${cause}`));
    lb.on('restored', (id) => events.push(`restored ${id}`));
    for (let i = 0; i < 3; i++) {
      const lease = lb.acquire({ exclude: ['b0', 'b2'] })!;
      expect(lease.backend.id).toBe('b1');
      lease.release({ ok: false, error: 'connect' });
    }
    expect(events).toEqual(['ejected b1 consecutive-failures']);
    expect(lb.snapshot().backends[1]!.ejected).toBe(true);
    expect(idsOf(lb)).toEqual(new Set(['b0', 'b2']));
    await clock.advance(6000);
    expect(events).toEqual(['ejected b1 consecutive-failures', 'restored b1']);
    expect(idsOf(lb)).toEqual(new Set(['b0', 'b1', 'b2']));
    lb.close();
  });

  it('moves sticky clients off an ejected backend', () => {
    const clock = new FakeClock(0);
    const table = new Map<string, string>();
    const lb = createLoadBalancer({
      backends: specs(2),
      clock,
      stickTable: { get: (k) => table.get(k), set: (k, v) => void table.set(k, v) },
      outlier: { consecutiveFailures: 1 },
    });
    table.set('client', 'b0');
    lb.acquire({ affinityKey: 'client' })!.release({ ok: false, status: 502 });
    const lease = lb.acquire({ affinityKey: 'client' })!;
    expect(lease.backend.id).toBe('b1');
    expect(lease.decision.previous).toEqual({ backendId: 'b0', cause: 'ejected' });
    lb.close();
  });
});

describe('slow start', () => {
  it('ramps the weight of a backend added later and leaves the first ones at full weight', async () => {
    const clock = new FakeClock(0);
    const lb = createLoadBalancer({ backends: specs(2), clock, slowStart: { windowMs: 10_000, minWeightPercent: 10 } });
    expect(lb.get('b0')!.effectiveWeight).toBe(1);
    const joined = lb.add({ id: 'late', address: 'h:9' });
    const ramping = () => Object.fromEntries(lb.snapshot().backends.map((b) => [b.id, b.slowStart]));
    expect(ramping()).toEqual({ b0: false, b1: false, late: true });
    expect(joined.effectiveWeight).toBeCloseTo(0.1);
    await clock.advance(5000);
    expect(joined.effectiveWeight).toBeCloseTo(0.5);
    await clock.advance(5000);
    expect(joined.effectiveWeight).toBe(1);
    expect(ramping()).toEqual({ b0: false, b1: false, late: false });
    expect(clock.pending).toBe(0);
    lb.close();
  });

  it('admits members at full weight from update(specs, { slowStart: false }), and ramps them by default', () => {
    const clock = new FakeClock(0);
    const lb = createLoadBalancer({ backends: [], clock, slowStart: { windowMs: 10_000, minWeightPercent: 0 } });
    // A pool filled before it carries traffic (a gRPC channel connecting its first servers).
    lb.update(specs(2), { slowStart: false });
    expect(lb.backends.map((b) => b.effectiveWeight)).toEqual([1, 1]);
    expect(lb.acquire()).toBeDefined();
    lb.update([...specs(2), { id: 'late', address: 'h:9' }]);
    expect(lb.get('late')!.effectiveWeight).toBe(0);
    expect(lb.snapshot().backends.map((b) => b.slowStart)).toEqual([false, false, true]);
    lb.close();
  });
});

describe('eligibility invariant', () => {
  it('never picks a down, ejected or maintenance backend outside panic, whatever happens', async () => {
    type Op =
      | { kind: 'probe'; id: number; ok: boolean }
      | { kind: 'admin'; id: number; action: 'drain' | 'maintain' | 'ready' }
      | { kind: 'outcome'; ok: boolean }
      | { kind: 'advance'; ms: number };
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ kind: fc.constant('probe' as const), id: fc.nat(4), ok: fc.boolean() }),
      fc.record({ kind: fc.constant('admin' as const), id: fc.nat(4), action: fc.constantFrom('drain' as const, 'maintain' as const, 'ready' as const) }),
      fc.record({ kind: fc.constant('outcome' as const), ok: fc.boolean() }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 3000 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 60 }), fc.constantFrom('round-robin', 'p2c', 'maglev', 'least-connections'), async (ops, algorithm) => {
        const clock = new FakeClock(0);
        const verdicts = new Map<string, boolean>();
        const lb = createLoadBalancer({
          backends: specs(5),
          algorithm,
          clock,
          random: seededRandom(9),
          health: { probe: async (b) => verdicts.get(b.id) ?? true, intervalMs: 500, jitter: 0, fall: 1, rise: 1 },
          outlier: { consecutiveFailures: 2, intervalMs: 500, baseEjectionMs: 1000, maxEjectionPercent: 40 },
        });
        for (const o of ops) {
          if (o.kind === 'probe') verdicts.set(`b${o.id}`, o.ok);
          else if (o.kind === 'admin') lb[o.action](`b${o.id}`);
          else if (o.kind === 'advance') await clock.advance(o.ms);
          const lease = lb.acquire({ key: `k${ops.indexOf(o)}` });
          if (lease) {
            const b = lease.backend;
            if (lease.decision.reason !== 'panic') {
              expect(b.state).toBe('up');
              expect(b.isEjected(clock.now())).toBe(false);
            } else {
              expect(['up', 'down']).toContain(b.state);
            }
            lease.release(o.kind === 'outcome' ? { ok: o.ok, status: o.ok ? 200 : 503 } : { ok: true });
          } else {
            // Nothing eligible: every backend is out of service, or down/ejected with panic impossible.
            expect(lb.tier).toBe('none');
          }
        }
        lb.close();
      }),
      { seed: 424242, numRuns: 100 },
    );
  });
});

describe('restoreHealth: a handover carries the check counter over', () => {
  const health = (probe: () => Promise<boolean>) => ({ probe, rise: 2, fall: 3, intervalMs: 1000, jitter: 0 });

  it('continues from the counter another load balancer reached, to the check', async () => {
    const clock = new FakeClock(0);
    const { verdicts, probe } = scriptedProbe();
    const before = createLoadBalancer({
      backends: specs(2),
      algorithm: 'round-robin',
      clock,
      health: { ...health(async () => true), probe, initialState: 'fully-up' },
    });
    verdicts.set('b1', false);
    await clock.advance(1000); // b1: one failure from fully up (4) → 3, still up
    const counter = before.snapshot().backends.find((b) => b.id === 'b1')!.health!.value;
    expect(counter).toBe(3);
    before.close();

    const after = createLoadBalancer({
      backends: specs(2),
      algorithm: 'round-robin',
      clock,
      health: { ...health(async () => true), probe, initialState: 'fully-up' },
    });
    const events: string[] = [];
    after.on('state', (id, from, to, cause) => events.push(`${id}:${from}->${to}:${cause}`));
    after.restoreHealth('b1', counter);
    expect(after.snapshot().backends.find((b) => b.id === 'b1')!.health!.value).toBe(3);
    // Without the handover b1 would need three failures; with it, the two left take it down.
    await clock.advance(1000);
    expect(after.get('b1')!.state).toBe('up');
    await clock.advance(1000);
    expect(after.get('b1')!.state).toBe('down');
    expect(events).toEqual(['b1:up->down:probe']);
    after.close();
  });

  it('takes a backend that was down out of rotation at once, and says why', () => {
    const clock = new FakeClock(0);
    const lb = createLoadBalancer({ backends: specs(3), algorithm: 'round-robin', clock, health: health(async () => true) });
    const events: string[] = [];
    lb.on('state', (id, from, to, cause) => events.push(`${id}:${from}->${to}:${cause}`));
    lb.restoreHealth('b2', 0);
    expect(lb.get('b2')!.state).toBe('down');
    expect(idsOf(lb)).toEqual(new Set(['b0', 'b1']));
    expect(events).toEqual(['b2:up->down:handover']);
    lb.close();
  });

  it('clamps the counter and ignores unknown ids, non-numbers and pools without checks', () => {
    const clock = new FakeClock(0);
    const lb = createLoadBalancer({ backends: specs(1), clock, health: health(async () => true) });
    lb.restoreHealth('b0', 99);
    expect(lb.snapshot().backends[0]!.health!.value).toBe(4);
    lb.restoreHealth('b0', -5);
    expect(lb.get('b0')!.state).toBe('down');
    lb.restoreHealth('b0', Number.NaN);
    expect(lb.snapshot().backends[0]!.health!.value).toBe(0);
    expect(() => lb.restoreHealth('nope', 0)).not.toThrow();
    lb.close();
    const unchecked = createLoadBalancer({ backends: specs(1), clock });
    unchecked.restoreHealth('b0', 0);
    expect(unchecked.get('b0')!.state).toBe('up');
    unchecked.close();
  });
});
