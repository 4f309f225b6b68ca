/**
 * Rendezvous hashing, or highest random weight (Thaler & Ravishankar, "Using Name-Based Mappings to
 * Increase Hit Rates", IEEE/ACM ToN 1998), weighted as in Schindelhauer & Schomaker's "Weighted
 * Distributed Hash Tables" (2005): every backend scores the key, the highest score wins, and the
 * attempt-th retry takes the attempt-th highest score.
 *
 * Score: `−weight / ln(u)` with `u = (h + 0.5) / 2^32` uniform in (0, 1), where `h` is a 32-bit hash
 * of (key, backend id). For independent uniform `u`, the backend with the highest score wins with
 * probability exactly `weight / Σ weight`, and a backend's score does not depend on the others — so
 * removing a backend moves exactly the keys it held and nothing else, and a weight change moves keys
 * only to or from that backend. This is the strongest stability of the hashing balancers, paid for
 * with an O(n) `pick`: every backend must be scored (one multiply-xorshift mix and one `Math.log`
 * each). Prefer ring-hash or maglev beyond a few hundred backends.
 *
 * `h` mixes the key's murmur3 (computed once per pick) with a per-backend murmur3 of the **id**
 * (computed once per `update`), exactly as MurmurHash3 would hash the 8 bytes `keyHash ‖ idHash`
 * (`hashPair`: two blocks and the finalizer), so each (key, backend) pair gets a well-spread,
 * independent-looking value without hashing the key n times or building a string per backend. Ids,
 * not positions, so the result is the same in every process and in any listing order; ties go to the
 * smaller id.
 *
 * No options. `pick(key, attempt)` for attempt > 0 finds the attempt-th highest score by repeated
 * bounded selection over a score buffer allocated in `update`: O(n·(attempt + 1)), no allocation.
 */
import type { Backend } from '../backend';
import { hash32, hashPair, murmur3 } from '../hash';
import { KeylessRoundRobin, eligibleById } from './hashed-members';
import type { Balancer } from './balancer';
import { WEIGHTED_SHARES } from './weights';

// Distinct from the key's seed (0) so an id and an equal key never hash alike.
const ID_SEED = 0x72656e64; // "rend"

const TWO_TO_32 = 4294967296;

export class Rendezvous implements Balancer {
  readonly name = 'rendezvous';
  /** Keys spread in proportion to weight. */
  readonly shares = WEIGHTED_SHARES;
  readonly hashing = true;

  /** Eligible backends (positive `effectiveWeight`) sorted by id, so ties go to the smaller id. */
  private backends: readonly Backend[] = [];
  private idHashes = new Int32Array(0);
  private weights = new Float64Array(0);
  /** Scratch space for one pick's scores. */
  private scores = new Float64Array(0);
  /** Key-less picks spread round-robin. */
  private readonly keyless = new KeylessRoundRobin();

  update(backends: readonly Backend[]): void {
    const eligible = eligibleById(backends);
    const idHashes = new Int32Array(eligible.length);
    const weights = new Float64Array(eligible.length);
    for (let i = 0; i < eligible.length; i++) {
      const backend = eligible[i] as Backend;
      idHashes[i] = murmur3(backend.id, ID_SEED);
      weights[i] = backend.effectiveWeight;
    }
    this.backends = eligible;
    this.idHashes = idHashes;
    this.weights = weights;
    this.scores = new Float64Array(eligible.length);
    this.keyless.reset();
  }

  pick(key?: string, attempt = 0): Backend | undefined {
    const count = this.backends.length;
    if (count === 0) return undefined;
    if (key === undefined) return this.keyless.next(this.backends);
    const keyHash = hash32(key) >>> 0;
    const wanted = attempt > 0 ? Math.floor(attempt) % count : 0;
    if (wanted === 0) {
      let best = 0;
      let bestScore = -1;
      for (let i = 0; i < count; i++) {
        const score = this.score(keyHash, i);
        // Strictly greater: on a tie the earlier (smaller) id stays.
        if (score > bestScore) {
          bestScore = score;
          best = i;
        }
      }
      return this.backends[best];
    }
    const scores = this.scores;
    for (let i = 0; i < count; i++) scores[i] = this.score(keyHash, i);
    // Selection in (score descending, index ascending) order: each round finds the best entry
    // ranked strictly after the previous round's, so `wanted` + 1 rounds reach the wanted rank.
    let previous = -1;
    let previousScore = Infinity;
    for (let round = 0; round <= wanted; round++) {
      let best = -1;
      let bestScore = -1;
      for (let i = 0; i < count; i++) {
        const score = scores[i] as number;
        const after = score < previousScore || (score === previousScore && i > previous);
        if (after && score > bestScore) {
          bestScore = score;
          best = i;
        }
      }
      previous = best;
      previousScore = bestScore;
    }
    return this.backends[previous];
  }

  private score(keyHash: number, index: number): number {
    const mixed = hashPair(keyHash, this.idHashes[index] as number);
    return -(this.weights[index] as number) / Math.log((mixed + 0.5) / TWO_TO_32);
  }
}
