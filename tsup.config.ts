// Shared build for every package: run from a package folder as `tsup --config ../../tsup.config.ts`.
// Entries are the package's public entry points, read from its `exports` map: the ESM file of each
// subpath, `./dist/X.js`, is built from `src/X.ts` (`.` → src/index.ts, `./testing` →
// src/testing/index.ts, `@fulcrum/http/proxy` → src/proxy/index.ts, …).
// A package with several entries is built with code splitting, in both formats: what the entries
// share lives in chunks, so `@fulcrum/core/testing` uses the same `Backend` and error classes as
// `@fulcrum/core`, and `@fulcrum/http/proxy` the same classes as `@fulcrum/http` (instanceof holds
// across the entries) instead of each entry carrying its own copy.
import { readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { defineConfig } from 'tsup';

interface ExportTarget {
  import?: { default?: string };
}

const cwd = process.cwd();
const manifest = JSON.parse(readFileSync(join(cwd, 'package.json'), 'utf8')) as { exports?: Record<string, ExportTarget | string>; files?: string[] };
const entry: Record<string, string> = {};
for (const [subpath, target] of Object.entries(manifest.exports ?? { '.': { import: { default: './dist/index.js' } } })) {
  if (subpath === './package.json' || typeof target === 'string') continue;
  const file = target.import?.default;
  const match = file === undefined ? null : /^\.\/dist\/(.+)\.js$/.exec(file);
  if (match === null) throw new Error(`${subpath}: the ESM target ${String(file)} is not ./dist/<name>.js`);
  entry[match[1]!] = `src/${match[1]}.ts`;
}
const split = Object.keys(entry).length > 1;

// Types-only files a package ships at its root for its type entries to share (a `*.d.ts` listed in
// its `files`, e.g. fastify-adapter's `declare module 'fastify'`): each entry references them, so a
// project loading the ESM and the CJS entry sees one declaration, not one per entry. The reference
// is relative to `dist/`: only for packages whose entries all sit there.
const sharedTypes = (manifest.files ?? []).filter((file) => file.endsWith('.d.ts') && !file.includes('/'));
if (sharedTypes.length > 0 && Object.keys(entry).some((name) => name.includes('/'))) {
  throw new Error('root .d.ts files in "files" are referenced from dist/: entries in subfolders would need their own path');
}
const dtsBanner = sharedTypes.map((file) => `/// <reference path="${posix.relative('dist', posix.normalize(file))}" />`).join('\n');

export default defineConfig({
  entry,
  format: ['esm', 'cjs'],
  dts: dtsBanner === '' ? true : { banner: dtsBanner },
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
