#!/usr/bin/env node
/**
 * What one `GET /metrics` (and one `GET /fulcrum?format=json`) on a 40,000-backend pool costs the
 * rest of the process: the longest event-loop stall while it is served (every proxied request of
 * the process waits that long), and the time to serve it. Two ways, interleaved in the same run:
 *
 * - "one step": the whole body rendered synchronously and sent with `res.end(body)` — what
 *   `prometheusHandler` and `statsPage` did before (the same functions, `prometheus(source)()` and
 *   `JSON.stringify({ pools: snapshots })`, called here directly);
 * - "streamed": today's `prometheusHandler` / `statsPage`, which write ~64 KB per turn of the event
 *   loop with backpressure (see packages/http/src/stats/stream.ts).
 *
 * A stall is the longest gap between two ticks of a 5 ms `setInterval` while the request is served
 * (what a proxied request arriving then would wait, at least); the client reads the body over
 * loopback in the same process, as a scraper on the host would.
 *
 *   node bench/stats-render.bench.mjs [--backends 40000] [--rounds 3] [--traffic]
 *
 * `--traffic` gives every backend traffic counters first (one answered attempt each, as if the pool
 * had served), so the streamed bodies carry the per-backend traffic families and JSON too; without
 * it, only the pool's counters exist (a pool that has served nothing).
 *
 * `@fulcrum/http` and `@fulcrum/core` are loaded from their BUILT dist (`npx -y pnpm@10.34.9 build`).
 */
import { existsSync } from 'node:fs';
import { createServer, request } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = new URL('.', import.meta.url).pathname;
const HTTP_DIST = join(here, '..', 'packages', 'http', 'dist', 'index.js');
const CORE_DIST = join(here, '..', 'packages', 'core', 'dist', 'index.js');
for (const file of [HTTP_DIST, CORE_DIST]) {
  if (!existsSync(file)) {
    console.error(`stats-render.bench: ${file} is missing: build first (npx -y pnpm@10.34.9 build)`);
    process.exit(2);
  }
}
const { prometheus, prometheusHandler, statsPage, trafficOf } = await import(pathToFileURL(HTTP_DIST).href);
const { LoadBalancer } = await import(pathToFileURL(CORE_DIST).href);

const { values } = parseArgs({
  options: { backends: { type: 'string', default: '40000' }, rounds: { type: 'string', default: '3' }, traffic: { type: 'boolean', default: false } },
});
const count = Number(values.backends);
const rounds = Number(values.rounds);

const backends = Array.from({ length: count }, (_, i) => ({ id: `b${i}`, address: `http://10.${i >> 16}.${(i >> 8) & 255}.${i & 255}:8080` }));
const lb = new LoadBalancer({ name: 'huge', backends });
const source = { huge: lb };
if (values.traffic) {
  const traffic = trafficOf(lb);
  for (const backend of lb.backends) traffic.attemptEnded(backend, { ok: true, status: 200, durationMs: 12 }, 1, 0, undefined);
}
const oneStepMetrics = prometheus(source);
const streamedMetrics = prometheusHandler(source);
const streamedStats = statsPage(source);

const handlers = {
  'metrics, one step': (req, res) => {
    const body = oneStepMetrics();
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  },
  'metrics, streamed': (req, res) => streamedMetrics(req, res),
  'stats JSON, one step': (req, res) => {
    const body = JSON.stringify({ pools: { huge: lb.snapshot() }, events: [] });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  },
  'stats JSON, streamed': (req, res) => {
    req.url = '/?format=json';
    streamedStats(req, res);
  },
};

let current = handlers['metrics, one step'];
const server = createServer((req, res) => current(req, res));
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const port = server.address().port;

function fetchOnce() {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (chunk) => (bytes += chunk.length));
      res.on('end', () => resolve({ ms: performance.now() - started, bytes }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const results = new Map(Object.keys(handlers).map((name) => [name, []]));
/** The longest gap between ticks of a 5 ms interval while `work` runs. */
async function longestStall(work) {
  let last = performance.now();
  let longest = 0;
  const ticker = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 5);
  try {
    const result = await work();
    longest = Math.max(longest, performance.now() - last);
    return { ...result, maxStallMs: longest };
  } finally {
    clearInterval(ticker);
  }
}
for (let round = 0; round < rounds; round++) {
  for (const name of Object.keys(handlers)) {
    current = handlers[name];
    await new Promise((resolve) => setTimeout(resolve, 50));
    results.get(name).push(await longestStall(fetchOnce));
  }
}

const median = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
console.log(`\n${count} backends${values.traffic ? ', each with traffic counters' : ''}, ${rounds} rounds interleaved (median)\n`);
console.log('| what | body | served in | longest event-loop stall |');
console.log('|---|---:|---:|---:|');
for (const [name, list] of results) {
  const mb = (list[0].bytes / 1e6).toFixed(1);
  console.log(`| ${name} | ${mb} MB | ${median(list.map((r) => r.ms)).toFixed(0)} ms | ${median(list.map((r) => r.maxStallMs)).toFixed(0)} ms |`);
}
server.close();
streamedStats.close();
lb.close();
