/**
 * A streaming latency histogram of fixed size: log-linear buckets in the manner of HdrHistogram — each
 * power of two split into 2^`subBits` equal sub-buckets — indexed straight from the bits of the IEEE
 * 754 double (exponent and leading mantissa bits), so recording is a few integer operations, no
 * `Math.log` and no allocation. Memory is fixed by the range and precision, never by the number of
 * samples: a simulated hour costs what a simulated second does.
 *
 * With the default 6 sub-bits a bucket spans 1/64 of its power of two, so a quantile read from the
 * bucket's midpoint is within ±0.8 % of the true sample. The mean, minimum and maximum are exact.
 * Range: 2^-10 ms (about 1 µs; smaller values, 0 included, land in the first bucket) to 2^30 ms
 * (12 days; larger values in the last).
 */
const MIN_EXPONENT = -10;
const MAX_EXPONENT = 30;
const EXPONENT_BIAS = 1023;
/** 2^MIN_EXPONENT and 2^(MAX_EXPONENT + 1), written out: the hot path compares with literals. */
const MIN_VALUE = 0.0009765625;
const MAX_VALUE = 2147483648;

const scratch = new Float64Array(1);
// Signed words: a uint32 read above 2^31 would be a heap number; the masks below make sign moot.
const scratchWords = new Int32Array(scratch.buffer);
// Which 32-bit word holds the sign, exponent and high mantissa bits.
const HIGH = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;

export class Histogram {
  readonly subBits: number;
  readonly counts: Float64Array;
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;
  /** 20 − subBits: how far the mantissa's top 20 bits shift to leave `subBits`. */
  readonly shift: number;

  /** @param subBits Sub-buckets per power of two, as a power of two: 1..10, default 6 (±0.8 %). */
  constructor(subBits = 6) {
    if (!Number.isInteger(subBits) || subBits < 1 || subBits > 10)
      throw new RangeError(`Histogram: subBits must be an integer in 1..10, got ${String(subBits)}`);
    this.subBits = subBits;
    this.shift = 20 - subBits;
    this.counts = new Float64Array((MAX_EXPONENT - MIN_EXPONENT + 1) << subBits);
  }

  /** The bucket a value falls in. */
  indexOf(value: number): number {
    if (!(value >= MIN_VALUE)) return 0;
    if (value >= MAX_VALUE) return this.counts.length - 1;
    scratch[0] = value;
    const high = scratchWords[HIGH]!;
    const exponent = ((high >> 20) & 0x7ff) - (EXPONENT_BIAS + MIN_EXPONENT);
    return (exponent << this.subBits) | ((high & 0xfffff) >> this.shift);
  }

  /** The lowest value of bucket `index`. */
  lowerBound(index: number): number {
    const exponent = (index >> this.subBits) + MIN_EXPONENT;
    const sub = index & ((1 << this.subBits) - 1);
    return 2 ** exponent * (1 + sub / (1 << this.subBits));
  }

  /** A representative value of bucket `index` (its midpoint). */
  midpoint(index: number): number {
    const exponent = (index >> this.subBits) + MIN_EXPONENT;
    const sub = index & ((1 << this.subBits) - 1);
    return 2 ** exponent * (1 + (sub + 0.5) / (1 << this.subBits));
  }

  record(value: number): void {
    this.counts[this.indexOf(value)]!++;
    this.count++;
    this.sum += value;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
  }

  /** The mean of the recorded values (exact), or 0 when empty. */
  get mean(): number {
    return this.count === 0 ? 0 : this.sum / this.count;
  }

  /**
   * The value at quantile `q` (0..1): the midpoint of the bucket holding the ⌈q·count⌉-th smallest
   * sample, clamped to the exact minimum and maximum (in the first and last buckets, which also
   * hold what is outside the range, the minimum and maximum themselves). 0 when empty.
   */
  quantile(q: number): number {
    if (this.count === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.count));
    const counts = this.counts;
    let seen = 0;
    for (let i = 0; i < counts.length; i++) {
      seen += counts[i]!;
      if (seen >= rank) {
        // The end buckets also hold everything outside the range: their exact extremes say more.
        if (i === 0) return this.min;
        if (i === counts.length - 1) return this.max;
        return Math.min(this.max, Math.max(this.min, this.midpoint(i)));
      }
    }
    return this.max;
  }

  /** Add another histogram of the same precision into this one. */
  add(other: Histogram): void {
    if (other.subBits !== this.subBits) throw new RangeError('Histogram.add: precisions differ');
    for (let i = 0; i < other.counts.length; i++) this.counts[i]! += other.counts[i]!;
    this.count += other.count;
    this.sum += other.sum;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
  }

  /**
   * The cumulative distribution as at most `points` (value, fraction ≤ value) pairs, from the upper
   * bound of each non-empty bucket; thinned evenly in fraction when there are more buckets than points.
   */
  cdf(points = 200): Array<[number, number]> {
    const out: Array<[number, number]> = [];
    if (this.count === 0) return out;
    const counts = this.counts;
    let seen = 0;
    let lastFraction = -1;
    const step = 1 / points;
    for (let i = 0; i < counts.length; i++) {
      const c = counts[i]!;
      if (c === 0) continue;
      seen += c;
      const fraction = seen / this.count;
      if (fraction - lastFraction >= step || fraction === 1) {
        out.push([Math.min(this.max, this.lowerBound(i + 1)), fraction]);
        lastFraction = fraction;
      }
    }
    return out;
  }
}
