// `@fulcrum/http/proxy`: the server-side reverse proxy alone — both engines (`createProxy` for
// node:http, Express and Fastify; `createProxyServer`, which owns its sockets), forwarding rules,
// the probes its `health` option uses, and the errors it throws. Re-exports only; no logic lives here.
export { createProxy } from './proxy';
export type { ProxyHandler } from './proxy';
export type { AccessLogEntry, AdmissionVerdict, ProxyOptions, ProxyTimeouts, RequestRouter, RouteDecision, Termination } from './options';
export { ConnectionLimit, limitConnections } from './connection-limit';
export type { LimitConnectionsOptions } from './connection-limit';
export { createProxyServer } from '../engine/server';
export type { ProxyServer } from '../engine/server';
export type { ProxyServerOptions } from '../engine/options';
export { RETRY_CONDITIONS } from '../retry/policy';
export type { RetryCondition } from '../retry/policy';
export type { CookieStickinessOptions, HashBy, StickinessMode, StickinessOptions } from '../affinity';
export { httpProbe, tcpProbe } from '../probes';
export type { ExpectStatus, HttpProbeOptions, HttpProbeTlsOptions, TcpProbeOptions } from '../probes';
export { createRouter } from '../router';
export type { Router, RouteMatch, RouterOptions, RouteMatchSpec, RouteSpec, SplitOptions, SplitTarget } from '../router';
export { ErrorCodes, FulcrumError, InvalidOptionError, NoBackendAvailableError, UpstreamError, isFulcrumError } from '@fulcrum/core';
export type { FulcrumErrorCode } from '@fulcrum/core';
