/**
 * The merge rule of replicated stick-tables, as pure functions: a last-writer-wins register per key
 * (Shapiro et al., "Conflict-free Replicated Data Types", 2011), ordered by `(updatedAt, origin)`
 * like HAProxy's peers keep the most recent update. Picking the maximum of a total order is
 * commutative, associative and idempotent, so tables converge whatever the delivery order,
 * duplication or delay.
 *
 * Why the order goes past `(updatedAt, origin)`: two different writes can share that pair (a node
 * that forgot its own entry, e.g. after an eviction, and rewrites the key in the same millisecond).
 * Without a tie-break the winner would depend on arrival order and tables could diverge, so ties
 * fall to: a tombstone beats a value, then the later `expiresAt`, then the larger JSON text of the
 * value. Those last steps almost never run, so their cost does not matter.
 *
 * Time is not part of the order: dropping expired entries (`isExpired`) is the table's job, done
 * against its clock before merging, so a late message can never bring back an expired entry.
 */
import type { StickEntry } from './replicator';

/** Same rule as backend ids: 1–64 chars of [A-Za-z0-9._:-]. */
export const NODE_ID_PATTERN = /^[A-Za-z0-9._:-]{1,64}$/;

/**
 * Compare two writes of one key in the last-writer-wins order: > 0 when `a` wins, < 0 when `b` wins,
 * 0 when they are the same write. Takes fields rather than entries so a table can compare against
 * its compact storage without building an object.
 */
export function compareWrites(
  aUpdatedAt: number,
  aOrigin: string,
  aDeleted: boolean,
  aExpiresAt: number,
  aValue: unknown,
  bUpdatedAt: number,
  bOrigin: string,
  bDeleted: boolean,
  bExpiresAt: number,
  bValue: unknown,
): number {
  if (aUpdatedAt !== bUpdatedAt) return aUpdatedAt > bUpdatedAt ? 1 : -1;
  if (aOrigin !== bOrigin) return aOrigin > bOrigin ? 1 : -1;
  if (aDeleted !== bDeleted) return aDeleted ? 1 : -1;
  if (aExpiresAt !== bExpiresAt) return aExpiresAt > bExpiresAt ? 1 : -1;
  if (aDeleted || aValue === bValue) return 0;
  const aText = JSON.stringify(aValue) ?? '';
  const bText = JSON.stringify(bValue) ?? '';
  return aText === bText ? 0 : aText > bText ? 1 : -1;
}

/** `compareWrites` on two entries (of the same key). */
export function compareStickEntries<V>(a: StickEntry<V>, b: StickEntry<V>): number {
  return compareWrites(a.updatedAt, a.origin, a.deleted === true, a.expiresAt, a.value, b.updatedAt, b.origin, b.deleted === true, b.expiresAt, b.value);
}

/** The winner of two writes of one key (the first on a tie, which is then the same write). */
export function mergeStickEntry<V>(current: StickEntry<V> | undefined, incoming: StickEntry<V>): StickEntry<V> {
  if (current === undefined) return incoming;
  return compareStickEntries(current, incoming) >= 0 ? current : incoming;
}

/**
 * Merge two replica states (key → latest entry) into a new one. The reference semantics of a
 * table's `merge`, minus expiry and capacity; the property tests check that tables agree with it.
 */
export function mergeStickStates<V>(a: ReadonlyMap<string, StickEntry<V>>, b: ReadonlyMap<string, StickEntry<V>>): Map<string, StickEntry<V>> {
  const merged = new Map(a);
  for (const [key, entry] of b) merged.set(key, mergeStickEntry(merged.get(key), entry));
  return merged;
}

/** An entry (or tombstone) is gone from the moment `now` reaches its `expiresAt`. */
export function isExpired(entry: { readonly expiresAt: number }, now: number): boolean {
  return entry.expiresAt <= now;
}

/**
 * Shape check for entries that arrive from outside (a replicator, a snapshot): a string key,
 * finite stamps, a valid origin, and a value unless it is a tombstone. Tables drop what fails it.
 */
export function isStickEntry(candidate: unknown): candidate is StickEntry<unknown> {
  if (typeof candidate !== 'object' || candidate === null) return false;
  const entry = candidate as Record<string, unknown>;
  if (typeof entry.key !== 'string') return false;
  if (typeof entry.updatedAt !== 'number' || !Number.isFinite(entry.updatedAt)) return false;
  if (typeof entry.expiresAt !== 'number' || !Number.isFinite(entry.expiresAt)) return false;
  if (typeof entry.origin !== 'string' || !NODE_ID_PATTERN.test(entry.origin)) return false;
  if (entry.deleted === true) return true;
  return entry.deleted === undefined && entry.value !== undefined;
}
