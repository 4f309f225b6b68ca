/**
 * Power of two choices (M. Mitzenmacher, "The Power of Two Choices in Randomized Load Balancing",
 * 2001): draw two backends at random and send the request to the less loaded one. Comparing two
 * random candidates rather than all n keeps the maximum load within O(log log n) of the average —
 * exponentially better than one random choice — while costing O(1), and, unlike a global
 * least-connections, it does not stampede many independent load balancers onto the same idle
 * backend, because each sees a different random pair. tower and Finagle balance this way, as does
 * Envoy's `LEAST_REQUEST` with its default of two choices; it is Fulcrum's default algorithm.
 *
 * Weighted twice over: the candidates are drawn in proportion to `effectiveWeight` (Vose's alias
 * method, O(1)), so a heavy backend is considered more often, and the load compared is
 * `(inflight + 1) / effectiveWeight`, so it keeps winning until it carries proportionally more
 * requests; `+ 1` makes the heavier of two idle backends win (see least-connections.ts). With two or
 * more backends the candidates are distinct — the second is drawn by weight among the others, which
 * costs O(1) unless one backend holds most of the total weight (see `AliasTable.sampleOther`); with
 * one backend, it is returned. A tie goes to the first candidate, which is itself random. When every
 * weight is equal (most pools), one random number gives both candidates (`AliasTable.samplePair`) and
 * the comparison is of `inflight` alone, which orders exactly as the weighted load does.
 *
 * A retry (`attempt > 0`) simply draws a new pair. Option: `random` (default `defaultRandom`, unseeded), the only
 * source of randomness, so a seeded one replays every decision.
 */
import type { Backend } from '../backend';
import type { Balancer, BalancerOptions } from './balancer';
import { readOptions, readRandom } from './options';
import { TwoChoices } from './two-choices';

export class PowerOfTwoChoices extends TwoChoices implements Balancer {
  readonly name = 'p2c';

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
    // With equal weights, (inflight + 1) / weight orders exactly as inflight does.
    const inverse = this.inverseWeights;
    const secondWins = table.uniform ? +(b.inflight < a.inflight) : +((b.inflight + 1) * inverse[second]! < (a.inflight + 1) * inverse[first]!);
    // Arithmetic rather than a branch: which candidate wins is a coin flip to the CPU's predictor.
    return members[first + (second - first) * secondWins];
  }
}
