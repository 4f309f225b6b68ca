// Real temporary directories for the tests: one per test under os.tmpdir(), removed afterwards.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../../../test-support/wait-for';

export interface TempDirs {
  make(): Promise<string>;
  cleanup(): Promise<void>;
}

export function tempDirs(prefix = 'fulcrum-session-fs-'): TempDirs {
  const made: string[] = [];
  return {
    async make() {
      const dir = await mkdtemp(join(tmpdir(), prefix));
      made.push(dir);
      return dir;
    },
    async cleanup() {
      await Promise.all(made.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
    },
  };
}

/** Polls `condition` every 10 ms until it holds, failing after `timeoutMs` (test-support's `waitFor`). */
export async function eventually(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 5000): Promise<void> {
  await waitFor(condition, { what, timeoutMs, intervalMs: 10 });
}
