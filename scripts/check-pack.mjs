#!/usr/bin/env node
// What a user installs, checked as a user gets it (after `pnpm build`):
//  1. `pnpm pack` every publishable package (workspace:^ ranges become ^<version>, as published);
//  2. publint (strict) and @arethetypeswrong/cli (strict profile: node10, node16 CJS and ESM,
//     bundler) on every tarball;
//  3. install the tarballs into a fresh project in the temporary directory — outside the
//     workspace, so nothing resolves to the repository — with the peers a user would add;
//  4. import every entry of every package from ESM and from CJS, checking they export the same
//     names, that `@fulcrum/core/testing` shares core's classes (`instanceof` across entries), and
//     that every subpath entry (`@fulcrum/http/proxy`, `@fulcrum/core/validate`, …) exports the very
//     objects of its package's main entry, not copies;
//  5. run the installed `fulcrum` bin (@fulcrum/cli) as a user would: --help and --version;
//  6. type-check a TypeScript file importing every entry under `moduleResolution` `node16` (as an
//     ES module and as CommonJS) and `bundler`, strict, with the packages' .d.ts checked.
//
// Usage: node scripts/check-pack.mjs [--keep]   (--keep leaves the temporary project for a look)
// Installs prefer the local pnpm store (`--prefer-offline`); only what is missing is downloaded.
import { execFile as execFileCb } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFile = promisify(execFileCb);
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const keep = process.argv.includes('--keep');
const { packageManager } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const PNPM = ['-y', packageManager];
const bin = (name) => join(root, 'node_modules', '.bin', name);
const started = Date.now();
const problems = [];

/** Run a command; resolve with its output, or record a problem naming `what` and the output. */
async function run(what, file, args, options = {}) {
  try {
    const { stdout, stderr } = await execFile(file, args, {
      maxBuffer: 64 * 1024 * 1024,
      timeout: 300_000,
      env: { ...process.env, COREPACK_ENABLE_STRICT: '0', FORCE_COLOR: '0', NO_COLOR: '1', npm_config_loglevel: 'error' },
      ...options,
    });
    return `${stdout}${stderr}`;
  } catch (error) {
    problems.push(`${what} failed:\n${`${error.stdout ?? ''}${error.stderr ?? ''}`.trim() || error.message}`);
    return undefined;
  }
}

function step(text) {
  console.log(`check-pack: ${text} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

/** Entry specifiers of a package from its exports map: '@fulcrum/core', '@fulcrum/core/testing', … */
function entriesOf(pkg) {
  return Object.keys(pkg.exports ?? { '.': pkg.main })
    .filter((subpath) => subpath !== './package.json')
    .map((subpath) => (subpath === '.' ? pkg.name : `${pkg.name}${subpath.slice(1)}`));
}

const packages = readdirSync(join(root, 'packages'))
  .map((name) => ({ dir: join(root, 'packages', name), pkg: JSON.parse(readFileSync(join(root, 'packages', name, 'package.json'), 'utf8')) }))
  .filter(({ pkg }) => !pkg.private);
for (const { dir, pkg } of packages) {
  if (!existsSync(join(dir, 'dist'))) {
    console.error(`check-pack: ${pkg.name} has no dist/ — run pnpm build first`);
    process.exit(1);
  }
}

const work = mkdtempSync(join(tmpdir(), 'fulcrum-pack-'));
const tarballs = join(work, 'tarballs');
const app = join(work, 'app');
mkdirSync(tarballs);
mkdirSync(app);

try {
  // 1. Pack, two at a time (each `pnpm pack` is mostly process start-up).
  step(`packing ${packages.length} packages into ${tarballs}`);
  const tarballOf = new Map();
  for (let i = 0; i < packages.length; i += 2) {
    await Promise.all(
      packages.slice(i, i + 2).map(async ({ dir, pkg }) => {
        const before = new Set(readdirSync(tarballs));
        const out = await run(`pnpm pack (${pkg.name})`, 'npx', [...PNPM, 'pack', '--pack-destination', tarballs], { cwd: dir });
        if (out === undefined) return;
        const expected = `${pkg.name.replace(/^@/, '').replace('/', '-')}-${pkg.version}.tgz`;
        if (before.has(expected) || !existsSync(join(tarballs, expected))) problems.push(`pnpm pack (${pkg.name}): ${expected} not found in ${tarballs}`);
        else tarballOf.set(pkg.name, join(tarballs, expected));
      }),
    );
  }
  if (tarballOf.size !== packages.length) throw new Error('packing failed');

  // The manifest as published: no workspace: range may survive packing.
  for (const [name, tarball] of tarballOf) {
    const manifest = await run(`reading ${name}'s packed package.json`, 'tar', ['-xOzf', tarball, 'package/package.json']);
    if (manifest === undefined) continue;
    const published = JSON.parse(manifest);
    for (const field of ['dependencies', 'peerDependencies', 'optionalDependencies']) {
      for (const [dep, range] of Object.entries(published[field] ?? {})) {
        if (String(range).startsWith('workspace:')) problems.push(`${name}: ${field}.${dep} is still ${range} in the tarball`);
        else if (dep.startsWith('@fulcrum/') && !String(range).startsWith('^')) problems.push(`${name}: ${field}.${dep} is ${range}, not a ^ range`);
      }
    }
  }

  // 2 and 3 together: the linters read the tarballs while the project installs.
  step('publint and attw on every tarball; installing the tarballs into a fresh project');
  const lint = (async () => {
    for (const [name, tarball] of tarballOf) {
      const publint = await run(`publint (${name})`, bin('publint'), ['run', tarball, '--strict']);
      if (publint !== undefined && !/All good!/.test(publint)) problems.push(`publint (${name}):\n${publint.trim()}`);
      await run(`attw (${name})`, bin('attw'), [tarball, '--format', 'ascii', '--profile', 'strict', '--no-emoji', '--no-color'], { cwd: work });
    }
  })();

  const fileSpec = (name) => `file:${tarballOf.get(name)}`;
  const fulcrum = Object.fromEntries([...tarballOf.keys()].map((name) => [name, fileSpec(name)]));
  // The peers a user of every package installs (ranges as the workspace tests them), and the types.
  const peers = {
    express: '^5.1.0',
    'express-session': '^1.18.2',
    fastify: '^5.6.0',
    ioredis: '^5.8.0',
    mysql2: '^3.15.0',
    'fast-check': '^4.3.0',
    '@grpc/grpc-js': '^1.14.0',
    '@types/node': '^20.19.0',
    '@types/express': '^5.0.3',
    '@types/express-session': '^1.18.2',
  };
  writeFileSync(
    join(app, 'package.json'),
    `${JSON.stringify(
      {
        name: 'fulcrum-pack-check',
        private: true,
        type: 'module',
        dependencies: { ...fulcrum, ...peers },
        // A sibling's ^0.1.0 range resolves to the tarball, never to the registry.
        pnpm: { overrides: fulcrum },
      },
      null,
      2,
    )}\n`,
  );
  const install = run(
    'installing the tarballs',
    'npx',
    [...PNPM, 'install', '--prefer-offline', '--ignore-workspace', '--config.auto-install-peers=false', '--config.strict-peer-dependencies=false'],
    { cwd: app },
  );
  await Promise.all([lint, install]);
  if (!existsSync(join(app, 'node_modules', '@fulcrum', 'core'))) throw new Error('install failed');

  // 4. Every entry from ESM and from CJS.
  step('importing every entry from ESM and CJS');
  const entries = packages.flatMap(({ pkg }) => entriesOf(pkg));
  // Every subpath entry shares the main entry's classes and functions (one chunk, not a copy).
  const subpathsOf = Object.fromEntries(
    packages.map(({ pkg }) => [pkg.name, entriesOf(pkg).filter((entry) => entry !== pkg.name)]).filter(([, subs]) => subs.length > 0),
  );
  writeFileSync(
    join(app, 'esm.mjs'),
    `const entries = ${JSON.stringify(entries)};
const subpathsOf = ${JSON.stringify(subpathsOf)};
const names = {};
for (const entry of entries) {
  const mod = await import(entry);
  if (Object.keys(mod).length === 0) throw new Error(entry + ' exports nothing from ESM');
  names[entry] = Object.keys(mod).filter((n) => n !== 'default').sort();
}
const core = await import('@fulcrum/core');
const testing = await import('@fulcrum/core/testing');
const [backend] = testing.createBackends([{ id: 'a', address: 'http://127.0.0.1:1' }]);
if (!(backend instanceof core.Backend)) throw new Error('ESM: createBackends()[0] is not an @fulcrum/core Backend');
try { testing.createBackends([{ id: 'bad id!', address: 'x' }]); throw new Error('accepted a bad id'); }
catch (error) { if (!(error instanceof core.InvalidOptionError)) throw new Error('ESM: not an @fulcrum/core InvalidOptionError: ' + error); }
const http = await import('@fulcrum/http');
if (http.InvalidOptionError !== core.InvalidOptionError) throw new Error('ESM: @fulcrum/http re-exports another InvalidOptionError');

for (const [pkgName, entryNames] of Object.entries(subpathsOf)) {
  const main = await import(pkgName);
  for (const entry of entryNames) {
    const sub = await import(entry);
    for (const name of Object.keys(sub)) {
      if (name in main && sub[name] !== main[name]) throw new Error('ESM: ' + entry + ' exports another ' + name + ' than ' + pkgName + ' (a second copy instead of a shared chunk)');
    }
  }
}
const dispatcher = (await import('@fulcrum/http/dispatcher')).createBalancedDispatcher({ balancer: { backends: [{ id: 'a', address: 'http://127.0.0.1:1' }] } });
if (!(dispatcher instanceof (await import('@fulcrum/http')).BalancedDispatcher)) throw new Error('ESM: @fulcrum/http/dispatcher makes no @fulcrum/http BalancedDispatcher');
await dispatcher.close();
try { (await import('@fulcrum/core/validate')).finiteNumber('x', Number.NaN); throw new Error('finiteNumber accepted NaN'); }
catch (error) { if (!(error instanceof core.InvalidOptionError)) throw new Error('ESM: @fulcrum/core/validate throws no @fulcrum/core InvalidOptionError: ' + error); }
try { (await import('@fulcrum/http/proxy')).createProxy({}); throw new Error('createProxy accepted no balancer'); }
catch (error) { if (!(error instanceof core.InvalidOptionError)) throw new Error('ESM: @fulcrum/http/proxy throws no @fulcrum/core InvalidOptionError: ' + error); }
process.stdout.write(JSON.stringify(names));
`,
  );
  writeFileSync(
    join(app, 'cjs.cjs'),
    `const entries = ${JSON.stringify(entries)};
const subpathsOf = ${JSON.stringify(subpathsOf)};
const names = {};
for (const entry of entries) {
  const mod = require(entry);
  if (Object.keys(mod).length === 0) throw new Error(entry + ' exports nothing from CJS');
  names[entry] = Object.keys(mod).filter((n) => n !== 'default').sort();
}
const core = require('@fulcrum/core');
const testing = require('@fulcrum/core/testing');
const [backend] = testing.createBackends([{ id: 'a', address: 'http://127.0.0.1:1' }]);
if (!(backend instanceof core.Backend)) throw new Error('CJS: createBackends()[0] is not an @fulcrum/core Backend');
try { testing.createBackends([{ id: 'bad id!', address: 'x' }]); throw new Error('accepted a bad id'); }
catch (error) { if (!(error instanceof core.InvalidOptionError)) throw new Error('CJS: not an @fulcrum/core InvalidOptionError: ' + error); }

for (const [pkgName, entryNames] of Object.entries(subpathsOf)) {
  const main = require(pkgName);
  for (const entry of entryNames) {
    const sub = require(entry);
    for (const name of Object.keys(sub)) {
      if (name in main && sub[name] !== main[name]) throw new Error('CJS: ' + entry + ' exports another ' + name + ' than ' + pkgName + ' (a second copy instead of a shared chunk)');
    }
  }
}
const dispatcher = require('@fulcrum/http/dispatcher').createBalancedDispatcher({ balancer: { backends: [{ id: 'a', address: 'http://127.0.0.1:1' }] } });
if (!(dispatcher instanceof require('@fulcrum/http').BalancedDispatcher)) throw new Error('CJS: @fulcrum/http/dispatcher makes no @fulcrum/http BalancedDispatcher');
dispatcher.close().then(() => process.stdout.write(JSON.stringify(names)));
try { require('@fulcrum/core/validate').finiteNumber('x', Number.NaN); throw new Error('finiteNumber accepted NaN'); }
catch (error) { if (!(error instanceof core.InvalidOptionError)) throw new Error('CJS: @fulcrum/core/validate throws no @fulcrum/core InvalidOptionError: ' + error); }
try { require('@fulcrum/http/proxy').createProxy({}); throw new Error('createProxy accepted no balancer'); }
catch (error) { if (!(error instanceof core.InvalidOptionError)) throw new Error('CJS: @fulcrum/http/proxy throws no @fulcrum/core InvalidOptionError: ' + error); }

`,
  );
  const [esm, cjs] = await Promise.all([
    run('ESM imports', process.execPath, ['esm.mjs'], { cwd: app }),
    run('CJS requires', process.execPath, ['cjs.cjs'], { cwd: app }),
  ]);
  if (esm !== undefined && cjs !== undefined) {
    const esmNames = JSON.parse(esm);
    const cjsNames = JSON.parse(cjs);
    for (const entry of entries) {
      if (JSON.stringify(esmNames[entry]) !== JSON.stringify(cjsNames[entry])) problems.push(`${entry}: the ESM and CJS builds export different names`);
    }
  }

  // The commands as a user runs them: each package's bins from the installed tarballs.
  step('running the installed bins');
  const fulcrumHelp = await run('fulcrum --help (installed @fulcrum/cli)', join(app, 'node_modules', '.bin', 'fulcrum'), ['--help'], { cwd: app });
  if (fulcrumHelp !== undefined && !/^usage: fulcrum --config/m.test(fulcrumHelp)) problems.push(`fulcrum --help printed no usage:\n${fulcrumHelp.trim()}`);
  const fulcrumVersion = await run('fulcrum --version (installed @fulcrum/cli)', join(app, 'node_modules', '.bin', 'fulcrum'), ['--version'], { cwd: app });
  const cliVersion = packages.find(({ pkg }) => pkg.name === '@fulcrum/cli')?.pkg.version;
  if (fulcrumVersion !== undefined && !fulcrumVersion.startsWith(`fulcrum ${cliVersion} `))
    problems.push(`fulcrum --version printed ${JSON.stringify(fulcrumVersion.trim())}, not version ${cliVersion}`);

  // 5. TypeScript: every entry, three resolutions.
  step('type-checking imports under node16 (ESM and CJS) and bundler');
  const aliases = entries.map((entry, i) => [entry, `entry${i}`]);
  const useAll = `export const loaded = [${aliases.map(([, alias]) => alias).join(', ')}];\n`;
  const typed = `const lb = createLoadBalancer({ backends: [{ id: 'a', address: 'http://127.0.0.1:1' }], algorithm: 'p2c' });
const lease = lb.acquire({ key: 'k' });
lease?.release({ ok: true, status: 200 });
export const notAnError: boolean = isFulcrumError(lease);
`;
  writeFileSync(
    join(app, 'esm.mts'),
    `${aliases.map(([entry, alias]) => `import * as ${alias} from '${entry}';`).join('\n')}
import { createLoadBalancer, isFulcrumError } from '@fulcrum/core';
import { createBackends } from '@fulcrum/core/testing';
import type { Backend } from '@fulcrum/core';
export const backends: Backend[] = createBackends([{ id: 'a', address: 'http://127.0.0.1:1' }]);
${typed}${useAll}`,
  );
  writeFileSync(
    join(app, 'cjs.cts'),
    `${aliases.map(([entry, alias]) => `import ${alias} = require('${entry}');`).join('\n')}
import { createLoadBalancer, isFulcrumError } from '@fulcrum/core';
${typed}${useAll}`,
  );
  const tsconfig = (name, compilerOptions, files) =>
    writeFileSync(
      join(app, name),
      `${JSON.stringify(
        { compilerOptions: { strict: true, noEmit: true, skipLibCheck: false, target: 'ES2022', types: ['node'], ...compilerOptions }, files },
        null,
        2,
      )}\n`,
    );
  // One program per module format, as a project that is all ESM or all CJS compiles. (A program
  // that loads both the .d.ts and the .d.cts of @fulcrum/fastify-adapter still fails with TS2717 on
  // its `declare module 'fastify'`: a separate item of issue #21.)
  tsconfig('tsconfig.node16-esm.json', { module: 'node16', moduleResolution: 'node16' }, ['esm.mts']);
  tsconfig('tsconfig.node16-cjs.json', { module: 'node16', moduleResolution: 'node16' }, ['cjs.cts']);
  tsconfig('tsconfig.bundler.json', { module: 'esnext', moduleResolution: 'bundler' }, ['esm.mts']);
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  for (const [what, project] of [
    ['moduleResolution node16, ESM', 'tsconfig.node16-esm.json'],
    ['moduleResolution node16, CJS', 'tsconfig.node16-cjs.json'],
    ['moduleResolution bundler', 'tsconfig.bundler.json'],
  ]) {
    await run(`tsc, ${what}`, process.execPath, [tsc, '-p', project], { cwd: app });
  }
} catch (error) {
  problems.push(error.message);
} finally {
  if (keep) console.log(`check-pack: the project is kept in ${work}`);
  else rmSync(work, { recursive: true, force: true });
}

if (problems.length > 0) {
  console.error(`check-pack failed (${((Date.now() - started) / 1000).toFixed(1)} s):\n- ${problems.join('\n- ')}`);
  process.exit(1);
}
step(`${packages.length} packages pack, lint, install, load from ESM and CJS and type-check under node16 and bundler`);
