#!/usr/bin/env node
/**
 * Soak: the demo topology — three `examples/three-backends/backend.mjs` processes behind one Fulcrum
 * proxy — under steady, bounded load while a backend is SIGKILLed and restarted every few seconds.
 * The point is the failure behaviour over time, not speed: Envoy's and HAProxy's soak runs look for
 * the slow leaks (sockets, heap, leases) and the rare lost request that short tests never hit.
 *
 *   node bench/soak.mjs [--seconds 120] [--concurrency 32] [--kill-every 4] [--down 1.5] [--post-percent 10]
 *                       [--budget-percent P]
 *
 * Load: `--concurrency` closed-loop clients on keep-alive connections to the proxy (loopback only),
 * `--post-percent` of requests are POSTs with a unique body (never retried once they reached a
 * backend, so some may fail when their backend dies mid-request: reported apart). Every
 * `--kill-every` seconds the next backend in turn is SIGKILLed (a crash, not a drain) and restarted on
 * the same port `--down` seconds later. The proxy runs with its defaults plus active health checks
 * (`httpProbe('/health')`, 1 s) and outlier detection, as a production deployment would;
 * `--budget-percent` overrides the retry budget's percent (default: the proxy's, 20) to show how much
 * of the failure count the budget accounts for.
 *
 * Reported (stdout, as a Markdown block for bench/README.md): requests, failures by kind (status or
 * client error code, GET and POST apart), p50/p99/max latency, open sockets before the load and after
 * the proxy closed (`process.getActiveResourcesInfo()`, and `ss` for the proxy's port), and heap used
 * after a forced GC before and after the load. Goal: zero failed GETs, zero leaked sockets, heap flat.
 * Exit code 1 when a GET failed or a socket leaked.
 *
 * It re-runs itself under `--expose-gc` when needed. Imports `@fulcrum/http` from its build
 * (`packages/http/dist`; `pnpm soak` runs scripts/setup.mjs first, which builds when stale). Every
 * child is killed on exit, whatever the exit.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { Agent, createServer, request } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

if (typeof globalThis.gc !== 'function') {
  const child = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(child.status ?? 1);
}

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '120' },
    concurrency: { type: 'string', default: '32' },
    'kill-every': { type: 'string', default: '4' },
    down: { type: 'string', default: '1.5' },
    'post-percent': { type: 'string', default: '10' },
    'budget-percent': { type: 'string' },
  },
});
const seconds = positive('seconds');
const concurrency = Math.floor(positive('concurrency'));
const killEvery = positive('kill-every');
const downSeconds = positive('down');
const postPercent = Number(values['post-percent']);
const budgetPercent = values['budget-percent'] === undefined ? undefined : Number(values['budget-percent']);
if (budgetPercent !== undefined && !(budgetPercent >= 0 && budgetPercent <= 100))
  throw new Error(`--budget-percent must be 0–100, got ${values['budget-percent']}`);
if (!(postPercent >= 0 && postPercent <= 100)) throw new Error(`--post-percent must be 0–100, got ${values['post-percent']}`);

function positive(name) {
  const n = Number(values[name]);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got ${values[name]}`);
  return n;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { createProxy, httpProbe } = await import('@fulcrum/http');

// ---- backends -------------------------------------------------------------------------------------

const children = new Set();
const cleanupChildren = () => {
  for (const child of children) child.kill('SIGKILL');
};
process.on('exit', cleanupChildren);
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130));

async function startBackend(id, port = 0) {
  const child = spawn(process.execPath, [join(root, 'examples/three-backends/backend.mjs'), '--id', id, '--port', String(port)], {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  for (;;) {
    const [message] = await once(child, 'message');
    if (message?.type === 'listening') {
      clearTimeout(timer);
      return { id, port: message.port, child };
    }
  }
}

const backends = [];
for (let i = 1; i <= 3; i++) backends.push(await startBackend(`app-${i}`));

// ---- the proxy ------------------------------------------------------------------------------------

// Why requests failed, from the proxy's side: upstream error codes, and the attempts of each failure.
const upstreamErrors = new Map();
const failedAttempts = new Map();
const count = (map, key) => map.set(key, (map.get(key) ?? 0) + 1);
const proxy = createProxy({
  ...(budgetPercent === undefined ? {} : { retryBudget: { percent: budgetPercent, minConcurrency: 3 } }),
  onError: (error) => count(upstreamErrors, error?.code ?? error?.cause?.code ?? 'other'),
  accessLog: (entry) => {
    if (entry.termination !== 'ok') count(failedAttempts, `${entry.method} ${entry.termination} after ${entry.attempts} attempt(s)`);
  },
  balancer: {
    algorithm: 'least-connections',
    backends: backends.map((b) => ({ id: b.id, address: `http://127.0.0.1:${b.port}` })),
    health: { probe: httpProbe({ path: '/health' }), intervalMs: 1000 },
    outlier: {},
  },
});
const server = createServer(proxy);
server.keepAliveTimeout = 5000;
server.listen(0, '127.0.0.1');
await once(server, 'listening');
const proxyPort = server.address().port;

// ---- measurements ---------------------------------------------------------------------------------

function sockets() {
  const info = process.getActiveResourcesInfo();
  return { tcp: info.filter((r) => r === 'TCPSocketWrap').length, servers: info.filter((r) => r === 'TCPServerWrap').length };
}

function ssCount(port) {
  const out = spawnSync('ss', ['-Htn', 'state', 'established', `( sport = :${port} or dport = :${port} )`], { encoding: 'utf8' });
  return out.status === 0 ? out.stdout.split('\n').filter(Boolean).length : undefined;
}

async function heapAfterGc() {
  for (let i = 0; i < 3; i++) {
    globalThis.gc();
    await new Promise((r) => setImmediate(r));
  }
  return process.memoryUsage().heapUsed;
}

const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
// Latency histogram in 0.1 ms buckets up to 60 s, allocated before the baseline so that recording
// does not grow the heap being measured.
const BUCKET_MS = 0.1;
const histogram = new Uint32Array(600_000);
let recorded = 0;
let maxLatency = 0;
function record(ms) {
  histogram[Math.min(histogram.length - 1, Math.floor(ms / BUCKET_MS))]++;
  recorded++;
  if (ms > maxLatency) maxLatency = ms;
}
function percentile(p) {
  const target = Math.ceil((p / 100) * recorded);
  let seen = 0;
  for (let i = 0; i < histogram.length; i++) {
    seen += histogram[i];
    if (seen >= target) return (i + 1) * BUCKET_MS;
  }
  return maxLatency;
}
const failures = new Map();
let gets = 0;
let posts = 0;
let postIds = 0;

function fail(method, kind) {
  const key = `${method} ${kind}`;
  failures.set(key, (failures.get(key) ?? 0) + 1);
}

function once1(method) {
  return new Promise((resolve) => {
    const start = performance.now();
    const body = method === 'POST' ? `order-${++postIds}` : undefined;
    const req = request(
      {
        host: '127.0.0.1',
        port: proxyPort,
        path: method === 'GET' ? `/page/${gets}` : '/orders',
        method,
        agent,
        headers: body ? { 'content-length': Buffer.byteLength(body) } : {},
      },
      (res) => {
        res.resume();
        res.on('end', () => {
          record(performance.now() - start);
          if (res.statusCode !== 200) fail(method, String(res.statusCode));
          resolve();
        });
        res.on('error', (e) => {
          fail(method, e.code ?? 'response-error');
          resolve();
        });
      },
    );
    req.setTimeout(30_000, () => req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })));
    req.on('error', (e) => {
      fail(method, e.code ?? 'error');
      resolve();
    });
    req.end(body);
  });
}

// Warm-up (JIT, pools), then the baseline.
for (let i = 0; i < 200; i++) await once1('GET');
histogram.fill(0);
recorded = 0;
maxLatency = 0;
failures.clear();
upstreamErrors.clear();
failedAttempts.clear();
gets = 0;
agent.destroy();
const loadAgentSocketsClosed = new Promise((r) => setTimeout(r, 200));
await loadAgentSocketsClosed;
const heapBefore = await heapAfterGc();
const socketsBefore = sockets();

// ---- load and chaos -------------------------------------------------------------------------------

const deadline = performance.now() + seconds * 1000;
let kills = 0;
let stopping = false;
const chaos = (async () => {
  let next = 0;
  while (!stopping) {
    await new Promise((r) => setTimeout(r, killEvery * 1000));
    if (stopping || performance.now() > deadline) break;
    const victim = backends[next++ % backends.length];
    victim.child.kill('SIGKILL');
    await once(victim.child, 'exit');
    kills++;
    await new Promise((r) => setTimeout(r, downSeconds * 1000));
    const restarted = await startBackend(victim.id, victim.port);
    if (restarted.port !== victim.port) throw new Error(`${victim.id} could not get its port ${victim.port} back`);
    victim.child = restarted.child;
  }
})();

let peakSs = 0;
const sampler = setInterval(() => {
  peakSs = Math.max(peakSs, ssCount(proxyPort) ?? 0);
}, 2000);

await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (performance.now() < deadline) {
      if (Math.random() * 100 < postPercent) {
        posts++;
        await once1('POST');
      } else {
        gets++;
        await once1('GET');
      }
    }
  }),
);
stopping = true;
clearInterval(sampler);
await chaos;

// ---- after ----------------------------------------------------------------------------------------

agent.destroy();
await new Promise((r) => setTimeout(r, 500));
const ssAfterLoad = ssCount(proxyPort);
server.closeAllConnections();
await new Promise((r) => server.close(r));
await proxy.close();
await new Promise((r) => setTimeout(r, 500));
const socketsAfter = sockets();
const heapAfter = await heapAfterGc();
for (const b of backends) b.child.kill('SIGTERM');

const failedGets = [...failures].filter(([k]) => k.startsWith('GET ')).reduce((n, [, v]) => n + v, 0);
const failedPosts = [...failures].filter(([k]) => k.startsWith('POST ')).reduce((n, [, v]) => n + v, 0);
const leaked = socketsAfter.tcp - socketsBefore.tcp;
const mb = (n) => (n / 1024 / 1024).toFixed(1);
const list = (map) =>
  map.size === 0
    ? 'none'
    : [...map]
        .sort((a, b) => b[1] - a[1])
        .map(([k, v]) => `${k}: ${v}`)
        .join(', ');
const kinds = list(failures);

console.log(`
### Soak run — ${new Date().toISOString().slice(0, 10)}, Node ${process.version}

\`node bench/soak.mjs --seconds ${seconds} --concurrency ${concurrency} --kill-every ${killEvery} --down ${downSeconds} --post-percent ${postPercent}${budgetPercent === undefined ? '' : ` --budget-percent ${budgetPercent}`}\`

| measure | value |
| --- | --- |
| duration | ${seconds} s, ${kills} backend kills (SIGKILL, restart after ${downSeconds} s) |
| requests | ${gets + posts} (${gets} GET, ${posts} POST) |
| failed GET | **${failedGets}** |
| failed POST | ${failedPosts} (a POST that reached a dying backend is never replayed) |
| failures by kind (client side) | ${kinds} |
| failures by kind (proxy access log) | ${list(failedAttempts)} |
| upstream errors seen by the proxy (onError; most were retried) | ${list(upstreamErrors)} |
| latency p50 / p99 / max | ${percentile(50).toFixed(1)} / ${percentile(99).toFixed(1)} / ${maxLatency.toFixed(1)} ms |
| TCP sockets (getActiveResourcesInfo) before load → after proxy closed | ${socketsBefore.tcp} → ${socketsAfter.tcp} (**${leaked > 0 ? `+${leaked} leaked` : 'none leaked'}**) |
| established connections on the proxy port (ss) peak / after load | ${peakSs} / ${ssAfterLoad ?? 'n/a'} |
| heap used after GC, before → after | ${mb(heapBefore)} MB → ${mb(heapAfter)} MB |
`);
process.exitCode = failedGets > 0 || leaked > 0 ? 1 : 0;
