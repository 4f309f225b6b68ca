// The health subsystem's public names. Re-exports only; no logic lives here.
export { DEFAULT_HEALTH_COUNTER, applyAdminDirectives, checkPhase, fullHealth, initialHealth, reduceHealth, resolveState } from './state-machine';
export type { AdminDirectives, AdminState, CheckPhase, HealthCounterConfig, HealthObservation, HealthStatus, InitialHealthState } from './state-machine';

export { HealthChecker, interpretProbeValue } from './checker';
export type { HealthCheckerDeps, Probe, ProbeResult } from './checker';

export { OutlierDetector } from './outlier';
export type { OutlierDetectorDeps, OutlierHostState } from './outlier';

export { slowStartFactor } from './slow-start';
export type { NormalizedSlowStartOptions, SlowStartOptions } from './slow-start';

export { MAX_TIMER_MS, isBackendFailure, normalizeHealthOptions, normalizeOutlierOptions, normalizePanicThreshold, normalizeSlowStartOptions } from './options';
export type { EjectionCause, HealthOptions, NormalizedHealthOptions, NormalizedOutlierOptions, OutlierOptions } from './options';
