// The affinity layer of @fulcrum/http: client address, signed sticky cookie, hash keys, stickiness.
// Re-exports only; no logic lives here.
export { clientAddress, forwardedFor, MAX_FORWARDED_HOPS, parseForwardedHop, TRUSTED_PROXY_GROUPS, TrustedProxies } from './client-address';
export { formatIp, normalizeIp, parseIp } from './ip';
export type { ParsedIp } from './ip';
export { DEFAULT_COOKIE_MAX_AGE_MS, DEFAULT_COOKIE_NAME, MIN_SECRET_BYTES, StickyCookie } from './cookie';
export type { CookieStickinessOptions, VerifiedStickyCookie } from './cookie';
export { compileHashBy, queryParameter } from './hash-by';
export type { HashBy, HashKeyExtractor } from './hash-by';
export { DEFAULT_STICKY_CAPACITY, DEFAULT_STICKY_TTL_MS, MAX_RAW_STICKY_KEY_LENGTH, Stickiness } from './stickiness';
export type { StickinessDeps, StickinessMode, StickinessOptions, StickyVerification } from './stickiness';
export { DUPLICATE_COOKIE, MAX_COOKIE_PAIR_BYTES, readCookie, readSetCookie } from './cookie-header';
export type { SetCookieInfo } from './cookie-header';
export { isSecureRequest } from './secure-request';
