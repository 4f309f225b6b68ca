// The public surface of @fulcrum/http. Re-exports only; no logic lives here.
export { createProxy } from './proxy/proxy';
export type { ProxyHandler } from './proxy/proxy';
export type {
  AccessLogEntry,
  AdmissionVerdict,
  ProxyOptions,
  ProxyTimeouts,
  RequestRouter,
  RouteDecision,
  Termination,
} from './proxy/options';
export { hasBody } from './proxy/body';
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
export type { CookieStickinessOptions, HashBy, StickinessMode, StickinessOptions } from './affinity';
export { httpProbe, tcpProbe } from './probes';
export type { ExpectStatus, HttpProbeOptions, HttpProbeTlsOptions, TcpProbeOptions } from './probes';
export { PROMETHEUS_CONTENT_TYPE, prometheus, prometheusHandler, renderPrometheus, statsPage } from './stats';
export type { StatsEvent, StatsHandler, StatsJson, StatsPageOptions, StatsSource } from './stats';
