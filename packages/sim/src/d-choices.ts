/**
 * The power of d choices (Azar, Broder, Karlin and Upfal, "Balanced Allocations", 1994; Mitzenmacher,
 * "The Power of Two Choices in Randomized Load Balancing", 1996): sample `d` backends uniformly at
 * random, with replacement, and take the one with the fewest requests in flight (the first sampled on
 * a tie). Core's `p2c` is the d = 2 case with weights; this `Balancer` exists so the simulator can show
 * what a third choice buys (little: ln ln n / ln d) against the first two (exponentially much).
 *
 * Weights are not used beyond excluding backends whose effective weight is 0. Allocation-free `pick`.
 */
import type { Backend, Balancer, Random } from '@fulcrum/core';
import { InvalidOptionError } from '@fulcrum/core';
import { finiteNumber } from '@fulcrum/core/validate';

export class PowerOfDChoices implements Balancer {
  readonly name: string;
  readonly d: number;
  readonly #random: Random;
  #members: Backend[] = [];

  /** @param d Choices per pick, an integer 1..16 (1 is uniform random). */
  constructor(d: number, random: Random) {
    finiteNumber('d', d, { min: 1, max: 16, integer: true });
    if (typeof random !== 'function') throw new InvalidOptionError('random', random, 'must be a function returning a number in [0, 1)');
    this.d = d;
    this.#random = random;
    this.name = `d-choices-${d}`;
  }

  update(backends: readonly Backend[]): void {
    this.#members = backends.filter((b) => b.effectiveWeight > 0);
  }

  pick(): Backend | undefined {
    const members = this.#members;
    const n = members.length;
    if (n === 0) return undefined;
    let best = members[Math.floor(this.#random() * n)]!;
    for (let i = 1; i < this.d; i++) {
      const candidate = members[Math.floor(this.#random() * n)]!;
      if (candidate.inflight < best.inflight) best = candidate;
    }
    return best;
  }
}
