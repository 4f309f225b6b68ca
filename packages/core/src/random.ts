/**
 * Randomness, injected: a `Random` is any function returning a number in [0, 1). Tests pass
 * `seededRandom(seed)` from `@fulcrum/core/testing` so that every random choice (random, p2c,
 * peak-ewma, jitter) can be replayed.
 *
 * The default, `defaultRandom`, is unseeded like `Math.random` — its state is drawn from the
 * platform's entropy (`crypto.getRandomValues`, else `Math.random`) when this module loads — but it
 * runs in JavaScript: sfc32 on an `Int32Array`, which the JIT inlines into the caller. That matters on
 * the hot path: a `Math.random()` call costs about 10 ns on the machines Fulcrum is benchmarked on
 * (V8 refills its value cache from C++), as much as the rest of a power-of-two-choices pick, and a
 * call that is not inlined returns a boxed double (16 bytes of garbage per pick). Pass
 * `random: Math.random` to use the engine's generator instead; nothing in Fulcrum needs more than
 * 32 random bits per call.
 */
export type Random = () => number;

/**
 * A `const enum`, so the build writes the value as a literal where it is used: a module constant
 * would be bundled as a module-level `var`, loaded from the module context at every draw.
 */
const enum Scale {
  /** 2^-32: turns a uint32 into a number in [0, 1). */
  Uint32 = 1 / 4294967296,
}

/**
 * sfc32 ("small fast chaotic", Chris Doty-Humphrey, from PractRand's test suite; passes BigCrush and
 * PractRand to terabytes) over four 32-bit words. The state lives in an `Int32Array` rather than in
 * closure variables: a 32-bit value outside the small-integer range would be boxed on every store to
 * a closure slot, and a typed array holds it unboxed.
 */
function sfc32(state: Int32Array): Random {
  return () => {
    const a = state[0]!;
    const b = state[1]!;
    const c = state[2]!;
    const d = state[3]!;
    const t = (((a + b) | 0) + d) | 0;
    state[3] = (d + 1) | 0;
    state[0] = b ^ (b >>> 9);
    state[1] = (c + (c << 3)) | 0;
    state[2] = (((c << 21) | (c >>> 11)) + t) | 0;
    return (t >>> 0) * Scale.Uint32;
  };
}

/** Four words of entropy for the unseeded default. */
function entropy(): Int32Array {
  const state = new Int32Array(4);
  const crypto = (globalThis as { crypto?: { getRandomValues?: (array: Int32Array) => Int32Array } }).crypto;
  if (typeof crypto?.getRandomValues === 'function') {
    crypto.getRandomValues(state);
  } else {
    for (let i = 0; i < 4; i++) state[i] = (Math.random() * 4294967296) | 0;
  }
  // sfc32's counter word must not start the sequence on a short cycle; any value works, 1 is customary.
  state[3] = 1;
  return state;
}

function warmUp(random: Random): Random {
  // The first outputs from nearby seeds are correlated: discard them.
  for (let i = 0; i < 15; i++) random();
  return random;
}

/**
 * The default source of randomness: unseeded (see the header), a number in [0, 1) with 32 random
 * bits per call. One generator is shared by every load balancer and balancer in the process.
 */
export const defaultRandom: Random = warmUp(sfc32(entropy()));

/**
 * A small, fast, seedable generator (sfc32, as `defaultRandom`, from a 32-bit seed). Used by
 * `seededRandom` in the testing kit and wherever a reproducible sequence is wanted.
 */
export function createSeededRandom(seed: number): Random {
  const state = new Int32Array(4);
  state[0] = 0x9e3779b9 ^ (seed | 0);
  state[1] = 0x243f6a88 ^ Math.imul(seed | 0, 0x85ebca6b);
  state[2] = 0xb7e15162 | 0;
  state[3] = 1;
  return warmUp(sfc32(state));
}
