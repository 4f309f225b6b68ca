// Shared session-store rules for the session packages. Re-exports only.
export {
  DEFAULT_SESSION_TTL_SECONDS,
  SESSION_ID_PATTERN,
  assertSessionId,
  isValidSessionId,
  jsonSerializer,
  sessionExpiresAt,
  sessionTtlSeconds,
  settle,
  shouldTouch,
} from './session-store';
export type { SessionLike, SessionSerializer, StoreCallback } from './session-store';
