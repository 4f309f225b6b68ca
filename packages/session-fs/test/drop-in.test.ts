// What someone coming from session-file-store or connect-redis meets: their option names refused
// with the Fulcrum equivalent, a touch throttle capped at half the lifetime (and 0 when asked),
// errors that name the call, and replicators that can never silently share one log.
import { rm } from 'node:fs/promises';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { isInvalidOptionError, isStoreUnavailableError } from '@fulcrum/core';
import { FileReplicator, FileStore } from '@fulcrum/session-fs';
import { tempDirs } from './temp-dir';

const dirs = tempDirs();
const closing: { close(): Promise<void> }[] = [];
afterAll(async () => {
  for (const c of closing) await c.close();
  await dirs.cleanup();
});

function refusal(make: () => unknown): { path: string; message: string } {
  try {
    make();
  } catch (error) {
    expect(isInvalidOptionError(error)).toBe(true);
    return { path: (error as { path: string }).path, message: (error as Error).message };
  }
  throw new Error('accepted');
}

const cookie = (expiresAt: number) => ({ originalMaxAge: 10_000, expires: new Date(expiresAt).toISOString() });

describe('FileStore for session-file-store and connect-redis users', () => {
  it('refuses their option names and names the Fulcrum equivalent', () => {
    const cases: [string, unknown, RegExp][] = [
      ['path', './sessions', /`dir`/],
      ['ttl', 3600, /`ttlSeconds`/],
      ['reapInterval', 3600, /`cleanupIntervalMs`/],
      ['encoder', JSON.stringify, /`serializer/],
      ['disableTouch', true, /`touchAfterSeconds`/],
    ];
    for (const [key, value, hint] of cases) {
      const { path, message } = refusal(() => new FileStore({ dir: '/tmp/never-created', [key]: value } as never));
      expect(path).toBe(`fileStore.${key}`);
      expect(message).toMatch(hint);
    }
  });

  it('caps the default 60 s touch throttle at half a 10 s session, so a touch 5 s in is stored', async () => {
    const store = new FileStore({ dir: await dirs.make(), cleanupIntervalMs: 0, fsync: false });
    closing.push(store);
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const start = Date.now();
      await store.set('short', { cookie: cookie(start + 10_000), n: 1 } as never);
      const expiresOf = async () => ((await store.get('short')) as unknown as { cookie: { expires: string } }).cookie.expires;
      vi.setSystemTime(start + 5000);
      await store.touch('short', { cookie: cookie(start + 15_000), n: 1 } as never);
      expect(await expiresOf()).toBe(cookie(start + 15_000).expires);
      vi.setSystemTime(start + 6000);
      await store.touch('short', { cookie: cookie(start + 16_000), n: 1 } as never);
      expect(await expiresOf()).toBe(cookie(start + 15_000).expires);
      // Past the first expiry, the session is alive thanks to the touch.
      vi.setSystemTime(start + 12_000);
      expect(await store.get('short')).not.toBeNull();
    } finally {
      vi.useRealTimers();
    }
  });

  it('answers all() as an object keyed by session id', async () => {
    const store = new FileStore({ dir: await dirs.make(), cleanupIntervalMs: 0, fsync: false });
    closing.push(store);
    await store.set('a', { cookie: cookie(Date.now() + 60_000), n: 1 } as never);
    await store.set('b', { cookie: cookie(Date.now() + 60_000), n: 2 } as never);
    const all = (await store.all()) as unknown as Record<string, { n: number }>;
    expect(Object.getPrototypeOf(all)).toBeNull();
    expect(Object.keys(all).sort()).toEqual(['a', 'b']);
    expect(all.a!.n).toBe(1);
  });

  it('says which call failed, why, and what it does next', async () => {
    const dir = await dirs.make();
    const store = new FileStore({ dir, cleanupIntervalMs: 0, fsync: false });
    closing.push(store);
    await store.ready;
    await rm(dir, { recursive: true }); // the mount went away
    const failure = (call: Promise<unknown> | undefined) =>
      call!.then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    const first = await failure(store.set('x', { cookie: cookie(Date.now() + 60_000) } as never));
    expect(isStoreUnavailableError(first)).toBe(true);
    expect(first!.message).toBe(
      'FileStore.set failed: the session directory is gone (ENOENT: unmounted or deleted?); the store has disconnected and fails calls at once until a probe, every second, finds the directory again',
    );
    const next = await failure(store.get('x'));
    expect(next!.message).toMatch(/^FileStore\.get failed: the session directory is unavailable .*fails calls at once until a probe/);
    expect(next!.message).not.toContain(dir);
  });
});

describe('FileReplicator node ids', () => {
  it('gives every instance its own default node id', async () => {
    const dir = await dirs.make();
    const a = new FileReplicator({ dir, watch: false });
    const b = new FileReplicator({ dir, watch: false });
    closing.push(a, b);
    expect(a.nodeId).not.toBe(b.nodeId);
    expect(a.nodeId).toMatch(new RegExp(`-${process.pid}-[0-9a-f]{8}$`));
  });

  it('refuses a second live replicator with the same id on the same directory, and allows it after close()', async () => {
    const dir = await dirs.make();
    const first = new FileReplicator({ dir, nodeId: 'web-1', watch: false });
    const { path, message } = refusal(() => new FileReplicator({ dir, nodeId: 'web-1', watch: false }));
    expect(path).toBe('fileReplicator.nodeId');
    expect(message).toMatch(/another FileReplicator of this process already writes web-1\.sticklog/);
    // Another directory is another log: allowed.
    const elsewhere = new FileReplicator({ dir: await dirs.make(), nodeId: 'web-1', watch: false });
    await elsewhere.close();
    await first.close();
    const again = new FileReplicator({ dir, nodeId: 'web-1', watch: false });
    closing.push(again);
    expect(again.nodeId).toBe('web-1');
  });
});
