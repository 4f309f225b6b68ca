// The pieces of `fulcrum --workers` that need no cluster: argument parsing, the aggregation of the
// workers' reports, and a runner given a worker link (in-process, with a recording link) — which
// replicator its stick-tables use, its node id, and how it applies other workers' changes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { LoadBalancerSnapshot, Replicator, StickEntry } from '@fulcrum/core';
import { MergedEntries, mergeReports, parseWorkers, startFulcrum, type WorkerChange, type WorkerReport } from '../src';
import { get, startBackend, until } from './helpers';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

describe('parseWorkers', () => {
  it('takes auto (the cores) and whole numbers from 1 to 1024, and names anything else', () => {
    expect(parseWorkers('auto', 6)).toBe(6);
    expect(parseWorkers('auto', 0)).toBe(1);
    expect(parseWorkers('3')).toBe(3);
    for (const bad of ['0', '-1', '1.5', '1025', 'two', '', '0x2', ' 2'])
      expect(parseWorkers(bad)).toMatch(/^--workers must be auto or a whole number from 1 to 1024, got /);
  });
});

describe('mergeReports', () => {
  const backend = (id: string, state: string, requests: number, inflight = 0) =>
    ({
      id,
      address: `http://${id}`,
      state,
      weight: 1,
      effectiveWeight: 1,
      inflight,
      requests,
      failures: requests > 5 ? 1 : 0,
    }) as unknown as LoadBalancerSnapshot['backends'][number];
  const pool = (backends: LoadBalancerSnapshot['backends']): LoadBalancerSnapshot => ({
    at: 0,
    name: 'web',
    algorithm: 'p2c',
    tier: 'primary',
    eligible: backends.length,
    backends,
  });
  it('sums counters over workers and takes states from worker 1, whatever the order', () => {
    const reports: WorkerReport[] = [
      { slot: 2, pid: 2, pools: { web: pool([backend('b1', 'up', 7, 1), backend('b2', 'up', 3)]) } },
      { slot: 1, pid: 1, pools: { web: pool([backend('b1', 'up', 4, 2), backend('b2', 'down', 1)]) } },
    ];
    const merged = mergeReports(reports).web!;
    expect(merged.backends.map((b) => [b.id, b.state, b.requests, b.inflight, b.failures])).toEqual([
      ['b1', 'up', 11, 3, 1],
      ['b2', 'down', 4, 0, 0],
    ]);
    expect(mergeReports([])).toEqual({});
  });
});

describe("MergedEntries (the primary's stick-table entries)", () => {
  const entry = (key: string, updatedAt: number, value: string, expiresAt = 10_000, origin = 'a') => ({ key, updatedAt, expiresAt, origin, value });
  it('keeps the last writer per key, drops expired entries, and evicts the least recently written past its capacity', () => {
    const merged = new MergedEntries(3);
    merged.merge([entry('k1', 5, 'b1'), entry('k1', 3, 'b2'), entry('k2', 1, 'b1'), entry('k3', 1, 'b1', 50)]);
    expect(merged.live(0).map((e) => [e.key, (e as { value: string }).value])).toEqual([
      ['k1', 'b1'],
      ['k2', 'b1'],
      ['k3', 'b1'],
    ]);
    // A client-chosen key flood cannot grow it: k1 (written before k2, k3) goes first.
    merged.merge([entry('k4', 2, 'b2')]);
    expect(merged.size).toBe(3);
    expect(merged.live(0).map((e) => e.key)).toEqual(['k2', 'k3', 'k4']);
    for (let i = 0; i < 1000; i++) merged.merge([entry(`flood-${i}`, 9, 'b1')]);
    expect(merged.size).toBe(3);
    expect(merged.live(100).map((e) => e.key)).toEqual(['flood-997', 'flood-998', 'flood-999']);
    expect(new MergedEntries().capacity).toBe(1_000_000);
  });
});

/** A worker link that records what the runner sends, with a replicator that only records. */
function recordingLink(slot: number) {
  const published: StickEntry<unknown>[] = [];
  const changes: WorkerChange[] = [];
  const replicator: Replicator<unknown> = {
    publish: (entries) => void published.push(...entries),
    subscribe: () => () => undefined,
    snapshot: async () => [],
    close: async () => undefined,
  };
  return {
    published,
    changes,
    options: { slot, runsChecks: slot === 1, replicator, broadcast: (c: WorkerChange) => void changes.push(c), collect: async () => [] as WorkerReport[] },
  };
}

describe('a runner as a worker', () => {
  it('replicates through the link without replication of its own, and through its own replication (as <nodeId>.w<slot>) with it', async () => {
    const b1 = await startBackend('b1');
    cleanups.push(() => b1.close());
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-workers-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const base = {
      frontends: [{ port: 0, host: '127.0.0.1' }],
      nodeId: 'lb-a',
      pools: { web: { backends: [{ id: 'b1', address: b1.url }], stickiness: { header: 'x-user' } } },
    };

    const viaLink = recordingLink(2);
    const lines: Record<string, unknown>[] = [];
    const a = await startFulcrum(base, { logger: (_l, msg, fields) => void lines.push({ msg, ...fields }), worker: viaLink.options, watch: false });
    cleanups.push(() => a.close(1000));
    await get(a.addresses().frontends[0]!.port, '/', { headers: { 'x-user': 'alice' } });
    await until(() => viaLink.published.some((e) => e.key.endsWith('alice')), 'the write published through the link');
    expect(viaLink.published.find((e) => e.key.endsWith('alice'))!.origin).toBe('lb-a.w2');
    expect(lines.find((l) => l.msg === 'worker serving')?.nodeId).toBe('lb-a.w2');

    const ownReplication = recordingLink(3);
    const b = await startFulcrum(
      { ...base, replication: { directory: { dir, pollIntervalMs: 50 } } },
      { logger: () => undefined, worker: ownReplication.options, watch: false, importModule: (name) => import(name) },
    );
    cleanups.push(() => b.close(1000));
    await get(b.addresses().frontends[0]!.port, '/', { headers: { 'x-user': 'bob' } });
    const { FileReplicator } = await import('@fulcrum/session-fs');
    const observer = new FileReplicator({ dir, nodeId: 'observer' });
    cleanups.push(() => observer.close());
    await until(
      async () => (await observer.snapshot()).some((e) => e.key.endsWith('bob') && e.origin === 'lb-a.w3'),
      "bob's entry in the directory, from lb-a.w3",
    );
    expect(ownReplication.published).toEqual([]);
  });

  it('applies other workers splits, backend additions and removals, and broadcasts its own', async () => {
    const b1 = await startBackend('b1');
    cleanups.push(() => b1.close());
    const link = recordingLink(2);
    const fulcrum = await startFulcrum(
      {
        frontends: [{ port: 0, host: '127.0.0.1' }],
        pools: { blue: { backends: [{ id: 'b1', address: b1.url }] }, green: { backends: [{ id: 'g1', address: b1.url }] } },
        routes: [
          {
            name: 'main',
            split: [
              { pool: 'blue', weight: 100 },
              { pool: 'green', weight: 0 },
            ],
          },
        ],
        split: { cookie: false },
        admin: { port: 0, host: '127.0.0.1', token: 'admin-token-0123456789abcdef' },
      },
      { logger: () => undefined, worker: link.options, watch: false },
    );
    cleanups.push(() => fulcrum.close(1000));
    fulcrum.applyChange({ op: 'split', route: 'main', weights: { blue: 0, green: 100 } });
    fulcrum.applyChange({ op: 'add', pool: 'blue', spec: { id: 'b9', address: b1.url } });
    fulcrum.applyChange({ op: 'remove', pool: 'green', id: 'g1' });
    fulcrum.applyChange({ op: 'split', route: 'nope', weights: { blue: 1 } });
    fulcrum.applyChange({ op: 'add', pool: 'blue', spec: { id: 'b9', address: b1.url } });
    expect(fulcrum.pool('blue')!.get('b9')).toBeDefined();
    await until(() => fulcrum.pool('green')!.get('g1') === undefined, 'g1 removed');
    const admin = fulcrum.addresses().admin!.port;
    const auth = { authorization: 'Bearer admin-token-0123456789abcdef', 'content-type': 'application/json' };
    const state = JSON.parse((await get(admin, '/state', { headers: auth })).body) as { splits: Record<string, Record<string, number>> };
    expect(state.splits.main).toEqual({ blue: 0, green: 100 });
    expect((await get(admin, '/routes/main/split', { method: 'PUT', headers: auth, body: '{"blue":50,"green":50}' })).status).toBe(200);
    expect((await get(admin, '/pools/blue/backends', { method: 'POST', headers: auth, body: JSON.stringify({ id: 'b8', address: b1.url }) })).status).toBe(201);
    expect((await get(admin, '/pools/blue/backends/b8', { method: 'DELETE', headers: auth })).status).toBe(202);
    expect(link.changes).toEqual([
      { op: 'split', route: 'main', weights: { blue: 50, green: 50 } },
      { op: 'add', pool: 'blue', spec: { id: 'b8', address: b1.url } },
      { op: 'remove', pool: 'blue', id: 'b8' },
    ]);
  });

  it('applies other workers changes and health verdicts, broadcasts its own admin changes, and survives bad ones', async () => {
    const b1 = await startBackend('b1');
    const b2 = await startBackend('b2');
    cleanups.push(
      () => b1.close(),
      () => b2.close(),
    );
    const config = {
      frontends: [{ port: 0, host: '127.0.0.1' }],
      pools: {
        web: {
          backends: [
            { id: 'b1', address: b1.url },
            { id: 'b2', address: b2.url },
          ],
          health: { path: '/health', intervalMs: 50, fall: 1 },
        },
      },
      admin: { port: 0, host: '127.0.0.1', token: 'admin-token-0123456789abcdef' },
    };
    const checker = recordingLink(1);
    const checkerLines: string[] = [];
    const link = recordingLink(2);
    const lines: string[] = [];
    const first = await startFulcrum(config, { logger: (_l, msg) => void checkerLines.push(msg), worker: checker.options, watch: false });
    cleanups.push(() => first.close(1000));
    const fulcrum = await startFulcrum(config, { logger: (_l, msg) => void lines.push(msg), worker: link.options, watch: false });
    cleanups.push(() => fulcrum.close(1000));
    const lb = fulcrum.pool('web')!;
    // Worker 1 checks and broadcasts its verdict; worker 2 never probes, so b2 stays up there until it applies it.
    b2.setSick(true);
    await until(() => checker.changes.some((c) => c.op === 'health' && c.id === 'b2' && !c.up), "worker 1's verdict on b2");
    expect(checkerLines.filter((m) => m === 'check of web/b2 failed').length).toBeGreaterThan(0);
    expect(lines.filter((m) => m.startsWith('check of'))).toEqual([]);
    expect(lb.get('b2')!.state).toBe('up');
    for (const change of checker.changes) fulcrum.applyChange(change);
    expect(lb.get('b2')!.state).toBe('down');
    fulcrum.applyChange({ op: 'health', pool: 'web', id: 'b2', up: true });
    expect(lb.get('b2')!.state).toBe('up');
    fulcrum.applyChange({ op: 'drain', pool: 'web', id: 'b1' });
    expect(lb.get('b1')!.state).toBe('draining');
    fulcrum.applyChange({ op: 'weight', pool: 'web', id: 'b2', weight: 5 });
    expect(lb.get('b2')!.weight).toBe(5);
    // Unknown pools and backends, and invalid values, change nothing and throw nothing.
    fulcrum.applyChange({ op: 'weight', pool: 'web', id: 'b2', weight: -1 });
    fulcrum.applyChange({ op: 'drain', pool: 'nope', id: 'b1' });
    fulcrum.applyChange({ op: 'ready', pool: 'web', id: 'nope' });
    expect(lb.get('b2')!.weight).toBe(5);
    expect(lines.filter((m) => m.startsWith('check of'))).toEqual([]);

    const admin = fulcrum.addresses().admin!.port;
    const auth = { authorization: 'Bearer admin-token-0123456789abcdef' };
    expect((await get(admin, '/pools/web/backends/b1/ready', { method: 'POST', headers: auth })).status).toBe(200);
    expect((await get(admin, '/pools/web/backends/b2/weight', { method: 'PUT', headers: auth, body: '{"weight":2}' })).status).toBe(200);
    // A refused change is not broadcast.
    expect((await get(admin, '/pools/web/backends/b2/weight', { method: 'PUT', headers: auth, body: '{"weight":"x"}' })).status).toBe(400);
    expect(link.changes).toEqual([
      { op: 'ready', pool: 'web', id: 'b1' },
      { op: 'weight', pool: 'web', id: 'b2', weight: 2 },
    ]);
  });
});
