/**
 * Ring hash: consistent hashing on a ring of virtual nodes (Karger et al. 1997; the "ketama" layout
 * of libketama, and Envoy's `ring_hash_lb`). Each backend puts points on a 32-bit ring at
 * `murmur3(`${id}_${i}`)`; a key belongs to the first point at or after `murmur3(key)`, wrapping.
 * Retries (`attempt` > 0) walk clockwise to the next distinct backends, so a key's fallbacks are as
 * stable as its first choice.
 *
 * Points are hashed from the backend's **id**, never its position, and ties between equal point
 * hashes go to the smaller id, so the ring depends only on the set of (id, weight) pairs: every
 * instance, in any process, in any listing order, builds the same ring.
 *
 * Size of the ring. Envoy spreads `minRingSize` points over the *normalised* weights, so every
 * membership change resizes every backend's share of points, and some keys move between backends
 * that stayed. We keep Envoy's two bounds but, like HAProxy's `lb_chash` (points = weight × a
 * constant), give each backend a number of points that depends on its own weight only:
 * `max(1, round(effectiveWeight × minRingSize))`. Then removing a backend moves exactly the keys that
 * were on it and nothing else; a weight change (slow start included) moves keys only to or from that
 * backend. So `minRingSize` is read as points per unit of weight: the ring holds at least that many
 * whenever the weights sum to ≥ 1 (any set with one backend at the default weight). Below that —
 * only fractional weights, or every backend deep in slow start — the ring is smaller rather than
 * rescaled. Above `maxRingSize / minRingSize` total weight (8192 weight-1 backends by default) the
 * ring is scaled down to `maxRingSize`, every backend keeping at least one point; only then can a
 * membership change also move a few keys between backends that stayed.
 *
 * Defaults are Envoy's: `minRingSize` 1024 points per unit of weight keeps the standard deviation of
 * a weight-1 backend's share near 1/√1024 ≈ 3 %; `maxRingSize` 8,388,608 (2^23) bounds memory at
 * 64 MiB (a `Uint32Array` of points and an `Int32Array` of owners).
 *
 * Cost: `update` is O(P) hashes plus a radix sort of the P points; `pick(key)` is one murmur3 and a
 * binary search, O(log P); `pick(key, attempt)` walks clockwise until it has met `attempt` + 1
 * distinct backends (about n·ln n points for the last of n backends, bounded by P). Nothing is
 * allocated per pick.
 */
import type { Backend } from '../backend';
import { InvalidOptionError } from '../errors';
import { hash32, murmur3 } from '../hash';
import { optionalNumber } from '../validate/checks';
import { KeylessRoundRobin, eligibleById } from './hashed-members';
import type { Balancer, BalancerOptions } from './balancer';
import { OwnerWalk } from './owner-walk';
import { WEIGHTED_SHARES } from './weights';

/** Envoy's default lower bound on the number of points. */
export const DEFAULT_MIN_RING_SIZE = 1024;
/** Envoy's default (and largest allowed) upper bound on the number of points: 2^23. */
export const DEFAULT_MAX_RING_SIZE = 8_388_608;

export interface RingHashConfig {
  readonly minRingSize: number;
  readonly maxRingSize: number;
}

export class RingHash implements Balancer {
  readonly name = 'ring-hash';
  /** Keys spread in proportion to weight. */
  readonly shares = WEIGHTED_SHARES;
  readonly hashing = true;
  readonly config: RingHashConfig;

  /** Eligible backends (positive `effectiveWeight`) sorted by id; the ring stores indices into it. */
  private backends: readonly Backend[] = [];
  /** Point hashes in ascending order. */
  private points = new Uint32Array(0);
  /** `owners[i]` is the index in `backends` of the backend that owns `points[i]`. */
  private owners = new Int32Array(0);
  /** Finds retries' next distinct backends. */
  private readonly walker = new OwnerWalk();
  /** Key-less picks spread round-robin. */
  private readonly keyless = new KeylessRoundRobin();

  constructor(options: BalancerOptions = {}) {
    const minRingSize = optionalNumber('minRingSize', options.minRingSize, DEFAULT_MIN_RING_SIZE, {
      min: 1,
      max: DEFAULT_MAX_RING_SIZE,
      integer: true,
    });
    const maxRingSize = optionalNumber('maxRingSize', options.maxRingSize, DEFAULT_MAX_RING_SIZE, {
      min: 1,
      max: DEFAULT_MAX_RING_SIZE,
      integer: true,
    });
    if (maxRingSize < minRingSize) {
      throw new InvalidOptionError('maxRingSize', maxRingSize, `must be ≥ minRingSize (${minRingSize})`);
    }
    this.config = Object.freeze({ minRingSize, maxRingSize });
  }

  /** The number of points on the ring (for observability and tests). */
  get ringSize(): number {
    return this.points.length;
  }

  update(backends: readonly Backend[]): void {
    const eligible = eligibleById(backends);
    const { minRingSize, maxRingSize } = this.config;
    if (eligible.length > maxRingSize) {
      throw new InvalidOptionError('maxRingSize', maxRingSize, `must be at least the number of backends (${eligible.length}), so each gets a point`);
    }
    let totalWeight = 0;
    for (const backend of eligible) totalWeight += backend.effectiveWeight;

    // Scaling up when the weights sum below 1 would break the guarantee that only a leaving
    // backend's keys move, so such a ring simply holds fewer points; scaling down past
    // maxRingSize cannot be avoided (memory), and is where that guarantee is given up.
    let pointsPerWeight = minRingSize;
    if (totalWeight * pointsPerWeight > maxRingSize) pointsPerWeight = maxRingSize / totalWeight;

    const counts = new Int32Array(eligible.length);
    let size = 0;
    for (let i = 0; i < eligible.length; i++) {
      // At least one point, so a backend with a sliver of weight still receives its keys (Envoy).
      const count = Math.max(1, Math.round((eligible[i] as Backend).effectiveWeight * pointsPerWeight));
      counts[i] = count;
      size += count;
    }
    // Rounding up the slivers can overshoot the bound by at most one point per backend; take the
    // excess from the largest backends, where one point is the smallest relative change.
    while (size > maxRingSize) {
      let largest = 0;
      for (let i = 1; i < counts.length; i++) if ((counts[i] as number) > (counts[largest] as number)) largest = i;
      counts[largest] = (counts[largest] as number) - 1;
      size -= 1;
    }

    const hashes = new Uint32Array(size);
    const owners = new Int32Array(size);
    let next = 0;
    for (let i = 0; i < eligible.length; i++) {
      const id = (eligible[i] as Backend).id;
      const count = counts[i] as number;
      for (let point = 0; point < count; point++) {
        hashes[next] = murmur3(`${id}_${point}`);
        owners[next] = i;
        next++;
      }
    }
    // Insertion order is by id, and the sort is stable, so equal hashes keep the smaller id first.
    radixSortPairs(hashes, owners);

    this.backends = eligible;
    this.points = hashes;
    this.owners = owners;
    this.walker.reset(eligible.length);
    this.keyless.reset();
  }

  pick(key?: string, attempt = 0): Backend | undefined {
    const count = this.backends.length;
    if (count === 0) return undefined;
    if (key === undefined) return this.keyless.next(this.backends);
    const start = this.lowerBound(hash32(key) >>> 0);
    const wanted = attempt > 0 ? Math.floor(attempt) % count : 0;
    if (wanted === 0) return this.backends[this.owners[start] as number];
    return this.backends[this.walker.find(this.owners, start, wanted)];
  }

  /** The index of the first point ≥ `hash`, wrapping to 0 past the last point. */
  private lowerBound(hash: number): number {
    const points = this.points;
    let low = 0;
    let high = points.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if ((points[middle] as number) < hash) low = middle + 1;
      else high = middle;
    }
    return low === points.length ? 0 : low;
  }
}

/**
 * Sort `keys` ascending and apply the same permutation to `values`: a stable LSD radix sort on two
 * 16-bit digits. Stable, so equal keys keep their insertion order; linear, so a ring of millions of
 * points builds in milliseconds rather than the seconds a comparator sort would take.
 */
function radixSortPairs(keys: Uint32Array, values: Int32Array): void {
  const length = keys.length;
  if (length < 2) return;
  let sourceKeys: Uint32Array = keys;
  let sourceValues: Int32Array = values;
  let targetKeys: Uint32Array = new Uint32Array(length);
  let targetValues: Int32Array = new Int32Array(length);
  const counts = new Int32Array(65536);
  for (let shift = 0; shift < 32; shift += 16) {
    counts.fill(0);
    for (let i = 0; i < length; i++) {
      const digit = ((sourceKeys[i] as number) >>> shift) & 0xffff;
      counts[digit] = (counts[digit] as number) + 1;
    }
    let offset = 0;
    for (let digit = 0; digit < 65536; digit++) {
      const count = counts[digit] as number;
      counts[digit] = offset;
      offset += count;
    }
    for (let i = 0; i < length; i++) {
      const key = sourceKeys[i] as number;
      const digit = (key >>> shift) & 0xffff;
      const position = counts[digit] as number;
      counts[digit] = position + 1;
      targetKeys[position] = key;
      targetValues[position] = sourceValues[i] as number;
    }
    [sourceKeys, targetKeys] = [targetKeys, sourceKeys];
    [sourceValues, targetValues] = [targetValues, sourceValues];
  }
  // Two passes: the sorted data is back in the caller's arrays.
}
