/**
 * Optimistic concurrency (row versions, as ORMs do it and as the Redis store does with its Lua
 * script): a session read through the store remembers the version it was read at, and writing it
 * back is `UPDATE … WHERE id = ? AND version = ?`. When another write came first, the write is
 * refused (`'reject'`) or merged field by field against what was read and retried (`'merge'`), so two
 * parallel requests of one session no longer overwrite each other's changes; a session destroyed
 * since it was read is never written back, so a request that ends after a logout cannot revive it.
 */
import { SessionConflictError } from '@fulcrum/core';
import type { SessionLike, SessionSerializer } from '@fulcrum/core/session';
import { mergeSessions } from './merge';
import type { RowRead, RunStatement, WriteResult } from './rows';

/** What to do with a write made from a copy another request changed since it was read. */
export type OptimisticMode = 'merge' | 'reject' | false;

/** The version (and text and expiry) a session object was read or last written at. */
export interface ReadRecord {
  readonly version: number;
  text: string;
  expiresAt: number;
}

export interface CompareAndSetContext {
  readonly mode: 'merge' | 'reject';
  /** Merge-and-retry rounds before giving up with `SessionConflictError`. */
  readonly maxMergeAttempts: number;
  readonly serializer: SessionSerializer;
  /** `UPDATE … SET data = ?, expires_at = ?, version = version + 1 WHERE id = ? AND version = ? AND expires_at > ?`. */
  readonly sql: string;
  /** Session objects → the version they were read at; updated on success, dropped when destroyed. */
  readonly versions: WeakMap<object, ReadRecord>;
  readonly now: () => number;
  readonly run: RunStatement;
  readonly readRow: (sid: string) => Promise<RowRead | undefined>;
}

/** Writes `text` as `sid`'s new data if the row is still at `record`'s version (see the file header). */
export async function compareAndSet(
  context: CompareAndSetContext,
  sid: string,
  session: SessionLike,
  record: ReadRecord,
  text: string,
  expiresAt: number,
): Promise<void> {
  const { serializer } = context;
  let base = record;
  let mine = text;
  for (let attempt = 1; ; attempt++) {
    const result = (await context.run('set', context.sql, [mine, expiresAt, sid, base.version, context.now()], { idempotent: false })) as WriteResult;
    if (result.affectedRows === 1) {
      context.versions.set(session, { version: base.version + 1, text: mine, expiresAt });
      return;
    }
    const current = await context.readRow(sid);
    if (current === undefined) {
      // Destroyed (or expired) since it was read: writing it back would undo a logout.
      context.versions.delete(session);
      if (context.mode === 'reject') throw new SessionConflictError(sid, 'destroyed', base.version, 0);
      return;
    }
    // A merge that keeps losing (the session changes faster than it can be merged) gives up too.
    if (context.mode === 'reject' || attempt >= context.maxMergeAttempts) {
      throw new SessionConflictError(sid, 'changed', base.version, current.version);
    }
    const merged = mergeSessions(serializer.parse(base.text), serializer.parse(current.text), serializer.parse(mine));
    mine = serializer.stringify(merged);
    base = current;
  }
}
