import { describe, expect, it } from 'vitest';
import { createLoadBalancer, MemoryReplicator, StickTable } from '@fulcrum/core';
import { FakeClock } from '@fulcrum/core/testing';

const backends = [
  { id: 'a', address: 'http://127.0.0.1:3001' },
  { id: 'b', address: 'http://127.0.0.1:3002' },
  { id: 'c', address: 'http://127.0.0.1:3003' },
];

describe('stick-tables shared by several load balancers', () => {
  it('keeps a client on one backend across two instances connected by a replicator', async () => {
    const clock = new FakeClock(1_000_000);
    const bus = new MemoryReplicator<string>({ clock });
    const table1 = new StickTable<string>({ capacity: 1000, ttlMs: 60_000, nodeId: 'lb-1', clock, replicator: bus, batchMs: 10 });
    const table2 = new StickTable<string>({ capacity: 1000, ttlMs: 60_000, nodeId: 'lb-2', clock, replicator: bus, batchMs: 10 });
    await Promise.all([table1.ready, table2.ready]);
    const lb1 = createLoadBalancer({ backends, algorithm: 'round-robin', clock, stickTable: table1 });
    const lb2 = createLoadBalancer({ backends, algorithm: 'round-robin', clock, stickTable: table2 });

    const first = lb1.acquire({ affinityKey: 'session-1' })!;
    first.release();
    await clock.advance(20);
    // lb2's round robin would start at 'a'; stickiness must win.
    lb2.acquire()!.release();
    for (let i = 0; i < 5; i++) {
      const lease = lb2.acquire({ affinityKey: 'session-1' })!;
      expect(lease.backend.id).toBe(first.backend.id);
      expect(lease.decision.reason).toBe('sticky');
      lease.release();
    }
    await Promise.all([table1.close(), table2.close()]);
    lb1.close();
    lb2.close();
  });

  it('rewrites the entry on every instance when a sticky backend goes to maintenance', async () => {
    const clock = new FakeClock(1_000_000);
    const bus = new MemoryReplicator<string>({ clock });
    const table1 = new StickTable<string>({ capacity: 1000, ttlMs: 60_000, nodeId: 'lb-1', clock, replicator: bus, batchMs: 10 });
    const table2 = new StickTable<string>({ capacity: 1000, ttlMs: 60_000, nodeId: 'lb-2', clock, replicator: bus, batchMs: 10 });
    const lb1 = createLoadBalancer({ backends, algorithm: 'round-robin', clock, stickTable: table1 });
    const lb2 = createLoadBalancer({ backends, algorithm: 'round-robin', clock, stickTable: table2 });
    table1.set('session-1', 'b');
    await clock.advance(20);
    lb1.maintain('b');
    lb2.maintain('b');
    await clock.advance(5);
    const moved = lb1.acquire({ affinityKey: 'session-1' })!;
    expect(moved.backend.id).not.toBe('b');
    await clock.advance(20);
    expect(table2.get('session-1')).toBe(moved.backend.id);
    expect(lb2.acquire({ affinityKey: 'session-1' })!.backend.id).toBe(moved.backend.id);
    await Promise.all([table1.close(), table2.close()]);
  });

  it('expires stickiness after ttlMs without traffic', async () => {
    const clock = new FakeClock(0);
    const table = new StickTable<string>({ capacity: 10, ttlMs: 1000, nodeId: 'lb-1', clock });
    const lb = createLoadBalancer({ backends, algorithm: 'round-robin', clock, stickTable: table });
    lb.acquire({ affinityKey: 's' })!.release();
    expect(table.get('s')).toBeDefined();
    await clock.advance(1001);
    expect(table.get('s')).toBeUndefined();
    expect(lb.acquire({ affinityKey: 's' })!.decision.reason).toBe('balanced');
    await table.close();
  });
});
