// The package's build: the shared library build (ESM + CJS + types) plus the fulcrum-sim command,
// an ESM file with a shebang (the bin in package.json).
import { defineConfig } from 'tsup';
import shared from '../../tsup.config';

const library = shared as Record<string, unknown>;

export default defineConfig([
  library,
  {
    entry: { cli: 'src/cli.ts' },
    format: ['esm'],
    dts: false,
    sourcemap: true,
    clean: false,
    target: 'node20',
    splitting: false,
    outDir: 'dist',
    banner: { js: '#!/usr/bin/env node' },
  },
]);
