// Shared build for every package: run from a package folder as `tsup --config ../../tsup.config.ts`.
// Entries are the package's public entry points: src/index.ts, plus src/testing/index.ts where present.
// A package with two entries (core) is built with code splitting, in both formats: what the entries
// share lives in one chunk, so `@fulcrum/core/testing` uses the same `Backend` and error classes as
// `@fulcrum/core` (instanceof holds across the entries) instead of carrying a second copy of core.
import { existsSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { defineConfig } from 'tsup';

const cwd = process.cwd();
const entry: Record<string, string> = { index: 'src/index.ts' };
const hasTesting = existsSync(join(cwd, 'src/testing/index.ts'));
if (hasTesting) entry['testing/index'] = 'src/testing/index.ts';

// Types-only files a package ships at its root for both type entries to share (a `*.d.ts` listed in
// its `files`, e.g. fastify-adapter's `declare module 'fastify'`): each entry references them, so a
// project loading the ESM and the CJS entry sees one declaration, not one per entry.
const pkg = JSON.parse(readFileSync(join(cwd, 'package.json'), 'utf8')) as { files?: string[] };
const sharedTypes = (pkg.files ?? []).filter((file) => file.endsWith('.d.ts') && !file.includes('/'));
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
  splitting: hasTesting,
  treeshake: true,
  outDir: 'dist',
});
