import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const src = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const packages = ['core', 'http', 'cli', 'express-adapter', 'fastify-adapter', 'session-redis', 'session-sql', 'session-fs', 'sim'];

/**
 * Tests run against src/ through the same names the exports maps publish: each subpath's ESM file,
 * `./dist/X.js`, is `src/X.ts` (the rule tsup.config.ts builds by).
 */
function aliasesOf(name: string): { find: RegExp; replacement: string }[] {
  const manifest = JSON.parse(readFileSync(src(`./packages/${name}/package.json`), 'utf8')) as {
    name: string;
    exports: Record<string, string | { import: { default: string } }>;
  };
  return Object.entries(manifest.exports).flatMap(([subpath, target]) => {
    if (typeof target === 'string') return [];
    const file = /^\.\/dist\/(.+)\.js$/.exec(target.import.default)![1];
    const specifier = subpath === '.' ? manifest.name : `${manifest.name}${subpath.slice(1)}`;
    return [{ find: new RegExp(`^${specifier.replace(/[/.]/g, '\\$&')}$`), replacement: src(`./packages/${name}/src/${file}.ts`) }];
  });
}

export default defineConfig({
  resolve: {
    alias: packages.flatMap(aliasesOf),
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'examples/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
  },
});
