/**
 * Weighted sampling in O(1): Vose's alias method (M. D. Vose, "A linear algorithm for generating
 * random numbers with a given distribution", IEEE TSE 1991; after Walker 1974).
 *
 * `build` splits the n weights into n columns of equal height 1; column i keeps a share `threshold[i]`
 * of itself and gives the rest to one other index `alias[i]`. A draw picks a column uniformly, then
 * flips a biased coin between the column and its alias: two array reads and one comparison, whatever
 * the weights. Building is O(n) with two work stacks (Vose's version, which unlike Walker's needs no
 * sorting and stays numerically stable: leftovers from rounding are set to exactly 1).
 *
 * One random number serves both steps when the table is small: the integer part of `u·n` picks the
 * column and the fractional part is the coin. That fractional part keeps about `53 − log2 n` bits of
 * a `Math.random` value but only `32 − log2 n` of a 32-bit generator such as `defaultRandom`, so
 * above 2^16 columns (where fewer than 16 bits would be left) the coin takes a second draw.
 *
 * When every weight is equal — most pools — `build` notes it and a draw is just the uniform column:
 * no coin, no alias read; `sampleOther` then draws among the n − 1 others directly.
 */
import type { Random } from '../random';

/**
 * Limits read on every draw. A `const enum`, so the build writes each as a literal where it is used
 * rather than as a module-level `var` loaded from the module context (about 1 ns of a P2C pick).
 */
const enum Limit {
  /** Above this many columns, the coin gets its own random draw (see the header). */
  OneDraw = 1 << 16,
  /** Rejections before `sampleOther` walks the weights instead (see there). */
  Redraws = 8,
  /** Up to this many columns, `samplePair` takes both indices of an equal-weight table from one draw. */
  PairFromOneDraw = 1 << 12,
}

export class AliasTable {
  /** Number of columns (weights) in the table; 0 when empty. */
  size = 0;
  private weights = new Float64Array(0);
  private total = 0;
  private threshold = new Float64Array(0);
  private alias = new Int32Array(0);
  private small = new Int32Array(0);
  private large = new Int32Array(0);
  /**
   * True when every weight is the same — the common case — so a draw is one uniform index and the
   * alias columns are never read.
   */
  uniform = false;
  /** The second index of the last `samplePair`. */
  pairSecond = -1;

  /**
   * Rebuild for `weights` (each > 0 and finite; callers filter zeros out). Storage is reused when the
   * table does not grow, so steady updates of the same set allocate nothing.
   */
  build(weights: ArrayLike<number>): void {
    const n = weights.length;
    if (this.threshold.length < n) {
      this.weights = new Float64Array(n);
      this.threshold = new Float64Array(n);
      this.alias = new Int32Array(n);
      this.small = new Int32Array(n);
      this.large = new Int32Array(n);
    }
    this.size = n;
    if (n === 0) return;
    let total = 0;
    for (let i = 0; i < n; i++) {
      this.weights[i] = weights[i]!;
      total += weights[i]!;
    }
    this.total = total;
    let uniform = true;
    for (let i = 1; i < n && uniform; i++) uniform = weights[i] === weights[0];
    this.uniform = uniform;
    const threshold = this.threshold;
    const alias = this.alias;
    const small = this.small;
    const large = this.large;
    let smallCount = 0;
    let largeCount = 0;
    for (let i = 0; i < n; i++) {
      const scaled = (weights[i]! * n) / total;
      threshold[i] = scaled;
      alias[i] = i;
      if (scaled < 1) small[smallCount++] = i;
      else large[largeCount++] = i;
    }
    while (smallCount > 0 && largeCount > 0) {
      const less = small[--smallCount]!;
      const more = large[largeCount - 1]!;
      alias[less] = more;
      // `more` paid 1 − threshold[less] of its height to fill column `less`.
      const left = threshold[more]! + threshold[less]! - 1;
      threshold[more] = left;
      if (left < 1) {
        largeCount--;
        small[smallCount++] = more;
      }
    }
    // Whatever remains differs from 1 only by rounding error: make those columns whole.
    while (largeCount > 0) threshold[large[--largeCount]!] = 1;
    while (smallCount > 0) threshold[small[--smallCount]!] = 1;
  }

  /** A column index in [0, size), drawn with probability proportional to its weight; -1 when empty. */
  sample(random: Random): number {
    const n = this.size;
    if (n === 0) return -1;
    const scaled = (random === Math.random ? Math.random() : random()) * n;
    // `>>> 0` maps NaN and negatives to 0 or a huge value, so a misbehaving `random` still yields an
    // index in range after the clamp.
    let column = scaled >>> 0;
    if (column >= n) column = n - 1;
    if (this.uniform) return column;
    const coin = n > Limit.OneDraw ? (random === Math.random ? Math.random() : random()) : scaled - column;
    // Arithmetic instead of a branch: the coin is random, so a branch would be mispredicted about
    // as often as the alias is taken (several nanoseconds each time).
    const keep = +(coin < this.threshold[column]!);
    return this.alias[column]! + (column - this.alias[column]!) * keep;
  }

  /**
   * A second index different from `first` (when the table has two or more columns), drawn exactly
   * from the weights conditioned on "not `first`". Rejection sampling does it in O(1) expected
   * draws unless `first` holds most of the weight; to bound a pick's cost in that case, after
   * `Limit.Redraws` rejections the draw falls back to an O(n) walk over the other weights. The walk is
   * exact too, so the result is unbiased; with `first` holding a share p of the weight it runs for
   * a fraction p^8 of picks (0.4% at p = ½).
   */
  sampleOther(random: Random, first: number): number {
    const n = this.size;
    if (n < 2) return first;
    if (this.uniform) {
      return otherThan(first, random === Math.random ? Math.random() : random(), n);
    }
    for (let tries = 0; tries < Limit.Redraws; tries++) {
      const other = this.sample(random);
      if (other !== first) return other;
    }
    const weights = this.weights;
    let remaining = (random === Math.random ? Math.random() : random()) * (this.total - weights[first]!);
    let last = first;
    for (let i = 0; i < n; i++) {
      if (i === first) continue;
      last = i;
      remaining -= weights[i]!;
      if (remaining < 0) return i;
    }
    // Rounding left a sliver past the last weight: it belongs to the last index.
    return last;
  }

  /**
   * Two distinct indices (when the table has two or more columns): the first is returned, drawn as
   * `sample` draws it, and the second — drawn as `sampleOther(random, first)` draws it — is left in
   * `pairSecond`. Returns -1 when the table is empty; with one column both are 0.
   *
   * For an equal-weight table of up to 4096 columns, one random number gives both, as one gives a
   * column and its coin in `sample`: the integer part of `u·n` is the first index and the fractional
   * part, uniform and independent of it, picks the second among the n − 1 others. With the 32 bits of
   * `defaultRandom`, that fraction keeps at least 20 bits, so no index's chance of being second is off
   * by more than n/2^20 of itself (0.1 % at 1000 columns) — far below what load balancing can see.
   */
  samplePair(random: Random): number {
    const n = this.size;
    if (n < 2) {
      this.pairSecond = n - 1;
      return n - 1;
    }
    if (!this.uniform || n > Limit.PairFromOneDraw) {
      const first = this.sample(random);
      this.pairSecond = this.sampleOther(random, first);
      return first;
    }
    const scaled = (random === Math.random ? Math.random() : random()) * n;
    let first = scaled >>> 0;
    if (first >= n) first = n - 1;
    this.pairSecond = otherThan(first, scaled - first, n);
    return first;
  }

  /** Probability of column `i` (for tests and diagnostics; O(n)). */
  probability(i: number): number {
    const n = this.size;
    let p = 0;
    for (let column = 0; column < n; column++) {
      const keep = this.threshold[column]!;
      if (column === i) p += keep;
      if (this.alias[column] === i && column !== i) p += 1 - keep;
    }
    return p / n;
  }
}

/**
 * Of n equal columns, one other than `first`, uniformly, from `u` in [0, 1): an index among the n − 1
 * others, stepped over `first`. Exact, one number.
 */
function otherThan(first: number, u: number, n: number): number {
  let other = (u * (n - 1)) >>> 0;
  if (other >= n - 1) other = n - 2;
  return other + +(other >= first);
}
