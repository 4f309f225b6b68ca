// The public surface of @fulcrum/sim. Re-exports only; no logic lives here.
export { compare, compareAsync, simulate, simulateAsync } from './simulate';
export type { BackendResult, Policy, SimulationEvent, SimulationResult } from './simulate';
export { normalizeScenario, normalizeDistribution } from './scenario';
export type {
  Arrivals,
  BackendScenario,
  Burst,
  Change,
  Keys,
  LoadBalancerScenario,
  NormalizedBackend,
  NormalizedChange,
  NormalizedScenario,
  Retries,
  RetryableFailure,
  Scenario,
  SimHealthOptions,
} from './scenario';
export { meanOf, samplerOf, zipfSampler } from './distributions';
export type { Distribution, Sampler } from './distributions';
export { Histogram } from './histogram';
export { EventQueue } from './event-queue';
export { ballsIntoBins } from './balls-into-bins';
export type { BallsIntoBinsOptions, BallsIntoBinsResult } from './balls-into-bins';
export { PowerOfDChoices } from './d-choices';
export { renderReport, escapeHtml } from './report';
export type { ReportOptions } from './report';
// Core's error for an invalid scenario, named in the README, so a user of the simulator alone can check it.
export { ErrorCodes, InvalidOptionError, isFulcrumError, isInvalidOptionError } from '@fulcrum/core';
