// The built type entries in a project that loads both: ESM code (`import`) beside CJS code
// (`require`). Each entry once declared `fastify.fulcrum` itself, and tsc failed with TS2717; the
// declaration now lives once, in `fastify.d.ts`. Needs the built dist (`npx tsup` in this package).
import { execFile } from 'node:child_process';
import { mkdtemp, mkdir, realpath, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const pkg = resolve(here, '..');
const root = resolve(pkg, '../..');
const tsc = join(root, 'node_modules/typescript/bin/tsc');

let project: string;

function typecheck(files: Record<string, string>): Promise<{ code: number; output: string }> {
  return (async () => {
    for (const [name, text] of Object.entries(files)) await writeFile(join(project, name), text);
    const tsconfig = {
      compilerOptions: {
        module: 'node16',
        moduleResolution: 'node16',
        target: 'ES2022',
        strict: true,
        noEmit: true,
        skipLibCheck: false,
        types: ['node'],
        typeRoots: [join(root, 'node_modules/@types')],
      },
      files: Object.keys(files),
    };
    await writeFile(join(project, 'tsconfig.json'), JSON.stringify(tsconfig));
    return new Promise((done) => {
      execFile(process.execPath, [tsc, '-p', project], { cwd: project }, (error, stdout, stderr) => {
        done({ code: error ? ((error as { code?: number }).code ?? 1) : 0, output: `${stdout}${stderr}` });
      });
    });
  })();
}

beforeAll(async () => {
  project = await mkdtemp(join(tmpdir(), 'fulcrum-dual-types-'));
  await writeFile(join(project, 'package.json'), JSON.stringify({ name: 'dual', private: true, type: 'commonjs' }));
  await mkdir(join(project, 'node_modules/@fulcrum'), { recursive: true });
  await symlink(pkg, join(project, 'node_modules/@fulcrum/fastify-adapter'), 'dir');
  // The same fastify the adapter resolves, so both sides augment one module.
  await symlink(await realpath(join(pkg, 'node_modules/fastify')), join(project, 'node_modules/fastify'), 'dir');
});

afterAll(async () => {
  await rm(project, { recursive: true, force: true });
});

describe('the type entries in a project mixing ESM and CJS', () => {
  it('declare fastify.fulcrum once, typed in both: only the deliberate mistakes fail', async () => {
    const { code, output } = await typecheck({
      'esm.mts': [
        "import Fastify from 'fastify';",
        "import { fulcrum, type FulcrumDecoration } from '@fulcrum/fastify-adapter';",
        'const app = Fastify();',
        "await app.register(fulcrum, { balancer: { backends: ['http://127.0.0.1:3001'] } });",
        'const decoration: FulcrumDecoration = app.fulcrum;',
        'export const eligible: number = decoration.lb.eligibleCount;',
      ].join('\n'),
      'cjs.cts': [
        "import adapter = require('@fulcrum/fastify-adapter');",
        "import fastify = require('fastify');",
        'const app = fastify.default();',
        'void app.register(adapter.fulcrum, { prefix: "/api", balancer: { backends: [] } });',
        'export const close: () => Promise<void> = app.fulcrum.proxy.close;',
      ].join('\n'),
      // `fastify.fulcrum` is typed (not any) on both sides: a wrong use fails.
      'wrong-esm.mts': "import Fastify from 'fastify';\nimport '@fulcrum/fastify-adapter';\nexport const wrong: string = Fastify().fulcrum.lb;\n",
      'wrong-cjs.cts':
        "import fastify = require('fastify');\nimport adapter = require('@fulcrum/fastify-adapter');\nvoid adapter;\nexport const wrong: number = fastify.default().fulcrum.proxy;\n",
    });
    expect(output).not.toMatch(/TS2717|TS1479/);
    const errors = output.split('\n').filter((line) => /error TS/.test(line));
    expect(errors).toHaveLength(2);
    expect(errors[0]).toMatch(/^wrong-cjs\.cts.*TS2322/);
    expect(errors[1]).toMatch(/^wrong-esm\.mts.*TS2322/);
    expect(code).not.toBe(0);
  }, 120_000);
});
