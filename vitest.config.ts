import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));

// Tests run against src/ through the same names the exports maps publish.
export default defineConfig({
  resolve: {
    alias: [
      { find: /^@fulcrum\/core\/testing$/, replacement: src('./packages/core/src/testing/index.ts') },
      { find: /^@fulcrum\/core$/, replacement: src('./packages/core/src/index.ts') },
    ],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 30_000,
    pool: 'forks',
  },
});
