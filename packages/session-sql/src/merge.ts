/**
 * Three-way merge of a session, for the optimistic mode's `'merge'` policy: when a write was made
 * from a copy that another request changed meanwhile, keep the other request's changes to the
 * fields this write did not touch. The classic three-way rule of version control (diff3), at the
 * granularity express-session users think in — top-level session fields (`cart`, `user`, `flash`):
 * a field this writer left as it read it takes the stored value; a field it changed, added or
 * deleted takes its own. Two writers changing the *same* field: the later write wins that field,
 * as a plain store would for the whole session. `cookie` always comes from this writer (its expiry
 * is the one express-session is about to send).
 */
import type { SessionLike } from '@fulcrum/core/session';

const same = (a: unknown, b: unknown): boolean => a === b || JSON.stringify(a) === JSON.stringify(b);

/** Merges `mine` (written from `base`) into `theirs` (the stored session); see the file header. */
export function mergeSessions(base: SessionLike, theirs: SessionLike, mine: SessionLike): SessionLike {
  const merged: SessionLike = { ...theirs };
  const keys = new Set([...Object.keys(base), ...Object.keys(mine)]);
  for (const key of keys) {
    if (key === 'cookie') continue;
    const inMine = Object.prototype.hasOwnProperty.call(mine, key);
    const inBase = Object.prototype.hasOwnProperty.call(base, key);
    if (inMine === inBase && (!inMine || same(base[key], mine[key]))) continue; // untouched by this writer
    // defineProperty: a parsed session may own a "__proto__" key, which assignment would turn into a prototype.
    if (inMine) Object.defineProperty(merged, key, { value: mine[key], enumerable: true, writable: true, configurable: true });
    else delete merged[key];
  }
  if (mine.cookie !== undefined) merged.cookie = mine.cookie;
  return merged;
}
