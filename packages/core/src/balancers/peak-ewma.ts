/**
 * Peak EWMA: power of two choices (see p2c.ts) on an estimate of how long a request would take,
 *
 *     cost = rtt × (1 + inflight / effectiveWeight)
 *
 * after Finagle's `PeakEwma` load metric and tower's `load::PeakEwma` (`rtt × (pending + 1)`), with
 * the queue counted per unit of weight. Latency joins the signal because inflight alone cannot tell a
 * backend that is idle because it is fast from one that is slow but lightly used.
 *
 * Weights. Candidates are drawn in proportion to `effectiveWeight` (alias method), distinct when two
 * or more backends are eligible, and a tie goes to the first candidate. Dividing only the queue by
 * the weight — not the whole cost, as `rtt × (inflight + 1) / weight` would — keeps two idle
 * backends of equal latency estimates at equal cost whatever their weights, so the tie goes to the
 * candidate drawn by weight; under load, equal latencies settle at in-flight counts proportional to
 * weight. (Dividing the whole cost made the heavier of two idle backends win every comparison, so a
 * light backend got nothing from a serial client.) One request at a time, estimates refreshed at
 * different moments have decayed by different amounts, so the backend used longest ago looks a
 * little cheaper and serial shares lie between weighted and a rotation; no backend is starved
 * (`shares.serial` is `'served'`, which `checkBalancer` checks).
 *
 * `rtt` is `backend.latencyEwma` — peak-sensitive (a slow response raises it at once) and recorded
 * by the load balancer on release (`recordLatency` in backend.ts) — decayed at read time by
 * `exp(−(now − latencyUpdatedAt) / decayMs)`. The decay is tower's: an estimate that is not refreshed
 * fades toward 0, so a backend that was avoided after a slow spell is tried again and gets a chance
 * to post a new sample, instead of being starved on a stale peak forever.
 *
 * A backend with no sample yet (`latencyEwma` 0: new, or recovered — the load balancer forgets the
 * estimate of a backend that comes back from down or from an ejection) is costed as Finagle costs an
 * unmeasured node:
 * - **0 while it has no request in flight**, so it is tried at once — its first request is what
 *   measures it. (A prior RTT here, as tower's, starved it: against measured backends faster than
 *   the prior it lost every comparison until the prior had decayed, and with a clock that moves
 *   little between requests it never got a request at all.)
 * - **a penalty while its first requests are pending**, `defaultRttMs × (1 + inflight / weight)`
 *   decayed from when it joined (tower's default RTT), so it is not flooded before a meaningful
 *   baseline exists (a cold cache, a JIT still warming); Finagle's penalty is effectively infinite,
 *   tower's decays, and the decay keeps a backend whose first request hangs from being shunned for
 *   good.
 * Defaults:
 * - `defaultRttMs` 1000: tower's choice for that penalty.
 * - `decayMs` 10000: Finagle's default decay time (`p2cPeakEwma(decayTime = 10.seconds)`) — long
 *   enough to remember a bad spell across bursts, short enough to forgive it within a minute.
 *
 * Comparing two costs does not need the clock: both decay from the same `now`, so
 * `cost(a) < cost(b)` ⇔ `rttA·loadA·e^(tA/decayMs) < rttB·loadB·e^(tB/decayMs)` and only the gap
 * `tA − tB` between the two refresh times matters. `pick` therefore computes one exponential and
 * no `clock.now()` (`Date.now()` alone costs more than the rest of the pick). The `clock`
 * option serves `cost()`, the absolute figure for diagnostics, where a clock running backwards
 * counts as no time elapsed so that it cannot inflate an estimate.
 *
 * A retry (`attempt > 0`) draws a new pair.
 * Options: `random` (default `defaultRandom`, unseeded), `clock` (default the real clock), `defaultRttMs`,
 * `decayMs`.
 */
import type { Backend } from '../backend';
import type { Clock } from '../clock';
import { optionalNumber } from '../validate/checks';
import type { Balancer, BalancerOptions, ShareContract } from './balancer';
import { readClock, readOptions, readRandom } from './options';
import { TwoChoices } from './two-choices';

/** Latency assumed for a backend with no sample yet while its first requests are pending, in ms (tower's default RTT). */
export const DEFAULT_RTT_MS = 1000;
/** Default decay time of a latency estimate, in ms (Finagle's default). */
export const DEFAULT_DECAY_MS = 10_000;

export class PeakEwma extends TwoChoices implements Balancer {
  readonly name = 'peak-ewma';
  /**
   * Under load with equal latencies, in-flight counts follow weights. One request at a time, equal
   * latencies are never quite equal — an estimate refreshed longer ago has decayed further, so the
   * backend used longest ago looks cheapest — and shares drift toward a rotation; what is promised
   * there is that no backend is starved (each gets at least half its weighted share).
   */
  readonly shares: ShareContract = Object.freeze({ serial: 'served', loaded: 'weighted', exact: false });
  private readonly clock: Clock;
  private readonly defaultRttMs: number;
  private readonly decayMs: number;

  /**
   * @param options `random` (default `defaultRandom`, unseeded); `clock` (default the real clock); `defaultRttMs`,
   * ≥ 0, the latency assumed for an unmeasured backend while its first requests are pending (default
   * 1000); `decayMs`, > 0 (default 10000).
   */
  constructor(options?: BalancerOptions) {
    const o = readOptions(options);
    super(readRandom(o));
    this.clock = readClock(o);
    this.defaultRttMs = optionalNumber('defaultRttMs', o.defaultRttMs, DEFAULT_RTT_MS, { min: 0 });
    this.decayMs = optionalNumber('decayMs', o.decayMs, DEFAULT_DECAY_MS, { min: 0, minExclusive: true });
  }

  pick(_key?: string, _attempt?: number): Backend | undefined {
    const table = this.table;
    const first = table.samplePair(this.random);
    if (first < 0) return undefined;
    const a = this.members[first]!;
    const second = table.pairSecond;
    if (second === first) return a;
    const b = this.members[second]!;
    const inverse = this.inverseWeights;
    const inflightA = a.inflight;
    const inflightB = b.inflight;
    const sampleA = a.latencyEwma;
    const sampleB = b.latencyEwma;
    // No sample: 0 while idle (try it now), the default RTT while its first requests are pending.
    const rttA = sampleA > 0 ? sampleA : inflightA === 0 ? 0 : this.defaultRttMs;
    const rttB = sampleB > 0 ? sampleB : inflightB === 0 ? 0 : this.defaultRttMs;
    const costA = rttA * (1 + inflightA * inverse[first]!);
    const costB = rttB * (1 + inflightB * inverse[second]!);
    // decayed(b) < decayed(a) ⇔ costB < costA · e^((tA − tB) / decayMs): now cancels out (see the
    // header). Past the range of doubles the factor is 0 or Infinity, which still orders correctly;
    // 0 · Infinity is NaN, which keeps `a` — right, as a cost of 0 cannot be beaten.
    const secondWins = +(costB < costA * Math.exp((a.latencyUpdatedAt - b.latencyUpdatedAt) / this.decayMs));
    // Arithmetic rather than a branch: which candidate wins is a coin flip to the CPU's predictor.
    return this.members[first + (second - first) * secondWins];
  }

  /**
   * The expected cost of sending one more request to `backend` at time `now` (see the header), for
   * diagnostics and tests; `pick` compares the same quantity without reading the clock.
   */
  cost(backend: Backend, now: number = this.clock.now()): number {
    const sample = backend.latencyEwma;
    const inflight = backend.inflight;
    const rtt = sample > 0 ? sample : inflight === 0 ? 0 : this.defaultRttMs;
    const elapsed = now - backend.latencyUpdatedAt;
    const decayed = elapsed > 0 ? rtt * Math.exp(-elapsed / this.decayMs) : rtt;
    return decayed * (1 + inflight / backend.effectiveWeight);
  }
}
