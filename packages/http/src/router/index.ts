// Forwarding rules and traffic splits of @fulcrum/http. Re-exports only; no logic lives here.
export { createRouter, normalizeRouterOptions } from './router';
export { POOL_PROXY_KEYS, normalizePoolProxyOptions } from './options';
export type { PoolProxyOptions, PoolSpec } from './options';
export type { NormalizedRouterOptions, Router, RouteMatch, RouterOptions } from './router';
export { DEFAULT_SPLIT_COOKIE_NAME } from './options';
export type { RouteMatchSpec, RouteSpec, SplitOptions, SplitTarget } from './options';
export { normaliseTarget } from './path';
export type { NormalisedTarget } from './path';
export { parseHost } from './match';
