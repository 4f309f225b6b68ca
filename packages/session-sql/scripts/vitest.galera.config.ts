// Runs only the Galera cluster test (scripts/galera.test.ts), with the workspace's aliases.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';
import base from '../../../vitest.config.ts';

export default defineConfig({
  ...base,
  root: fileURLToPath(new URL('../../..', import.meta.url)),
  test: {
    ...base.test,
    include: ['packages/session-sql/scripts/galera.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 180_000,
  },
});
