// The public surface of @fulcrum/express-adapter. Re-exports only; no logic lives here.
export { proxy } from './proxy';
export type { ExpressProxyOptions, ProxyMiddleware } from './proxy';
export { metrics, stats } from './stats';
export type { StatsMiddleware } from './stats';
// Health checks (README: "Health checks"), so an app needs no second import for them.
export { httpProbe, tcpProbe } from '@fulcrum/http';
export type { HealthCheckOptions, HttpProbeOptions, ProxyHooks, ProxyRequestHead, ProxyResponseHead } from '@fulcrum/http';
// The errors this package's README names (options are validated by @fulcrum/http and core).
export { ErrorCodes, FulcrumError, InvalidOptionError, isFulcrumError, isInvalidOptionError } from '@fulcrum/core';
