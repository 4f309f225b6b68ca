#!/usr/bin/env node
// Makes `pnpm start` / `pnpm test` work on a fresh clone with only Node and npm: installs the
// workspace from the lockfile when node_modules is missing or older than the lockfile, and builds
// the packages when a dist/ is missing or older than its sources. Run by the root scripts.
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { packageManager } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

/** The pnpm that is running us (npm_execpath), else the pinned version through npx. */
function pnpm(args) {
  const execPath = process.env.npm_execpath;
  const opts = { cwd: root, stdio: 'inherit', env: { ...process.env, COREPACK_ENABLE_STRICT: '0' } };
  if (execPath && /pnpm/.test(execPath)) {
    execFileSync(process.execPath, [execPath, ...args], opts);
  } else {
    execFileSync('npx', ['-y', packageManager, ...args], { ...opts, shell: process.platform === 'win32' });
  }
}

function newestMtime(dir) {
  let newest = 0;
  if (!existsSync(dir)) return newest;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

const lockfile = join(root, 'pnpm-lock.yaml');
const installed = join(root, 'node_modules', '.modules.yaml');
if (!existsSync(installed) || statSync(installed).mtimeMs < statSync(lockfile).mtimeMs) {
  console.log('fulcrum: installing dependencies from the lockfile…');
  pnpm(['install', '--frozen-lockfile']);
}

const packagesDir = join(root, 'packages');
const stale = readdirSync(packagesDir).filter((name) => {
  const dir = join(packagesDir, name);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  if (!pkg.scripts?.build) return false;
  return newestMtime(join(dir, 'dist')) < Math.max(newestMtime(join(dir, 'src')), statSync(join(dir, 'package.json')).mtimeMs);
});
if (stale.length > 0) {
  console.log(`fulcrum: building ${stale.join(', ')}…`);
  pnpm(['-r', '--filter', './packages/**', 'run', 'build']);
}
