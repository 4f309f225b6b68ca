#!/usr/bin/env node
/**
 * Runs Fulcrum's benchmark suites, each in a fresh `node --expose-gc` process so that one suite's JIT
 * state, heap and type feedback never leak into the next:
 *
 *   node bench/run.mjs                     every suite
 *   node bench/run.mjs balancers lb        only the suites named (balancers, lb, alloc, stick, sim, …)
 *   node bench/run.mjs --repeat=3 balancers   run each suite 3 times, report the median of each row
 *
 * Each suite prints mitata's output, then its rows (measured value, target, pass/fail) as one
 * `@@fulcrum-bench <json>` line that this runner collects and prints as a table at the end.
 *
 * The helpers below are shared by the suites (they import this file; `main` runs only when this file
 * is the entry point).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
export const CORE_DIR = join(BENCH_DIR, '..', 'packages', 'core');
const RESULT_PREFIX = '@@fulcrum-bench ';

const SUITES = {
  balancers: 'balancers.bench.mjs',
  lb: 'load-balancer.bench.mjs',
  alloc: 'alloc.mjs',
  stick: 'stick-table.bench.mjs',
  router: 'router.bench.mjs',
  ratelimit: 'ratelimit.bench.mjs',
  dispatcher: 'dispatcher.bench.mjs',
  grpc: 'grpc-policy.bench.mjs',
  proxy: 'proxy.bench.mjs',
  tcp: 'tcp.bench.mjs',
  'session-redis': 'session-redis.bench.mjs',
  'session-sql': 'session-sql.bench.mjs',
  'session-fs': 'session-fs.bench.mjs',
  sim: 'sim.bench.mjs',
};

const DEFAULT_SUITES = ['balancers', 'lb', 'alloc', 'stick', 'router', 'ratelimit'];

// ---------------------------------------------------------------- helpers shared by the suites

/** Deterministic PRNG (mulberry32) so every run benchmarks the same backends and keys. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * `n` backend specs. `weights`: 'equal' (all 1) or 'mixed' (1–10, deterministic), so weighted
 * balancers get a cycle that is not trivially one entry per backend.
 */
export function makeSpecs(n, weights = 'equal') {
  const random = prng(0xfeed);
  const specs = [];
  for (let i = 0; i < n; i++) {
    specs.push({
      id: `backend-${String(i).padStart(4, '0')}`,
      address: `10.${(i >> 8) & 255}.${i & 255}.1:8080`,
      weight: weights === 'mixed' ? 1 + Math.floor(random() * 10) : 1,
    });
  }
  return specs;
}

/**
 * `n` distinct keys like `user-123456` (11 characters: short enough that V8 stores each as one flat
 * string, as a key parsed out of a request would be). A power-of-two `n` lets benches cycle with `& mask`.
 */
export function makeKeys(n, seed = 42) {
  const random = prng(seed);
  const seen = new Set();
  while (seen.size < n) seen.add(`user-${100000 + Math.floor(random() * 900000)}`);
  return [...seen];
}

/** Loads the BUILT `@fulcrum/core` (dist), with a clear message when it has not been built. */
export async function loadCore(subpath = '') {
  const dist = join(CORE_DIR, 'dist', subpath ? `${subpath}/index.js` : 'index.js');
  if (!existsSync(dist)) {
    console.error(
      `@fulcrum/core is not built (${dist} is missing). Run \`npx -y pnpm@10.34.9 bench\` from the repository root, ` +
        'or build it: cd packages/core && ../../node_modules/.bin/tsup --config ../../tsup.config.ts',
    );
    process.exit(2);
  }
  return import(subpath ? `@fulcrum/core/${subpath}` : '@fulcrum/core');
}

/** `{ name, avg, p50, min, p99, heap }` (ns, bytes) for every run of a mitata `run()` result. */
export function mitataStats(result) {
  const out = new Map();
  for (const trial of result.benchmarks) {
    for (const r of trial.runs) {
      if (!r.stats) {
        out.set(r.name, { name: r.name, error: String(r.error?.message ?? r.error) });
        continue;
      }
      const { avg, p50, min, p99, heap } = r.stats;
      out.set(r.name, { name: r.name, avg, p50, min, p99, heapAvg: heap?.avg });
    }
  }
  return out;
}

/**
 * A result row: `value` measured in `unit`; `target` is `{ max }` (or `{ maxRatio, of }` already
 * folded into `value`/`max` by the caller); `pass` is computed when a target exists.
 */
export function row(section, name, value, unit, max, note = '') {
  const pass = max === undefined ? undefined : value <= max;
  return { section, name, value, unit, max, pass, note };
}

/** Prints the rows as a table and emits them for `run.mjs`. */
export function report(suite, rows) {
  console.log(`\n== ${suite}: results ==`);
  printRows(rows);
  console.log(RESULT_PREFIX + JSON.stringify({ suite, rows }));
}

function fmt(value, unit) {
  if (value === undefined || value === null || Number.isNaN(value)) return 'n/a';
  if (unit === 'ns') return value >= 1000 ? `${(value / 1000).toFixed(2)} µs` : `${value.toFixed(value < 10 ? 2 : 1)} ns`;
  if (unit === 'B') return `${value.toFixed(value < 10 ? 2 : 0)} B`;
  if (unit === 'x') return `${value.toFixed(2)}×`;
  return `${value.toFixed(2)} ${unit}`;
}

function printRows(rows) {
  const lines = rows.map((r) => [
    r.section,
    r.name,
    fmt(r.value, r.unit),
    r.max === undefined ? '' : `≤ ${fmt(r.max, r.unit)}`,
    r.pass === undefined ? '' : r.pass ? 'PASS' : 'FAIL',
    r.note ?? '',
  ]);
  const head = ['suite', 'measurement', 'measured', 'target', '', 'note'];
  const widths = head.map((h, i) => Math.max(h.length, ...lines.map((l) => String(l[i]).length)));
  const line = (cells) =>
    cells
      .map((c, i) => String(c).padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  console.log(line(head));
  console.log(line(widths.map((w) => '-'.repeat(w))));
  for (const l of lines) console.log(line(l));
}

// ---------------------------------------------------------------- the runner

function runSuite(file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', ...suiteFlags(file), join(BENCH_DIR, file)], {
      cwd: BENCH_DIR,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const results = [];
    let buffered = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const text = buffered.slice(0, newline);
        buffered = buffered.slice(newline + 1);
        if (text.startsWith(RESULT_PREFIX)) results.push(JSON.parse(text.slice(RESULT_PREFIX.length)));
        else process.stdout.write(text + '\n');
      }
    });
    child.on('close', (code) => {
      if (buffered) process.stdout.write(buffered);
      resolve({ code, results });
    });
  });
}

/** The allocation check wants a young generation large enough that no scavenge hides a delta. */
function suiteFlags(file) {
  return file === SUITES.alloc ? ['--min-semi-space-size=64', '--max-semi-space-size=64'] : [];
}

function median(values) {
  const sorted = values.filter((v) => typeof v === 'number' && !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function main() {
  const argv = process.argv.slice(2);
  let repeat = 1;
  const names = [];
  for (const arg of argv) {
    const m = /^--repeat=(\d+)$/.exec(arg);
    if (m) repeat = Math.max(1, Number(m[1]));
    else if (arg === '--help' || arg === '-h') {
      console.log(`usage: node run.mjs [--repeat=N] [all | ${Object.keys(SUITES).join('|')} …]  (default: ${DEFAULT_SUITES.join(' ')})`);
      return;
    } else names.push(arg);
  }
  for (const name of names) {
    if (name !== 'all' && !(name in SUITES)) {
      console.error(`unknown suite '${name}'; known: ${Object.keys(SUITES).join(', ')}`);
      process.exit(2);
    }
  }
  // Without names: the in-process suites (a few minutes). The network and service suites start
  // servers, HAProxy or databases and take longer: name them, or say `all`.
  const selected = names.includes('all') ? Object.keys(SUITES) : names.length > 0 ? names : DEFAULT_SUITES;

  const model = cpus()[0]?.model ?? 'unknown CPU';
  console.log(`fulcrum bench · node ${process.version} · ${model} · ${cpus().length} CPUs · repeat ${repeat}`);

  let failedSuites = 0;
  const collected = new Map(); // key section|name -> { row, values: [] }
  for (const name of selected) {
    for (let i = 0; i < repeat; i++) {
      console.log(`\n### suite ${name}${repeat > 1 ? ` (run ${i + 1}/${repeat})` : ''}\n`);
      const { code, results } = await runSuite(SUITES[name]);
      if (code !== 0) {
        failedSuites++;
        console.error(`suite ${name} exited with code ${code}`);
      }
      for (const { rows } of results) {
        for (const r of rows) {
          const key = `${r.section}|${r.name}`;
          if (!collected.has(key)) collected.set(key, { row: r, values: [] });
          collected.get(key).values.push(r.value);
        }
      }
    }
  }

  const rows = [...collected.values()].map(({ row: r, values }) => {
    const value = median(values);
    const spread = values.length > 1 ? `runs: ${values.map((v) => fmt(v, r.unit)).join(', ')}` : '';
    return {
      ...r,
      value,
      pass: r.max === undefined ? undefined : value <= r.max,
      note: [r.note, spread].filter(Boolean).join('; '),
    };
  });
  if (rows.length > 0) {
    console.log(`\n==== summary${repeat > 1 ? ` (median of ${repeat} runs)` : ''} ====`);
    printRows(rows);
    const failed = rows.filter((r) => r.pass === false);
    console.log(failed.length === 0 ? '\nevery target met' : `\n${failed.length} target(s) missed: ${failed.map((r) => r.name).join('; ')}`);
  }
  if (failedSuites > 0) process.exitCode = 1;
}

const entry = process.argv[1] ? pathToFileURL(process.argv[1]).href : '';
if (import.meta.url === entry) {
  await main();
}
