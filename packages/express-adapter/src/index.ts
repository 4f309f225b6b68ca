// The public surface of @fulcrum/express-adapter. Re-exports only; no logic lives here.
export { proxy } from './proxy';
export type { ExpressProxyOptions, ProxyMiddleware } from './proxy';
export { metrics, stats } from './stats';
export type { StatsMiddleware } from './stats';
// The errors this package's README names (options are validated by @fulcrum/http and core).
export { ErrorCodes, FulcrumError, InvalidOptionError, isFulcrumError, isInvalidOptionError } from '@fulcrum/core';
