import { appendFile, readdir, readFile, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { StickTable, isInvalidOptionError } from '@fulcrum/core';
import type { StickEntry } from '@fulcrum/core';
import { FakeClock } from '@fulcrum/core/testing';
import { FileReplicator, isCorruptFileError } from '@fulcrum/session-fs';
import type { FileReplicatorOptions } from '@fulcrum/session-fs';
import { encodeHeader, encodeRecord, logFileName } from '../src/stick-log';
import { eventually, tempDirs } from './temp-dir';

const dirs = tempDirs();
const open: FileReplicator[] = [];
const tables: StickTable<string>[] = [];
afterEach(async () => {
  await Promise.all(tables.splice(0).map((table) => table.close()));
  await Promise.all(open.splice(0).map((replicator) => replicator.close()));
});
afterAll(() => dirs.cleanup());

function replicator(options: FileReplicatorOptions): FileReplicator {
  const created = new FileReplicator({
    watch: false,
    pollIntervalMs: 30,
    onError: (e) => {
      throw e;
    },
    ...options,
  });
  open.push(created);
  return created;
}

/** An entry that expires `ttlMs` after `now` (by default the wall clock's now). */
function entry(key: string, value: string, updatedAt: number, origin: string, ttlMs = 60_000, now = Date.now()): StickEntry<string> {
  return { key, value, updatedAt, expiresAt: now + ttlMs, origin };
}

function collect(from: FileReplicator): Map<string, StickEntry<string>> {
  const seen = new Map<string, StickEntry<string>>();
  from.subscribe((entries) => {
    for (const e of entries) seen.set(e.key, e as StickEntry<string>);
  });
  return seen;
}

describe('FileReplicator', () => {
  it('connects stick-tables on two "hosts" through one directory by polling alone', async () => {
    const dir = await dirs.make();
    const make = async (node: string) => {
      const table = new StickTable<string>({ capacity: 1000, ttlMs: 60_000, nodeId: node, batchMs: 5, replicator: replicator({ dir, nodeId: node }) });
      tables.push(table);
      await table.ready;
      return table;
    };
    const [a, b] = [await make('lb-a'), await make('lb-b')];
    a.set('session-1', 'app-1');
    await eventually('b sees a’s write', () => b.get('session-1') === 'app-1');
    b.delete('session-1');
    await eventually('a sees b’s delete', () => a.get('session-1') === undefined);
    expect((await readdir(dir)).sort()).toEqual(['lb-a.sticklog', 'lb-b.sticklog']);
  });

  it('never lets an older entry replace a newer one, whatever order the logs are read in', async () => {
    const dir = await dirs.make();
    const now = Date.now();
    const newer = replicator({ dir, nodeId: 'newer' });
    const older = replicator({ dir, nodeId: 'older' });
    await newer.publish([entry('k', 'new', now + 10, 'n2')]);
    await older.publish([entry('k', 'old', now, 'n1'), entry('tie', 'from-a', now, 'a')]);
    await newer.publish([entry('tie', 'from-b', now, 'b')]);
    for (const joiner of ['j1', 'j2']) {
      const snapshot = await replicator({ dir, nodeId: joiner }).snapshot();
      const byKey = new Map(snapshot.map((e) => [e.key, e]));
      expect(byKey.get('k')?.value).toBe('new');
      // Equal updatedAt: the larger origin wins, as the stick-table's merge decides.
      expect(byKey.get('tie')?.value).toBe('from-b');
    }
  });

  it('reads a line only once a replication tool has copied all of it', async () => {
    const dir = await dirs.make();
    const reader = replicator({ dir, nodeId: 'reader' });
    await reader.ready;
    const seen = collect(reader);
    const first = encodeRecord([entry('one', 'b1', Date.now(), 'w')]);
    const second = encodeRecord([entry('two', 'b2', Date.now(), 'w')]);
    const path = join(dir, logFileName('writer'));
    await writeFile(path, encodeHeader({ generation: '0123456789abcdef', createdAt: Date.now(), nodeId: 'writer' }) + first + second.slice(0, 40));
    await reader.poll();
    expect([...seen.keys()]).toEqual(['one']);
    await appendFile(path, second.slice(40));
    await reader.poll();
    expect([...seen.keys()]).toEqual(['one', 'two']);
  });

  it('waits for a zero-filled line to be repaired, and skips it with an error if it never is', async () => {
    const dir = await dirs.make();
    const errors: unknown[] = [];
    // The 10 s grace for a damaged line runs on the replicator's clock: advanced below, not waited for.
    const clock = new FakeClock(Date.now());
    const reader = replicator({ dir, nodeId: 'reader', clock, onError: (e) => errors.push(e) });
    await reader.ready;
    const seen = collect(reader);
    const header = encodeHeader({ generation: '0123456789abcdef', createdAt: Date.now(), nodeId: 'writer' });
    const line = encodeRecord([entry('late', 'b1', Date.now(), 'w')]);
    const after = encodeRecord([entry('after', 'b2', Date.now(), 'w')]);
    const path = join(dir, logFileName('writer'));
    // An NFS client can show appended bytes as zeros until the data arrives.
    await writeFile(path, header + '\u0000'.repeat(line.length - 1) + '\n' + after);
    await reader.poll();
    expect(seen.size).toBe(0);
    await writeFile(path, header + line + after);
    await reader.poll();
    expect([...seen.keys()].sort()).toEqual(['after', 'late']);

    const other = join(dir, logFileName('broken'));
    await writeFile(other, header.replace('writer', 'broken') + 'garbage that never heals\n' + after);
    await reader.poll();
    seen.clear();
    await reader.poll();
    expect(seen.size).toBe(0);
    await clock.advance(9_999);
    await reader.poll();
    expect(seen.size).toBe(0);
    expect(errors.filter(isCorruptFileError)).toHaveLength(0);
    await clock.advance(1);
    await reader.poll();
    expect([...seen.keys()]).toEqual(['after']);
    expect(errors.filter(isCorruptFileError)).toHaveLength(1);
  });

  it('compacts its log so it stays bounded, and readers follow the new generation', async () => {
    const dir = await dirs.make();
    const writer = replicator({ dir, nodeId: 'writer', compactBytes: 4096 });
    const reader = replicator({ dir, nodeId: 'reader' });
    await reader.ready;
    const seen = collect(reader);
    let largest = 0;
    for (let round = 0; round < 200; round++) {
      await writer.publish(Array.from({ length: 10 }, (_, k) => entry(`k${k}`, `v${round}`, Date.now() + round, 'writer')));
      largest = Math.max(largest, (await stat(join(dir, logFileName('writer')))).size);
      if (round % 50 === 0) await reader.poll();
    }
    expect(largest).toBeLessThan(3 * 4096);
    await reader.poll();
    for (let k = 0; k < 10; k++) expect(seen.get(`k${k}`)?.value).toBe('v199');
    const snapshot = await replicator({ dir, nodeId: 'joiner' }).snapshot();
    expect(snapshot.filter((e) => e.origin === 'writer')).toHaveLength(10);
  });

  it('rewrites its log when a tool copied an older version over it', async () => {
    const dir = await dirs.make();
    const writer = replicator({ dir, nodeId: 'writer' });
    const path = join(dir, logFileName('writer'));
    await writer.publish([entry('k1', 'b1', Date.now(), 'writer')]);
    const older = (await stat(path)).size;
    await writer.publish([entry('k2', 'b2', Date.now(), 'writer')]);
    await truncate(path, older);
    await writer.publish([entry('k3', 'b3', Date.now(), 'writer')]);
    const keys = (await replicator({ dir, nodeId: 'joiner' }).snapshot()).map((e) => e.key).sort();
    expect(keys).toEqual(['k1', 'k2', 'k3']);
  });

  it('takes its log back after a restart with the same node id', async () => {
    const dir = await dirs.make();
    // Years before the wall clock: a replicator that read Date.now() would find every entry expired.
    const clock = new FakeClock(Date.UTC(2020, 0, 1));
    const before = replicator({ dir, nodeId: 'stable', clock });
    await before.publish([entry('kept', 'b1', clock.now(), 'stable', 60_000, clock.now()), entry('gone', 'b1', clock.now(), 'stable', 50, clock.now())]);
    await before.close();
    await clock.advance(50);
    const after = replicator({ dir, nodeId: 'stable', clock });
    expect((await after.snapshot()).map((e) => e.key)).toEqual(['kept']);
    // The restart compacted the expired entry away.
    expect(await readFile(join(dir, logFileName('stable')), 'utf8')).not.toContain('"gone"');
  });

  it('removes the log of a node that is gone once everything in it has expired', async () => {
    const dir = await dirs.make();
    const longAgo = Date.now() - 10 * 60_000;
    const dead = join(dir, logFileName('dead'));
    const expired: StickEntry<string> = { key: 'k', value: 'b', updatedAt: longAgo, expiresAt: longAgo + 1000, origin: 'dead' };
    await writeFile(dead, encodeHeader({ generation: '0123456789abcdef', createdAt: longAgo, nodeId: 'dead' }) + encodeRecord([expired]));
    const alive = join(dir, logFileName('alive'));
    await writeFile(
      alive,
      encodeHeader({ generation: 'fedcba9876543210', createdAt: longAgo, nodeId: 'alive' }) + encodeRecord([entry('k2', 'b', longAgo, 'alive')]),
    );
    const past = new Date(longAgo);
    await utimes(dead, past, past);
    const sweeper = replicator({ dir, nodeId: 'sweeper' });
    await sweeper.ready;
    await sweeper.poll();
    const names = await readdir(dir);
    expect(names).not.toContain(logFileName('dead'));
    expect(names).toContain(logFileName('alive'));
  });

  it('drops entries that expired before they were published or read', async () => {
    const dir = await dirs.make();
    // Years before the wall clock: a replicator that read Date.now() would drop 'live' too.
    const clock = new FakeClock(Date.UTC(2020, 0, 1));
    const now = clock.now();
    const writer = replicator({ dir, nodeId: 'writer', clock });
    // Only the explicit poll below reads, after 'soon' has expired.
    const reader = replicator({ dir, nodeId: 'reader', pollIntervalMs: 60_000, clock });
    await reader.ready;
    const seen = collect(reader);
    await writer.publish([{ key: 'dead', value: 'x', updatedAt: now - 10, expiresAt: now, origin: 'w' }]);
    await writer.publish([entry('soon', 'x', now, 'w', 60, now), entry('live', 'x', now, 'w', 60_000, now)]);
    await clock.advance(60);
    await reader.poll();
    expect([...seen.keys()]).toEqual(['live']);
    expect((await reader.snapshot()).map((e) => e.key)).toEqual(['live']);
    expect(await readFile(join(dir, logFileName('writer')), 'utf8')).not.toContain('"dead"');
  });

  it('names its log after the node id without characters file systems refuse', async () => {
    const dir = await dirs.make();
    await replicator({ dir, nodeId: 'lb:1' }).publish([entry('k', 'v', Date.now(), 'lb:1')]);
    expect(await readdir(dir)).toEqual(['lb~1.sticklog']);
    expect((await replicator({ dir, nodeId: 'joiner' }).snapshot())[0]).toMatchObject({ key: 'k', origin: 'lb:1' });
  });

  it('refuses bad options with the option path and value', () => {
    const cases: [unknown, string][] = [
      [{}, 'fileReplicator.dir'],
      [{ dir: '/tmp/x', nodeId: '../x' }, 'fileReplicator.nodeId'],
      [{ dir: '/tmp/x', nodeId: '.hidden' }, 'fileReplicator.nodeId'],
      [{ dir: '/tmp/x', nodeId: 'n'.repeat(65) }, 'fileReplicator.nodeId'],
      [{ dir: '/tmp/x', pollIntervalMs: 0 }, 'fileReplicator.pollIntervalMs'],
      [{ dir: '/tmp/x', compactBytes: 100 }, 'fileReplicator.compactBytes'],
      [{ dir: '/tmp/x', watch: 1 }, 'fileReplicator.watch'],
      [{ dir: '/tmp/x', onError: 'log' }, 'fileReplicator.onError'],
      [{ dir: '/tmp/x', clock: { now: () => 0 } }, 'fileReplicator.clock'],
      [{ dir: '/tmp/x', interval: 5 }, 'fileReplicator.interval'],
    ];
    for (const [options, path] of cases) {
      let error: unknown;
      try {
        new FileReplicator(options as FileReplicatorOptions);
      } catch (e) {
        error = e;
      }
      expect(isInvalidOptionError(error), path).toBe(true);
      expect((error as { path: string }).path).toBe(path);
    }
  });
});
