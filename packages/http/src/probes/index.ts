// Active health-check probes for core's HealthChecker. Re-exports only.
export { httpProbe } from './http-probe';
export type { ExpectStatus, HttpProbeOptions, HttpProbeTlsOptions } from './http-probe';
export { tcpProbe } from './tcp-probe';
export { grpcHealthProbe, encodeHealthCheckRequest, decodeHealthCheckResponse } from './grpc-health-probe';
export type { GrpcHealthProbeOptions } from './grpc-health-probe';
export type { TcpProbeOptions } from './tcp-probe';
export { AGENT_BODY_LIMIT, parseAgentJson, parseAgentWords } from './agent';
export type { AgentReport } from './agent';
