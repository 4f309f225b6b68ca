/**
 * What the three hashing balancers (Maglev, ring hash, rendezvous) share outside their tables: which
 * backends they place — those with a positive `effectiveWeight`, in id order, so every process builds
 * the same table from the same set whatever order it was listed in — and how they answer a pick
 * without a key: round-robin over those backends (a key-less request has no affinity to keep, and
 * round-robin spreads it evenly at the cost of one counter).
 */
import type { Backend } from '../backend';

/** The backends a hashing balancer places, sorted by id. */
export function eligibleById(backends: readonly Backend[]): Backend[] {
  return backends.filter((b) => b.effectiveWeight > 0).sort(compareIds);
}

function compareIds(a: Backend, b: Backend): number {
  // Code-unit order, not locale order: it must be the same on every host.
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Key-less picks of a hashing balancer: round-robin over its eligible backends. */
export class KeylessRoundRobin {
  #cursor = 0;

  /** Start over (call on every `update`). */
  reset(): void {
    this.#cursor = 0;
  }

  /** The next of `backends` (non-empty: the caller has checked). */
  next(backends: readonly Backend[]): Backend | undefined {
    const cursor = this.#cursor;
    this.#cursor = cursor + 1 === backends.length ? 0 : cursor + 1;
    return backends[cursor];
  }
}
