// `fulcrum --workers 2` next to one process (issue #22): requests per second and CPU per request of
// the whole fulcrum process tree (primary + workers), under wrk, behind an nginx backend that
// answers `200 ok` from memory (so the backend's CPU is small next to the proxy's).
// Interleaved rounds in one run, since the machine may be shared. Two workers run in both ways of
// accepting (`workers.accept`): 'primary' (the default: the primary accepts every connection and
// passes it to a worker) and 'workers' (each worker accepts on the shared socket; the kernel spreads).
//
//   node bench/workers.bench.mjs [--rounds 3] [--seconds 5] [--connections 32] [--baseline <bin>] [--close]
//
// --baseline: another build's `bin/fulcrum.mjs` (e.g. an older commit's, bundled elsewhere), run with
// two workers as a third variant in every round, to compare two builds' `--workers` under the same
// noise. Each round rotates the order of the variants. --close: every request on a new connection
// (`Connection: close`), where accepting and passing connections costs most.
//
// Needs the built @fulcrum/cli (cd packages/cli && npx tsup --config ../../tsup.config.ts), wrk and nginx.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const args = process.argv.slice(2);
const option = (name, fallback) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? fallback : Number(args[i + 1]);
};
const ROUNDS = option('rounds', 3);
const SECONDS = option('seconds', 5);
const CONNECTIONS = option('connections', 32);
const bin = fileURLToPath(new URL('../packages/cli/bin/fulcrum.mjs', import.meta.url));
const CLOSE = args.includes('--close');
const baselineAt = args.indexOf('--baseline');
const baseline = baselineAt === -1 ? undefined : args[baselineAt + 1];
const VARIANTS = [
  { name: '1 worker', workers: 1, bin },
  { name: '2 workers, accept primary', workers: 2, bin, accept: 'primary' },
  { name: '2 workers, accept workers', workers: 2, bin, accept: 'workers' },
  ...(baseline === undefined ? [] : [{ name: '2 workers (baseline)', workers: 2, bin: baseline }]),
];
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-workers-bench-'));
const TICKS = 100; // USER_HZ

function freePort() {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

/** utime + stime of `pid` and its children, in seconds. */
function cpuSeconds(pid) {
  const pids = [pid, ...readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)];
  let ticks = 0;
  for (const p of pids) {
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks += Number(fields[11]) + Number(fields[12]);
  }
  return ticks / TICKS;
}

async function startNginx() {
  const port = await freePort();
  const conf = join(dir, 'nginx.conf');
  writeFileSync(
    conf,
    `daemon off; worker_processes 1; pid ${dir}/nginx.pid; error_log ${dir}/nginx.err;
events { worker_connections 1024; }
http { access_log off; client_body_temp_path ${dir}; proxy_temp_path ${dir}; fastcgi_temp_path ${dir}; uwsgi_temp_path ${dir}; scgi_temp_path ${dir};
  server { listen 127.0.0.1:${port}; keepalive_requests 100000; location / { return 200 'ok'; } } }`,
  );
  const child = spawn('nginx', ['-c', conf, '-p', dir], { stdio: 'ignore' });
  await waitForPort(port);
  return { port, child };
}

async function waitForPort(port) {
  for (let i = 0; i < 1200; i++) {
    const ok = await new Promise((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(true));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(false)));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${port}`);
}

async function startFulcrum(workers, backendPort, bin, accept) {
  const port = await freePort();
  const file = join(dir, `fulcrum-${workers}-${accept ?? 'default'}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      frontends: [{ port, host: '127.0.0.1', engine: 'raw' }],
      pools: { web: { backends: [{ id: 'b1', address: `http://127.0.0.1:${backendPort}` }] } },
      // A baseline build may predate the option: it gets none.
      ...(accept === undefined ? {} : { workers: { accept } }),
    }),
  );
  const child = spawn(process.execPath, [bin, '--config', file, '--workers', String(workers), '--log-level', 'warn'], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await waitForPort(port);
  // Let every worker finish its start (the port is shared as soon as one listens).
  if (workers > 1) {
    for (let i = 0; i < 200; i++) {
      const children = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      if (children.length >= workers) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { port, child };
}

function wrk(port, seconds) {
  const close = CLOSE ? ['-H', 'Connection: close'] : [];
  const out = execFileSync('wrk', ['-t2', `-c${CONNECTIONS}`, `-d${seconds}s`, ...close, `http://127.0.0.1:${port}/`], { encoding: 'utf8' });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)[1]);
  const total = Number(/(\d+) requests in/.exec(out)[1]);
  const errors = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const socket = /Socket errors: (.*)/.exec(out);
  return { rps, total, non2xx: errors ? Number(errors[1]) : 0, socket: socket ? socket[1] : '' };
}

async function stopChild(child) {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

const nginx = await startNginx();
const rows = [];
try {
  for (let round = 1; round <= ROUNDS; round++) {
    const order = VARIANTS.map((_, i) => VARIANTS[(i + round - 1) % VARIANTS.length]);
    for (const { name, workers, bin: variantBin, accept } of order) {
      const fulcrum = await startFulcrum(workers, nginx.port, variantBin, accept);
      try {
        wrk(fulcrum.port, 1); // warm-up: JIT, keep-alive pools
        const before = cpuSeconds(fulcrum.child.pid);
        const result = wrk(fulcrum.port, SECONDS);
        const cpu = cpuSeconds(fulcrum.child.pid) - before;
        rows.push({ round, name, ...result, cpuUs: (cpu / result.total) * 1e6 });
        console.log(
          `round ${round} ${name}: ${result.rps.toFixed(0)} req/s, ${((cpu / result.total) * 1e6).toFixed(1)} µs CPU/request (fulcrum tree), non-2xx ${result.non2xx}${result.socket ? `, socket errors ${result.socket}` : ''}`,
        );
      } finally {
        await stopChild(fulcrum.child);
      }
    }
  }
} finally {
  nginx.child.kill('SIGQUIT');
  rmSync(dir, { recursive: true, force: true });
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
for (const { name } of VARIANTS) {
  const mine = rows.filter((r) => r.name === name);
  console.log(`${name}: median ${median(mine.map((r) => r.rps)).toFixed(0)} req/s, median ${median(mine.map((r) => r.cpuUs)).toFixed(1)} µs CPU/request`);
}
