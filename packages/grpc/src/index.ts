// The public surface of @fulcrum/grpc. Re-exports only; no logic lives here.
export { registerFulcrumPolicy } from './register';
export { fulcrumServiceConfig, normalizeFulcrumPolicyOptions, POLICY_NAME } from './config';
export type { FulcrumPolicyOptions, NormalizedFulcrumPolicyOptions } from './config';
export { FulcrumLoadBalancer, FulcrumLoadBalancingConfig } from './policy';
export { onLoadBalancer } from './hooks';
export type { LoadBalancerInfo, LoadBalancerListener } from './hooks';
export { DEFAULT_FAILURE_STATUSES, GRPC_STATUS, outcomeOf, statusName } from './status';
export type { GrpcStatusName } from './status';
export {
  createHealthService,
  decodeHealthCheckRequest,
  decodeHealthCheckResponse,
  encodeHealthCheckRequest,
  encodeHealthCheckResponse,
  HEALTH_CHECK_PATH,
  HEALTH_WATCH_PATH,
  HealthWatchedSubchannel,
} from './health';
export type { HealthCheckRequest, HealthCheckResponse, HealthService, ServingStatus } from './health';
