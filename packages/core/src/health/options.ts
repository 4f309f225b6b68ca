/**
 * Health options, validated once: each normalizer turns what the user wrote (`health`, `outlier`,
 * `slowStart`, `panicThreshold` of `createLoadBalancer`, or the same keys of a pool in the config
 * file) into a frozen, fully defaulted object, or throws an `InvalidOptionError` naming the field
 * (`health.rise`, `outlier.maxEjectionMs`), the value and what is allowed. Unknown keys are refused
 * with the list of allowed ones: a typo in a config file must not silently fall back to a default.
 *
 * Defaults and their sources:
 * - Active checks follow HAProxy: `rise` 2, `fall` 3, `inter` 2000 ms (`DEF_CHKINTR`), and as in
 *   HAProxy `fastIntervalMs` (`fastinter`) and `downIntervalMs` (`downinter`) default to
 *   `intervalMs` (`inter`) when not given. A user who sets only `intervalMs` gets that cadence in
 *   every phase — a recovered backend is noticed within an interval, as behind HAProxy — and sets
 *   the other two to probe a backend in transition sooner or a dead one less often.
 *   `timeoutMs` 1000: a backend that cannot answer a health check within a second is not healthy,
 *   and half an interval leaves room before the next check. `jitter` 0.1 (±10%): HAProxy's
 *   `spread-checks` and Envoy's interval jitter keep many balancers from probing in lockstep.
 * - Outlier detection follows Envoy's `OutlierDetection` defaults: interval 10 s, base ejection 30 s,
 *   max ejection 300 s (or the base, if larger), max ejection 10%, 5 consecutive failures, success
 *   rate with stdev factor 1.9, request volume 100 and 5 minimum hosts (enforced), failure percentage
 *   85% with request volume 50 and 5 minimum hosts (detected but not enforced by default, as in
 *   Envoy where `enforcing_failure_percentage` is 0). Envoy's enforcing percentages are simplified to
 *   on/off switches.
 * - Slow start follows Envoy: aggression 1, minimum weight 10%.
 * - Panic threshold 0.5, Envoy's `healthy_panic_threshold` default (50%).
 */
import type { Outcome } from '../balancers/balancer';
import { InvalidOptionError } from '../errors';
import { MAX_TIMER_MS, checkKnownKeys, finiteNumber, plainObject } from '../validate/checks';
import type { Probe } from './checker';
import type { NormalizedSlowStartOptions, SlowStartOptions } from './slow-start';
import type { InitialHealthState } from './state-machine';

export { MAX_TIMER_MS };

// ─── Active health checks ──────────────────────────────────────────────────────────────────────

/** Active health checks (`createLoadBalancer({ health })`). */
export interface HealthOptions {
  /** Checks one backend; `@fulcrum/http` ships `httpProbe()` and `tcpProbe()`. Required. */
  probe: Probe;
  /** Consecutive passes that bring a down backend up. Integer ≥ 1; default 2 (HAProxy). */
  rise?: number;
  /** Consecutive failures that take an up backend down. Integer ≥ 1; default 3 (HAProxy). */
  fall?: number;
  /** Interval between checks of a backend at full health, in ms. > 0; default 2000 (HAProxy `inter`). */
  intervalMs?: number;
  /** Interval while a backend is between up and down (HAProxy `fastinter`), in ms. > 0; default `intervalMs`, as in HAProxy. */
  fastIntervalMs?: number;
  /** Interval while a backend is fully down (HAProxy `downinter`), in ms. > 0; default `intervalMs`, as in HAProxy. */
  downIntervalMs?: number;
  /** A probe still pending after this many ms is aborted and counts as a failure. > 0; default 1000. */
  timeoutMs?: number;
  /** Each interval is spread uniformly over ±`jitter` of itself. 0..0.5; default 0.1. */
  jitter?: number;
  /** Where a backend starts (HAProxy `init-state`). Default `'up'`: up, and down at the first failure. */
  initialState?: InitialHealthState;
}

/** `HealthOptions` with every default applied. */
export interface NormalizedHealthOptions {
  readonly probe: Probe;
  readonly rise: number;
  readonly fall: number;
  readonly intervalMs: number;
  readonly fastIntervalMs: number;
  readonly downIntervalMs: number;
  readonly timeoutMs: number;
  readonly jitter: number;
  readonly initialState: InitialHealthState;
}

const HEALTH_KEYS = ['probe', 'rise', 'fall', 'intervalMs', 'fastIntervalMs', 'downIntervalMs', 'timeoutMs', 'jitter', 'initialState'] as const;

const INITIAL_STATES: readonly InitialHealthState[] = ['fully-up', 'up', 'down', 'fully-down'];

/**
 * Validate `health` options. Returns `undefined` when `value` is `undefined` (no active checks).
 * Throws `InvalidOptionError` naming the field otherwise.
 */
export function normalizeHealthOptions(value: unknown, path = 'health'): NormalizedHealthOptions | undefined {
  if (value === undefined) return undefined;
  const options = objectWithKnownKeys(path, value, HEALTH_KEYS);
  const { probe } = options;
  if (typeof probe !== 'function') {
    throw new InvalidOptionError(`${path}.probe`, probe, 'must be a function (backend, signal) => Promise<boolean | ProbeResult>');
  }
  const rise = integerOption(path, options, 'rise', 2, 1);
  const fall = integerOption(path, options, 'fall', 3, 1);
  const intervalMs = durationOption(path, options, 'intervalMs', 2000);
  const fastIntervalMs = durationOption(path, options, 'fastIntervalMs', intervalMs);
  const downIntervalMs = durationOption(path, options, 'downIntervalMs', intervalMs);
  const timeoutMs = durationOption(path, options, 'timeoutMs', 1000);
  const jitter = options.jitter === undefined ? 0.1 : finiteNumber(`${path}.jitter`, options.jitter, { min: 0, max: 0.5 });
  const { initialState } = options;
  if (initialState !== undefined && !INITIAL_STATES.includes(initialState as InitialHealthState)) {
    throw new InvalidOptionError(`${path}.initialState`, initialState, `must be one of ${INITIAL_STATES.map((s) => `'${s}'`).join(', ')}`);
  }
  return Object.freeze({
    probe: probe as Probe,
    rise,
    fall,
    intervalMs,
    fastIntervalMs,
    downIntervalMs,
    timeoutMs,
    jitter,
    initialState: (initialState as InitialHealthState | undefined) ?? 'up',
  });
}

// ─── Outlier detection ─────────────────────────────────────────────────────────────────────────

/** Which ejection rule fired. */
export type EjectionCause = 'consecutive-failures' | 'success-rate' | 'failure-percentage';

/** Passive outlier detection (`createLoadBalancer({ outlier })`), after Envoy's `OutlierDetection`. */
export interface OutlierOptions {
  /** Time between ejection sweeps (success rate, failure percentage, un-ejection), in ms. > 0; default 10000. */
  intervalMs?: number;
  /** Ejection time for a first ejection; the n-th lasts n × this. > 0; default 30000. */
  baseEjectionMs?: number;
  /** Cap on one ejection's duration, in ms. ≥ `baseEjectionMs`; default max(300000, `baseEjectionMs`). */
  maxEjectionMs?: number;
  /** Never more than this percentage of backends ejected at once. 0..100; default 10. */
  maxEjectionPercent?: number;
  /**
   * Allow one ejection even when it exceeds `maxEjectionPercent` (Envoy's `always_eject_one_host`).
   * Default true: Envoy defaults it to false, but with its 10% cap a pool of fewer than ten backends —
   * most pools a Node service balances over — could then never eject a failing backend at all.
   */
  alwaysEjectOneHost?: boolean;
  /** Consecutive failures that eject a backend at once. Integer ≥ 1; default 5. */
  consecutiveFailures?: number;
  /** Whether consecutive-failure ejection is enforced. Default true. */
  enforceConsecutiveFailures?: boolean;
  /** Eject a backend whose success rate is below mean − factor × stdev. Finite, ≥ 0; default 1.9. */
  successRateStdevFactor?: number;
  /** Requests a backend needs in an interval to count for success rate. Integer ≥ 1; default 100. */
  successRateRequestVolume?: number;
  /** Backends with enough volume needed for success-rate ejection. Integer ≥ 1; default 5. */
  successRateMinimumHosts?: number;
  /** Whether success-rate ejection is enforced. Default true. */
  enforceSuccessRate?: boolean;
  /** Eject a backend whose failure percentage in an interval is at least this. 0..100; default 85. */
  failurePercentageThreshold?: number;
  /** Requests a backend needs in an interval to count for failure percentage. Integer ≥ 1; default 50. */
  failurePercentageRequestVolume?: number;
  /** Backends with enough volume needed for failure-percentage ejection. Integer ≥ 1; default 5. */
  failurePercentageMinimumHosts?: number;
  /** Whether failure-percentage ejection is enforced. Default false (Envoy's default). */
  enforceFailurePercentage?: boolean;
  /**
   * Whether an outcome counts against the backend. Default `isBackendFailure`: a connect error, a
   * reset, a timeout, or a status ≥ 500. Outcomes it rejects that were aborted by the client are not
   * counted at all.
   */
  isFailure?: (outcome: Outcome) => boolean;
}

/** `OutlierOptions` with every default applied. */
export interface NormalizedOutlierOptions {
  readonly intervalMs: number;
  readonly baseEjectionMs: number;
  readonly maxEjectionMs: number;
  readonly maxEjectionPercent: number;
  readonly alwaysEjectOneHost: boolean;
  readonly consecutiveFailures: number;
  readonly enforceConsecutiveFailures: boolean;
  readonly successRateStdevFactor: number;
  readonly successRateRequestVolume: number;
  readonly successRateMinimumHosts: number;
  readonly enforceSuccessRate: boolean;
  readonly failurePercentageThreshold: number;
  readonly failurePercentageRequestVolume: number;
  readonly failurePercentageMinimumHosts: number;
  readonly enforceFailurePercentage: boolean;
  readonly isFailure: (outcome: Outcome) => boolean;
}

/**
 * The default failure classifier: the backend failed when the connection could not be made, was
 * reset, timed out, or the response status was ≥ 500. A request the client aborted says nothing
 * about the backend.
 */
export function isBackendFailure(outcome: Outcome): boolean {
  const { error, status } = outcome;
  if (error === 'connect' || error === 'reset' || error === 'timeout') return true;
  return typeof status === 'number' && status >= 500;
}

const OUTLIER_KEYS = [
  'intervalMs',
  'baseEjectionMs',
  'maxEjectionMs',
  'maxEjectionPercent',
  'alwaysEjectOneHost',
  'consecutiveFailures',
  'enforceConsecutiveFailures',
  'successRateStdevFactor',
  'successRateRequestVolume',
  'successRateMinimumHosts',
  'enforceSuccessRate',
  'failurePercentageThreshold',
  'failurePercentageRequestVolume',
  'failurePercentageMinimumHosts',
  'enforceFailurePercentage',
  'isFailure',
] as const;

/**
 * Validate `outlier` options. Returns `undefined` when `value` is `undefined` (no outlier detection;
 * pass `{}` for Envoy's defaults). Throws `InvalidOptionError` naming the field otherwise.
 */
export function normalizeOutlierOptions(value: unknown, path = 'outlier'): NormalizedOutlierOptions | undefined {
  if (value === undefined) return undefined;
  const options = objectWithKnownKeys(path, value, OUTLIER_KEYS);
  const intervalMs = durationOption(path, options, 'intervalMs', 10_000);
  const baseEjectionMs = positiveOption(path, options, 'baseEjectionMs', 30_000);
  const maxEjectionMs = positiveOption(path, options, 'maxEjectionMs', Math.max(300_000, baseEjectionMs));
  if (maxEjectionMs < baseEjectionMs) {
    throw new InvalidOptionError(`${path}.maxEjectionMs`, maxEjectionMs, `must be ≥ ${path}.baseEjectionMs (${baseEjectionMs})`);
  }
  const { isFailure } = options;
  if (isFailure !== undefined && typeof isFailure !== 'function') {
    throw new InvalidOptionError(`${path}.isFailure`, isFailure, 'must be a function (outcome) => boolean');
  }
  return Object.freeze({
    intervalMs,
    baseEjectionMs,
    maxEjectionMs,
    maxEjectionPercent: percentOption(path, options, 'maxEjectionPercent', 10),
    alwaysEjectOneHost: booleanOption(path, options, 'alwaysEjectOneHost', true),
    consecutiveFailures: integerOption(path, options, 'consecutiveFailures', 5, 1),
    enforceConsecutiveFailures: booleanOption(path, options, 'enforceConsecutiveFailures', true),
    successRateStdevFactor:
      options.successRateStdevFactor === undefined ? 1.9 : finiteNumber(`${path}.successRateStdevFactor`, options.successRateStdevFactor, { min: 0 }),
    successRateRequestVolume: integerOption(path, options, 'successRateRequestVolume', 100, 1),
    successRateMinimumHosts: integerOption(path, options, 'successRateMinimumHosts', 5, 1),
    enforceSuccessRate: booleanOption(path, options, 'enforceSuccessRate', true),
    failurePercentageThreshold: percentOption(path, options, 'failurePercentageThreshold', 85),
    failurePercentageRequestVolume: integerOption(path, options, 'failurePercentageRequestVolume', 50, 1),
    failurePercentageMinimumHosts: integerOption(path, options, 'failurePercentageMinimumHosts', 5, 1),
    enforceFailurePercentage: booleanOption(path, options, 'enforceFailurePercentage', false),
    isFailure: (isFailure as ((outcome: Outcome) => boolean) | undefined) ?? isBackendFailure,
  });
}

// ─── Slow start and panic ──────────────────────────────────────────────────────────────────────

const SLOW_START_KEYS = ['windowMs', 'aggression', 'minWeightPercent'] as const;

/**
 * Validate `slowStart` options. Returns `undefined` when `value` is `undefined` (no slow start).
 * `windowMs` is required; `aggression` defaults to 1 and `minWeightPercent` to 10 (Envoy's).
 */
export function normalizeSlowStartOptions(value: unknown, path = 'slowStart'): NormalizedSlowStartOptions | undefined {
  if (value === undefined) return undefined;
  const options = objectWithKnownKeys(path, value, SLOW_START_KEYS) as Partial<Record<keyof SlowStartOptions, unknown>>;
  if (options.windowMs === undefined) {
    throw new InvalidOptionError(`${path}.windowMs`, undefined, 'is required: a finite number of ms > 0');
  }
  const windowMs = finiteNumber(`${path}.windowMs`, options.windowMs, { min: 0, minExclusive: true });
  const aggression = options.aggression === undefined ? 1 : finiteNumber(`${path}.aggression`, options.aggression, { min: 0, minExclusive: true });
  const minWeightPercent = percentOption(path, options, 'minWeightPercent', 10);
  return Object.freeze({ windowMs, aggression, minWeightPercent });
}

/**
 * Validate `panicThreshold`: the fraction of healthy primaries below which traffic spreads over all
 * primaries. 0..1; default 0.5 (Envoy's `healthy_panic_threshold`); 0 disables panic.
 */
export function normalizePanicThreshold(value: unknown, path = 'panicThreshold'): number {
  if (value === undefined) return 0.5;
  return finiteNumber(path, value, { min: 0, max: 1 });
}

// ─── Helpers ───────────────────────────────────────────────────────────────────────────────────

function objectWithKnownKeys(path: string, value: unknown, allowed: readonly string[]): Record<string, unknown> {
  const object = plainObject(path, value);
  checkKnownKeys(path, object, allowed);
  return object;
}

function integerOption(path: string, options: Record<string, unknown>, key: string, fallback: number, min: number): number {
  const value = options[key];
  return value === undefined ? fallback : finiteNumber(`${path}.${key}`, value, { min, integer: true });
}

/** A timer delay: finite, > 0 and at most `MAX_TIMER_MS`, so no platform fires it early. */
function durationOption(path: string, options: Record<string, unknown>, key: string, fallback: number): number {
  const value = options[key];
  return value === undefined ? fallback : finiteNumber(`${path}.${key}`, value, { min: 0, minExclusive: true, max: MAX_TIMER_MS });
}

function positiveOption(path: string, options: Record<string, unknown>, key: string, fallback: number): number {
  const value = options[key];
  return value === undefined ? fallback : finiteNumber(`${path}.${key}`, value, { min: 0, minExclusive: true });
}

function percentOption(path: string, options: Record<string, unknown>, key: string, fallback: number): number {
  const value = options[key];
  return value === undefined ? fallback : finiteNumber(`${path}.${key}`, value, { min: 0, max: 100 });
}

function booleanOption(path: string, options: Record<string, unknown>, key: string, fallback: boolean): boolean {
  const value = options[key];
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') throw new InvalidOptionError(`${path}.${key}`, value, 'must be true or false');
  return value;
}
