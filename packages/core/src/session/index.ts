// `@fulcrum/core/session`: the shared rules of the session packages — session stores (ids, expiry,
// touch, serialisation) and stick-table replicators (what an entry is and which write wins). For
// authors of stores and replicators; an application does not need it. Re-exports only.
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
export { compareWrites, isExpired, isStickEntry, mergeStickEntry } from '../stick/merge';
export { KeyedLock } from './keyed-lock';
export { withDeadline } from './deadline';
export { sessionStoreClock } from './clock-option';
