// Shared session-store rules for the session packages. Re-exports only.
export {
  DEFAULT_SESSION_TTL_SECONDS,
  MAX_SESSION_ID_LENGTH,
  assertSessionId,
  isValidSessionId,
  jsonSerializer,
  sessionExpiresAt,
  sessionTtlSeconds,
  settle,
  shouldTouch,
} from './session-store';
export type { SessionLike, SessionSerializer, StoreCallback } from './session-store';
export { KeyedLock } from './keyed-lock';
export { withDeadline } from './deadline';
export { sessionStoreClock } from './clock-option';
