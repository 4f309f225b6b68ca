/**
 * `@fulcrum/core/validate`: the option checks and pure `normalize*` functions the Fulcrum packages
 * validate with (http, the session stores, the CLI, the simulator), so an option is refused with one
 * wording wherever it is given. Published for Fulcrum's own packages and for code that validates
 * options the way they do; an application does not need it. Re-exports only; no logic lives here.
 */
export {
  MAX_TIMER_MS,
  checkKnownKeys,
  describeBounds,
  finiteNumber,
  isPlainObject,
  optionalBoolean,
  optionalFunction,
  optionalInteger,
  optionalNumber,
  optionalObject,
  optionalString,
  optionalTimerMs,
  optionsObject,
  plainObject,
  timerMs,
} from './checks';
export type { NumberBounds } from './checks';
export { describeValue } from '../errors';
export { normalizeBackendSpec, normalizeBackendSpecs, validateAddress, validateWeight } from '../backend';
export type { NormalizedBackendSpec } from '../backend';
export { normalizeHealthOptions, normalizeOutlierOptions, normalizePanicThreshold, normalizeSlowStartOptions } from '../health/options';
export type { NormalizedHealthOptions, NormalizedOutlierOptions } from '../health/options';
export type { NormalizedSlowStartOptions } from '../health/slow-start';
