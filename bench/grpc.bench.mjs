#!/usr/bin/env node
/**
 * Unary gRPC calls per second and p99 through Fulcrum's HTTP/2 proxy, next to HAProxy (`proto h2`
 * listener and backends) and to one backend called directly, in the same run, over the same three
 * grpc-js backends.
 *
 *   node bench/grpc.bench.mjs [--duration 10] [--warmup 3] [--clients 8] [--streams 16] [--rounds 1]
 *                             [--only direct,haproxy,fulcrum,fulcrum-plain,node-minimal]
 *                             [--node-flags=--max-semi-space-size=32]
 *
 * Set-up, as the proxy bench: the backends and the proxy under test share CPU 0 (`taskset -c 0`),
 * h2load runs alone on CPU 1. Load: `h2load` (Debian's nghttp2-client) with `--clients` HTTP/2
 * connections of `--streams` concurrent streams each, POSTing one gRPC frame (a 16-byte message)
 * to `/bench.Echo/Unary` with `content-type: application/grpc` and `te: trailers`; p50/p99 come from
 * h2load's per-request log. Before each row, a grpc-js client checks the target answers with
 * status OK and, for proxies, that the calls of its one connection reach all three backends.
 * `direct` is h2load against one backend alone (it cannot balance): the backends' own ceiling on
 * one CPU share, not a balanced setup.
 *
 * Fulcrum is the BUILT `packages/http/dist` (`cd packages/http && npx tsup --config ../../tsup.config.ts`):
 * `createProxyServer` with `http2: { h2c: true }`, `upstreamProtocol: 'h2'`, round robin; `fulcrum-plain`
 * the same with `forwardedHeaders: false`, so that it sends the backends what HAProxy's configuration
 * here sends them (HAProxy adds X-Forwarded-For only with `option forwardfor`, none of the others).
 * HAProxy 2.6: one thread, `balance roundrobin`, `bind … proto h2`, `server … proto h2`.
 * `--node-flags` are given to the Node proxies (Fulcrum's rows and node-minimal), not to the backends:
 * `--max-semi-space-size=32` is the young-generation size `packages/http/README.md` recommends.
 * `node-minimal` is the floor of any proxy on `node:http2`: a server whose streams go round robin
 * to one session per backend, headers copied, bodies piped, nothing else (NODE_MINIMAL in grpc-programs.mjs).
 * Every child is killed on exit; only 127.0.0.1 is contacted.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { BACKENDS, GRPC, NODE_MINIMAL, fulcrumProgram, identity, writeRequest } from './grpc-programs.mjs';
import { cpuSeconds, freePort, launcher } from './processes.mjs';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const ROOT = join(BENCH_DIR, '..');
const HTTP_DIST = join(ROOT, 'packages', 'http', 'dist', 'index.js');
const ALL = ['direct', 'haproxy', 'fulcrum', 'fulcrum-plain', 'node-minimal'];
const LABELS = {
  direct: 'direct to one backend (no proxy, no balancing)',
  haproxy: 'HAProxy 2.6 (proto h2 both sides, roundrobin)',
  fulcrum: 'Fulcrum createProxyServer (h2c both sides, round-robin)',
  'fulcrum-plain': 'Fulcrum, no forwarding fields (`forwardedHeaders: false`: HAProxy adds none here either)',
  'node-minimal': 'reference: minimal node:http2 proxy (round robin, no checks, no retries)',
};

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    clients: { type: 'string', default: '8' },
    streams: { type: 'string', default: '16' },
    rounds: { type: 'string', default: '1' },
    only: { type: 'string' },
    'node-flags': { type: 'string', default: '' },
  },
});
const int = (name, max) => {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < 0 || n > max) die(`--${name} must be an integer from 0 to ${max}`);
  return n;
};
const duration = int('duration', 600);
const warmup = int('warmup', 600);
const clients = int('clients', 1000);
const streams = int('streams', 1000);
const rounds = int('rounds', 20);
const only = values.only === undefined ? ALL : values.only.split(',');
// Node options for the Node proxies (Fulcrum's rows and node-minimal), e.g. `--max-semi-space-size=32`.
const nodeFlags = values['node-flags'].split(/\s+/).filter(Boolean);
for (const flag of nodeFlags) if (!/^--[a-z][a-z0-9-]*(=[\w.-]+)?$/.test(flag)) die(`--node-flags: ${flag} is not a Node option`);
for (const name of only) if (!ALL.includes(name)) die(`--only: unknown target ${name} (known: ${ALL.join(', ')})`);

function die(message) {
  console.error(`grpc.bench: ${message}`);
  process.exit(1);
}
const has = (command) => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
if (!has('h2load')) die('h2load is missing (apt-get install nghttp2-client)');
if (!existsSync(HTTP_DIST)) die('build @fulcrum/http first (cd packages/http && npx tsup --config ../../tsup.config.ts)');
const pin = has('taskset') && cpus().length >= 2;
if (!pin) console.warn('grpc.bench: taskset or a second CPU is missing: processes are NOT pinned');

const { children, killAll, start } = launcher(pin);
process.on('SIGINT', () => process.exit(130));

function haproxyConfig(port, backends) {
  return `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
frontend fe
  bind 127.0.0.1:${port} proto h2
  default_backend be
backend be
  balance roundrobin
${backends.map((p, i) => `  server b${i} 127.0.0.1:${p} proto h2`).join('\n')}
`;
}

/** A grpc-js client on one channel: 12 calls, all OK; the backends they reached. */
const CHECK = `
const grpc = require(${JSON.stringify(GRPC)});
const Client = grpc.makeGenericClientConstructor({ unary: { path: '/bench.Echo/Unary', requestStream: false, responseStream: false, ${identity} } }, 'Echo');
const client = new Client('127.0.0.1:' + process.argv[1], grpc.credentials.createInsecure());
(async () => {
  const seen = new Set();
  for (let i = 0; i < 12; i++) {
    await new Promise((resolve, reject) => {
      const call = client.unary(Buffer.from('hello'), (error, reply) => {
        if (error) reject(error);
        else if (reply.toString() !== 'hello') reject(new Error('wrong answer'));
      });
      call.on('status', (s) => { if (s.code === 0) { seen.add(s.metadata.get('x-backend')[0]); resolve(); } });
    });
  }
  console.log('backends ' + [...seen].sort().join(','));
  client.close();
})().catch((e) => { console.error(e.message); process.exit(1); });
`;

function check(port) {
  const result = spawnSync(process.execPath, ['-e', CHECK, String(port)], { encoding: 'utf8', timeout: 20_000 });
  if (result.status !== 0) throw new Error(`check failed: ${result.stderr}`);
  return result.stdout
    .trim()
    .replace(/^backends /, '')
    .split(',');
}

/** Resolve once something accepts on `port` (HAProxy says nothing on a clean start). */
async function waitPort(port) {
  const { connect } = await import('node:net');
  for (let i = 0; i < 200; i++) {
    const ok = await new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.destroy();
        resolve(true);
      });
      socket.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`nothing listens on ${port} after 10 s`);
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function load(port, tmp) {
  const log = join(tmp, `h2load-${port}-${Date.now()}.log`);
  const args = [
    'h2load',
    '-c',
    String(clients),
    '-m',
    String(streams),
    '-t',
    '1',
    '-D',
    String(duration),
    '--warm-up-time',
    String(warmup),
    '-H',
    'content-type: application/grpc',
    '-H',
    'te: trailers',
    '-d',
    join(tmp, 'request.bin'),
    '--log-file',
    log,
    `http://127.0.0.1:${port}/bench.Echo/Unary`,
  ];
  const command = pin ? ['taskset', '-c', '1', ...args] : args;
  const result = spawnSync(command[0], command.slice(1), { encoding: 'utf8', timeout: (duration + warmup + 60) * 1000 });
  if (result.status !== 0) throw new Error(`h2load failed: ${result.stderr}${result.stdout}`);
  const out = result.stdout;
  const rps = Number(/finished in [\d.]+m?s, ([\d.]+) req\/s/.exec(out)?.[1]);
  const status = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  const failed = Number(/requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed/.exec(out)?.[1] ?? 0);
  const times = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .map((line) => Number(line.split('\t')[2]))
    .filter(Number.isFinite)
    .sort((a, b) => a - b);
  return {
    rps,
    p50: percentile(times, 50) / 1000,
    p99: percentile(times, 99) / 1000,
    non2xx: status ? Number(status[2]) + Number(status[3]) + Number(status[4]) : -1,
    failed,
  };
}

async function main() {
  const tmp = mkdtempSync(join(tmpdir(), 'fulcrum-grpc-bench-'));
  try {
    writeRequest(join(tmp, 'request.bin'));
    const backendPorts = [await freePort(), await freePort(), await freePort()];
    const { child: backendsChild } = await start([process.execPath, '-e', BACKENDS, ...backendPorts.map(String)], 0);
    const results = {};
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? only : [...only].reverse();
      for (const name of order) {
        let port = backendPorts[0];
        let child;
        if (name === 'haproxy') {
          if (!has('haproxy')) {
            console.warn('grpc.bench: haproxy missing, row skipped');
            continue;
          }
          port = await freePort();
          const config = join(tmp, 'haproxy.cfg');
          writeFileSync(config, haproxyConfig(port, backendPorts));
          child = spawn(...(pin ? ['taskset', ['-c', '0', 'haproxy', '-db', '-f', config]] : ['haproxy', ['-db', '-f', config]]), { stdio: 'ignore' });
          children.add(child);
          await waitPort(port);
        } else if (name === 'node-minimal') {
          port = await freePort();
          ({ child } = await start([process.execPath, ...nodeFlags, '--input-type=module', '-e', NODE_MINIMAL, String(port), ...backendPorts.map(String)], 0));
        } else if (name === 'fulcrum' || name === 'fulcrum-plain') {
          port = await freePort();
          const program = fulcrumProgram(HTTP_DIST, name === 'fulcrum');
          ({ child } = await start([process.execPath, ...nodeFlags, '--input-type=module', '-e', program, String(port), ...backendPorts.map(String)], 0));
        }
        const reached = check(port);
        if (name !== 'direct' && reached.length !== 3) throw new Error(`${name}: one connection's calls reached ${reached.join(',')}, not all three backends`);
        // CPU per call of the process under test (the proxy; for `direct`, the backends' process).
        const measured = child ?? backendsChild;
        const cpuBefore = cpuSeconds(measured.pid);
        const row = load(port, tmp);
        const cpuAfter = cpuSeconds(measured.pid);
        row.cpuUsPerCall = cpuBefore === undefined || cpuAfter === undefined ? NaN : ((cpuAfter - cpuBefore) * 1e6) / (row.rps * (duration + warmup));
        (results[name] ??= []).push(row);
        console.log(
          `${name} round ${round + 1}: ${row.rps.toFixed(0)} calls/s, p50 ${row.p50.toFixed(2)} ms, p99 ${row.p99.toFixed(2)} ms, CPU ${row.cpuUsPerCall.toFixed(0)} µs/call, non-2xx ${row.non2xx}, failed ${row.failed}`,
        );
        if (child !== undefined) {
          child.kill('SIGTERM');
          await new Promise((resolve) => child.once('exit', resolve));
        }
      }
    }
    const median = (list, key) => [...list.map((r) => r[key])].sort((a, b) => a - b)[Math.floor(list.length / 2)];
    console.log(`\n| target | calls/s | p50 ms | p99 ms | CPU µs/call (its process) | vs HAProxy calls/s |\n|---|---|---|---|---|---|`);
    const haproxyRps = results.haproxy ? median(results.haproxy, 'rps') : undefined;
    for (const name of only) {
      const list = results[name];
      if (!list) continue;
      const rps = median(list, 'rps');
      console.log(
        `| ${LABELS[name]} | ${rps.toFixed(0)} | ${median(list, 'p50').toFixed(2)} | ${median(list, 'p99').toFixed(2)} | ${median(list, 'cpuUsPerCall').toFixed(0)} | ${haproxyRps ? `${(rps / haproxyRps).toFixed(2)}×` : '–'} |`,
      );
    }
  } finally {
    killAll();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
