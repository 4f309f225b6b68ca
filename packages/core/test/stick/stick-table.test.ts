import { describe, expect, it, vi } from 'vitest';
import { isInvalidOptionError } from '../../src/errors';
import { MemoryReplicator, StickTable, type Replicator, type StickEntry } from '../../src/stick';
import { FakeClock } from '../../src/testing/fake-clock';

const START = 1_700_000_000_000;

/** A replicator that records what a table publishes and lets the test deliver by hand. */
class RecordingReplicator<V> implements Replicator<V> {
  readonly published: (readonly StickEntry<V>[])[] = [];
  listener: ((entries: readonly StickEntry<V>[]) => void) | undefined;
  snapshotEntries: readonly StickEntry<V>[] = [];
  publish(entries: readonly StickEntry<V>[]): void | Promise<void> {
    this.published.push(entries);
  }
  subscribe(onEntries: (entries: readonly StickEntry<V>[]) => void): () => void {
    this.listener = onEntries;
    return () => {
      this.listener = undefined;
    };
  }
  snapshot(): Promise<readonly StickEntry<V>[]> {
    return Promise.resolve(this.snapshotEntries);
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

function table(options: Partial<ConstructorParameters<typeof StickTable<string>>[0]> = {}) {
  const clock = new FakeClock(START);
  const replicator = new RecordingReplicator<string>();
  const stick = new StickTable<string>({
    capacity: 100,
    ttlMs: 1000,
    nodeId: 'n1',
    clock,
    replicator,
    onError: () => undefined,
    ...options,
  });
  return { clock, replicator, stick };
}

describe('StickTable options', () => {
  it.each([
    ['capacity', { capacity: 0 }],
    ['capacity', { capacity: 1.5 }],
    ['ttlMs', { ttlMs: 0 }],
    ['ttlMs', { ttlMs: Number.POSITIVE_INFINITY }],
    ['nodeId', { nodeId: '' }],
    ['nodeId', { nodeId: 'has space' }],
    ['nodeId', { nodeId: 'x'.repeat(65) }],
    ['batchMs', { batchMs: -1 }],
    ['maxBatch', { maxBatch: 0 }],
    ['rateWindowMs', { rateWindowMs: 0 }],
    ['sweepMs', { sweepMs: -5 }],
    ['touchAfterMs', { touchAfterMs: -1 }],
    ['onError', { onError: 'log' }],
    ['replicator', { replicator: {} }],
  ])('rejects an invalid %s with an error naming it', (name, override) => {
    let caught: unknown;
    try {
      new StickTable<string>({ capacity: 10, ttlMs: 1000, nodeId: 'n1', ...(override as object) });
    } catch (error) {
      caught = error;
    }
    expect(isInvalidOptionError(caught)).toBe(true);
    expect((caught as { path: string }).path).toBe(`stickTable.${name}`);
  });
});

describe('StickTable locally', () => {
  it('returns what was set until ttlMs after the write, and nothing from then on', async () => {
    const { clock, stick } = table();
    stick.set('client-1', 'b1');
    expect(stick.get('client-1')).toBe('b1');
    await clock.advance(999);
    expect(stick.get('client-1')).toBe('b1');
    await clock.advance(1);
    expect(stick.get('client-1')).toBeUndefined();
    expect(stick.has('client-1')).toBe(false);
  });

  it('extends an entry on touch and refuses to touch a missing or deleted key', async () => {
    const { clock, stick } = table();
    stick.set('k', 'b1');
    await clock.advance(800);
    expect(stick.touch('k')).toBe(true);
    await clock.advance(800);
    expect(stick.get('k')).toBe('b1');
    expect(stick.touch('missing')).toBe(false);
    expect(stick.delete('k')).toBe(true);
    expect(stick.touch('k')).toBe(false);
    expect(stick.get('k')).toBeUndefined();
    expect(stick.delete('k')).toBe(false);
  });

  it('throttles touch: a hot key is re-stamped and replicated at most once per touchAfterMs', async () => {
    const { clock, replicator, stick } = table({ touchAfterMs: 100, batchMs: 10 });
    stick.set('k', 'a');
    await clock.advance(10);
    expect(replicator.published).toHaveLength(1);
    const stamped = stick.entries()[0]!.updatedAt;
    for (let i = 0; i < 1000; i++) expect(stick.touch('k')).toBe(true);
    await clock.advance(50);
    expect(stick.entries()[0]!.updatedAt).toBe(stamped);
    expect(replicator.published).toHaveLength(1);
    await clock.advance(50);
    for (let i = 0; i < 1000; i++) stick.touch('k');
    await clock.advance(10);
    expect(replicator.published).toHaveLength(2);
    expect(stick.entries()[0]!.updatedAt).toBe(START + 110);
  });

  it('requeues the writes of a failed publish and retries with backoff until the link heals', async () => {
    const { clock, replicator, stick } = table({ batchMs: 10 });
    let failures = 2;
    const delivered: string[] = [];
    replicator.publish = (entries) => {
      if (failures-- > 0) return Promise.reject(new Error('link down'));
      for (const e of entries) delivered.push(`${e.key}=${e.deleted ? 'x' : e.value}`);
      return undefined;
    };
    stick.set('a', '1');
    stick.set('b', '2');
    await clock.advance(10);
    expect(delivered).toEqual([]);
    // A newer local write during the outage replaces the queued one; it is not resent stale.
    stick.set('a', '3');
    await clock.advance(5_000);
    expect(delivered.sort()).toEqual(['a=3', 'b=2']);
  });

  it('keeps a tombstone after delete and counts it against capacity', () => {
    const { stick } = table({ capacity: 2 });
    stick.set('a', 'b1');
    stick.delete('a');
    expect(stick.size).toBe(0);
    expect(stick.tombstoneCount).toBe(1);
    expect(stick.entries({ tombstones: true })).toEqual([
      // Stamped 1 ms after the set it replaces, written in the same millisecond.
      { key: 'a', updatedAt: START + 1, expiresAt: START + 1000, origin: 'n1', deleted: true },
    ]);
    stick.set('b', 'b2');
    stick.set('c', 'b3');
    expect(stick.size + stick.tombstoneCount).toBe(2);
    expect(stick.entries({ tombstones: true }).map((e) => e.key)).toEqual(['c', 'b']);
  });

  it('evicts the least recently used entry when full', () => {
    const { stick } = table({ capacity: 2 });
    stick.set('a', '1');
    stick.set('b', '2');
    stick.get('a');
    stick.set('c', '3');
    expect(stick.get('a')).toBe('1');
    expect(stick.get('b')).toBeUndefined();
    expect(stick.get('c')).toBe('3');
    expect(stick.size).toBe(2);
  });

  it('frees expired entries and tombstones on prune and on the periodic sweep', async () => {
    const { clock, stick } = table({ sweepMs: 5000 });
    stick.set('a', '1');
    stick.delete('b');
    await clock.advance(1000);
    expect(stick.size).toBe(1);
    expect(stick.prune()).toBe(2);
    expect(stick.size + stick.tombstoneCount).toBe(0);
    stick.set('c', '3');
    await clock.advance(5000);
    expect(stick.size).toBe(0);
  });

  it('lists only live entries, most recently used first', async () => {
    const { clock, stick } = table();
    stick.set('a', '1');
    await clock.advance(500);
    stick.set('b', '2');
    stick.delete('c');
    await clock.advance(500);
    expect(stick.entries()).toEqual([{ key: 'b', value: '2', updatedAt: START + 500, expiresAt: START + 1500, origin: 'n1' }]);
  });

  it('counts local events and estimates their rate over a sliding window', async () => {
    const { clock, stick } = table({ ttlMs: 60_000, rateWindowMs: 1000 });
    for (let i = 0; i < 10; i++) stick.incr('ip', 'requests');
    expect(stick.count('ip', 'requests')).toBe(10);
    expect(stick.rate('ip', 'requests')).toBe(10);
    await clock.advance(1000);
    // A new period began: the previous one still weighs fully at its very start.
    expect(stick.rate('ip', 'requests')).toBe(10);
    await clock.advance(500);
    expect(stick.rate('ip', 'requests')).toBe(5);
    expect(stick.incr('ip', 'requests', 2)).toBe(12);
    expect(stick.rate('ip', 'requests')).toBe(7);
    await clock.advance(2000);
    expect(stick.rate('ip', 'requests')).toBe(0);
    expect(stick.count('ip', 'requests')).toBe(12);
    expect(stick.count('ip', 'errors')).toBe(0);
    expect(stick.rate('other', 'requests')).toBe(0);
  });

  it('never replicates counters, and drops them on delete and ttlMs after their last use', async () => {
    const { clock, stick, replicator } = table();
    stick.incr('ip', 'requests');
    await clock.advance(100);
    expect(replicator.published).toEqual([]);
    stick.delete('ip');
    expect(stick.count('ip', 'requests')).toBe(0);
    stick.incr('ip', 'requests');
    await clock.advance(1000);
    expect(stick.count('ip', 'requests')).toBe(0);
  });
});

describe('StickTable replication', () => {
  it('publishes local writes in one batch after batchMs, coalesced per key', async () => {
    const { clock, stick, replicator } = table({ batchMs: 50 });
    stick.set('a', '1');
    stick.set('a', '2');
    stick.set('b', '3');
    stick.delete('c');
    expect(replicator.published).toEqual([]);
    await clock.advance(49);
    expect(replicator.published).toEqual([]);
    await clock.advance(1);
    expect(replicator.published).toEqual([
      [
        { key: 'a', value: '2', updatedAt: START + 1, expiresAt: START + 1000, origin: 'n1' },
        { key: 'b', value: '3', updatedAt: START, expiresAt: START + 1000, origin: 'n1' },
        { key: 'c', updatedAt: START, expiresAt: START + 1000, origin: 'n1', deleted: true },
      ],
    ]);
  });

  it('publishes at once when maxBatch keys are queued', () => {
    const { stick, replicator } = table({ maxBatch: 3 });
    for (let i = 0; i < 7; i++) stick.set(`k${i}`, 'b');
    expect(replicator.published.map((batch) => batch.length)).toEqual([3, 3]);
  });

  it('stamps a local write after the entry it replaces, even one from a peer whose clock runs ahead', () => {
    const { stick, replicator } = table({ maxBatch: 1 });
    stick.merge([{ key: 'k', value: 'remote', updatedAt: START + 5000, expiresAt: START + 900, origin: 'n2' }]);
    stick.set('k', 'local');
    expect(stick.get('k')).toBe('local');
    expect(replicator.published[0]?.[0]).toMatchObject({ updatedAt: START + 5001, expiresAt: START + 1000 });
  });

  it('applies remote entries with their own expiry and never publishes them again', async () => {
    const { clock, stick, replicator } = table();
    replicator.listener?.([{ key: 'k', value: 'b2', updatedAt: START - 10, expiresAt: START + 300, origin: 'n2' }]);
    expect(stick.get('k')).toBe('b2');
    await clock.advance(1000);
    expect(replicator.published).toEqual([]);
    expect(stick.get('k')).toBeUndefined();
  });

  it('drops remote entries that already expired, older than what it holds, or malformed', () => {
    const { stick } = table();
    stick.set('k', 'local');
    const applied = stick.merge([
      { key: 'k', value: 'older', updatedAt: START - 1, expiresAt: START + 5000, origin: 'n2' },
      { key: 'gone', value: 'x', updatedAt: START, expiresAt: START, origin: 'n2' },
      { key: 'bad', value: 'x', updatedAt: START, expiresAt: START + 10, origin: 'not valid' },
      null as unknown as StickEntry<string>,
    ]);
    expect(applied).toBe(0);
    expect(stick.get('k')).toBe('local');
    expect(stick.get('gone')).toBeUndefined();
    expect(stick.get('bad')).toBeUndefined();
  });

  it('rejects a late older write while the tombstone of a delete lives', () => {
    const { stick } = table();
    stick.set('k', 'v');
    stick.delete('k');
    stick.merge([{ key: 'k', value: 'late', updatedAt: START - 1, expiresAt: START + 999, origin: 'n2' }]);
    expect(stick.get('k')).toBeUndefined();
  });

  it('loads the replicator snapshot on start and resolves ready', async () => {
    const clock = new FakeClock(START);
    const replicator = new RecordingReplicator<string>();
    replicator.snapshotEntries = [
      { key: 'a', value: 'b1', updatedAt: START - 5, expiresAt: START + 100, origin: 'n2' },
      { key: 'b', value: 'b2', updatedAt: START - 5, expiresAt: START - 1, origin: 'n2' },
    ];
    const stick = new StickTable<string>({ capacity: 10, ttlMs: 1000, nodeId: 'n1', clock, replicator });
    await stick.ready;
    expect(stick.get('a')).toBe('b1');
    expect(stick.get('b')).toBeUndefined();
  });

  it('reports a rejected publish or snapshot to onError instead of an unhandled rejection', async () => {
    const clock = new FakeClock(START);
    const onError = vi.fn();
    const failing: Replicator<string> = {
      publish: () => Promise.reject(new Error('publish failed')),
      subscribe: () => () => undefined,
      snapshot: () => Promise.reject(new Error('snapshot failed')),
      close: () => Promise.resolve(),
    };
    const stick = new StickTable<string>({ capacity: 10, ttlMs: 1000, nodeId: 'n1', clock, replicator: failing, onError });
    await stick.ready;
    stick.set('k', 'v');
    await stick.flush();
    const throwing: Replicator<string> = {
      ...failing,
      publish: () => {
        throw new Error('publish threw');
      },
    };
    const other = new StickTable<string>({ capacity: 10, ttlMs: 1000, nodeId: 'n2', clock, replicator: throwing, onError });
    other.set('k', 'v');
    await other.flush();
    expect(onError.mock.calls.map(([error]) => (error as Error).message).sort()).toEqual([
      'publish failed',
      'publish threw',
      'snapshot failed',
      'snapshot failed',
    ]);
    expect(stick.get('k')).toBe('v');
  });

  it('publishes what is queued on close, then stops receiving and replicating', async () => {
    const { stick, replicator } = table();
    stick.set('a', '1');
    await stick.close();
    expect(replicator.published).toHaveLength(1);
    expect(replicator.listener).toBeUndefined();
    stick.set('b', '2');
    await stick.flush();
    expect(replicator.published).toHaveLength(1);
    expect(stick.get('b')).toBe('2');
  });

  it('connects tables in one process through a shared MemoryReplicator, asynchronously', async () => {
    const clock = new FakeClock(START);
    const bus = new MemoryReplicator<{ backend: string }>({ clock });
    const options = { capacity: 10, ttlMs: 1000, clock, replicator: bus, batchMs: 0 };
    const a = new StickTable<{ backend: string }>({ ...options, nodeId: 'a' });
    const b = new StickTable<{ backend: string }>({ ...options, nodeId: 'b' });
    await Promise.all([a.ready, b.ready]);
    const value = { backend: 'b1' };
    a.set('k', value);
    void a.flush();
    expect(b.get('k')).toBeUndefined(); // delivery is a microtask away, never re-entrant
    await Promise.resolve();
    expect(b.get('k')).toEqual({ backend: 'b1' });
    expect(b.get('k')).not.toBe(value); // travelled as JSON, like over a wire
    b.delete('k');
    await clock.advance(0);
    await Promise.resolve();
    expect(a.get('k')).toBeUndefined();
    const late = new StickTable<{ backend: string }>({ ...options, nodeId: 'c' });
    await late.ready;
    expect(late.entries({ tombstones: true })).toMatchObject([{ key: 'k', origin: 'b', deleted: true }]);
    await Promise.all([a.close(), b.close(), late.close()]);
    expect(bus.subscriberCount).toBe(0);
  });
});
