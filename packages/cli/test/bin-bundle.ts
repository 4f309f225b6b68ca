// The real bin file, run as a child process against a bundle equivalent to the published dist
// (src/index.ts with @fulcrum/http and @fulcrum/core from their sources), built with esbuild into a
// temporary directory with the package's package.json (the bin reads its version there) and no
// node_modules — a proxy installed without its optional peers.
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const packageDir = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const root = join(packageDir, '../..');

export interface BinRun {
  child: ChildProcess;
  out: { stdout: string; stderr: string };
  exited: Promise<number | null>;
}

export interface BundledBin {
  dir: string;
  run(args: string[], env?: Record<string, string>): BinRun;
  remove(): void;
}

export async function bundleBin(): Promise<BundledBin> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-bin-'));
  mkdirSync(join(dir, 'bin'));
  mkdirSync(join(dir, 'dist'));
  copyFileSync(join(packageDir, 'bin/fulcrum.mjs'), join(dir, 'bin/fulcrum.mjs'));
  copyFileSync(join(packageDir, 'package.json'), join(dir, 'package.json'));
  // esbuild is tsup's; resolve it through tsup so the strict pnpm layout does not matter.
  const requireFromTsup = createRequire(createRequire(join(root, 'package.json')).resolve('tsup'));
  const esbuild = requireFromTsup('esbuild') as { build(options: Record<string, unknown>): Promise<unknown> };
  await esbuild.build({
    entryPoints: [join(packageDir, 'src/index.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: join(dir, 'dist/index.js'),
    alias: {
      '@fulcrum/core': join(root, 'packages/core/src/index.ts'),
      '@fulcrum/core/validate': join(root, 'packages/core/src/validate/index.ts'),
      '@fulcrum/core/session': join(root, 'packages/core/src/session/index.ts'),
      '@fulcrum/http': join(root, 'packages/http/src/index.ts'),
    },
    nodePaths: [join(packageDir, 'node_modules'), join(root, 'packages/http/node_modules'), join(root, 'packages/core/node_modules')],
    banner: { js: "import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" },
    logLevel: 'silent',
  });
  const bin = join(dir, 'bin/fulcrum.mjs');
  return {
    dir,
    run(args, env = {}) {
      const child = spawn(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      const out = { stdout: '', stderr: '' };
      child.stdout!.on('data', (c: Buffer) => (out.stdout += c.toString()));
      child.stderr!.on('data', (c: Buffer) => (out.stderr += c.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      return { child, out, exited };
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
