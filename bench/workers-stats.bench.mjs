#!/usr/bin/env node
/**
 * What the stats page's JSON and the metrics cost under `fulcrum --workers 2` when a pool has 40,000
 * backends (issue #22): real processes, the built CLI. The config has a pool `huge` of 40,000
 * backends (nothing listens there; no health checks, so nothing probes them) and a pool `small`
 * whose one backend, a server in this process, answers `ok`. While a client keeps requests going
 * through `small` (4 at a time, keep-alive), the bench scrapes, in turn:
 *
 * - `GET /metrics`, one at a time, then 4 and 8 at once (two are rendered, the others get 503: the
 *   instance renders two large bodies per handler at once, as one process does);
 * - `GET /stats?format=json`, one at a time.
 *
 * It reports for each: the scrape's duration and body size, how many scrapes were served and how
 * many refused (503), the CPU time the primary and the workers used meanwhile (from /proc: their
 * share of the `small` requests included), the latency (p50 / p99 / max) of the
 * `small` requests that ran meanwhile, and the longest event-loop stall of the workers and of the
 * primary meanwhile (`monitorEventLoopDelay` in every process, through bench/workers-stats-hook.cjs,
 * loaded by NODE_OPTIONS=--require for this bench only). A second start of the same config counts
 * the IPC bytes through the primary for one scrape of each (the counting itself costs, so it is
 * not done while stalls are measured). The bench process's own longest stall is shown too: it is the
 * client and the `small` backend, so a latency it caused is not fulcrum's.
 *
 *   node bench/workers-stats.bench.mjs [--backends 40000] [--rounds 3]
 *
 * Needs the built packages (npx -y pnpm@10.34.9 build).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { backends: { type: 'string', default: '40000' }, rounds: { type: 'string', default: '3' } } });
const COUNT = Number(values.backends);
const ROUNDS = Number(values.rounds);
const bin = fileURLToPath(new URL('../packages/cli/bin/fulcrum.mjs', import.meta.url));
const hook = fileURLToPath(new URL('./workers-stats-hook.cjs', import.meta.url));
if (!existsSync(fileURLToPath(new URL('../packages/cli/dist/index.js', import.meta.url)))) {
  console.error('workers-stats.bench: packages/cli/dist is missing: build first (npx -y pnpm@10.34.9 build)');
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-workers-stats-bench-'));

const backend = createServer((req, res) => {
  req.resume();
  res.end('ok');
});
await new Promise((resolve) => backend.listen(0, '127.0.0.1', resolve));
const backendAddress = `http://127.0.0.1:${backend.address().port}`;

const configFile = join(dir, 'fulcrum.json');
writeFileSync(
  configFile,
  JSON.stringify({
    frontends: [{ port: 0, host: '127.0.0.1' }],
    pools: {
      small: { backends: [{ id: 's1', address: backendAddress }] },
      huge: { backends: Array.from({ length: COUNT }, (_, i) => ({ id: `b${i}`, address: `http://10.${i >> 16}.${(i >> 8) & 255}.${i & 255}:8080` })) },
    },
    routes: [{ match: { pathPrefix: '/huge' }, pool: 'huge' }, { pool: 'small' }],
    metrics: { path: '/metrics', port: 0, host: '127.0.0.1' },
    stats: { path: '/stats', port: 0, host: '127.0.0.1' },
  }),
);

async function start(ipc) {
  const runDir = mkdtempSync(join(dir, 'run-'));
  const child = spawn(process.execPath, [bin, '--config', configFile, '--workers', '2'], {
    env: { ...process.env, NODE_OPTIONS: `--require ${hook}`, FULCRUM_BENCH_DIR: runDir, FULCRUM_BENCH_IPC: ipc ? '1' : '0' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  const started = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`fulcrum did not start within 120 s:\n${stderr}`)), 120_000);
    child.stderr.on('data', (d) => {
      stderr += d;
      for (const line of stderr.split('\n')) {
        if (!line.startsWith('{')) continue;
        const entry = JSON.parse(line);
        if (entry.msg === 'fulcrum started') {
          clearTimeout(timer);
          resolve(entry);
        }
      }
    });
    child.on('exit', (code) => reject(new Error(`fulcrum exited (${code}) before it started:\n${stderr}`)));
  });
  const port = (address) => Number(String(address).split(':').pop());
  return {
    child,
    runDir,
    stderr: () => stderr,
    frontend: port(started.frontends[0]),
    metrics: port(started.metrics),
    stats: port(started.stats),
    async stop() {
      child.kill('SIGTERM');
      await new Promise((resolve) => child.once('exit', resolve));
    },
  };
}

const agent = new Agent({ keepAlive: true, maxSockets: 8 });
// This process's own stalls (it is the client and the `small` backend): a latency it caused is not fulcrum's.
const own = monitorEventLoopDelay({ resolution: 10 });
own.enable();

function get(port, path, { keep = false } = {}) {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: keep ? agent : undefined, timeout: 120_000 }, (res) => {
      let bytes = 0;
      const chunks = [];
      res.on('data', (c) => {
        bytes += c.length;
        if (keep) chunks.push(c);
      });
      res.on('end', () => resolve({ status: res.statusCode, bytes, reused: req.reusedSocket }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Requests through `small`, `concurrency` at a time, until `stop()`; their latencies, ms. */
function load(port, concurrency = 4) {
  let running = true;
  const latencies = [];
  let errors = 0;
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) {
      const t = performance.now();
      let reused = true;
      try {
        const res = await get(port, '/small', { keep: true });
        reused = res.reused;
        if (res.status !== 200) errors++;
      } catch {
        errors++;
      }
      latencies.push({ at: Date.now(), ms: performance.now() - t, reused });
    }
  });
  return {
    since(from, to) {
      return latencies.filter((l) => l.at >= from && l.at <= to).map((l) => l.ms);
    },
    /** Requests in [from, to] that needed a new connection, and their longest latency. */
    fresh(from, to) {
      const fresh = latencies.filter((l) => l.at >= from && l.at <= to && !l.reused);
      return { newConnections: fresh.length, newConnectionMax: Math.max(0, ...fresh.map((l) => l.ms)) };
    },
    async stop() {
      running = false;
      await Promise.all(loops);
      return errors;
    },
  };
}

function quantile(sorted, q) {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** The longest event-loop stall of each role in [from, to], from the hook's files. */
function stalls(runDir, from, to) {
  const out = { worker: 0, primary: 0, workerGc: 0, primaryGc: 0 };
  for (const name of readdirSync(runDir)) {
    if (!name.startsWith('eld-')) continue;
    for (const line of readFileSync(join(runDir, name), 'utf8').split('\n')) {
      if (line === '') continue;
      const w = JSON.parse(line);
      // A window is written at its end, and a stall's delay is recorded when the sampling timer
      // fires after it, which can be in the window after the one the stall ended: take the windows
      // that end up to 250 ms after `to`.
      if (w.at < from || w.at > to + 250) continue;
      out[w.role] = Math.max(out[w.role], w.maxMs);
      out[`${w.role}Gc`] = Math.max(out[`${w.role}Gc`], w.gcMs);
    }
  }
  return out;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (ms) => `${Math.round(ms)} ms`;
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;

const cases = {
  'stats JSON, one at a time': async (f) => [await get(f.stats, '/stats?format=json')],
  'metrics, one at a time': async (f) => [await get(f.metrics, '/metrics')],
  'metrics, 4 at once': async (f) => Promise.all(Array.from({ length: 4 }, () => get(f.metrics, '/metrics'))),
  'metrics, 8 at once': async (f) => Promise.all(Array.from({ length: 8 }, () => get(f.metrics, '/metrics'))),
};

/** CPU time (user + system, ms) used so far by the primary `pid` and its children (the workers), from /proc. */
function cpuMs(pid) {
  const ticks = (p) => {
    try {
      const fields = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
      return Number(fields[11]) + Number(fields[12]);
    } catch {
      return 0;
    }
  };
  let children = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  } catch {
    // Not Linux: no CPU column.
  }
  // Clock ticks: 100 per second on Linux.
  return [pid, ...children].reduce((sum, p) => sum + ticks(p), 0) * 10;
}

const results = Object.fromEntries(Object.keys(cases).map((name) => [name, []]));
let baseline;
{
  const f = await start(false);
  try {
    const traffic = load(f.frontend);
    // Warm up, then a baseline without scrapes.
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const b0 = Date.now();
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const b1 = Date.now();
    const lat = traffic.since(b0, b1).sort((a, b) => a - b);
    baseline = { p50: quantile(lat, 0.5), p99: quantile(lat, 0.99), max: lat[lat.length - 1] ?? NaN, ...stalls(f.runDir, b0, b1) };
    for (let round = 0; round < ROUNDS; round++) {
      for (const [name, run] of Object.entries(cases)) {
        own.reset();
        const t0 = Date.now();
        const c0 = cpuMs(f.child.pid);
        const p0 = performance.now();
        const answers = await run(f);
        const durationMs = performance.now() - p0;
        const cpu = cpuMs(f.child.pid) - c0;
        const client = own.max / 1e6;
        const t1 = Date.now();
        // Let the hook write the windows that hold the end of the scrape.
        await new Promise((resolve) => setTimeout(resolve, 400));
        const lat = traffic.since(t0, t1).sort((a, b) => a - b);
        // 503 is the bound on renders at once (two per handler over every worker); anything else is an error.
        const served = answers.filter((a) => a.status === 200);
        if (served.length === 0 || answers.some((a) => a.status !== 200 && a.status !== 503)) {
          throw new Error(`${name}: status ${answers.map((a) => a.status)}`);
        }
        results[name].push({
          durationMs,
          served: served.length,
          cpu,
          refused: answers.length - served.length,
          // The largest: on a loaded machine a collection may miss its deadline for every worker (then the answer is nearly empty).
          bytes: Math.max(...served.map((a) => a.bytes)),
          requests: lat.length,
          p50: quantile(lat, 0.5),
          p99: quantile(lat, 0.99),
          max: lat[lat.length - 1] ?? NaN,
          ...stalls(f.runDir, t0, t1),
          ...traffic.fresh(t0, t1),
          client,
        });
        process.stderr.write(`${name} round ${round + 1}: ${JSON.stringify(results[name].at(-1))}\n`);
      }
    }
    const errors = await traffic.stop();
    if (errors > 0) console.log(`(${errors} requests through small failed)`);
  } finally {
    await f.stop();
  }
}

const ipc = {};
{
  const f = await start(true);
  try {
    // The hook rewrites the file as messages pass: a read may catch it half-written, then it is read again.
    const read = () => {
      for (let attempt = 0; ; attempt++) {
        try {
          return JSON.parse(readFileSync(join(f.runDir, 'ipc.json'), 'utf8'));
        } catch (error) {
          if (attempt >= 100) throw error;
        }
      }
    };
    await get(f.metrics, '/metrics'); // warm-up (and makes ipc.json exist)
    for (const [name, path, port] of [
      ['metrics', '/metrics', f.metrics],
      ['stats JSON', '/stats?format=json', f.stats],
    ]) {
      const before = read();
      await get(port, path);
      const after = read();
      ipc[name] = { in: after.in - before.in, out: after.out - before.out, largest: Math.max(after.largestIn, after.largestOut) };
    }
  } finally {
    await f.stop();
  }
}

console.log(`\nfulcrum --workers 2, pool of ${COUNT} backends, ${ROUNDS} rounds, median (max over rounds in brackets)\n`);
console.log(
  `baseline (no scrape): small p50 ${baseline.p50.toFixed(1)} ms, p99 ${baseline.p99.toFixed(1)} ms, max ${fmt(baseline.max)}; stall workers ${fmt(baseline.worker)}, primary ${fmt(baseline.primary)}\n`,
);
console.log(
  '| scrape | body | served / refused (503) | duration | fulcrum CPU | small: requests meanwhile | small p99 | small max | worker stall | longest GC pause in a worker | primary stall | longest GC pause in the primary | bench process stall |',
);
console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const [name, rs] of Object.entries(results)) {
  const m = (k) => median(rs.map((r) => r[k]));
  const x = (k) => Math.max(...rs.map((r) => r[k]));
  console.log(
    `| ${name} | ${mb(x('bytes'))} | ${m('served')} / ${m('refused')} | ${fmt(m('durationMs'))} | ${fmt(m('cpu'))} | ${m('requests')} | ${fmt(m('p99'))} | ${fmt(m('max'))} (${fmt(x('max'))}) | ${fmt(m('worker'))} (${fmt(x('worker'))}) | ${fmt(m('workerGc'))} (${fmt(x('workerGc'))}) | ${fmt(m('primary'))} (${fmt(x('primary'))}) | ${fmt(m('primaryGc'))} (${fmt(x('primaryGc'))}) | ${fmt(m('client'))} |`,
  );
}
console.log('\nIPC through the primary for one scrape (JSON text of the messages):\n');
console.log('| scrape | workers → primary | primary → workers | largest message |');
console.log('|---|---:|---:|---:|');
for (const [name, b] of Object.entries(ipc)) console.log(`| ${name} | ${mb(b.in)} | ${mb(b.out)} | ${mb(b.largest)} |`);

agent.destroy();
backend.close();
rmSync(dir, { recursive: true, force: true });
