/**
 * The replication contract between stick-tables: what travels (`StickEntry`) and the hook a backing
 * service implements (`Replicator`). Modelled on HAProxy's peers protocol (`src/peers.c`): a table
 * pushes the entries it changed locally, in batches, and applies what its peers push, keeping the
 * sender's expiry. A new instance first loads a snapshot (HAProxy's "resync" from the local peer).
 *
 * Entries are last-writer-wins registers (Shapiro et al., "Conflict-free Replicated Data Types",
 * 2011): `(updatedAt, origin)` orders them, so any replicator that delivers every entry at least
 * once, in any order, with duplicates, lets every table converge. Replicators need not be ordered,
 * exactly-once, or echo-free — the merge rule (`merge.ts`) absorbs all three.
 */

/** Fields common to a value entry and a tombstone. */
export interface StickEntryStamp {
  /** The stick-table key (an affinity key, a session id, a client address…). */
  readonly key: string;
  /** Wall-clock ms of the write on its origin node; the first half of the last-writer-wins order. */
  readonly updatedAt: number;
  /** Wall-clock ms after which the entry (or tombstone) is gone everywhere; receivers keep it as is. */
  readonly expiresAt: number;
  /** `nodeId` of the table that made the write; breaks ties between equal `updatedAt`. */
  readonly origin: string;
}

/** A live value. `value` must be plain JSON data: it crosses processes and hosts. */
export interface StickValueEntry<V> extends StickEntryStamp {
  readonly value: V;
  readonly deleted?: undefined;
}

/**
 * A delete. Kept until its `expiresAt` so that a late, older write of the same key is rejected
 * instead of bringing the value back.
 */
export interface StickTombstone extends StickEntryStamp {
  readonly value?: undefined;
  readonly deleted: true;
}

/** What a replicator carries: a value or a tombstone (check `deleted` before reading `value`). */
export type StickEntry<V> = StickValueEntry<V> | StickTombstone;

/**
 * The hook a backing service implements to connect stick-tables (in-process: `MemoryReplicator`;
 * Redis, SQL, files: the session packages). One replicator may serve one table or several.
 */
export interface Replicator<V> {
  /**
   * Send a batch of local changes to the other tables. May deliver the batch back to the sender
   * (tables ignore their own echoes through the merge rule). A rejection is reported through the
   * table's `onError`, never thrown at the writer.
   */
  publish(entries: readonly StickEntry<V>[]): void | Promise<void>;
  /** Receive batches published by others. Returns the function that stops delivery. */
  subscribe(onEntries: (entries: readonly StickEntry<V>[]) => void): () => void;
  /** The latest entries known to the backing service: what a new table loads on start. */
  snapshot(): Promise<readonly StickEntry<V>[]>;
  /** Release connections and timers. Tables never call it: whoever created the replicator does. */
  close(): Promise<void>;
}
