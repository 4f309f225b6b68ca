// Active health-check probes for core's HealthChecker. Re-exports only.
export { httpProbe } from './http-probe';
export type { ExpectStatus, HttpProbeOptions, HttpProbeTlsOptions } from './http-probe';
export { tcpProbe } from './tcp-probe';
export { resolveHealth } from './health-check';
export type { BalancerOptions, HealthCheckOptions } from './health-check';
export type { TcpProbeOptions } from './tcp-probe';
export { AGENT_BODY_LIMIT, parseAgentJson, parseAgentWords } from './agent';
export type { AgentReport } from './agent';
