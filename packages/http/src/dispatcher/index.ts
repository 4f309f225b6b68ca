// Client-side balancing as an undici Dispatcher. Re-exports only; no logic lives here.
export { BalancedDispatcher, createBalancedDispatcher } from './balanced-dispatcher';
export type { BalancedDispatchOptions } from './balanced-dispatcher';
export { DEFAULT_KEY_HEADER } from './options';
export type { BalancedDispatcherOptions, DispatcherHashBy, DispatcherTimeouts } from './options';
export { OriginRouter, routeByOrigin } from './origin-router';
export type { OriginRouterOptions } from './origin-router';
