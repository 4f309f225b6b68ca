// The public surface of @fulcrum/express-adapter. Re-exports only; no logic lives here.
export { proxy } from './proxy';
export type { ExpressProxyOptions, ProxyMiddleware } from './proxy';
export { metrics, stats } from './stats';
export type { StatsMiddleware } from './stats';
