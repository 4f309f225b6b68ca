// The public surface of @fulcrum/core. Re-exports only; no logic lives here.
export { Backend, BACKEND_ID_PATTERN, MAX_BACKEND_WEIGHT, MIN_BACKEND_WEIGHT, normalizeBackendSpec, normalizeBackendSpecs, validateAddress, validateWeight } from './backend';
export type { BackendSpec, BackendState, NormalizedBackendSpec } from './backend';

export { createLoadBalancer, LoadBalancer, Lease } from './load-balancer';
export type {
  AcquireContext,
  AffinityTable,
  BackendSnapshot,
  LoadBalancerEvents,
  LoadBalancerOptions,
  LoadBalancerSnapshot,
  MembershipChange,
  StateCause,
  Tier,
} from './load-balancer';

export { describeDecision } from './decision';
export type { Decision, DecisionReason, StickyMissCause } from './decision';

export type { AlgorithmName, Balancer, BalancerFactory, BalancerOptions, HashingAlgorithmName, Outcome, ShareContract, ShareRule } from './balancers/balancer';
export { ALGORITHM_NAMES, createBalancer, hasBalancer, registerBalancer } from './balancers/registry';
export { RoundRobin } from './balancers/round-robin';
export { SmoothWeightedRoundRobin } from './balancers/weighted-round-robin';
export { LeastConnections } from './balancers/least-connections';
export { PowerOfTwoChoices } from './balancers/p2c';
export { PeakEwma } from './balancers/peak-ewma';
export { WeightedRandom } from './balancers/random';
export { FirstAvailable } from './balancers/first';
export { RingHash } from './balancers/ring-hash';
export { Maglev } from './balancers/maglev';
export { Rendezvous } from './balancers/rendezvous';
export { BoundedLoad } from './balancers/bounded-load';
export { murmur3 } from './hash';

export { coarseClock, realClock } from './clock';
export type { Clock, Timer } from './clock';
export { defaultRandom, createSeededRandom } from './random';
export type { Random } from './random';

export { isPlainObject } from './validate';
export {
  describeValue,
  ErrorCodes,
  FulcrumError,
  InvalidOptionError,
  NoBackendAvailableError,
  SessionConflictError,
  StoreUnavailableError,
  UpstreamError,
  isFulcrumError,
  isInvalidOptionError,
  isNoBackendAvailableError,
  isSessionConflictError,
  isStoreUnavailableError,
  isUpstreamError,
} from './errors';
export type { FailureKind, FulcrumErrorCode } from './errors';

export {
  DEFAULT_HEALTH_COUNTER,
  HealthChecker,
  MAX_TIMER_MS,
  OutlierDetector,
  applyAdminDirectives,
  checkPhase,
  fullHealth,
  initialHealth,
  interpretProbeValue,
  isBackendFailure,
  normalizeHealthOptions,
  normalizeOutlierOptions,
  normalizePanicThreshold,
  normalizeSlowStartOptions,
  reduceHealth,
  resolveState,
  slowStartFactor,
} from './health';
export type {
  AdminDirectives,
  AdminState,
  CheckPhase,
  EjectionCause,
  HealthCheckerDeps,
  HealthCounterConfig,
  HealthObservation,
  HealthOptions,
  HealthStatus,
  InitialHealthState,
  NormalizedHealthOptions,
  NormalizedOutlierOptions,
  NormalizedSlowStartOptions,
  OutlierDetectorDeps,
  OutlierHostState,
  OutlierOptions,
  Probe,
  ProbeResult,
  SlowStartOptions,
} from './health';

export {
  MemoryReplicator,
  NODE_ID_PATTERN,
  StickTable,
  compareStickEntries,
  compareWrites,
  isExpired,
  isStickEntry,
  mergeStickEntry,
  mergeStickStates,
} from './stick';
export type {
  MemoryReplicatorOptions,
  Replicator,
  StickEntry,
  StickEntryStamp,
  StickTableOptions,
  StickTombstone,
  StickValueEntry,
} from './stick';

export {
  DEFAULT_SESSION_TTL_SECONDS,
  MAX_SESSION_ID_LENGTH,
  assertSessionId,
  isValidSessionId,
  jsonSerializer,
  sessionExpiresAt,
  sessionTtlSeconds,
  settle,
  shouldTouch,
  KeyedLock,
  withDeadline,
  sessionStoreClock,
} from './session';
export type { SessionLike, SessionSerializer, StoreCallback as SessionStoreCallback } from './session';
