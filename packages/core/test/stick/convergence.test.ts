import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { StickTable, type Replicator, type StickEntry } from '../../src/stick';
import { FakeClock } from '../../src/testing/fake-clock';

const START = 1_700_000_000_000;
const TTL = 1000;
const KEYS = ['k1', 'k2', 'k3', 'k4'];

/**
 * A network the test drives by hand: every published batch becomes one message per other table, and
 * the test decides when each is delivered, in which order, and how many times.
 */
class Network {
  readonly inFlight: { to: number; batch: readonly StickEntry<string>[] }[] = [];
  readonly listeners: ((entries: readonly StickEntry<string>[]) => void)[] = [];

  endpoint(node: number, nodes: number): Replicator<string> {
    return {
      publish: (batch) => {
        for (let to = 0; to < nodes; to++) if (to !== node) this.inFlight.push({ to, batch: structuredClone(batch) });
      },
      subscribe: (onEntries) => {
        this.listeners[node] = onEntries;
        return () => undefined;
      },
      snapshot: () => Promise.resolve([]),
      close: () => Promise.resolve(),
    };
  }

  /** Deliver message `index`; a duplicated one stays in flight to be delivered again later. */
  deliver(index: number, duplicate: boolean): void {
    if (this.inFlight.length === 0) return;
    const at = index % this.inFlight.length;
    const message = this.inFlight[at]!;
    if (!duplicate) this.inFlight.splice(at, 1);
    this.listeners[message.to]?.(message.batch);
  }
}

type Op =
  | { kind: 'set'; node: number; key: string; value: string }
  | { kind: 'delete'; node: number; key: string }
  | { kind: 'touch'; node: number; key: string }
  | { kind: 'advance'; ms: number }
  | { kind: 'deliver'; index: number; duplicate: boolean };

const op = (nodes: number): fc.Arbitrary<Op> => {
  const node = fc.integer({ min: 0, max: nodes - 1 });
  const key = fc.constantFrom(...KEYS);
  return fc.oneof(
    { arbitrary: fc.record({ kind: fc.constant('set' as const), node, key, value: fc.constantFrom('b1', 'b2', 'b3') }), weight: 4 },
    { arbitrary: fc.record({ kind: fc.constant('delete' as const), node, key }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant('touch' as const), node, key }), weight: 2 },
    // Mostly 0 so that many writes share a millisecond; sometimes past the TTL.
    { arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 2 * TTL })) }), weight: 2 },
    { arbitrary: fc.record({ kind: fc.constant('deliver' as const), index: fc.nat(), duplicate: fc.boolean() }), weight: 5 },
  );
};

const view = (table: StickTable<string>) => table.entries({ tombstones: true }).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));

describe('replicated stick-tables', () => {
  it('converge to the same view after all deliveries, whatever the delays, duplicates and reordering', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 4 }).chain((nodes) => fc.tuple(fc.constant(nodes), fc.integer({ min: 1, max: 3 }), fc.array(op(nodes), { maxLength: 60 }))),
        async ([nodes, maxBatch, ops]) => {
          const clock = new FakeClock(START);
          const network = new Network();
          const tables = Array.from(
            { length: nodes },
            (_, i) =>
              new StickTable<string>({
                capacity: 64,
                ttlMs: TTL,
                nodeId: `node-${i}`,
                clock,
                replicator: network.endpoint(i, nodes),
                batchMs: 50,
                maxBatch,
                sweepMs: 700,
              }),
          );
          await Promise.all(tables.map((t) => t.ready));
          for (const step of ops) {
            if (step.kind === 'set') tables[step.node]!.set(step.key, step.value);
            else if (step.kind === 'delete') tables[step.node]!.delete(step.key);
            else if (step.kind === 'touch') tables[step.node]!.touch(step.key);
            else if (step.kind === 'advance') await clock.advance(step.ms);
            else network.deliver(step.index, step.duplicate);
          }
          await Promise.all(tables.map((t) => t.flush()));
          while (network.inFlight.length > 0) network.deliver(0, false);
          const reference = view(tables[0]!);
          for (const table of tables) expect(view(table)).toEqual(reference);
          for (const table of tables) for (const key of KEYS) expect(table.get(key)).toBe(tables[0]!.get(key));
        },
      ),
      { seed: 7, numRuns: 300 },
    );
  });

  it('never exceed capacity, tombstones included, keep each local write, and count what they list, whatever the writes and merges', async () => {
    const key = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h');
    const step = fc.oneof(
      fc.record({ kind: fc.constant('set' as const), key }),
      fc.record({ kind: fc.constant('delete' as const), key }),
      fc.record({ kind: fc.constant('touch' as const), key }),
      fc.record({ kind: fc.constant('get' as const), key }),
      fc.record({ kind: fc.constant('merge' as const), key, deleted: fc.boolean(), age: fc.integer({ min: -5, max: 5 }) }),
      fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 600 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 1, max: 5 }), fc.array(step, { maxLength: 80 }), async (capacity, steps) => {
        const clock = new FakeClock(START);
        const table = new StickTable<string>({ capacity, ttlMs: TTL, nodeId: 'n1', clock, sweepMs: 0 });
        for (const s of steps) {
          const now = clock.now();
          if (s.kind === 'set') {
            table.set(s.key, 'v');
            // Room is made by evicting others: a local write is never the one lost.
            expect(table.get(s.key)).toBe('v');
          } else if (s.kind === 'delete') {
            table.delete(s.key);
            expect(table.get(s.key)).toBeUndefined();
          } else if (s.kind === 'touch') table.touch(s.key);
          else if (s.kind === 'get') table.get(s.key);
          else if (s.kind === 'advance') await clock.advance(s.ms);
          else {
            const stamp = { key: s.key, updatedAt: now + s.age, expiresAt: now + 500, origin: `peer-${s.age & 3}` };
            table.merge([s.deleted ? { ...stamp, deleted: true } : { ...stamp, value: 'remote' }]);
          }
          expect(table.size + table.tombstoneCount).toBeLessThanOrEqual(capacity);
          expect(table.entries({ tombstones: true }).length).toBeLessThanOrEqual(capacity);
          // The counters hold at least what the table lists (they also count expired, unswept ones).
          const listed = table.entries({ tombstones: true });
          expect(table.size).toBeGreaterThanOrEqual(listed.filter((e) => !e.deleted).length);
          expect(table.tombstoneCount).toBeGreaterThanOrEqual(listed.filter((e) => e.deleted).length);
          expect(table.entries()).toHaveLength(listed.filter((e) => !e.deleted).length);
        }
        // Once swept, the counters are exactly what the table lists, and the sweep freed the difference.
        const held = table.size + table.tombstoneCount;
        const listed = table.entries({ tombstones: true });
        expect(table.prune()).toBe(held - listed.length);
        expect(table.size).toBe(listed.filter((e) => !e.deleted).length);
        expect(table.tombstoneCount).toBe(listed.filter((e) => e.deleted).length);
      }),
      { seed: 7, numRuns: 300 },
    );
  });
});
