#!/usr/bin/env node
/**
 * Proxy throughput: Fulcrum's reverse proxy against the proxies a Node user would otherwise pick,
 * and HAProxy, in the same run, over the same three backends.
 *
 *   node bench/proxy.bench.mjs [--duration 10] [--warmup 3] [--connections 64] [--rounds 1]
 *                              [--only fulcrum,haproxy,…] [--cpu-prof DIR]
 *                              [--body-bytes N] [--upload-bytes N]
 *   FULCRUM_BASE_DIST=/tmp/base/dist/index.js node bench/proxy.bench.mjs --only fulcrum-server,fulcrum-server-base
 *     (A/B: the raw engine from another build, e.g. main's, interleaved with this one; `fulcrum-base`
 *     is createProxy from that build, e.g. one from before the raw engine existed)
 *
 * `--body-bytes` pads the backends' responses to N bytes (4096, 65536); `--upload-bytes` makes wrk
 * POST an N-byte body with every request (1048576: the upload row, reported in MB/s).
 *
 * Set-up (the issue's): the three backends and the proxy under test share CPU 0 (`taskset -c 0`),
 * the load generator runs alone on CPU 1 (`taskset -c 1`) — so a proxy's cost shows up as fewer
 * requests per second for everyone on CPU 0, exactly as when a proxy shares a host with its apps.
 * Load: `wrk` (one thread, `--latency`), else `autocannon` (one worker) from bench/node_modules.
 * Each proxy: a correctness check (every request 200, all three backends reached), a warm-up of
 * `--warmup` seconds (JIT, connection pools), then `--duration` seconds measured at `--connections`
 * keep-alive connections. With `--rounds N` the whole list runs N times, in reverse order every
 * other round (so no proxy always runs first on a cold machine) and the table shows medians.
 *
 * Fulcrum is imported from the BUILT `packages/http/dist` (build first: `npx -y pnpm@10.34.9 build`).
 * HAProxy is Debian's (`apt-get install -y haproxy`), run with a generated config (one thread,
 * round robin, `cookie SRV insert` — the same stickiness work Fulcrum does); without it that row is
 * skipped with a note. `--cpu-prof DIR` runs the Fulcrum proxies under `node --cpu-prof` and prints
 * their hottest functions (self time) after the table.
 *
 * Bounded: every child is killed on exit (normal, error, Ctrl-C), every wait has a timeout, and
 * only 127.0.0.1 is ever contacted.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { haproxyConfig } from './proxy/haproxy.mjs';
import { summarizeProfile } from './proxy/profile-summary.mjs';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const HTTP_DIST = join(BENCH_DIR, '..', 'packages', 'http', 'dist', 'index.js');
const ALL = [
  'haproxy',
  'fulcrum-server',
  'fulcrum-server-plain',
  'fulcrum-server-base',
  'fulcrum',
  'fulcrum-base',
  'fulcrum-plain',
  'undici-minimal',
  'reply-from',
  'http-proxy',
  'hpm',
  'node-l4',
];
const LABELS = {
  haproxy: 'HAProxy (roundrobin, cookie insert)',
  fulcrum: 'Fulcrum (round-robin, cookie stickiness)',
  'fulcrum-plain': 'Fulcrum (round-robin, no stickiness)',
  'fulcrum-server': 'Fulcrum createProxyServer (raw engine, cookie stickiness)',
  'fulcrum-server-plain': 'Fulcrum createProxyServer (raw engine, no stickiness)',
  'fulcrum-server-base': 'Fulcrum createProxyServer from FULCRUM_BASE_DIST (A/B baseline, cookie stickiness)',
  'fulcrum-base': 'Fulcrum createProxy from FULCRUM_BASE_DIST (another build, cookie stickiness)',
  'undici-minimal': 'minimal undici-Pool proxy',
  'reply-from': 'fastify + @fastify/reply-from',
  'http-proxy': 'http-proxy',
  hpm: 'express + http-proxy-middleware',
  'node-l4': 'reference: Node layer-4 pipe (no HTTP parsing)',
};

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '1' },
    only: { type: 'string' },
    'cpu-prof': { type: 'string' },
    loader: { type: 'string' },
    'body-bytes': { type: 'string', default: '0' },
    'upload-bytes': { type: 'string', default: '0' },
  },
});
const duration = positive('duration', values.duration, 600);
const warmup = positive('warmup', values.warmup, 600, true);
const connections = positive('connections', values.connections, 10_000);
const rounds = positive('rounds', values.rounds, 20);
// The A/B rows run only when asked for (they need FULCRUM_BASE_DIST, another build's index.js).
const BASE_ROWS = ['fulcrum-server-base', 'fulcrum-base'];
const only = values.only === undefined ? ALL.filter((name) => !BASE_ROWS.includes(name)) : values.only.split(',');
if (only.some((name) => BASE_ROWS.includes(name)) && process.env.FULCRUM_BASE_DIST === undefined)
  die(`--only ${BASE_ROWS.join('/')} needs FULCRUM_BASE_DIST=<another build of packages/http>/dist/index.js`);
for (const name of only) if (!ALL.includes(name)) die(`--only: unknown proxy ${JSON.stringify(name)} (known: ${ALL.join(', ')})`);
const profileDir = values['cpu-prof'];
const bodyBytes = positive('body-bytes', values['body-bytes'], 16 * 1024 * 1024, true);
const uploadBytes = positive('upload-bytes', values['upload-bytes'], 64 * 1024 * 1024, true);

function positive(name, text, max, zeroOk = false) {
  const n = Number(text);
  if (!Number.isInteger(n) || n < (zeroOk ? 0 : 1) || n > max)
    die(`--${name} must be an integer from ${zeroOk ? 0 : 1} to ${max}, got ${JSON.stringify(text)}`);
  return n;
}
function die(message) {
  console.error(`proxy.bench: ${message}`);
  process.exit(2);
}
function has(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

if (!existsSync(HTTP_DIST)) die(`${HTTP_DIST} is missing: build first (npx -y pnpm@10.34.9 build)`);
const pin = has('taskset') && cpus().length >= 2;
if (!pin) console.warn('proxy.bench: taskset or a second CPU is missing: processes are NOT pinned; numbers are not comparable to the README');
const loader = values.loader ?? (has('wrk') ? 'wrk' : 'autocannon');
if (loader === 'wrk' && !has('wrk')) die('--loader wrk: wrk is not installed (apt-get install -y wrk)');
const haproxyBin = has('haproxy') ? 'haproxy' : existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : undefined;

// ------------------------------------------------------------------------------------- processes

const children = new Set();
function killAll() {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

/** Spawn `argv` on `cpu` (when pinning), wait for a `ready <port>` line. */
async function startServer(argv, cpu, { env, readyPattern = /^ready (\d+)$/m, timeoutMs = 20_000 } = {}) {
  const command = pin ? ['taskset', '-c', String(cpu), ...argv] : argv;
  const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let output = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${argv.join(' ')}: not ready in ${timeoutMs} ms:\n${output}`)), timeoutMs);
    const onData = (chunk) => {
      output += chunk;
      const match = readyPattern.exec(output);
      if (match) {
        clearTimeout(timer);
        resolve(match[1] === undefined ? undefined : Number(match[1]));
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', (chunk) => (output += chunk));
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${argv.join(' ')} exited (code ${code}, signal ${signal}):\n${output}`));
    });
  });
  return { child, port, output: () => output };
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** One GET to 127.0.0.1:port, body and headers collected, bounded by a timeout. */
function get(port) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode, body, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

// ------------------------------------------------------------------------------------- the proxies

async function startProxy(name, backendPorts, tmp) {
  if (name === 'haproxy') {
    const port = await freePort();
    const config = join(tmp, 'haproxy.cfg');
    writeFileSync(config, haproxyConfig(port, backendPorts));
    const check = spawnSync(haproxyBin, ['-c', '-f', config], { encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`haproxy rejected its config:\n${check.stdout}${check.stderr}`);
    // -db: foreground, no daemon; it prints nothing when ready, so poll the port.
    const command = pin ? ['taskset', '-c', '0', haproxyBin, '-db', '-f', config] : [haproxyBin, '-db', '-f', config];
    const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(child);
    child.once('exit', () => children.delete(child));
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    for (let i = 0; i < 100 && child.exitCode === null; i++) {
      try {
        await get(port);
        return { child, port };
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    throw new Error(`haproxy did not answer within 5 s: ${stderr.trim()}`);
  }
  const node = [process.execPath];
  if (profileDir !== undefined && name.startsWith('fulcrum')) {
    mkdirSync(profileDir, { recursive: true });
    node.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`);
  }
  return startServer([...node, join(BENCH_DIR, 'proxy', 'servers.mjs'), name, backendPorts.join(',')], 0);
}

/** Every request 200 and all three backends reached: a proxy that fails this is not benchmarked. */
async function verify(name, port) {
  const seen = new Set();
  let cookies = 0;
  for (let i = 0; i < 9; i++) {
    const { status, body, headers } = await get(port);
    if (status !== 200) throw new Error(`${name}: GET / answered ${status}: ${body}`);
    const id = /^hello from (b\d)/.exec(body)?.[1];
    if (id === undefined) throw new Error(`${name}: unexpected body ${JSON.stringify(body)}`);
    seen.add(id);
    if ([headers['set-cookie'] ?? []].flat().some((c) => /^(fulcrum_srv|SRV)=/.test(c))) cookies++;
  }
  if (seen.size !== 3) throw new Error(`${name}: 9 requests reached only ${[...seen].join(', ')}`);
  const wantsCookie = ['fulcrum', 'fulcrum-base', 'fulcrum-server', 'fulcrum-server-base', 'haproxy'].includes(name);
  if (wantsCookie && cookies !== 9) throw new Error(`${name}: stickiness is on but only ${cookies} of 9 responses set a cookie`);
}

// ------------------------------------------------------------------------------------- load

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/**
 * CPU time (user + system, µs) a process has used so far, from /proc/<pid>/stat; undefined where
 * there is no /proc. Requests per second swing with whatever else shares the machine; the CPU a
 * proxy spends per request barely does, so it is reported next to the throughput.
 */
function cpuMicros(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may contain spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

function toMs(text) {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!match) return Number.NaN;
  const n = Number(match[1]);
  return match[2] === 'us' ? n / 1000 : match[2] === 'ms' ? n : match[2] === 's' ? n * 1000 : n * 60_000;
}

async function load(port, seconds) {
  const url = `http://127.0.0.1:${port}/`;
  if (loader === 'wrk') {
    const argv = ['wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--timeout', '5s', '--latency', url];
    if (uploadBytes > 0) {
      const script = join(tmpdir(), `fulcrum-upload-${uploadBytes}.lua`);
      writeFileSync(script, `wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/octet-stream"\nwrk.body = string.rep("x", ${uploadBytes})\n`);
      argv.splice(1, 0, '-s', script);
    }
    const command = pin ? ['taskset', '-c', '1', ...argv] : argv;
    const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (out += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
    const [code] = await once(child, 'exit');
    clearTimeout(timer);
    children.delete(child);
    if (code !== 0) throw new Error(`wrk failed (${code}):\n${out}`);
    const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
    const p50 = toMs(/^\s+50%\s+(\S+)/m.exec(out)?.[1] ?? '');
    const p99 = toMs(/^\s+99%\s+(\S+)/m.exec(out)?.[1] ?? '');
    const total = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
    const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
    const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
    const errors = non2xx + (socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0);
    return { rps, p50, p99, total, errors };
  }
  const argv = [process.execPath, join(BENCH_DIR, 'proxy', 'autocannon-run.mjs'), url, String(connections), String(seconds)];
  const command = pin ? ['taskset', '-c', '1', ...argv] : argv;
  const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  let out = '';
  child.stdout.on('data', (chunk) => (out += chunk));
  const timer = setTimeout(() => child.kill('SIGKILL'), (seconds + 30) * 1000);
  const [code] = await once(child, 'exit');
  clearTimeout(timer);
  children.delete(child);
  if (code !== 0) throw new Error(`autocannon failed (${code}):\n${out}`);
  return JSON.parse(out);
}

// ------------------------------------------------------------------------------------- run

const median = (xs) => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

async function main() {
  const tmp = mkdtempSync(join(tmpdir(), 'fulcrum-proxy-bench-'));
  const results = new Map(only.map((name) => [name, []]));
  const notes = [];
  const backends = [];
  try {
    for (const id of ['b1', 'b2', 'b3'])
      backends.push(await startServer([process.execPath, join(BENCH_DIR, 'proxy', 'backend.mjs'), id, String(bodyBytes)], 0));
    const backendPorts = backends.map((b) => b.port);
    console.log(
      `backends on 127.0.0.1:${backendPorts.join(', :')} (CPU 0); load: ${loader} on CPU 1, ${connections} connections, ${warmup} s warm-up + ${duration} s`,
    );
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? only : [...only].reverse();
      for (const name of order) {
        if (name === 'haproxy' && haproxyBin === undefined) {
          if (round === 0) notes.push('HAProxy: not installed (apt-get install -y haproxy); row skipped');
          continue;
        }
        let proxy;
        try {
          proxy = await startProxy(name, backendPorts, tmp);
          await verify(name, proxy.port);
          if (warmup > 0) await load(proxy.port, warmup);
          const cpuBefore = cpuMicros(proxy.child.pid);
          const result = await load(proxy.port, duration);
          const cpuAfter = cpuMicros(proxy.child.pid);
          result.cpuPerRequest = cpuBefore === undefined || cpuAfter === undefined || result.total === 0 ? Number.NaN : (cpuAfter - cpuBefore) / result.total;
          if (uploadBytes > 0) result.mbps = (result.rps * uploadBytes) / 1e6;
          results.get(name).push({ ...result, round });
          console.log(
            `${name.padEnd(20)} ${result.rps.toFixed(0).padStart(7)} req/s${uploadBytes > 0 ? ` (${result.mbps.toFixed(0)} MB/s up)` : ''}  p50 ${result.p50.toFixed(2)} ms  p99 ${result.p99.toFixed(2)} ms  proxy CPU ${result.cpuPerRequest.toFixed(1)} µs/req  errors ${result.errors}`,
          );
        } catch (error) {
          notes.push(`${name}: ${error.message.split('\n')[0]}`);
          console.error(`${name}: ${error.message}`);
        } finally {
          if (proxy) await stop(proxy.child);
        }
      }
    }
  } finally {
    for (const b of backends) await stop(b.child);
    rmSync(tmp, { recursive: true, force: true });
  }

  const rows = [];
  for (const [name, runs] of results) {
    if (runs.length === 0) continue;
    rows.push({
      name,
      rps: median(runs.map((r) => r.rps)),
      p50: median(runs.map((r) => r.p50)),
      p99: median(runs.map((r) => r.p99)),
      cpu: median(runs.map((r) => r.cpuPerRequest)),
      errors: runs.reduce((s, r) => s + r.errors, 0),
      runs: runs.map((r) => Math.round(r.rps)),
      mbps: uploadBytes > 0 ? median(runs.map((r) => r.mbps)) : undefined,
    });
  }
  const up = uploadBytes > 0;
  console.log(`\n| proxy | req/s |${up ? ' upload MB/s |' : ''} p50 | p99 | proxy CPU per request | errors | ${rounds > 1 ? 'runs (req/s) |' : ''}`);
  console.log(`|---|---|${up ? '---|' : ''}---|---|---|---|${rounds > 1 ? '---|' : ''}`);
  for (const r of rows) {
    console.log(
      `| ${LABELS[r.name]} | ${Math.round(r.rps)} |${up ? ` ${r.mbps.toFixed(0)} |` : ''} ${r.p50.toFixed(2)} ms | ${r.p99.toFixed(2)} ms | ${r.cpu.toFixed(1)} µs | ${r.errors} |${rounds > 1 ? ` ${r.runs.join(', ')} |` : ''}`,
    );
  }
  // Goals are judged on the median of per-round ratios: the two runs of a round are minutes apart at
  // most, so on a shared machine a ratio within a round is steadier than a ratio of medians.
  const goals = [];
  const ratios = (other, self = 'fulcrum') => {
    const mine = results.get(self) ?? [];
    const theirs = results.get(other) ?? [];
    return mine.flatMap((m) => theirs.filter((t) => t.round === m.round).map((t) => m.rps / t.rps));
  };
  for (const [other, target, goal, self, cpuTarget] of [
    ['undici-minimal', 1.2, 'Fulcrum ≥ 1.2 × minimal undici proxy', 'fulcrum'],
    ['haproxy', 0.45, 'Fulcrum ≥ 0.45 × HAProxy', 'fulcrum'],
    // Issue #17: the raw engine ≥ 0.75 × HAProxy's req/s and ≤ 1.4 × its CPU per request (an
    // efficiency ratio ≥ 1 / 1.4), and ≥ 2 × createProxy's efficiency.
    ['haproxy', 0.75, 'createProxyServer ≥ 0.75 × HAProxy, CPU ≤ 1.4 ×', 'fulcrum-server', 1 / 1.4],
    ['fulcrum', 0, 'createProxyServer ≥ 2 × createProxy efficiency', 'fulcrum-server', 2],
    // The same against createProxy from another build (FULCRUM_BASE_DIST): the row the issue measured.
    ['fulcrum-base', 0, "createProxyServer ≥ 2 × the base build's createProxy efficiency", 'fulcrum-server', 2],
    // A/B: this build against another one (FULCRUM_BASE_DIST), no target.
    ['fulcrum-server-base', 0, 'createProxyServer: this build / the baseline build', 'fulcrum-server', 0],
  ]) {
    const perRound = ratios(other, self);
    if (perRound.length > 0) goals.push({ goal, ratio: median(perRound), perRound, target, other, self, cpuTarget });
  }
  if (goals.length > 0) {
    // The same goals on CPU per request (the other's µs / Fulcrum's µs): requests per CPU-second,
    // which is what throughput would be if each had the core to itself.
    const cpuOf = (name) => rows.find((r) => r.name === name)?.cpu;
    console.log('\n| goal | req/s ratio (median of rounds) | per round | result | CPU-efficiency ratio |\n|---|---|---|---|---|');
    for (const g of goals) {
      const efficiency = cpuOf(g.other) / cpuOf(g.self);
      const pass = g.ratio >= g.target && (g.cpuTarget === undefined || efficiency >= g.cpuTarget);
      console.log(
        `| ${g.goal} | ${g.ratio.toFixed(2)}× | ${g.perRound.map((r) => r.toFixed(2)).join(', ')} | ${pass ? 'PASS' : 'FAIL'} | ${efficiency.toFixed(2)}× |`,
      );
    }
  }
  for (const note of notes) console.log(`note: ${note}`);

  if (profileDir !== undefined) {
    for (const file of readdirSync(profileDir)
      .filter((f) => f.endsWith('.cpuprofile'))
      .sort()) {
      console.log(`\nhottest functions (self time) in ${join(profileDir, file)}:`);
      console.log(summarizeProfile(join(profileDir, file), 25));
    }
  }
  if (rows.length === 0) process.exitCode = 1;
}

main().catch((error) => {
  console.error(error);
  killAll();
  process.exit(1);
});
