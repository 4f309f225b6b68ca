// Shared build for every package: run from a package folder as `tsup --config ../../tsup.config.ts`.
// Entries are the package's public entry points: src/index.ts, plus src/testing/index.ts where present.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { defineConfig } from 'tsup';

const cwd = process.cwd();
const entry: Record<string, string> = { index: 'src/index.ts' };
if (existsSync(join(cwd, 'src/testing/index.ts'))) entry['testing/index'] = 'src/testing/index.ts';

export default defineConfig({
  entry,
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  splitting: false,
  treeshake: true,
  outDir: 'dist',
});
