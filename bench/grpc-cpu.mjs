#!/usr/bin/env node
/**
 * CPU per unary gRPC call of the HTTP/2 proxy process, for a fixed number of calls: the signal to
 * compare two builds on a shared machine, where calls/s follow whatever else runs. Variants are run
 * interleaved (A B A B …), each against the same three grpc-js backends, so a change of load hits
 * both alike. The set-up is `grpc.bench.mjs`'s: backends and proxy on CPU 0, h2load alone on CPU 1,
 * `--clients` connections of `--streams` streams each, a 16-byte message per call.
 *
 *   node bench/grpc-cpu.mjs [--calls 30000] [--rounds 3] [--clients 8] [--streams 16]
 *                           [--dist packages/http/dist-before/index.js,packages/http/dist/index.js]
 *
 * `--dist`: the builds to compare (default: the current `packages/http/dist`). A build to compare
 * against is a copy of an older `packages/http/dist` put beside it (`packages/http/dist-before`), so
 * it resolves the same dependencies. `node-minimal` in the list runs `grpc.bench.mjs`'s minimal
 * `node:http2` proxy instead. Each round warms up with a third of `--calls` first. CPU is user +
 * system time from /proc of the proxy process, divided by the calls. The programs both benchmarks
 * run are in grpc-programs.mjs.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BACKENDS, NODE_MINIMAL, fulcrumProgram, writeRequest } from './grpc-programs.mjs';
import { cpuSeconds, freePort, launcher } from './processes.mjs';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '30000' },
    rounds: { type: 'string', default: '3' },
    clients: { type: 'string', default: '8' },
    streams: { type: 'string', default: '16' },
    dist: { type: 'string', default: join(ROOT, 'packages', 'http', 'dist', 'index.js') },
  },
});
const int = (name, max) => {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < 1 || n > max) die(`--${name} must be an integer from 1 to ${max}`);
  return n;
};
const calls = int('calls', 10_000_000);
const rounds = int('rounds', 50);
const clients = int('clients', 1000);
const streams = int('streams', 1000);
const variants = values.dist.split(',').map((d) => (d === 'node-minimal' ? d : resolve(d)));
for (const d of variants) if (d !== 'node-minimal' && !existsSync(d)) die(`--dist: ${d} does not exist (build @fulcrum/http first)`);
if (spawnSync('sh', ['-c', 'command -v h2load']).status !== 0) die('h2load is missing (apt-get install nghttp2-client)');
const pin = spawnSync('sh', ['-c', 'command -v taskset']).status === 0;

function die(message) {
  console.error(`grpc-cpu: ${message}`);
  process.exit(1);
}

const { killAll, start } = launcher(pin);
process.on('SIGINT', () => process.exit(130));

function load(port, request, n) {
  const args = ['h2load', '-c', String(clients), '-m', String(streams), '-t', '1', '-n', String(n)];
  args.push('-H', 'content-type: application/grpc', '-H', 'te: trailers', '-d', request, `http://127.0.0.1:${port}/bench.Echo/Unary`);
  const command = pin ? ['taskset', '-c', '1', ...args] : args;
  const result = spawnSync(command[0], command.slice(1), { encoding: 'utf8', timeout: 600_000 });
  const status = /status codes: (\d+) 2xx/.exec(result.stdout ?? '');
  if (result.status !== 0 || status === null || Number(status[1]) !== n) throw new Error(`h2load: not ${n} answers 2xx:\n${result.stdout}${result.stderr}`);
}

async function main() {
  const tmp = mkdtempSync(join(tmpdir(), 'fulcrum-grpc-cpu-'));
  try {
    const request = join(tmp, 'request.bin');
    writeRequest(request);
    const backendPorts = [await freePort(), await freePort(), await freePort()];
    await start([process.execPath, '-e', BACKENDS, ...backendPorts.map(String)], 0);
    const results = new Map(variants.map((v) => [v, []]));
    for (let round = 0; round < rounds; round++) {
      for (const variant of round % 2 === 0 ? variants : [...variants].reverse()) {
        const port = await freePort();
        const source = variant === 'node-minimal' ? NODE_MINIMAL : fulcrumProgram(variant);
        const { child } = await start([process.execPath, '--input-type=module', '-e', source, String(port), ...backendPorts.map(String)], 0);
        load(port, request, Math.max(1, Math.floor(calls / 3)));
        const before = cpuSeconds(child.pid);
        load(port, request, calls);
        const perCall = ((cpuSeconds(child.pid) - before) * 1e6) / calls;
        results.get(variant).push(perCall);
        console.log(`round ${round + 1} ${variant}: ${perCall.toFixed(1)} µs/call`);
        child.kill('SIGKILL');
        await new Promise((done) => child.once('exit', done));
      }
    }
    console.log('\n| build | CPU µs/call, median | each round |\n|---|---|---|');
    for (const [variant, list] of results) {
      const sorted = [...list].sort((a, b) => a - b);
      console.log(`| ${variant} | ${sorted[Math.floor(sorted.length / 2)].toFixed(1)} | ${list.map((v) => v.toFixed(1)).join(', ')} |`);
    }
  } finally {
    killAll();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error);
    process.exit(1);
  },
);
