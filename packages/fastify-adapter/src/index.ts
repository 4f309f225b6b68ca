// The public surface of @fulcrum/fastify-adapter. Re-exports only; no logic lives here.
export { fulcrum } from './plugin';
export type { FulcrumDecoration } from './plugin';
export type { FulcrumPluginOptions, HeaderRecord } from './options';
// Health checks (README: "Health checks"), so an app needs no second import for them.
export { httpProbe, tcpProbe } from '@fulcrum/http';
export type { HealthCheckOptions, HttpProbeOptions, ProxyHooks, ProxyRequestHead, ProxyResponseHead } from '@fulcrum/http';
// The errors this package's README names (options are validated by @fulcrum/http and core).
export { ErrorCodes, FulcrumError, InvalidOptionError, isFulcrumError, isInvalidOptionError } from '@fulcrum/core';
