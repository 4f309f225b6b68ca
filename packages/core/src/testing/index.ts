/**
 * `@fulcrum/core/testing`: the property-test kit for balancers and everything built on core — a fake
 * clock, seeded randomness, backends in any state, fast-check arbitraries and `checkBalancer`, the
 * invariant suite every built-in balancer passes. Test-runner agnostic: plain functions that throw.
 * Re-exports only.
 */
export { FakeClock } from './fake-clock';
export { seededRandom } from './seeded-random';
export { createBackends, setBackendLoad, simulateAcquire, simulateRelease, type BackendLoad } from './backends';
export {
  arbitraries,
  address,
  applyMembershipChange,
  backendId,
  backendSpec,
  backendSpecs,
  DEFAULT_TEST_IDS,
  healthEvents,
  key,
  keys,
  membershipChange,
  membershipChanges,
  weight,
  type BackendSpecOptions,
  type BackendSpecsOptions,
  type HealthEvent,
  type MembershipOp,
} from './arbitraries';
export { InvariantViolation } from './check-support';
export { checkBalancer, defaultMaxMovedFraction, type CheckBalancerOptions, type InvariantName, type KeyRemoval, type ShareCheck } from './check-balancer';
export {
  checkStore,
  StoreConformanceError,
  type CheckStoreOptions,
  type SessionCookieData,
  type SessionData,
  type StoreCallback,
  type StoreUnderTest,
} from './check-store';
export { checkReplicator, ReplicatorConformanceError, type CheckReplicatorOptions, type ReplicatorContext, type ReplicatorFactory } from './check-replicator';
