// How a worker's stats cross the IPC link under `fulcrum --workers` when pools are large (issue #22):
// packed reports give back exactly what was sent (fast-check, fixed seeds, hostile keys included),
// a 40,000-backend report arrives whole and is unpacked while the event loop keeps running, a report
// over the size cap is refused and its worker listed as missing, simultaneous scrapes share one
// collection, and the sliced renderings are the same text as the one-step ones.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createLoadBalancer } from '@fulcrum/core';
import { trafficOf } from '@fulcrum/http';
import { mergeReports } from '../src';
import {
  coalesce,
  jsonPieces,
  mergeSnapshotsSteps,
  packReport,
  packReportSliced,
  packValue,
  renderWorkersMetrics,
  runSliced,
  sumWorkerTraffic,
  sumWorkerTrafficSteps,
  unpackReports,
  unpackValue,
  workersMetricsPieces,
  workersStatsJson,
  workersStatsJsonPieces,
  type CollectedReports,
  type WorkerStatsReport,
} from '../src/worker-stats';

/** What crossing the link gives back: the JSON text round trip of the packed value, unpacked. */
const roundTrip = (value: unknown): unknown => unpackValue(JSON.parse(JSON.stringify(packValue(value))));

/** Keys that could collide with the packing's markers or with Object.prototype. */
const hostileKey = fc.constantFrom('\u0000t', '\u0000r', '\u0000a', '__proto__', 'constructor', 'toJSON', '', 'backends');
const key = fc.oneof(fc.string(), hostileKey);
const leaf = fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.boolean(), fc.constant(null), fc.string(), hostileKey);
/** JSON data with tables in it: arrays and records of same-shaped objects, as snapshots are. */
const data = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf,
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(key, tie('value'), { maxKeys: 5 }),
    fc
      .tuple(fc.uniqueArray(key, { minLength: 1, maxLength: 4 }), fc.integer({ min: 2, max: 6 }), tie('value'))
      .map(([columns, rows, cell]) => Array.from({ length: rows }, (_, i) => Object.fromEntries(columns.map((c, j) => [c, j === 0 ? i : cell])))),
    fc
      .tuple(fc.uniqueArray(key, { minLength: 2, maxLength: 4 }), fc.uniqueArray(key, { minLength: 1, maxLength: 3 }), leaf)
      .map(([names, columns, cell]) => Object.fromEntries(names.map((n) => [n, Object.fromEntries(columns.map((c) => [c, cell]))]))),
  ),
})).value;

describe('packed reports', () => {
  it('give back what JSON would, key order and hostile keys included (fast-check, fixed seed)', () => {
    fc.assert(
      fc.property(data, (value) => {
        expect(JSON.stringify(roundTrip(value))).toBe(JSON.stringify(value));
      }),
      { seed: 2207, numRuns: 400 },
    );
    // A property holding undefined is not written, in a table as elsewhere; an array's undefined is null.
    const odd = [{ a: 1, b: undefined }, { a: 2 }];
    expect(JSON.stringify(roundTrip(odd))).toBe(JSON.stringify(odd));
    expect(JSON.stringify(roundTrip(['\u0000t', undefined, 1]))).toBe('["\\u0000t",null,1]');
    const proto = JSON.parse('{"__proto__":{"x":1},"y":[{"__proto__":1},{"__proto__":2}]}') as unknown;
    const back = roundTrip(proto) as Record<string, unknown>;
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect(JSON.stringify(back)).toBe(JSON.stringify(proto));
  });

  it('write the text of JSON.stringify piece by piece (fast-check, fixed seed)', () => {
    fc.assert(
      fc.property(data, (value) => {
        expect([...jsonPieces(value)].join('')).toBe(JSON.stringify(value));
      }),
      { seed: 2208, numRuns: 400 },
    );
    const big = { list: Array.from({ length: 500 }, (_, i) => ({ i, skip: undefined, f: () => i })), holes: [undefined, 1], n: null };
    expect([...jsonPieces(big)].join('')).toBe(JSON.stringify(big));
  });
});

/** A worker's report for a pool of `count` backends whose every backend has served one request. */
function hugeReport(slot: number, count: number): WorkerStatsReport {
  const lb = createLoadBalancer({
    name: 'huge',
    backends: Array.from({ length: count }, (_, i) => ({ id: `b${i}`, address: `http://10.0.${i >> 8}.${i & 255}:80` })),
  });
  const traffic = trafficOf(lb);
  for (const backend of lb.backends) traffic.attemptEnded(backend, { ok: true, status: 200, durationMs: 12 }, 1, 0, undefined);
  return {
    slot,
    pid: 100 + slot,
    pools: { huge: lb.snapshot() },
    stats: { events: [], traffic: { huge: traffic.toJSON() }, protocol: { pools: {}, frontends: {} } },
  };
}

describe('a 40,000-backend report', () => {
  const one = hugeReport(1, 40_000);
  const two = hugeReport(2, 40_000);

  it('arrives whole, smaller than its plain JSON, unpacked while the event loop keeps running', async () => {
    const packed = await packReportSliced(one);
    expect(packed.refused).toBeUndefined();
    expect(packed.data!.length).toBeLessThan(JSON.stringify({ pools: one.pools, stats: one.stats }).length / 2);
    // The same text as the one-step packing.
    expect(packed.data).toBe(packReport(one).data);

    const packedTwo = await packReportSliced(two);
    // An immediate queued before runs before the unpacking ends only if the unpacking let the event loop turn.
    let turned = false;
    setImmediate(() => (turned = true));
    const reports = await unpackReports([packed, packedTwo]);
    expect(turned).toBe(true);
    expect(reports.missing).toEqual([]);
    expect(reports.map((r) => r.slot)).toEqual([1, 2]);
    expect(reports[0]!.pools.huge!.backends).toHaveLength(40_000);
    expect(JSON.stringify(reports[0])).toBe(JSON.stringify(JSON.parse(JSON.stringify(one))));
    expect(JSON.stringify(reports[1])).toBe(JSON.stringify(JSON.parse(JSON.stringify(two))));
  }, 60_000);

  it('sums and renders in slices to the same text as the one-step forms (5,000 backends each)', async () => {
    const reports: CollectedReports = Object.assign([hugeReport(1, 5_000), hugeReport(2, 5_000)], { missing: [3] });
    // Slices of 0 ms: the event loop turns at every step, whatever this machine's speed.
    let turned = false;
    setImmediate(() => (turned = true));
    const traffic = await runSliced(sumWorkerTrafficSteps(reports), 0);
    expect(turned).toBe(true);
    expect(JSON.stringify(traffic)).toBe(JSON.stringify(sumWorkerTraffic(reports)));
    expect(Object.keys(traffic.huge!.backends)).toHaveLength(5_000);
    expect(traffic.huge!.backends.b4999!.duration.count).toBe(2);

    const pools = mergeReports(reports);
    const text = [...workersMetricsPieces(pools, reports, traffic)].join('');
    expect(text).toBe(
      renderWorkersMetrics(pools, reports) +
        '# HELP fulcrum_workers_missing Worker processes left out of this scrape: no answer within the deadline, or a report over the size cap.\n' +
        '# TYPE fulcrum_workers_missing gauge\nfulcrum_workers_missing 1\n',
    );
    const json = [...workersStatsJsonPieces(pools, reports, 50, traffic)].join('');
    expect(json).toBe(JSON.stringify({ ...workersStatsJson(pools, reports, 50), missingWorkers: [3] }));
  }, 60_000);

  it('is refused over the size cap, cleanly: no data, and its worker listed as missing', async () => {
    const packed = await packReportSliced(one, 1_000_000);
    expect(packed).toEqual({ slot: 1, pid: 101, refused: 'report over the cap of 1000000 bytes' });
    const reports = await unpackReports([packed, packReport(hugeReport(2, 3))], [3]);
    expect(reports.map((r) => r.slot)).toEqual([2]);
    expect(reports.missing).toEqual([1, 3]);
  }, 60_000);
});

describe('mergeSnapshotsSteps', () => {
  it("is mergeReports in steps: counters added, states from the checking worker's report, a backend only one worker has left out", async () => {
    const base = hugeReport(1, 3_000);
    const other = structuredClone(hugeReport(2, 3_000));
    other.pools.huge!.backends.forEach((b, i) => {
      b.requests = i % 7;
      b.failures = i % 3;
      b.inflight = 1;
      b.state = 'draining';
    });
    other.pools.huge!.backends.push({ ...other.pools.huge!.backends[0]!, id: 'only-in-2' });
    other.pools.extra = { ...other.pools.huge!, name: 'extra' };
    const reports = [other, base];
    let turned = false;
    setImmediate(() => (turned = true));
    const merged = await runSliced(mergeSnapshotsSteps(reports, 1), 0);
    expect(turned).toBe(true);
    expect(merged).toEqual(mergeReports(reports));
    expect(merged.huge!.backends[13]).toMatchObject({ state: 'up', requests: 6, failures: 1, inflight: 1 });
    expect(Object.keys(merged)).toEqual(['huge']);
    expect(await runSliced(mergeSnapshotsSteps([], 1))).toEqual({});
  });
});

describe('coalesce', () => {
  it('gives simultaneous callers one call and its result, and the next caller a new call', async () => {
    let calls = 0;
    let release!: (value: number) => void;
    const collect = coalesce(() => {
      calls++;
      return new Promise<number>((resolve) => (release = resolve));
    });
    const first = [collect(), collect(), collect(), collect()];
    expect(calls).toBe(1);
    release(7);
    expect(await Promise.all(first)).toEqual([7, 7, 7, 7]);
    const next = collect();
    expect(calls).toBe(2);
    release(8);
    expect(await next).toBe(8);
    // A failed call is not kept either.
    const failing = coalesce(() => {
      calls++;
      return Promise.reject(new Error('gone'));
    });
    await expect(failing()).rejects.toThrow('gone');
    await expect(failing()).rejects.toThrow('gone');
    expect(calls).toBe(4);
  });
});
