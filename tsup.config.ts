// Shared build for every package: run from a package folder as `tsup --config ../../tsup.config.ts`.
// Entries are the package's public entry points, read from its `exports` map: the ESM file of each
// subpath, `./dist/X.js`, is built from `src/X.ts` (`.` → src/index.ts, `./testing` →
// src/testing/index.ts, `@fulcrum/http/proxy` → src/proxy/index.ts, …).
// A package with several entries is built with code splitting, in both formats: what the entries
// share lives in chunks, so `@fulcrum/core/testing` uses the same `Backend` and error classes as
// `@fulcrum/core`, and `@fulcrum/http/proxy` the same classes as `@fulcrum/http` (instanceof holds
// across the entries) instead of each entry carrying its own copy.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineConfig } from 'tsup';

interface ExportTarget {
  import?: { default?: string };
}

const cwd = process.cwd();
const manifest = JSON.parse(readFileSync(join(cwd, 'package.json'), 'utf8')) as { exports?: Record<string, ExportTarget | string> };
const entry: Record<string, string> = {};
for (const [subpath, target] of Object.entries(manifest.exports ?? { '.': { import: { default: './dist/index.js' } } })) {
  if (subpath === './package.json' || typeof target === 'string') continue;
  const file = target.import?.default;
  const match = file === undefined ? null : /^\.\/dist\/(.+)\.js$/.exec(file);
  if (match === null) throw new Error(`${subpath}: the ESM target ${String(file)} is not ./dist/<name>.js`);
  entry[match[1]!] = `src/${match[1]}.ts`;
}
const split = Object.keys(entry).length > 1;

export default defineConfig({
  entry,
  format: ['esm', 'cjs'],
  dts: true,
  // Maps point at src/, which ships beside dist/: without sourcesContent they do not carry a second
  // copy of every source (bench/README.md, "Installed size", has the numbers).
  sourcemap: true,
  esbuildOptions(options) {
    options.sourcesContent = false;
  },
  clean: true,
  target: 'node20',
  splitting: split,
  treeshake: true,
  outDir: 'dist',
});
