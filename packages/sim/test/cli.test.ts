// The fulcrum-sim command, run as a child process: src/cli.ts bundled here with esbuild the way tsup
// bundles dist/cli.js (core from source), then run on real scenario files.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimulationResult } from '@fulcrum/sim';

const packageDir = fileURLToPath(new URL('..', import.meta.url));
const root = join(packageDir, '../..');
let dir: string;
let bin: string;

async function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [bin, ...args], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  return { code, stdout, stderr };
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'fulcrum-sim-'));
  const requireFromTsup = createRequire(createRequire(join(root, 'package.json')).resolve('tsup'));
  const esbuild = requireFromTsup('esbuild') as { build(options: Record<string, unknown>): Promise<unknown> };
  bin = join(dir, 'fulcrum-sim.mjs');
  await esbuild.build({
    entryPoints: [join(packageDir, 'src/cli.ts')],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    outfile: bin,
    alias: { '@fulcrum/core': join(root, 'packages/core/src/index.ts'), '@fulcrum/core/validate': join(root, 'packages/core/src/validate/index.ts') },
    nodePaths: [join(root, 'packages/core/node_modules')],
    logLevel: 'silent',
  });
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const SCENARIO = {
  name: 'cli',
  seed: 4,
  durationMs: 5000,
  backends: [{ id: 'b', count: 4, concurrency: 2, service: { type: 'exponential', meanMs: 5 } }],
  arrivals: { type: 'poisson', utilization: 0.5 },
  changes: [{ atMs: 1000, action: 'slow', backend: 'b-0', factor: 10 }],
};

describe('fulcrum-sim', () => {
  it('compares policies, prints a table, and writes the report and the JSON', async () => {
    writeFileSync(join(dir, 'scenario.json'), JSON.stringify(SCENARIO));
    const result = await run(['scenario.json', '--compare', 'p2c,round-robin,peak-ewma', '--report', 'out.html', '--json', 'out.json']);
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
    const lines = result.stdout.split('\n');
    expect(lines[0]).toBe('cli (seed 4)');
    expect(lines.slice(3, 6).map((l) => l.split(/\s+/)[0])).toEqual(['p2c', 'round-robin', 'peak-ewma']);
    const html = readFileSync(join(dir, 'out.html'), 'utf8');
    expect(html).toMatch(/^<!doctype html>/);
    expect(html).toContain('id="latency-cdf"');
    expect(html).not.toMatch(/<script|<link|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    const json = JSON.parse(readFileSync(join(dir, 'out.json'), 'utf8')) as SimulationResult[];
    expect(json.map((r) => r.policy)).toEqual(['p2c', 'round-robin', 'peak-ewma']);
    expect(json[1]!.p99).toBeGreaterThan(json[2]!.p99);
  });

  it('gives the same numbers on every run, and others under --seed', async () => {
    writeFileSync(join(dir, 'scenario.json'), JSON.stringify(SCENARIO));
    const a = await run(['scenario.json', '--json', '-']);
    const b = await run(['scenario.json', '--json', '-']);
    const c = await run(['scenario.json', '--json', '-', '--seed', '9']);
    expect(a.code).toBe(0);
    expect(b.stdout).toBe(a.stdout);
    expect((JSON.parse(c.stdout) as SimulationResult[])[0]!.seed).toBe(9);
    expect(c.stdout).not.toBe(a.stdout);
  });

  it('exits 1 naming the field of an invalid scenario', async () => {
    writeFileSync(
      join(dir, 'bad.json'),
      JSON.stringify({ ...SCENARIO, backends: [{ id: 'b', service: { type: 'exponential', meanMs: -5 }, concurrency: 1 }] }),
    );
    const result = await run(['bad.json']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('scenario.backends[0].service.meanMs');
    expect(result.stderr).toContain('-5');
  });

  it('exits 2 with the usage for a bad command line', async () => {
    for (const args of [
      [],
      ['scenario.json', '--compare', 'p2c,fastest'],
      ['scenario.json', '--seed', 'x'],
      ['scenario.json', '--frobnicate'],
      ['a.json', 'b.json'],
    ]) {
      const result = await run(args);
      expect(result.code, args.join(' ')).toBe(2);
      expect(result.stderr).toContain('usage: fulcrum-sim');
    }
    const unknown = await run(['scenario.json', '--compare', 'p2c,fastest']);
    expect(unknown.stderr).toContain("unknown policy 'fastest'");
  });

  it('exits 1 for a missing file and for a file that is not JSON', async () => {
    expect((await run(['missing.json'])).code).toBe(1);
    writeFileSync(join(dir, 'text.json'), 'not json');
    const result = await run(['text.json']);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('not JSON');
  });
});
