import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const packages = ['core', 'http', 'express-adapter', 'fastify-adapter', 'session-redis', 'session-sql', 'session-fs', 'sim', 'grpc'];

// Tests run against src/ through the same names the exports maps publish.
export default defineConfig({
  resolve: {
    alias: [
      { find: /^@fulcrum\/core\/testing$/, replacement: src('./packages/core/src/testing/index.ts') },
      ...packages.map((name) => ({ find: new RegExp(`^@fulcrum/${name}$`), replacement: src(`./packages/${name}/src/index.ts`) })),
    ],
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
