/**
 * Weighted random: each request goes to a backend drawn with probability `effectiveWeight / Σ`.
 * Stateless, so any number of independent load balancers agree on the long-run shares without
 * coordinating — the reason to choose it over round robin, whose instances all start on the same
 * backend — but blind to load: prefer `p2c` when backends can fall behind.
 *
 * Draws use Vose's alias method (see alias-table.ts): O(1) per pick, one call to `random` (two
 * above 65,536 backends), whatever the weights. A retry (`attempt > 0`) draws again.
 * Option: `random` (default `defaultRandom`, unseeded); pass a seeded one to replay decisions.
 */
import type { Backend } from '../backend';
import type { Random } from '../random';
import { AliasTable } from './alias-table';
import type { Balancer, BalancerOptions } from './balancer';
import { readOptions, readRandom } from './options';
import { WEIGHTED_SHARES, selectableBackends } from './weights';

export class WeightedRandom implements Balancer {
  readonly name = 'random';
  /** Weighted random: weighted shares within sampling noise, at any load. */
  readonly shares = WEIGHTED_SHARES;
  private readonly random: Random;
  private readonly table = new AliasTable();
  private members: Backend[] = [];

  /** @param options `random`: a function returning numbers in [0, 1); default `defaultRandom`, unseeded. */
  constructor(options?: BalancerOptions) {
    this.random = readRandom(readOptions(options));
  }

  update(backends: readonly Backend[]): void {
    const members = selectableBackends(backends);
    this.table.build(members.map((b) => b.effectiveWeight));
    this.members = members;
  }

  pick(_key?: string, _attempt?: number): Backend | undefined {
    const index = this.table.sample(this.random);
    return index < 0 ? undefined : this.members[index];
  }
}
