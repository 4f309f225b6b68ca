// The real bin file against a bundle equivalent to the published dist (src/index.ts plus the CLI
// exports the package entry gains), built with esbuild into a temporary directory.
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const packageDir = join(here, '../..');
const root = join(packageDir, '../..');

/** Bundle the CLI and copy `bin/fulcrum.mjs` beside it; returns the directory and the bin's path. */
export async function bundleBin(): Promise<{ dir: string; bin: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bin-'));
  mkdirSync(join(dir, 'bin'));
  mkdirSync(join(dir, 'dist'));
  copyFileSync(join(packageDir, 'bin/fulcrum.mjs'), join(dir, 'bin/fulcrum.mjs'));
  const entry = join(dir, 'entry.ts');
  writeFileSync(entry, `export * from ${JSON.stringify(join(packageDir, 'src/index.ts'))};\nexport * from ${JSON.stringify(join(packageDir, 'src/cli/index.ts'))};\n`);
  // esbuild is tsup's; resolve it through tsup so the strict pnpm layout does not matter.
  const requireFromTsup = createRequire(createRequire(join(root, 'package.json')).resolve('tsup'));
  const esbuild = requireFromTsup('esbuild') as { build(options: Record<string, unknown>): Promise<unknown> };
  await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: join(dir, 'dist/index.js'),
    alias: { '@fulcrum/core': join(root, 'packages/core/src/index.ts') },
    nodePaths: [join(packageDir, 'node_modules'), join(root, 'packages/core/node_modules')],
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    logLevel: 'silent',
  });
  return { dir, bin: join(dir, 'bin/fulcrum.mjs') };
}
