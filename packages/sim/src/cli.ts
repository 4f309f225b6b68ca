/**
 * `fulcrum-sim`: run a scenario file under one or more policies and print, write as JSON, or draw
 * the results.
 *
 *   fulcrum-sim scenario.json --compare p2c,round-robin,peak-ewma --report out.html
 *
 * Exit status: 0 when the runs completed, 1 when the scenario or a policy is invalid (the message
 * names the field), 2 for a usage error.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { ALGORITHM_NAMES, hasBalancer, isFulcrumError } from '@fulcrum/core';
import { compareAsync } from './simulate';
import type { SimulationResult } from './simulate';
import { renderReport } from './report';
import type { Scenario } from './scenario';

const USAGE = `usage: fulcrum-sim <scenario.json> [--compare p2c,round-robin,…] [--report out.html] [--json out.json] [--seed N]

  --compare   policies to run, comma-separated (default: p2c). Known: ${ALGORITHM_NAMES.join(', ')}
  --report    write a self-contained HTML report (SVG charts) to this file
  --json      write the results as JSON to this file ('-' for standard output)
  --seed      override the scenario's seed
  --help      this text`;

/** Scenario files larger than this are refused: a scenario is a page of JSON, not a data set. */
const MAX_SCENARIO_BYTES = 4 * 1024 * 1024;

class UsageError extends Error {}

interface Args {
  file: string;
  policies: string[];
  report: string | undefined;
  json: string | undefined;
  seed: number | undefined;
}

function parseArgs(argv: readonly string[]): Args | 'help' {
  let file: string | undefined;
  let policies = ['p2c'];
  let report: string | undefined;
  let json: string | undefined;
  let seed: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') throw new UsageError(`${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--help':
      case '-h':
        return 'help';
      case '--compare':
        policies = value()
          .split(',')
          .map((p) => p.trim())
          .filter((p) => p.length > 0);
        if (policies.length === 0) throw new UsageError('--compare needs at least one policy');
        for (const p of policies) if (!hasBalancer(p)) throw new UsageError(`--compare: unknown policy '${p}' (known: ${ALGORITHM_NAMES.join(', ')})`);
        break;
      case '--report':
        report = value();
        break;
      case '--json':
        json = value();
        break;
      case '--seed': {
        const v = value();
        seed = Number(v);
        if (!/^-?\d+$/.test(v) || !Number.isSafeInteger(seed) || seed < -(2 ** 31) || seed > 2 ** 31 - 1)
          throw new UsageError(`--seed must be a 32-bit integer, got '${v}'`);
        break;
      }
      default:
        if (arg.startsWith('-') && arg !== '-') throw new UsageError(`unknown option ${arg}`);
        if (file !== undefined) throw new UsageError(`one scenario file at a time (got '${file}' and '${arg}')`);
        file = arg;
    }
  }
  if (file === undefined) throw new UsageError('no scenario file given');
  return { file, policies, report, json, seed };
}

function readScenario(file: string): Scenario {
  const size = statSync(file).size;
  if (size > MAX_SCENARIO_BYTES) throw new UsageError(`${file}: ${size} bytes; a scenario file is at most ${MAX_SCENARIO_BYTES}`);
  const text = readFileSync(file, 'utf8');
  try {
    return JSON.parse(text) as Scenario;
  } catch (error) {
    throw new UsageError(`${file}: not JSON (${(error as Error).message})`);
  }
}

function table(results: readonly SimulationResult[]): string {
  const head = ['policy', 'requests', 'mean ms', 'p50', 'p99', 'p99.9', 'max', 'errors', 'retries', 'ejections'];
  const rows = results.map((r) => [
    r.policy,
    String(r.requests),
    r.meanMs.toFixed(2),
    r.p50.toFixed(2),
    r.p99.toFixed(2),
    r.p999.toFixed(2),
    r.maxMs.toFixed(2),
    String(r.failed),
    String(r.retries),
    String(r.ejections),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

export async function main(argv: readonly string[]): Promise<number> {
  let args: Args | 'help';
  try {
    args = parseArgs(argv);
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`fulcrum-sim: ${error.message}\n${USAGE}\n`);
      return 2;
    }
    throw error;
  }
  if (args === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  try {
    const scenario = readScenario(args.file);
    if (args.seed !== undefined && typeof scenario === 'object' && scenario !== null) scenario.seed = args.seed;
    const results = await compareAsync(scenario, args.policies);
    if (args.json === '-') process.stdout.write(`${JSON.stringify(results)}\n`);
    else {
      process.stdout.write(`${results[0]!.scenario} (seed ${results[0]!.seed})\n${table(results)}\n`);
      if (args.json !== undefined) writeFileSync(args.json, `${JSON.stringify(results, null, 1)}\n`);
    }
    if (args.report !== undefined) {
      const description = typeof scenario.description === 'string' ? scenario.description : undefined;
      writeFileSync(args.report, renderReport(results, description === undefined ? {} : { description }));
      if (args.json !== '-') process.stdout.write(`report: ${args.report}\n`);
    }
    return 0;
  } catch (error) {
    if (
      error instanceof UsageError ||
      isFulcrumError(error) ||
      (error as NodeJS.ErrnoException).code === 'ENOENT' ||
      (error as NodeJS.ErrnoException).code === 'EACCES'
    ) {
      process.stderr.write(`fulcrum-sim: ${(error as Error).message}\n`);
      return 1;
    }
    throw error;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`fulcrum-sim: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
