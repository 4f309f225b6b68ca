/**
 * Randomness, injected: a `Random` is any function returning a number in [0, 1). Core defaults to
 * `Math.random`; tests pass `seededRandom(seed)` from `@fulcrum/core/testing` so that every random
 * choice (random, p2c, peak-ewma, jitter) can be replayed.
 */
export type Random = () => number;

export const defaultRandom: Random = Math.random;

/**
 * A small, fast, seedable generator (sfc32, from PractRand's test suite; passes BigCrush). Used by
 * `seededRandom` in the testing kit and wherever a reproducible sequence is wanted.
 */
export function createSeededRandom(seed: number): Random {
  let a = 0x9e3779b9 ^ (seed | 0);
  let b = 0x243f6a88 ^ Math.imul(seed | 0, 0x85ebca6b);
  let c = 0xb7e15162;
  let d = 1;
  const next = (): number => {
    a |= 0;
    b |= 0;
    c |= 0;
    d |= 0;
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  // Warm up: the first outputs of sfc32 from nearby seeds are correlated.
  for (let i = 0; i < 15; i++) next();
  return next;
}
