// The public surface of @fulcrum/core. Re-exports only; no logic lives here.
// Option checks and `normalize*` functions are in `@fulcrum/core/validate`; session-store and
// replicator rules in `@fulcrum/core/session`; the property-test kit in `@fulcrum/core/testing`.
export { Backend, backendIdOf, BACKEND_ID_PATTERN, MAX_BACKEND_WEIGHT, MIN_BACKEND_WEIGHT } from './backend';
export type { BackendSpec, BackendState } from './backend';

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

export {
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

// Health: the options and the probe contract. The counter arithmetic, the checker and the outlier
// detector are the load balancer's internals; `normalize*Options` are in `@fulcrum/core/validate`.
export type { AdminState, EjectionCause, HealthOptions, HealthStatus, OutlierOptions, Probe, ProbeResult, SlowStartOptions } from './health';

// Stick-tables. The merge rule replicators use is in `@fulcrum/core/session`.
export { MemoryReplicator, NODE_ID_PATTERN, StickTable } from './stick';
export type { MemoryReplicatorOptions, Replicator, StickEntry, StickEntryStamp, StickTableOptions, StickTombstone, StickValueEntry } from './stick';
