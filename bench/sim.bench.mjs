/**
 * The simulator (issue 23): simulated requests per second on one core for a 10-backend P2C scenario
 * (10 backends × 4 workers, exponential service of mean 10 ms, Poisson arrivals at 70 % of capacity,
 * 2,000,000 requests) — target ≥ 1,000,000 requests/s, i.e. ≤ 1000 ns per simulated request —
 * against, in the same run and interleaved, a bare discrete-event loop written here: the same
 * model with a typed-array heap, an inline power-of-two-choices over an `Int32Array` of queue
 * lengths, and a running mean instead of histograms. The bare loop is the floor (what the event
 * queue and the random draws cost); the difference is the real `LoadBalancer` (`acquire()` and
 * `release()`, a `Lease` per request, latency EWMA) plus the simulator's statistics.
 *
 * Method: one warm-up run of each, then ROUNDS rounds alternating the two; each row is the median
 * round. Each run is timed twice: by the wall clock, and by the CPU time this process was given
 * (`process.cpuUsage()`, user + system). The target is judged on CPU time — "on one core" — because
 * on a shared machine whose load average is several times its core count the wall clock mostly
 * measures the wait for a core; both are reported. `@fulcrum/sim` is imported from its BUILT dist.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BENCH_DIR, prng, report, row } from './run.mjs';

const SIM_DIST = join(BENCH_DIR, '..', 'packages', 'sim', 'dist', 'index.js');
if (!existsSync(SIM_DIST)) {
  console.error(`@fulcrum/sim is not built (${SIM_DIST} is missing). Build it: cd packages/sim && ../../node_modules/.bin/tsup --config tsup.config.ts`);
  process.exit(2);
}
const { simulate } = await import(pathToFileURL(SIM_DIST).href);

const BACKENDS = 10;
const WORKERS = 4;
const MEAN_MS = 10;
const UTILIZATION = 0.7;
const RATE_PER_MS = (UTILIZATION * BACKENDS * WORKERS) / MEAN_MS;
const REQUESTS = 2_000_000;
const DURATION_MS = REQUESTS / RATE_PER_MS;
const ROUNDS = Number(process.env.SIM_BENCH_ROUNDS ?? 5);

const scenario = {
  name: 'bench: 10 backends, p2c',
  seed: 1,
  durationMs: DURATION_MS,
  backends: [{ id: 'b', count: BACKENDS, concurrency: WORKERS, service: { type: 'exponential', meanMs: MEAN_MS } }],
  arrivals: { type: 'poisson', ratePerSecond: RATE_PER_MS * 1000 },
};

/** CPU milliseconds this process has used (user + system). */
function cpuMs() {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

function runFulcrum() {
  const cpu = cpuMs();
  const start = performance.now();
  const result = simulate(scenario, 'p2c');
  return { ms: performance.now() - start, cpuMs: cpuMs() - cpu, requests: result.requests, meanMs: result.meanMs };
}

/** The same model as bare as it gets: no load balancer, no statistics beyond a mean. */
function runBare() {
  const random = prng(1);
  let capacity = 1024;
  let times = new Float64Array(capacity);
  let kinds = new Int32Array(capacity); // -1 arrival, else backend index of a finishing request
  let starts = new Float64Array(capacity);
  let size = 0;
  const push = (t, kind, startedAt) => {
    if (size === capacity) {
      capacity *= 2;
      const t2 = new Float64Array(capacity);
      t2.set(times);
      times = t2;
      const k2 = new Int32Array(capacity);
      k2.set(kinds);
      kinds = k2;
      const s2 = new Float64Array(capacity);
      s2.set(starts);
      starts = s2;
    }
    let i = size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (times[p] <= t) break;
      times[i] = times[p];
      kinds[i] = kinds[p];
      starts[i] = starts[p];
      i = p;
    }
    times[i] = t;
    kinds[i] = kind;
    starts[i] = startedAt;
  };
  let popTime = 0,
    popKind = 0,
    popStart = 0;
  const pop = () => {
    popTime = times[0];
    popKind = kinds[0];
    popStart = starts[0];
    const last = --size;
    const t = times[last],
      k = kinds[last],
      s = starts[last];
    let i = 0;
    for (;;) {
      let c = 2 * i + 1;
      if (c >= last) break;
      if (c + 1 < last && times[c + 1] < times[c]) c++;
      if (t <= times[c]) break;
      times[i] = times[c];
      kinds[i] = kinds[c];
      starts[i] = starts[c];
      i = c;
    }
    times[i] = t;
    kinds[i] = k;
    starts[i] = s;
  };
  const inflight = new Int32Array(BACKENDS);
  const busy = new Int32Array(BACKENDS);
  const queues = Array.from({ length: BACKENDS }, () => []);
  const cpu = cpuMs();
  const start = performance.now();
  let requests = 0;
  let sum = 0;
  push(-Math.log(1 - random()) / RATE_PER_MS, -1, 0);
  while (size > 0) {
    pop();
    const now = popTime;
    if (popKind === -1) {
      const next = now - Math.log(1 - random()) / RATE_PER_MS;
      if (next < DURATION_MS) push(next, -1, 0);
      const a = Math.floor(random() * BACKENDS);
      const b = Math.floor(random() * BACKENDS);
      const chosen = inflight[b] < inflight[a] ? b : a;
      inflight[chosen]++;
      if (busy[chosen] < WORKERS) {
        busy[chosen]++;
        push(now - MEAN_MS * Math.log(1 - random()), chosen, now);
      } else queues[chosen].push(now);
    } else {
      const backend = popKind;
      inflight[backend]--;
      requests++;
      sum += now - popStart;
      const queue = queues[backend];
      if (queue.length > 0) push(now - MEAN_MS * Math.log(1 - random()), backend, queue.shift());
      else busy[backend]--;
    }
  }
  return { ms: performance.now() - start, cpuMs: cpuMs() - cpu, requests, meanMs: sum / requests };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

runFulcrum();
runBare();
const runs = { fulcrumCpu: [], fulcrumWall: [], bareCpu: [], bareWall: [] };
for (let round = 0; round < ROUNDS; round++) {
  const f = runFulcrum();
  const b = runBare();
  runs.fulcrumCpu.push((f.cpuMs * 1e6) / f.requests);
  runs.fulcrumWall.push((f.ms * 1e6) / f.requests);
  runs.bareCpu.push((b.cpuMs * 1e6) / b.requests);
  runs.bareWall.push((b.ms * 1e6) / b.requests);
  console.log(
    `round ${round + 1}: @fulcrum/sim ${(f.requests / f.cpuMs / 1000).toFixed(2)} M req/CPU-s, ${(f.requests / f.ms / 1000).toFixed(2)} M req/wall-s (mean ${f.meanMs.toFixed(2)} ms); ` +
      `bare loop ${(b.requests / b.cpuMs / 1000).toFixed(2)} M req/CPU-s, ${(b.requests / b.ms / 1000).toFixed(2)} M req/wall-s (mean ${b.meanMs.toFixed(2)} ms)`,
  );
}
const fulcrumCpu = median(runs.fulcrumCpu);
const bareCpu = median(runs.bareCpu);
const fulcrumWall = median(runs.fulcrumWall);
const bareWall = median(runs.bareWall);
const list = (values) => values.map((v) => v.toFixed(0)).join(', ');
report('sim', [
  row(
    'sim',
    'simulate(): CPU ns per simulated request, 10-backend p2c (≥ 1M req/s on one core)',
    fulcrumCpu,
    'ns',
    1000,
    `${(1000 / fulcrumCpu).toFixed(2)} M req/CPU-s; runs ${list(runs.fulcrumCpu)}`,
  ),
  row(
    'sim',
    'simulate(): wall ns per simulated request',
    fulcrumWall,
    'ns',
    undefined,
    `${(1000 / fulcrumWall).toFixed(2)} M req/s; runs ${list(runs.fulcrumWall)}`,
  ),
  row(
    'sim',
    'bare event loop, same model (reference): CPU ns per request',
    bareCpu,
    'ns',
    undefined,
    `${(1000 / bareCpu).toFixed(2)} M req/CPU-s; wall ${bareWall.toFixed(0)} ns`,
  ),
  row('sim', 'simulate() / bare loop (CPU time)', fulcrumCpu / bareCpu, 'x', undefined),
]);
