/**
 * What power of two choices and peak EWMA share: both draw two distinct candidates in proportion to
 * `effectiveWeight` (Vose's alias method, O(1)) and weigh each candidate's load by
 * `1 / effectiveWeight`. This base builds that state on `update`; each subclass writes its own
 * `pick`, which is only its comparison — kept in the subclass so the hot path has no extra call.
 */
import type { Backend } from '../backend';
import type { Random } from '../random';
import { AliasTable } from './alias-table';
import { selectableBackends } from './weights';

export abstract class TwoChoices {
  protected readonly random: Random;
  protected readonly table = new AliasTable();
  protected members: Backend[] = [];
  /** Member index → 1 / effectiveWeight, so that a comparison reads fewer fields of each backend. */
  protected inverseWeights = new Float64Array(0);

  protected constructor(random: Random) {
    this.random = random;
  }

  update(backends: readonly Backend[]): void {
    const members = selectableBackends(backends);
    const weights = members.map((b) => b.effectiveWeight);
    this.table.build(weights);
    this.inverseWeights = Float64Array.from(weights, (w) => 1 / w);
    this.members = members;
  }
}
