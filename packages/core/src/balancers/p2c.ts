/**
 * Power of two choices (M. Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing",
 * 2001): draw two backends at random and send the request to the less loaded one. Comparing two
 * random candidates rather than all n keeps the maximum load within O(log log n) of the average —
 * exponentially better than one random choice — while costing O(1), and, unlike a global
 * least-connections, it does not stampede many independent load balancers onto the same idle
 * backend, because each sees a different random pair. tower and Finagle balance this way, as does
 * Envoy's `LEAST_REQUEST` with its default of two choices; it is Fulcrum's default algorithm.
 *
 * Weighted so that shares follow weights at every load. The candidates are drawn in proportion to
 * `effectiveWeight` (Vose's alias method, O(1)); the second is drawn by weight among the others, so
 * the two are distinct whenever two or more backends are eligible (O(1) unless one backend holds most
 * of the total weight; see `AliasTable.sampleOther`); with one backend, it is returned. The load
 * compared is `inflight / effectiveWeight`, and a tie goes to the **first** candidate:
 * - when load is equal — above all one request at a time, when every backend is idle — every
 *   comparison is a tie, the first candidate wins, and it was drawn with probability `w / Σw`: shares
 *   follow weights exactly (in expectation) at concurrency 1;
 * - under load, a backend keeps winning comparisons until its in-flight count is proportional to its
 *   weight, so shares follow weights at concurrency N as well.
 * The earlier key, `(inflight + 1) / weight`, made the heavier of two idle candidates win every time:
 * with weights 3 : 1 : 2 and serial requests the weight-1 backend got no traffic at all, since it
 * lost to both others.
 *
 * Why not Envoy's rule for unequal weights (`LEAST_REQUEST` switches to EDF scheduling by
 * `weight / (active + 1)^bias`, default bias 1): it follows weights at concurrency 1, but under
 * sustained load the active count it divides by grows with the traffic it attracts, so shares drift
 * toward `√weight` — weights 1 : 4 with 100 requests in flight get 33 % : 67 %, not 20 % : 80 % (a
 * closed-loop simulation of that scheduler). Fulcrum's weights mean capacity, so the rule above keeps
 * them at every load, with no scheduler state to keep and an O(1) pick.
 * When every weight is equal (most pools), one random number gives both candidates
 * (`AliasTable.samplePair`) and the comparison is of `inflight` alone, which orders exactly as the
 * weighted load does.
 *
 * A retry (`attempt > 0`) simply draws a new pair. Option: `random` (default `defaultRandom`, unseeded), the only
 * source of randomness, so a seeded one replays every decision.
 */
import type { Backend } from '../backend';
import type { Balancer, BalancerOptions } from './balancer';
import { readOptions, readRandom } from './options';
import { TwoChoices } from './two-choices';
import { WEIGHTED_SHARES } from './weights';

export class PowerOfTwoChoices extends TwoChoices implements Balancer {
  readonly name = 'p2c';
  /** Weighted shares one request at a time (ties go to a candidate drawn by weight) and under load. */
  readonly shares = WEIGHTED_SHARES;

  /** @param options `random`: a function returning numbers in [0, 1); default `defaultRandom`, unseeded. */
  constructor(options?: BalancerOptions) {
    super(readRandom(readOptions(options)));
  }

  pick(_key?: string, _attempt?: number): Backend | undefined {
    const table = this.table;
    const first = table.samplePair(this.random);
    if (first < 0) return undefined;
    const second = table.pairSecond;
    const members = this.members;
    const a = members[first]!;
    if (second === first) return a;
    const b = members[second]!;
    // With equal weights, inflight / weight orders exactly as inflight does. Strictly less: a tie
    // (both idle, say) keeps the first candidate, drawn in proportion to weight (see the header).
    const inverse = this.inverseWeights;
    const secondWins = table.uniform ? +(b.inflight < a.inflight) : +(b.inflight * inverse[second]! < a.inflight * inverse[first]!);
    // Arithmetic rather than a branch: which candidate wins is a coin flip to the CPU's predictor.
    return members[first + (second - first) * secondWins];
  }
}
