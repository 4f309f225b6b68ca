import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_SESSION_ID_LENGTH } from '@fulcrum/core/session';
import { checkReplicator, checkStore } from '@fulcrum/core/testing';
import type { StoreUnderTest } from '@fulcrum/core/testing';
import { FileReplicator, FileStore } from '@fulcrum/session-fs';
import { tempDirs } from './temp-dir';

const dirs = tempDirs();
afterAll(() => dirs.cleanup());

describe('conformance', () => {
  it('FileStore passes checkStore', async () => {
    const dir = await dirs.make();
    const errors: unknown[] = [];
    await checkStore(
      () => {
        const store = new FileStore({ dir, touchAfterSeconds: 0 });
        store.on('error', (error) => errors.push(error));
        return store as unknown as StoreUnderTest;
      },
      { ttlMs: 500, expiryGraceMs: 300, maxIdLength: MAX_SESSION_ID_LENGTH, teardown: (store) => (store as unknown as FileStore).close() },
    );
    expect(errors).toEqual([]);
  });

  it('FileStore passes checkStore with its default touch throttle and 50 concurrent writers', async () => {
    const dir = await dirs.make();
    await checkStore(() => new FileStore({ dir }) as unknown as StoreUnderTest, {
      ttlMs: 300,
      expiryGraceMs: 300,
      concurrentWrites: 50,
      teardown: (store) => (store as unknown as FileStore).close(),
    });
  });

  for (const watch of [true, false]) {
    it(`FileReplicator passes checkReplicator ${watch ? 'with fs.watch and polling' : 'on polling alone (watch disabled)'}`, async () => {
      const root = await dirs.make();
      const errors: unknown[] = [];
      await checkReplicator(
        ({ node, cluster }) =>
          new FileReplicator<string>({
            dir: join(root, cluster),
            nodeId: `host-${node}`,
            pollIntervalMs: watch ? 1000 : 50,
            watch,
            onError: (error) => errors.push(error),
          }),
        { timeoutMs: 4000 },
      );
      expect(errors).toEqual([]);
    });
  }
});
