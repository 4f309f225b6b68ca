#!/usr/bin/env node
// Checks what each publishable package ships, after `pnpm build`: every path in its exports map
// and every bin exists (a bin starts with a node shebang), ESM and CJS entries load in Node, the package README exists and opens with a runnable
// example, neither core's source nor sim's library imports a `node:` module (they run in browsers
// and workers too), and `@fulcrum/core/testing` shares core's classes instead of carrying its own
// copy: with the built files, `createBackends()[0] instanceof Backend` and `instanceof
// InvalidOptionError` hold in ESM and in CJS; every other subpath entry exports the main entry's
// very objects; and no package source carries its own copy of the option checks of
// `@fulcrum/core/validate`.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const problems = [];

function walk(dir, visit) {
  for (const entry of readdirSync(dir)) {
    const path = join(dir, entry);
    if (statSync(path).isDirectory()) walk(path, visit);
    else visit(path);
  }
}

function targets(node, out = []) {
  if (typeof node === 'string') out.push(node);
  else if (node && typeof node === 'object') for (const value of Object.values(node)) targets(value, out);
  return out;
}

for (const name of readdirSync(join(root, 'packages'))) {
  const dir = join(root, 'packages', name);
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  if (!existsSync(join(dir, 'README.md'))) problems.push(`${pkg.name}: no README.md`);
  if (pkg.private) continue;
  for (const target of targets(pkg.exports)) {
    if (!existsSync(join(dir, target))) problems.push(`${pkg.name}: exports names ${target}, which does not exist (run pnpm build)`);
  }
  const main = pkg.exports?.['.'];
  for (const [subpath, entry] of Object.entries(pkg.exports ?? {})) {
    if (typeof entry !== 'object' || !entry.import) continue;
    const esm = join(dir, entry.import.default);
    const cjs = join(dir, entry.require.default);
    try {
      const mod = await import(pathToFileURL(esm).href);
      const req = createRequire(import.meta.url)(cjs);
      // A subpath entry exports the main entry's very objects (a shared chunk), never copies.
      if (subpath !== '.' && main) {
        const mainEsm = await import(pathToFileURL(join(dir, main.import.default)).href);
        const mainCjs = createRequire(import.meta.url)(join(dir, main.require.default));
        for (const name of Object.keys(mod))
          if (name in mainEsm && mod[name] !== mainEsm[name]) problems.push(`${pkg.name}${subpath.slice(1)} (ESM): ${name} is a copy of the main entry's`);
        for (const name of Object.keys(req))
          if (name in mainCjs && req[name] !== mainCjs[name]) problems.push(`${pkg.name}${subpath.slice(1)} (CJS): ${name} is a copy of the main entry's`);
      }
      const a = Object.keys(mod).sort().join(',');
      const b = Object.keys(req).sort().join(',');
      if (a !== b) problems.push(`${pkg.name}${subpath.slice(1)}: ESM and CJS builds export different names`);
      if (a.length === 0) problems.push(`${pkg.name}${subpath.slice(1)}: exports nothing`);
    } catch (error) {
      problems.push(`${pkg.name}${subpath.slice(1)}: does not load: ${error.message}`);
    }
  }
  for (const [command, target] of Object.entries(typeof pkg.bin === 'string' ? { [pkg.name]: pkg.bin } : (pkg.bin ?? {}))) {
    const file = join(dir, target);
    if (!existsSync(file)) problems.push(`${pkg.name}: bin ${command} names ${target}, which does not exist (run pnpm build)`);
    else if (!readFileSync(file, 'utf8').startsWith('#!/usr/bin/env node'))
      problems.push(`${pkg.name}: bin ${command} (${target}) does not start with #!/usr/bin/env node`);
  }
  const readme = readFileSync(join(dir, 'README.md'), 'utf8');
  if (!/```(ts|js|typescript|javascript)/.test(readme)) problems.push(`${pkg.name}: README has no code example`);
}

/** The built testing entry and the main entry are one copy of core, in each format. */
async function checkCoreTestingSharesCore() {
  const dir = join(root, 'packages', 'core');
  const load = {
    ESM: async (file) => import(pathToFileURL(join(dir, file)).href),
    CJS: async (file) => createRequire(import.meta.url)(join(dir, file)),
  };
  const files = { ESM: ['dist/index.js', 'dist/testing/index.js'], CJS: ['dist/index.cjs', 'dist/testing/index.cjs'] };
  for (const [format, [mainFile, testingFile]] of Object.entries(files)) {
    try {
      const core = await load[format](mainFile);
      const testing = await load[format](testingFile);
      const [backend] = testing.createBackends([{ id: 'a', address: 'http://127.0.0.1:1' }]);
      if (!(backend instanceof core.Backend))
        problems.push(
          `@fulcrum/core/testing (${format}): createBackends()[0] is not an instance of @fulcrum/core's Backend (a second copy of core is bundled)`,
        );
      let thrown;
      try {
        testing.createBackends([{ id: 'bad id!', address: 'http://127.0.0.1:1' }]);
      } catch (error) {
        thrown = error;
      }
      if (!(thrown instanceof core.InvalidOptionError))
        problems.push(`@fulcrum/core/testing (${format}): an invalid spec does not throw @fulcrum/core's InvalidOptionError (got ${thrown})`);
      if (/class Backend\b|var Backend = class/.test(readFileSync(join(dir, testingFile), 'utf8')))
        problems.push(`@fulcrum/core/testing (${format}): ${testingFile} defines its own Backend class`);
    } catch (error) {
      problems.push(`@fulcrum/core/testing (${format}): ${error.message}`);
    }
  }
}
await checkCoreTestingSharesCore();

walk(join(root, 'packages', 'core', 'src'), (file) => {
  if (!file.endsWith('.ts')) return;
  const text = readFileSync(file, 'utf8');
  if (/from\s+['"]node:|require\(['"]node:/.test(text)) problems.push(`${file.slice(root.length + 1)}: core must not import node: modules`);
});

// One set of option checks (issue #21): every package validates with @fulcrum/core/validate, so no
// package source defines its own plain-object test, timer cap or range wording.
for (const name of readdirSync(join(root, 'packages'))) {
  const src = join(root, 'packages', name, 'src');
  if (!existsSync(src)) continue;
  walk(src, (file) => {
    if (!file.endsWith('.ts') || file === join(root, 'packages', 'core', 'src', 'validate', 'checks.ts')) return;
    const text = readFileSync(file, 'utf8');
    const copy = /function isPlainObject\b|2_?147_?483_?647|from \$\{min\} to \$\{max\}/.exec(text);
    if (copy) problems.push(`${file.slice(root.length + 1)}: defines its own option check (${copy[0]}); use @fulcrum/core/validate`);
  });
}

// The simulator is pure TypeScript too; only its command (src/cli.ts) touches the file system.
walk(join(root, 'packages', 'sim', 'src'), (file) => {
  if (!file.endsWith('.ts') || file.endsWith(join('src', 'cli.ts'))) return;
  const text = readFileSync(file, 'utf8');
  if (/from\s+['"]node:|require\(['"]node:/.test(text))
    problems.push(`${file.slice(root.length + 1)}: the sim library must not import node: modules (only src/cli.ts may)`);
});

if (problems.length > 0) {
  console.error(`Package checks failed:\n- ${problems.join('\n- ')}`);
  process.exit(1);
}
console.log('Package checks passed.');
