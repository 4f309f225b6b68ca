import { describe, expect, it } from 'vitest';
import { MemoryReplicator, type Replicator, type StickEntry } from '../../src/stick';
import { checkReplicator } from '../../src/testing/check-replicator';

/** One shared in-process bus per cluster, as the factory contract asks. */
function memoryFactory(wrap: (bus: Replicator<string>) => Replicator<string> = (bus) => bus) {
  const buses = new Map<string, Replicator<string>>();
  return ({ cluster }: { cluster: string }) => {
    let bus = buses.get(cluster);
    if (bus === undefined) {
      bus = wrap(new MemoryReplicator<string>());
      buses.set(cluster, bus);
    }
    return bus;
  };
}

const fast = { ttlMs: 200, timeoutMs: 1000 };

describe('checkReplicator', () => {
  it('passes the in-process MemoryReplicator', async () => {
    await expect(checkReplicator(memoryFactory(), fast)).resolves.toBeUndefined();
  });

  it('rejects a replicator that drops deletes', async () => {
    const dropsDeletes = (bus: Replicator<string>): Replicator<string> => ({
      publish: (entries) => bus.publish(entries.filter((e: StickEntry<string>) => e.deleted !== true)),
      subscribe: (listener) => bus.subscribe(listener),
      snapshot: () => bus.snapshot(),
      close: () => bus.close(),
    });
    await expect(checkReplicator(memoryFactory(dropsDeletes), fast)).rejects.toThrow(
      /a delete reaches the others: a deleted key was still present on some table/,
    );
  });

  it('rejects a replicator whose snapshot refreshes the expiry of what it stored', async () => {
    const refreshes = (bus: Replicator<string>): Replicator<string> => {
      const stored: StickEntry<string>[] = [];
      return {
        publish: (entries) => {
          stored.push(...entries);
          return bus.publish(entries);
        },
        subscribe: (listener) => bus.subscribe(listener),
        snapshot: async () => [...(await bus.snapshot()), ...stored.map((e) => ({ ...e, expiresAt: e.expiresAt + 60_000 }))],
        close: () => bus.close(),
      };
    };
    await expect(checkReplicator(memoryFactory(refreshes), fast)).rejects.toThrow(
      /expired entries are not resurrected: a joining table loaded an expired entry/,
    );
  });

  it('rejects a replicator that rewrites entries in transit', async () => {
    const rewrites = (bus: Replicator<string>): Replicator<string> => ({
      publish: (entries) => bus.publish(entries.map((e) => ({ ...e, updatedAt: Math.floor(e.updatedAt) }))),
      subscribe: (listener) => bus.subscribe(listener),
      snapshot: () => bus.snapshot(),
      close: () => bus.close(),
    });
    await expect(checkReplicator(memoryFactory(rewrites), fast)).rejects.toThrow(/entries travel unchanged/);
  });

  it('rejects a replicator whose snapshot is always empty', async () => {
    const forgetful = (bus: Replicator<string>): Replicator<string> => ({
      publish: (entries) => bus.publish(entries),
      subscribe: (listener) => bus.subscribe(listener),
      snapshot: () => Promise.resolve([]),
      close: () => bus.close(),
    });
    await expect(checkReplicator(memoryFactory(forgetful), fast)).rejects.toThrow(/a joining table loads the snapshot/);
  });
});
