/**
 * Service-time distributions, as data (`{ type: 'exponential', meanMs: 10 }`) and as samplers. Each
 * sampler draws from the `Random` it is given, so a backend's service times are one seeded stream.
 *
 * - `fixed`: always `ms` (a deterministic server; with exponential arrivals, M/D/c).
 * - `exponential`: mean `meanMs` (M/M/c; the supermarket model's servers).
 * - `lognormal`: `medianMs × e^(sigma·Z)`, Z standard normal — the usual shape of real service times,
 *   a long right tail whose weight `sigma` sets (0.5 is mild, 1.5 heavy).
 * - `bimodal`: with probability `slowProbability` a draw from `slow`, else from `fast` — a garbage
 *   collector's stop-the-world pauses, a cache miss, a cold path.
 */
import type { Random } from '@fulcrum/core';

export type Distribution =
  | { type: 'fixed'; ms: number }
  | { type: 'exponential'; meanMs: number }
  | { type: 'lognormal'; medianMs: number; sigma: number }
  | { type: 'bimodal'; fast: Distribution; slow: Distribution; slowProbability: number };

export type Sampler = () => number;

/** The distribution's mean, in ms. */
export function meanOf(d: Distribution): number {
  switch (d.type) {
    case 'fixed':
      return d.ms;
    case 'exponential':
      return d.meanMs;
    case 'lognormal':
      return d.medianMs * Math.exp((d.sigma * d.sigma) / 2);
    case 'bimodal':
      return (1 - d.slowProbability) * meanOf(d.fast) + d.slowProbability * meanOf(d.slow);
  }
}

/** A sampler of `d` drawing from `random`. Allocation-free per draw. */
export function samplerOf(d: Distribution, random: Random): Sampler {
  switch (d.type) {
    case 'fixed': {
      const ms = d.ms;
      return () => ms;
    }
    case 'exponential': {
      const mean = d.meanMs;
      // 1 − U is in (0, 1]: the logarithm is finite.
      return () => -mean * Math.log(1 - random());
    }
    case 'lognormal': {
      const median = d.medianMs;
      const sigma = d.sigma;
      const normal = normalSampler(random);
      return () => median * Math.exp(sigma * normal());
    }
    case 'bimodal': {
      const fast = samplerOf(d.fast, random);
      const slow = samplerOf(d.slow, random);
      const p = d.slowProbability;
      return () => (random() < p ? slow() : fast());
    }
  }
}

/** Standard normal draws by the Box–Muller transform, two per pair of uniforms (the second kept). */
export function normalSampler(random: Random): Sampler {
  let spare = 0;
  let hasSpare = false;
  return () => {
    if (hasSpare) {
      hasSpare = false;
      return spare;
    }
    const u = 1 - random();
    const v = random();
    const r = Math.sqrt(-2 * Math.log(u));
    spare = r * Math.sin(2 * Math.PI * v);
    hasSpare = true;
    return r * Math.cos(2 * Math.PI * v);
  };
}

/**
 * Zipf-distributed ranks 0..n−1 (rank k drawn with probability ∝ 1/(k+1)^s): the skew of real request
 * keys, where a few users or objects take most of the traffic. A cumulative table of n doubles, then a
 * binary search per draw.
 */
export function zipfSampler(n: number, exponent: number, random: Random): () => number {
  const cdf = new Float64Array(n);
  let total = 0;
  for (let k = 0; k < n; k++) {
    total += 1 / Math.pow(k + 1, exponent);
    cdf[k] = total;
  }
  for (let k = 0; k < n; k++) cdf[k]! /= total;
  return () => {
    const u = random();
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (cdf[mid]! > u) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
}
