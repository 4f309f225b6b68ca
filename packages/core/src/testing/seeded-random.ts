/**
 * Reproducible randomness for tests. Every random choice in core (random, p2c, peak-ewma, health-check
 * jitter) goes through an injected `Random`, so passing `seededRandom(seed)` makes a whole run —
 * decisions included — replayable from one number.
 */
import { createSeededRandom, type Random } from '../random';

/**
 * A `Random` (a function returning numbers in [0, 1)) that yields the same sequence for the same
 * `seed`. The seed is used as a 32-bit integer (`seed | 0`), so use integers in ±2^31; two generators
 * with the same seed are independent copies of one sequence. The generator is sfc32 (see
 * `createSeededRandom`), fast enough for millions of draws per test.
 */
export function seededRandom(seed: number): Random {
  if (typeof seed !== 'number' || !Number.isFinite(seed)) {
    throw new RangeError(`seededRandom: seed must be a finite number, got ${String(seed)}`);
  }
  return createSeededRandom(seed);
}
