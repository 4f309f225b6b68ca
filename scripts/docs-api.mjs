#!/usr/bin/env node
// The TypeDoc API reference (`pnpm docs:api`): one module per entry of every publishable package's
// exports map, read from the sources (./dist/x/index.d.ts documents ./src/x/index.ts), so a subpath
// added to a package appears without editing a list. Options are in typedoc.json; the output goes to
// docs/api/ (ignored by git). Exits non-zero when TypeDoc reports an error.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const entryPoints = [];
for (const dir of readdirSync(join(root, 'packages')).sort()) {
  const manifest = join(root, 'packages', dir, 'package.json');
  if (!existsSync(manifest)) continue;
  const pkg = JSON.parse(readFileSync(manifest, 'utf8'));
  if (pkg.private) continue;
  for (const [subpath, target] of Object.entries(pkg.exports ?? {})) {
    if (typeof target !== 'object' || target === null || typeof target.import?.types !== 'string') continue;
    const source = target.import.types.replace(/^\.\/dist\//, 'src/').replace(/\.d\.ts$/, '.ts');
    const file = join('packages', dir, source);
    if (!existsSync(join(root, file))) throw new Error(`docs-api: ${pkg.name}${subpath.slice(1)} has no source at ${file}`);
    entryPoints.push(file);
  }
}
const typedoc = join(root, 'node_modules', '.bin', 'typedoc');
const result = spawnSync(typedoc, ['--options', 'typedoc.json', ...entryPoints.flatMap((file) => ['--entryPoints', file])], {
  cwd: root,
  stdio: 'inherit',
});
process.exit(result.status ?? 1);
