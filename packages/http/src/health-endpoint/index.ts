// The backend's side of health checks and graceful shutdown. Re-exports only; no logic lives here.
export { healthEndpoint } from './health-endpoint';
export type { HealthEndpoint, HealthEndpointOptions, HealthState, ShutdownResult } from './health-endpoint';
