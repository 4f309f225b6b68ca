/**
 * The load balancer's hot path: `lb.acquire()` then `lease.release()` at 1000 backends — a stick-table
 * check (none here), one `pick`, the inflight counter, the `Lease` object, and on release the latency
 * average, counters and balancer hooks. Target: ≤ 100 ns for the default algorithm (p2c).
 *
 * The bare `pick()` of the same balancer runs in the same group, so the difference is the load
 * balancer's own overhead. The default clock is `coarseClock` (one `Date.now()` per millisecond, shared
 * by every request in it; in this synchronous loop, one per 256 reads); the `realClock` rows read
 * `Date.now()` on every call, so they show what each clock read costs on this machine. Judged on the median sample (p50); see balancers.bench.mjs.
 */
import { bench, do_not_optimize, group, run, summary } from 'mitata';
import { loadCore, makeKeys, makeSpecs, mitataStats, report, row } from './run.mjs';

const { createBalancer, createLoadBalancer, realClock } = await loadCore();
const testing = await loadCore('testing');

const N = 1000;
const specs = makeSpecs(N, 'equal');
const KEYS = makeKeys(10_000);
const K = KEYS.length;
const OUTCOME = Object.freeze({ ok: true, durationMs: 12 });

function lbWith(algorithm, clock) {
  return createLoadBalancer({ backends: specs, algorithm, clock });
}

group('acquire() + release() · 1000 backends', () => {
  summary(() => {
    bench('p2c pick() alone', function* () {
      const p2c = createBalancer('p2c');
      p2c.update(testing.createBackends(specs));
      yield () => do_not_optimize(p2c.pick());
    }).baseline(true);
    bench('lb(p2c) acquire() + release()', function* () {
      const lb = lbWith(undefined);
      yield () => {
        const lease = lb.acquire();
        lease.release();
        return do_not_optimize(lease);
      };
    });
    bench('lb(p2c) acquire() + release({ ok, durationMs })', function* () {
      const lb = lbWith('p2c');
      yield () => {
        const lease = lb.acquire();
        lease.release(OUTCOME);
        return do_not_optimize(lease);
      };
    });
    bench('lb(p2c, realClock) acquire() + release()', function* () {
      const lb = lbWith('p2c', realClock);
      yield () => {
        const lease = lb.acquire();
        lease.release();
        return do_not_optimize(lease);
      };
    });
    bench('lb(p2c, realClock) acquire() + release({ ok, durationMs })', function* () {
      const lb = lbWith('p2c', realClock);
      yield () => {
        const lease = lb.acquire();
        lease.release(OUTCOME);
        return do_not_optimize(lease);
      };
    });
    bench('Date.now()', () => do_not_optimize(Date.now()));
    bench('lb(round-robin) acquire() + release()', function* () {
      const lb = lbWith('round-robin');
      yield () => {
        const lease = lb.acquire();
        lease.release();
        return do_not_optimize(lease);
      };
    });
    bench('lb(least-connections) acquire() + release()', function* () {
      const lb = lbWith('least-connections');
      yield () => {
        const lease = lb.acquire();
        lease.release();
        return do_not_optimize(lease);
      };
    });
    bench('lb(maglev) acquire({ key }) + release()', function* () {
      const lb = lbWith('maglev');
      const contexts = KEYS.map((key) => ({ key }));
      let k = 0;
      yield () => {
        const lease = lb.acquire(contexts[k]);
        if (++k === K) k = 0;
        lease.release();
        return do_not_optimize(lease);
      };
    });
  });
});

const stats = mitataStats(await run());
const p50 = (name) => stats.get(name)?.p50;

report('lb', [
  row('lb', 'acquire()+release() (p2c, default)', p50('lb(p2c) acquire() + release()'), 'ns', 100, `bare p2c pick ${p50('p2c pick() alone')?.toFixed(1)} ns`),
  row('lb', 'acquire()+release({ok,durationMs}) (p2c)', p50('lb(p2c) acquire() + release({ ok, durationMs })'), 'ns', 100),
  row(
    'lb',
    'acquire()+release() (p2c, realClock: 2 Date.now)',
    p50('lb(p2c, realClock) acquire() + release()'),
    'ns',
    undefined,
    `Date.now() alone ${p50('Date.now()')?.toFixed(1)} ns`,
  ),
  row('lb', 'acquire()+release({ok,durationMs}) (p2c, realClock)', p50('lb(p2c, realClock) acquire() + release({ ok, durationMs })'), 'ns'),
  row('lb', 'acquire()+release() (round-robin)', p50('lb(round-robin) acquire() + release()'), 'ns'),
  row('lb', 'acquire()+release() (least-connections)', p50('lb(least-connections) acquire() + release()'), 'ns'),
  row('lb', 'acquire({key})+release() (maglev)', p50('lb(maglev) acquire({ key }) + release()'), 'ns'),
]);
