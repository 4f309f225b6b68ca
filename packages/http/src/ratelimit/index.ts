// Rate and concurrency limits for createProxy({ admission }). Re-exports only; no logic lives here.
export { RateLimiter, normalizeRateLimitOptions } from './rate-limiter';
export type { NormalizedRateLimitOptions, RateLimitKey, RateLimitOptions, RateLimiterDeps } from './rate-limiter';
