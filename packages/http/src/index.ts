// The public surface of @fulcrum/http. Re-exports only; no logic lives here.
export { createProxy } from './proxy/proxy';
export type { ProxyHandler } from './proxy/proxy';
export type { ProxyHooks, ProxyRequestHead, ProxyResponseHead } from './proxy/hooks';
export type { AccessLogEntry, AdmissionVerdict, ProxyOptions, ProxyTimeouts, RequestRouter, RouteDecision, Termination } from './proxy/options';
export { hasBody } from './proxy/body';
export { ConnectionLimit, limitConnections } from './proxy/connection-limit';
export type { LimitConnectionsOptions } from './proxy/connection-limit';
export { checkRequestHead, DEFAULT_MAX_HEADER_COUNT } from './proxy/request-checks';
export type { HeadRefusal } from './proxy/request-checks';
export { createProxyServer } from './engine/server';
export type { ProxyServer } from './engine/server';
export type { ProxyServerOptions } from './engine/options';
export { RETRY_CONDITIONS, isIdempotent } from './retry/policy';
export type { RetryCondition } from './retry/policy';
export { RetryBudget } from './retry/budget';
export {
  DEFAULT_COOKIE_MAX_AGE_MS,
  DEFAULT_COOKIE_NAME,
  DEFAULT_STICKY_CAPACITY,
  DEFAULT_STICKY_TTL_MS,
  Stickiness,
  StickyCookie,
  TrustedProxies,
  clientAddress,
  compileHashBy,
} from './affinity';
export type { CookieStickinessOptions, HashBy, StickinessMode, StickinessOptions, StickyVerification } from './affinity';
export { grpcHealthProbe, httpProbe, resolveHealth, tcpProbe } from './probes';
export type {
  ProxyBalancerOptions,
  ExpectStatus,
  GrpcHealthProbeOptions,
  HealthCheckOptions,
  HttpProbeOptions,
  HttpProbeTlsOptions,
  TcpProbeOptions,
} from './probes';
export { GrpcStatus, parseGrpcTimeout } from './h2/grpc';
export type { GrpcOptions } from './h2/grpc';
export { normalizeHttp2Options } from './h2/options';
export type { Http2Options, NormalizedHttp2Options, UpstreamProtocol } from './h2/options';
export {
  frontendProtocolStats,
  poolProtocolStats,
  protocolStats,
  protocolStatsJson,
  renderProtocolFamilies,
  renderProtocolMetrics,
  sumProtocolStats,
} from './h2/stats';
export type { FrontendProtocolStats, ProtocolStats, ProtocolStatsJson } from './h2/stats';
export {
  PROMETHEUS_CONTENT_TYPE,
  prometheus,
  prometheusHandler,
  renderPrometheus,
  renderPrometheusPieces,
  renderTrafficJson,
  renderTrafficJsonPieces,
  MAX_CONCURRENT_RENDERS,
  SMALL_BODY_BACKENDS,
  sendRendersBusy,
  statsPage,
  streamBody,
} from './stats';
export type { PrometheusHandlerOptions, StatsEvent, StatsFrontends, StatsHandler, StatsJson, StatsPageOptions, StatsSource } from './stats';
export { DURATION_BOUNDS_MS, quantileOf, trafficOf } from './stats';
export type { BackendTrafficJson, PoolTraffic, PoolTrafficJson } from './stats';
export { createRouter, DEFAULT_SPLIT_COOKIE_NAME, POOL_PROXY_KEYS, normalizePoolProxyOptions, normalizeRouterOptions } from './router';
export type {
  NormalizedRouterOptions,
  PoolProxyOptions,
  PoolSpec,
  Router,
  RouteMatch,
  RouterOptions,
  RouteSpec,
  RouteMatchSpec,
  SplitOptions,
  SplitTarget,
} from './router';
export { createTlsContext, tlsOptions, redirectToHttps } from './tls';
export type { TlsCertificate, TlsContext, TlsOptions, RedirectToHttpsOptions } from './tls';
export { createTcpProxy, proxyHeader, proxyHeaderV1, proxyHeaderV2, PROXY_V2_SIGNATURE } from './tcp';
export type { TcpProxyHandler, TcpProxyOptions, ProxyProtocolVersion, ConnectionAddresses } from './tcp';
export { BalancedDispatcher, createBalancedDispatcher, DEFAULT_KEY_HEADER, OriginRouter, routeByOrigin } from './dispatcher';
export type { BalancedDispatchOptions, BalancedDispatcherOptions, DispatcherHashBy, DispatcherTimeouts, OriginRouterOptions } from './dispatcher';
export { DnsDiscovery, DnsDiscoveryError, dnsDiscovery, isDnsDiscoveryError } from './discovery';
export type { DnsDiscoveryEvents, DnsDiscoveryOptions, DnsResolver, DnsTarget } from './discovery';
export { healthEndpoint } from './health-endpoint';
export type { HealthEndpoint, HealthEndpointOptions, HealthState, ShutdownResult } from './health-endpoint';
export { RateLimiter, normalizeRateLimitOptions } from './ratelimit';
// Building blocks of servers composed from the raw engine — what `@fulcrum/cli` (the `fulcrum`
// application) builds its frontends from: one listener dispatching each request to the engine of the
// pool it routed to, and handing Fulcrum's own pages to a node:http server.
export { RawListener } from './engine/listener';
export type { RawDispatch, RawListenerOptions } from './engine/listener';
export { normalizeListenerOptions } from './engine/options';
export type { NormalizedListenerOptions } from './engine/options';
export type { RequestView } from './engine/request-view';
export { PROXY_ENGINE } from './proxy/proxy';
export { normalizeProxyOptions } from './proxy/options';
export type { NormalizedProxyOptions } from './proxy/options';
export { closeAfterAnswer } from './proxy/errors';
export { isSecureRequest } from './affinity';
export type { NormalizedRateLimitOptions, RateLimitKey, RateLimitOptions, RateLimiterDeps } from './ratelimit';
// Core's errors that this package throws and its README names, so a user of @fulcrum/http alone can
// catch and check them (`isFulcrumError(error, ErrorCodes.UPSTREAM)`).
export {
  ErrorCodes,
  FulcrumError,
  InvalidOptionError,
  NoBackendAvailableError,
  UpstreamError,
  isFulcrumError,
  isInvalidOptionError,
  isNoBackendAvailableError,
  isUpstreamError,
} from '@fulcrum/core';
export type { FulcrumErrorCode } from '@fulcrum/core';
