/**
 * Slow start: a backend that has just joined (or just recovered) receives a growing share of its
 * weight over a window, so a cold cache or JIT is not flattened by a full share of traffic at once.
 *
 * Source: Envoy's slow start mode (`slow_start_config` of round robin and least request; "Slow start
 * mode" in the load balancing docs): `weight × max(min_weight_percent, time_factor ^ (1/aggression))`
 * with `time_factor = elapsed / window`. Aggression 1 is a linear ramp; above 1 the ramp is steeper at
 * first (more traffic early), below 1 gentler. The floor `minWeightPercent` (Envoy's default 10%)
 * keeps the new backend from receiving nothing at all, so it warms up from the first moment.
 */

/** Slow start configuration, as given by the user. */
export interface SlowStartOptions {
  /** How long the ramp lasts, in ms. Finite, > 0. Required. */
  windowMs: number;
  /** Shape of the ramp: the exponent is `1/aggression`. Finite, > 0; default 1 (linear, Envoy's default). */
  aggression?: number;
  /** Floor of the factor, in percent of the weight. 0..100; default 10 (Envoy's default). */
  minWeightPercent?: number;
}

/** Slow start configuration with every default applied (`normalizeSlowStartOptions`). */
export interface NormalizedSlowStartOptions {
  readonly windowMs: number;
  readonly aggression: number;
  readonly minWeightPercent: number;
}

/**
 * The factor in `[minWeightPercent/100, 1]` to multiply a backend's weight by, `elapsedMs` after it
 * entered slow start: `max(minWeightPercent/100, (elapsed/window)^(1/aggression))`, and exactly 1 once
 * `elapsedMs ≥ windowMs`. Monotone non-decreasing in `elapsedMs`. A negative or `NaN` elapsed time (a
 * clock that stepped back) counts as 0. Defaults: `aggression` 1, `minWeightPercent` 10.
 */
export function slowStartFactor(
  elapsedMs: number,
  options: { readonly windowMs: number; readonly aggression?: number; readonly minWeightPercent?: number },
): number {
  const { windowMs } = options;
  const aggression = options.aggression ?? 1;
  const floor = Math.min(1, Math.max(0, (options.minWeightPercent ?? 10) / 100));
  if (elapsedMs >= windowMs) return 1;
  const elapsed = elapsedMs > 0 ? elapsedMs : 0;
  const ramp = Math.pow(elapsed / windowMs, 1 / aggression);
  return Math.min(1, Math.max(floor, ramp));
}
