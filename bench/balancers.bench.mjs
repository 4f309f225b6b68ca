/**
 * `pick()` of every built-in balancer at 1000 backends, each next to the reference a user would
 * otherwise write or install, in the same process and the same run:
 *
 * - round-robin vs a bare `arr[i++ % n]` (target: within 3×);
 * - smooth WRR vs nginx's O(n) scan (`ngx_http_upstream_get_peer`, transcribed below) (target ≤ 10 ns);
 * - least-connections vs a naive O(n) scan for the lowest HAProxy fwlc key (0 when idle, else
 *   (inflight + 1) / weight);
 * - p2c (target ≤ 25 ns) and peak-ewma with equal weights and with weights 1–10, random, first;
 * - the hashing balancers vs `murmur3(key) % n` (the floor: one hash, no table) and the `hashring`
 *   npm package, all with the same 10,000 pre-generated keys cycled so that string hashing is
 *   included in every pick (target for Maglev ≤ 30 ns).
 *
 * Every result goes through mitata's `do_not_optimize` so no pick is dead-code eliminated.
 * Targets are judged on the median sample (p50): the machine is a shared 2-core VM, and the median
 * is what a hiccup on a neighbour moves least.
 */
import HashRing from 'hashring';
import { bench, do_not_optimize, group, run, summary } from 'mitata';
import { loadCore, makeKeys, makeSpecs, mitataStats, report, row } from './run.mjs';

const core = await loadCore();
const testing = await loadCore('testing');
const { createBalancer, murmur3 } = core;

const N = 1000;
const equalSpecs = makeSpecs(N, 'equal');
const mixedSpecs = makeSpecs(N, 'mixed');
const equal = testing.createBackends(equalSpecs);
const mixed = testing.createBackends(mixedSpecs);
// The same weights 1–10, with load: the weighted comparison of p2c and peak-ewma.
const mixedLoaded = testing.createBackends(mixedSpecs);

// Least-connections, p2c and peak-ewma read live load: give the backends a spread of inflight
// counts and latencies (deterministic), as a busy pool would have.
for (let i = 0; i < N; i++) {
  testing.setBackendLoad(equal[i], { inflight: (i * 7919) % 23, latencyEwma: 5 + ((i * 104729) % 50) });
  testing.setBackendLoad(mixedLoaded[i], { inflight: (i * 7919) % 23, latencyEwma: 5 + ((i * 104729) % 50) });
}

function balancer(name, backends, options = {}) {
  const b = createBalancer(name, options);
  b.update(backends);
  return b;
}

/** A balancer without hooks, for the naive reference's inflight bookkeeping. */
const NO_HOOKS = { name: 'none', update() {}, pick() {} };
const OK = Object.freeze({ ok: true });

const KEYS = makeKeys(10_000);
const K = KEYS.length;

// ------------------------------------------------------------------ references

/**
 * nginx's smooth weighted round robin as nginx runs it (ngx_http_upstream_round_robin.c,
 * `ngx_http_upstream_get_peer`): every pick walks every peer, adds its effective weight to its
 * current weight, keeps the largest, and takes the total off the winner. O(n) per pick.
 */
function nginxSmoothWeightedRoundRobin(backends) {
  const peers = backends.map((backend) => ({
    backend,
    weight: backend.effectiveWeight,
    effectiveWeight: backend.effectiveWeight,
    currentWeight: 0,
  }));
  return function pick() {
    let best = null;
    let total = 0;
    for (let i = 0; i < peers.length; i++) {
      const peer = peers[i];
      peer.currentWeight += peer.effectiveWeight;
      total += peer.effectiveWeight;
      if (peer.effectiveWeight < peer.weight) peer.effectiveWeight++;
      if (best === null || peer.currentWeight > best.currentWeight) best = peer;
    }
    best.currentWeight -= total;
    return best.backend;
  };
}

/** Least connections the obvious way: scan for the lowest (inflight + 1) / weight, first on a tie. */
function naiveLeastConnections(backends) {
  return function pick() {
    let best = backends[0];
    let bestLoad = best.inflight === 0 ? 0 : (best.inflight + 1) / best.effectiveWeight;
    for (let i = 1; i < backends.length; i++) {
      const b = backends[i];
      const load = b.inflight === 0 ? 0 : (b.inflight + 1) / b.effectiveWeight;
      if (load < bestLoad) {
        best = b;
        bestLoad = load;
      }
    }
    return best;
  };
}

// ------------------------------------------------------------------ benches

group('round-robin · 1000 backends', () => {
  summary(() => {
    bench('bare arr[i++ % n]', function* () {
      const arr = equal.slice();
      const n = arr.length;
      let i = 0;
      yield () => do_not_optimize(arr[i++ % n]);
    }).baseline(true);
    bench('RoundRobin.pick()', function* () {
      const rr = balancer('round-robin', equal);
      yield () => do_not_optimize(rr.pick());
    });
  });
});

group('smooth weighted round-robin · 1000 backends, weights 1–10', () => {
  summary(() => {
    bench('nginx O(n) smooth WRR scan', function* () {
      const pick = nginxSmoothWeightedRoundRobin(mixed);
      yield () => do_not_optimize(pick());
    }).baseline(true);
    bench('SmoothWeightedRoundRobin.pick()', function* () {
      const wrr = balancer('weighted-round-robin', mixed);
      yield () => do_not_optimize(wrr.pick());
    });
  });
});

group('least-connections · 1000 backends, inflight 0–22', () => {
  summary(() => {
    bench('naive O(n) least-connections scan', function* () {
      const pick = naiveLeastConnections(equal);
      yield () => do_not_optimize(pick());
    }).baseline(true);
    bench('LeastConnections.pick()', function* () {
      const lc = balancer('least-connections', equal);
      yield () => do_not_optimize(lc.pick());
    });
    // A request's whole cost to the balancer: choose, then the inflight changes it must track.
    bench('naive scan + inflight ±1', function* () {
      const pick = naiveLeastConnections(equal);
      yield () => {
        const b = pick();
        testing.simulateAcquire(NO_HOOKS, b);
        testing.simulateRelease(NO_HOOKS, b, OK);
        return do_not_optimize(b);
      };
    });
    bench('LeastConnections pick + acquired/released', function* () {
      const lc = balancer('least-connections', equal);
      yield () => {
        const b = lc.pick();
        testing.simulateAcquire(lc, b);
        testing.simulateRelease(lc, b, OK);
        return do_not_optimize(b);
      };
    });
  });
});

group('load-aware and random · 1000 backends', () => {
  summary(() => {
    bench('PowerOfTwoChoices.pick()', function* () {
      const p2c = balancer('p2c', equal);
      yield () => do_not_optimize(p2c.pick());
    });
    bench('PowerOfTwoChoices.pick() (weights 1–10)', function* () {
      const p2c = balancer('p2c', mixedLoaded);
      yield () => do_not_optimize(p2c.pick());
    });
    bench('PeakEwma.pick()', function* () {
      const ewma = balancer('peak-ewma', equal);
      yield () => do_not_optimize(ewma.pick());
    });
    bench('PeakEwma.pick() (weights 1–10)', function* () {
      const ewma = balancer('peak-ewma', mixedLoaded);
      yield () => do_not_optimize(ewma.pick());
    });
    bench('WeightedRandom.pick() (weights 1–10)', function* () {
      const random = balancer('random', mixed);
      yield () => do_not_optimize(random.pick());
    });
    bench('FirstAvailable.pick()', function* () {
      const first = balancer('first', equal);
      yield () => do_not_optimize(first.pick());
    });
  });
});

group('hashing · 1000 backends, 10k distinct keys cycled', () => {
  summary(() => {
    bench('murmur3(key) % n (hash floor)', function* () {
      const arr = equal.slice();
      let k = 0;
      yield () => {
        const key = KEYS[k];
        if (++k === K) k = 0;
        return do_not_optimize(arr[murmur3(key) % N]);
      };
    }).baseline(true);
    bench('Maglev.pick(key)', function* () {
      const maglev = balancer('maglev', equal);
      let k = 0;
      yield () => {
        const key = KEYS[k];
        if (++k === K) k = 0;
        return do_not_optimize(maglev.pick(key));
      };
    });
    bench('RingHash.pick(key)', function* () {
      const ring = balancer('ring-hash', equal);
      let k = 0;
      yield () => {
        const key = KEYS[k];
        if (++k === K) k = 0;
        return do_not_optimize(ring.pick(key));
      };
    });
    bench('BoundedLoad(ring-hash).pick(key)', function* () {
      const bounded = balancer('bounded-load', equal);
      let k = 0;
      yield () => {
        const key = KEYS[k];
        if (++k === K) k = 0;
        return do_not_optimize(bounded.pick(key));
      };
    });
    bench('Rendezvous.pick(key) (O(n))', function* () {
      const hrw = balancer('rendezvous', equal);
      let k = 0;
      yield () => {
        const key = KEYS[k];
        if (++k === K) k = 0;
        return do_not_optimize(hrw.pick(key));
      };
    });
    bench('hashring .get(key) (defaults: md5, LRU 5000)', function* () {
      const ring = new HashRing(equalSpecs.map((s) => s.address));
      let k = 0;
      yield () => {
        const key = KEYS[k];
        if (++k === K) k = 0;
        return do_not_optimize(ring.get(key));
      };
    });
    bench('hashring .get(key) (LRU holds every key)', function* () {
      const ring = new HashRing(
        equalSpecs.map((s) => s.address),
        'md5',
        { 'max cache size': 2 * K },
      );
      for (const key of KEYS) ring.get(key);
      let k = 0;
      yield () => {
        const key = KEYS[k];
        if (++k === K) k = 0;
        return do_not_optimize(ring.get(key));
      };
    });
  });
});

const stats = mitataStats(await run());
const p50 = (name) => stats.get(name)?.p50;

const bare = p50('bare arr[i++ % n]');
const rr = p50('RoundRobin.pick()');
const nginx = p50('nginx O(n) smooth WRR scan');
const swrr = p50('SmoothWeightedRoundRobin.pick()');
const hashFloor = p50('murmur3(key) % n (hash floor)');
const maglev = p50('Maglev.pick(key)');
const hashringMiss = p50('hashring .get(key) (defaults: md5, LRU 5000)');

report('balancers', [
  row('balancers', 'SWRR pick (1000, weights 1–10)', swrr, 'ns', 10, `nginx O(n) scan: ${fmtNs(nginx)} (${(nginx / swrr).toFixed(0)}× slower)`),
  row('balancers', 'nginx O(n) smooth WRR scan (reference)', nginx, 'ns'),
  row('balancers', 'RoundRobin pick / bare arr[i++ % n]', rr / bare, 'x', 3, `${fmtNs(rr)} vs ${fmtNs(bare)}`),
  row('balancers', 'RoundRobin pick', rr, 'ns'),
  row('balancers', 'bare arr[i++ % n] (reference)', bare, 'ns'),
  row('balancers', 'P2C pick', p50('PowerOfTwoChoices.pick()'), 'ns', 25),
  row('balancers', 'P2C pick (weights 1–10)', p50('PowerOfTwoChoices.pick() (weights 1–10)'), 'ns'),
  row('balancers', 'Maglev pick(key), string hashing', maglev, 'ns', 30, `hash floor ${fmtNs(hashFloor)}; hashring ${fmtNs(hashringMiss)}`),
  row('balancers', 'murmur3(key) % n (reference)', hashFloor, 'ns'),
  row('balancers', 'RingHash pick(key)', p50('RingHash.pick(key)'), 'ns'),
  row('balancers', 'BoundedLoad(ring-hash) pick(key)', p50('BoundedLoad(ring-hash).pick(key)'), 'ns'),
  row('balancers', 'Rendezvous pick(key) (O(n))', p50('Rendezvous.pick(key) (O(n))'), 'ns'),
  row('balancers', 'hashring get(key), defaults (reference)', hashringMiss, 'ns'),
  row('balancers', 'hashring get(key), all cached (reference)', p50('hashring .get(key) (LRU holds every key)'), 'ns'),
  row('balancers', 'LeastConnections pick', p50('LeastConnections.pick()'), 'ns'),
  row('balancers', 'naive O(n) least-conn scan (reference)', p50('naive O(n) least-connections scan'), 'ns'),
  row('balancers', 'LeastConnections pick+acquired+released', p50('LeastConnections pick + acquired/released'), 'ns'),
  row('balancers', 'naive scan + inflight ±1 (reference)', p50('naive scan + inflight ±1'), 'ns'),
  row('balancers', 'PeakEwma pick', p50('PeakEwma.pick()'), 'ns'),
  row('balancers', 'PeakEwma pick (weights 1–10)', p50('PeakEwma.pick() (weights 1–10)'), 'ns'),
  row('balancers', 'WeightedRandom pick', p50('WeightedRandom.pick() (weights 1–10)'), 'ns'),
  row('balancers', 'FirstAvailable pick', p50('FirstAvailable.pick()'), 'ns'),
]);

function fmtNs(v) {
  return v === undefined ? 'n/a' : v >= 1000 ? `${(v / 1000).toFixed(2)} µs` : `${v.toFixed(1)} ns`;
}
