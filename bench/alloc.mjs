/**
 * Allocation check: heap bytes per `pick()` for every built-in balancer at 1000 backends (and per
 * `acquire()+release()`, which allocates its `Lease` by design). The design says `pick` allocates
 * nothing; this measures it.
 *
 * Method. Run under `node --expose-gc` with a 64 MB young generation (run.mjs passes
 * `--min-semi-space-size=64 --max-semi-space-size=64`) so that no scavenge runs inside the measured
 * window — a GC there would free bytes and hide an allocation. For each subject: warm up (4 × 100k calls,
 * so TurboFan has optimized the pick and its callers), `gc()`, read `v8.getHeapStatistics()
 * .used_heap_size`, make ITERATIONS calls, read it again. bytes/call = delta / ITERATIONS, the smaller of two windows. A GC
 * observer flags any window a collection interrupted (the run is then retried with fewer calls).
 * Controls prove the method sees allocation: a closure that allocates a 2-field object per call must
 * read ≈ 24–32 B, one that allocates nothing ≈ 0.
 *
 * Run directly: `node --expose-gc --min-semi-space-size=64 --max-semi-space-size=64 alloc.mjs`
 */
import HashRing from 'hashring';
import { PerformanceObserver } from 'node:perf_hooks';
import v8 from 'node:v8';
import { loadCore, makeKeys, makeSpecs, report, row } from './run.mjs';

if (typeof globalThis.gc !== 'function') {
  console.error('alloc.mjs needs --expose-gc (node run.mjs alloc passes it)');
  process.exit(2);
}

const { createBalancer, createLoadBalancer } = await loadCore();
const testing = await loadCore('testing');

const N = 1000;
const ITERATIONS = 1_000_000;
const WARMUP = 100_000;
/** Anything under this many bytes per call is measurement noise (a few hundred bytes over 1M calls). */
const NOISE_BYTES = 0.05;

const specs = makeSpecs(N, 'equal');
const mixedSpecs = makeSpecs(N, 'mixed');
const backends = testing.createBackends(specs);
const mixed = testing.createBackends(mixedSpecs);
for (let i = 0; i < N; i++) {
  testing.setBackendLoad(backends[i], { inflight: (i * 7919) % 23, latencyEwma: 5 + ((i * 104729) % 50) });
}
const KEYS = makeKeys(10_000);
const K = KEYS.length;

let gcCount = 0;
new PerformanceObserver((list) => {
  gcCount += list.getEntries().length;
}).observe({ entryTypes: ['gc'] });

const sink = new Array(1024).fill(null);

function settle() {
  return new Promise((resolve) => setTimeout(resolve, 20));
}

/**
 * Bytes allocated per call of `step(i)`. The loop is a fresh closure per subject so that type
 * feedback from one subject does not make another's loop polymorphic.
 */
async function bytesPerCall(makeStep) {
  for (let iterations = ITERATIONS; iterations >= 10_000; iterations >>= 2) {
    const step = makeStep();
    // Results are stored into a live array so escape analysis cannot elide an allocation the
    // caller would really see (a returned object that is only overwritten can be scalar-replaced).
    const loop = new Function('step', 'n', 'out', 'for (let i = 0; i < n; i++) out[i & 1023] = step(i);');
    // Several warm-up calls: the loop itself must be optimized as a whole (not only on-stack
    // replaced) or its own compilation lands in the window.
    for (let round = 0; round < 4; round++) loop(step, WARMUP, sink);
    // GC observer entries arrive a couple of event-loop turns after the collection (`settle`): the
    // forced ones land before a window opens, and any in the window land before it is judged.
    // Two windows, the smaller kept: a one-off cost in the first (a late recompilation, an inline
    // cache going polymorphic) is not per call, and does not recur in the second.
    let best = Infinity;
    for (let window = 0; window < 2; window++) {
      globalThis.gc();
      await settle();
      const gcBefore = gcCount;
      const before = v8.getHeapStatistics().used_heap_size;
      loop(step, iterations, sink);
      const after = v8.getHeapStatistics().used_heap_size;
      await settle();
      if (gcCount === gcBefore) best = Math.min(best, Math.max(0, (after - before) / iterations));
    }
    if (best !== Infinity) return best;
  }
  return NaN;
}

function balancer(name, list) {
  const b = createBalancer(name);
  b.update(list);
  return b;
}

const keyless =
  (name, list = backends) =>
  () => {
    const b = balancer(name, list);
    return () => b.pick();
  };
const keyed = (name) => () => {
  const b = balancer(name, backends);
  return (i) => b.pick(KEYS[i % K]);
};

const subjects = [
  ['control: allocates nothing', () => () => backends[0]],
  ['control: allocates { a, b } per call', () => (i) => ({ a: i, b: i })],
  ['round-robin pick()', keyless('round-robin')],
  ['weighted-round-robin pick()', keyless('weighted-round-robin', mixed)],
  ['least-connections pick()', keyless('least-connections')],
  ['p2c pick()', keyless('p2c')],
  ['p2c pick() (weights 1–10)', keyless('p2c', mixed)],
  ['peak-ewma pick()', keyless('peak-ewma')],
  ['peak-ewma pick() (weights 1–10)', keyless('peak-ewma', mixed)],
  ['random pick()', keyless('random', mixed)],
  ['first pick()', keyless('first')],
  ['ring-hash pick(key)', keyed('ring-hash')],
  ['maglev pick(key)', keyed('maglev')],
  ['rendezvous pick(key)', keyed('rendezvous')],
  ['bounded-load pick(key)', keyed('bounded-load')],
  [
    'maglev pick(key, attempt 1) (retry walk)',
    () => {
      const b = balancer('maglev', backends);
      return (i) => b.pick(KEYS[i % K], 1);
    },
  ],
  [
    'ring-hash pick(key, attempt 1) (retry walk)',
    () => {
      const b = balancer('ring-hash', backends);
      return (i) => b.pick(KEYS[i % K], 1);
    },
  ],
  [
    'lb(p2c) acquire()+release() (Lease by design)',
    () => {
      const lb = createLoadBalancer({ backends: specs });
      return () => {
        const lease = lb.acquire();
        lease.release();
        return lease;
      };
    },
  ],
  [
    'hashring get(key) (peer, defaults)',
    () => {
      const ring = new HashRing(specs.map((s) => s.address));
      return (i) => ring.get(KEYS[i % K]);
    },
  ],
];

const results = [];
for (const [name, makeStep] of subjects) {
  const bytes = await bytesPerCall(makeStep);
  results.push([name, bytes]);
  console.log(`${name.padEnd(48)} ${Number.isNaN(bytes) ? 'GC in every window' : `${bytes.toFixed(2)} B/call`}`);
}

const rows = results.map(([name, bytes]) => {
  const isPick = / pick\(/.test(name);
  return row('alloc', name, bytes, 'B', isPick ? NOISE_BYTES : undefined, isPick ? 'bytes per pick, must be ~0' : '');
});
report('alloc', rows);
