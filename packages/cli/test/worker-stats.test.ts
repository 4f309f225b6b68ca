// The stats of `fulcrum --workers` across workers, without a cluster: the merged event list, the
// summed traffic counters (checked against one process's own counters) and the metrics text
// (promtool-checked), from reports as the workers send them.
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { createLoadBalancer, type LoadBalancer } from '@fulcrum/core';
import { FakeClock } from '@fulcrum/core/testing';
import { MAX_CONCURRENT_RENDERS, prometheus, renderTrafficJson, trafficOf, type StatsEvent } from '@fulcrum/http';
import { RenderSlots, mergeWorkerEvents, renderWorkersMetrics, sumWorkerTraffic, workersStatsJson, type WorkerStatsReport } from '../src/worker-stats';
import { mergeReports } from '../src';

const cleanups: (() => unknown)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

const state = (seq: number, at: number, backend: string, to: 'up' | 'down' | 'draining', cause: 'probe' | 'admin' | 'handover'): StatsEvent => ({
  seq,
  at,
  pool: 'web',
  type: 'state',
  backend,
  from: to === 'up' ? 'down' : 'up',
  to,
  cause,
});

const report = (slot: number, events: StatsEvent[]): WorkerStatsReport => ({
  slot,
  pid: 1000 + slot,
  pools: {},
  stats: { events, traffic: {}, protocol: { pools: {}, frontends: {} } },
});

describe('mergeWorkerEvents', () => {
  it("shows a change every worker applied once, with the worker that made it, ordered by time with each worker's own events", () => {
    const merged = mergeWorkerEvents([
      report(1, [state(1, 1_000, 'b1', 'down', 'probe'), state(2, 2_000, 'b2', 'draining', 'admin')]),
      // Worker 2 applied worker 1's verdict a little earlier than worker 1 logged it, and the drain after it.
      report(2, [
        state(7, 999, 'b1', 'down', 'handover'),
        { seq: 8, at: 1_500, pool: 'web', type: 'ejected', backend: 'b3', cause: 'consecutive-failures', until: 31_500 },
        state(9, 2_004, 'b2', 'draining', 'admin'),
      ]),
    ]);
    expect(
      merged.map((e) => [e.seq, e.at, e.type, 'backend' in e ? e.backend : undefined, e.worker, e.workers, e.type === 'state' ? e.cause : undefined]),
    ).toEqual([
      [1, 999, 'state', 'b1', 1, [1, 2], 'probe'],
      [2, 1_500, 'ejected', 'b3', 2, [2], undefined],
      [3, 2_000, 'state', 'b2', 1, [1, 2], 'admin'],
    ]);
  });

  it('keeps a flap as two events (the same change far apart), and the newest `limit` events', () => {
    const flap = mergeWorkerEvents([report(1, [state(1, 1_000, 'b1', 'down', 'probe'), state(2, 9_000, 'b1', 'down', 'probe')]), report(2, [])]);
    expect(flap.map((e) => [e.at, e.workers])).toEqual([
      [1_000, [1]],
      [9_000, [1]],
    ]);
    const events = Array.from({ length: 10 }, (_, i) => state(i + 1, i * 10_000, `b${i}`, 'down', 'probe'));
    const newest = mergeWorkerEvents(
      [
        report(1, events),
        report(
          2,
          events.map((e) => ({ ...e, cause: 'handover' }) as StatsEvent),
        ),
      ],
      3,
    );
    expect(newest.map((e) => [e.seq, 'backend' in e ? e.backend : undefined, e.workers])).toEqual([
      [1, 'b7', [1, 2]],
      [2, 'b8', [1, 2]],
      [3, 'b9', [1, 2]],
    ]);
  });
});

/** A pool as one worker sees it, on its own clock, with `requests` answered in the current second. */
function workerPool(clock: FakeClock, requests: number): LoadBalancer {
  const lb = createLoadBalancer({
    name: 'web',
    clock,
    algorithm: 'round-robin',
    backends: [
      { id: 'b1', address: 'http://10.0.0.1:80' },
      { id: 'b2', address: 'http://10.0.0.2:80' },
    ],
  });
  cleanups.push(() => lb.close());
  const traffic = trafficOf(lb);
  for (let i = 0; i < requests; i++) {
    const lease = lb.acquire()!;
    traffic.started();
    const outcome = { ok: true, status: 200, durationMs: 3 + i };
    lease.release(outcome);
    traffic.attemptEnded(lease.backend, outcome, 1, lease.startedAt, undefined);
    traffic.ended(lease.backend, 'ok', 200, 10, 100, 5 + i, 0);
  }
  return lb;
}

describe('sumWorkerTraffic and the metrics of every worker', () => {
  it("adds counters, histograms and per-second series field by field, aligned on their seconds, and renders them as one process's own counters are", async () => {
    const clock1 = new FakeClock(1_700_000_000_000);
    const clock2 = new FakeClock(1_700_000_000_000);
    const one = workerPool(clock1, 3);
    await clock2.advance(1_000);
    const two = workerPool(clock2, 2);
    const reports: WorkerStatsReport[] = [
      {
        slot: 1,
        pid: 11,
        pools: { web: one.snapshot() },
        stats: { events: [], traffic: { web: trafficOf(one).toJSON() }, protocol: { pools: {}, frontends: {} } },
      },
      {
        slot: 2,
        pid: 12,
        pools: { web: two.snapshot() },
        stats: {
          events: [],
          traffic: { web: trafficOf(two).toJSON() },
          protocol: { pools: { web: { h2Streams: 4, h1ToH2Requests: 0, grpcStatuses: { 0: 3, 14: 1 } } }, frontends: {} },
        },
      },
    ];
    const sum = sumWorkerTraffic(reports).web!;
    expect(sum.requests).toBe(5);
    expect(sum.bytesOut).toBe(500);
    expect(sum.responses['2xx']).toBe(5);
    expect(sum.duration.count).toBe(5);
    expect(sum.duration.sumMs).toBe(5 + 6 + 7 + 5 + 6);
    expect(sum.at).toBe(1_700_000_001_000);
    expect(sum.since).toBe(1_700_000_000_000);
    // Worker 1's requests were in the second before worker 2's: two slots, not one.
    expect(sum.series.end).toBe(1_700_000_001_000);
    expect(sum.series.requests.slice(-2)).toEqual([3, 2]);
    // Round-robin: b1, b2, b1 in worker 1; b1, b2 in worker 2.
    expect([sum.backends.b1!.responses['2xx'], sum.backends.b2!.responses['2xx']]).toEqual([3, 2]);

    // One worker's counters in their JSON form render exactly as prometheus() renders them live.
    const live = prometheus({ web: one })();
    expect(live).toContain(renderTrafficJson({ web: trafficOf(one).toJSON() }));

    const text = renderWorkersMetrics(mergeReports(reports.map((r) => ({ ...r }))), reports);
    const check = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(check.error).toBeUndefined();
    expect({ status: check.status, stdout: check.stdout, stderr: check.stderr }).toEqual({ status: 0, stdout: '', stderr: '' });
    expect(text).toContain('fulcrum_backend_requests_total{pool="web",backend="b1"} 3\n');
    expect(text).toContain('fulcrum_pool_requests_total{pool="web"} 5\n');
    expect(text).toContain('fulcrum_pool_grpc_calls_total{pool="web",grpc_status="14"} 1\n');
    expect(text).toContain('fulcrum_worker_info{worker="1",pid="11"} 1\n');
    expect(text).toContain('fulcrum_worker_pool_requests_total{worker="1",pool="web"} 3\n');
    expect(text).toContain('fulcrum_worker_pool_requests_total{worker="2",pool="web"} 2\n');
    expect(text.endsWith('fulcrum_workers 2\n')).toBe(true);

    const json = workersStatsJson(mergeReports(reports), reports, 50);
    expect(json.workers).toBe(2);
    expect(json.traffic.web!.requests).toBe(5);
    expect(json.protocol.pools.web!.grpcStatuses).toEqual({ 0: 3, 14: 1 });
  });
});

describe('RenderSlots: the large renders of every worker, as the primary counts them', () => {
  it("grants two renders per handler over every worker, the single process's default, and refuses a third", () => {
    const slots = new RenderSlots();
    expect(slots.limit).toBe(MAX_CONCURRENT_RENDERS);
    expect(slots.limit).toBe(2);
    expect(slots.take('metrics', 1)).toBe(true);
    expect(slots.take('metrics', 2)).toBe(true);
    expect(slots.take('metrics', 1)).toBe(false);
    // Another handler has its own, as in one process.
    expect(slots.take('stats', 2)).toBe(true);
    slots.give('metrics', 2);
    expect(slots.take('metrics', 1)).toBe(true);
    expect(slots.active('metrics')).toBe(2);
  });

  it('gives back what an exited worker held, and nothing a worker did not take', () => {
    const slots = new RenderSlots();
    slots.take('metrics', 2);
    slots.take('metrics', 2);
    slots.take('stats', 2);
    slots.take('stats', 1);
    slots.give('metrics', 1);
    expect(slots.active('metrics')).toBe(2);
    slots.release(2);
    expect(slots.active('metrics')).toBe(0);
    expect(slots.active('stats')).toBe(1);
  });

  it('agrees with a count per handler and worker over any sequence of takes, gives and exits', () => {
    type Op = { op: 'take' | 'give'; handler: string; slot: number } | { op: 'exit'; slot: number };
    const handler = fc.constantFrom('metrics', 'stats', 'stats listener');
    const slot = fc.integer({ min: 1, max: 4 });
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({ op: fc.constantFrom('take' as const, 'give' as const), handler, slot }),
      fc.record({ op: fc.constant('exit' as const), slot }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), fc.array(op, { maxLength: 60 }), (limit, ops) => {
        const slots = new RenderSlots(limit);
        /** `handler\u001fslot` → renders held. */
        const held = new Map<string, number>();
        const total = (h: string): number => [...held].filter(([k]) => k.startsWith(`${h}\u001f`)).reduce((n, [, v]) => n + v, 0);
        for (const o of ops) {
          if (o.op === 'take') {
            const granted = total(o.handler) < limit;
            expect(slots.take(o.handler, o.slot)).toBe(granted);
            if (granted) held.set(`${o.handler}\u001f${o.slot}`, (held.get(`${o.handler}\u001f${o.slot}`) ?? 0) + 1);
          } else if (o.op === 'give') {
            slots.give(o.handler, o.slot);
            const key = `${o.handler}\u001f${o.slot}`;
            if ((held.get(key) ?? 0) > 0) held.set(key, held.get(key)! - 1);
          } else {
            slots.release(o.slot);
            for (const key of [...held.keys()]) if (key.endsWith(`\u001f${o.slot}`)) held.delete(key);
          }
          for (const h of ['metrics', 'stats', 'stats listener']) expect(slots.active(h)).toBe(total(h));
        }
      }),
      { seed: 22, numRuns: 300 },
    );
  });
});
