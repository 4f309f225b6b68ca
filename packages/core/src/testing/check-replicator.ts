/**
 * `checkReplicator(factory)`: the conformance suite for stick-table replicators (in-process, Redis,
 * SQL, files). It connects several real `StickTable`s through replicators from the factory, on the
 * real clock (a replicator's backing service sees wall-clock `expiresAt` values, so a fake clock
 * would make every entry look long expired), and checks what HAProxy's peers guarantee: a write on
 * one table becomes visible on the others, deletes propagate, concurrent writes converge to one
 * value, a joining table loads the snapshot, entries travel unchanged, and nothing expired comes
 * back. Waits are polls with a deadline (`timeoutMs`): no assertion is about speed.
 *
 * The factory contract: `factory({ node, cluster })` is called once per table. Replicators created
 * with the same `cluster` must reach each other (same server, channel and key); each case uses a
 * fresh `cluster`, which a factory may use to isolate cases (a channel or key suffix) or ignore —
 * the suite's keys are unique per run. At the end of each case the suite closes every distinct
 * replicator the factory returned, once; so a factory that shares one in-process instance between
 * tables must return a new instance per `cluster`.
 */
import { realClock } from '../clock';
import { StickTable } from '../stick/stick-table';
import type { Replicator, StickEntry } from '../stick/replicator';
import { ErrorCodes, FulcrumError } from '../errors';

export interface ReplicatorContext {
  /** 0, 1, 2…: which table of the case this replicator is for. */
  node: number;
  /** Identifies the case; replicators with the same cluster must talk to each other. */
  cluster: string;
}

export type ReplicatorFactory = (context: ReplicatorContext) => Replicator<string> | Promise<Replicator<string>>;

export interface CheckReplicatorOptions {
  /** Tables per case (≥ 2). Default 3. */
  nodes?: number;
  /**
   * TTL of the tables in the expiry case, which waits about this long; the other cases use a TTL of
   * a minute so that nothing expires while they wait. Default 500.
   */
  ttlMs?: number;
  /** Longest wait for a change to reach every table, ms. Default 3000. */
  timeoutMs?: number;
  /** Batching delay of the tables, ms. Default 10. */
  batchMs?: number;
}

/** Thrown by the suite; `case` names the failed case. */
export class ReplicatorConformanceError extends FulcrumError {
  readonly code = ErrorCodes.REPLICATOR_CONFORMANCE;
  readonly case: string;
  constructor(caseName: string, message: string, options?: { cause?: unknown }) {
    super(`checkReplicator: ${caseName}: ${message}`, options);
    this.name = 'ReplicatorConformanceError';
    this.case = caseName;
  }
}

const host = globalThis as { setTimeout?: (fn: () => void, ms: number) => unknown };

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => {
    if (typeof host.setTimeout !== 'function') throw new Error('checkReplicator needs a global setTimeout');
    host.setTimeout(resolve, ms);
  });
}

const POLL_MS = 10;
const LONG_TTL_MS = 60_000;

interface Cluster {
  readonly tables: StickTable<string>[];
  readonly replicators: Replicator<string>[];
  readonly errors: unknown[];
  join(): Promise<StickTable<string>>;
}

/**
 * Runs the replicator conformance suite. Resolves when every case passed; rejects with a
 * `ReplicatorConformanceError` naming the first failed case.
 */
export async function checkReplicator(factory: ReplicatorFactory, options: CheckReplicatorOptions = {}): Promise<void> {
  const nodes = options.nodes ?? 3;
  const ttlMs = options.ttlMs ?? 500;
  const timeoutMs = options.timeoutMs ?? 3000;
  const batchMs = options.batchMs ?? 10;
  if (!Number.isInteger(nodes) || nodes < 2 || !(ttlMs > 0) || !(timeoutMs > 0) || !(batchMs >= 0)) {
    throw new RangeError('checkReplicator: nodes must be an integer ≥ 2, ttlMs and timeoutMs > 0, batchMs ≥ 0');
  }
  const run = `chk${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
  let caseNumber = 0;

  const fail = (caseName: string, message: string, cause?: unknown): never => {
    throw new ReplicatorConformanceError(caseName, message, cause === undefined ? undefined : { cause });
  };

  const eventually = async (caseName: string, what: string, condition: () => boolean, waitMs = timeoutMs) => {
    const deadline = Date.now() + waitMs;
    for (;;) {
      if (condition()) return;
      if (Date.now() >= deadline) fail(caseName, `${what} (waited ${waitMs} ms)`);
      await sleep(POLL_MS);
    }
  };

  /** Run one case with a fresh cluster of `nodes` tables; always closes tables and replicators. */
  const withCluster = async (caseName: string, body: (cluster: Cluster, key: (name: string) => string) => Promise<void>, tableTtlMs = LONG_TTL_MS) => {
    caseNumber++;
    const clusterId = `${run}-${caseNumber}`;
    const tables: StickTable<string>[] = [];
    const replicators: Replicator<string>[] = [];
    const errors: unknown[] = [];
    const join = async () => {
      const node = tables.length;
      let replicator: Replicator<string>;
      try {
        replicator = await factory({ node, cluster: clusterId });
      } catch (error) {
        return fail(caseName, `factory({ node: ${node} }) failed: ${String(error)}`, error);
      }
      replicators.push(replicator);
      const table = new StickTable<string>({
        capacity: 10_000,
        ttlMs: tableTtlMs,
        nodeId: `${run}-n${node}`.slice(0, 64),
        clock: realClock,
        replicator,
        batchMs,
        onError: (error) => errors.push(error),
      });
      tables.push(table);
      await table.ready;
      return table;
    };
    const cluster: Cluster = { tables, replicators, errors, join };
    try {
      for (let i = 0; i < nodes; i++) await join();
      await body(cluster, (name) => `${clusterId}:${name}`);
      if (errors.length > 0) fail(caseName, `replication reported an error: ${String(errors[0])}`, errors[0]);
    } catch (error) {
      if (error instanceof ReplicatorConformanceError) throw error;
      fail(caseName, `threw ${String(error)}`, error);
    } finally {
      await Promise.allSettled(tables.map((t) => t.close()));
      await Promise.allSettled([...new Set(replicators)].map((r) => Promise.resolve().then(() => r.close())));
    }
  };

  const everywhere = (tables: readonly StickTable<string>[], key: string, value: string | undefined) => tables.every((t) => t.get(key) === value);

  await withCluster('a write on one table reaches the others', async ({ tables }, key) => {
    tables[0]!.set(key('a'), 'b1');
    tables[1]!.set(key('b'), 'b2 ünïcödé 🍪');
    await eventually(
      'a write on one table reaches the others',
      'a value set on one table never appeared on all',
      () => everywhere(tables, key('a'), 'b1') && everywhere(tables, key('b'), 'b2 ünïcödé 🍪'),
    );
    tables[2 % tables.length]!.set(key('a'), 'b3');
    await eventually('a write on one table reaches the others', 'an overwrite never reached every table', () => everywhere(tables, key('a'), 'b3'));
  });

  await withCluster('concurrent writes converge to one value', async ({ tables }, key) => {
    const k = key('contended');
    tables.forEach((table, i) => table.set(k, `b${i}`));
    const c = 'concurrent writes converge to one value';
    await eventually(c, 'tables still disagree after concurrent writes of one key', () => {
      const first = tables[0]!.get(k);
      return first !== undefined && everywhere(tables, k, first);
    });
  });

  await withCluster('a delete reaches the others', async ({ tables }, key) => {
    const c = 'a delete reaches the others';
    tables[0]!.set(key('d'), 'b1');
    await eventually(c, 'a value never appeared on all tables', () => everywhere(tables, key('d'), 'b1'));
    tables[1]!.delete(key('d'));
    await eventually(c, 'a deleted key was still present on some table', () => everywhere(tables, key('d'), undefined));
    // A delete is a tombstone: it must stay deleted, not come back from some table's older copy.
    await sleep(4 * batchMs + 50);
    if (!everywhere(tables, key('d'), undefined)) fail(c, 'a deleted key came back');
  });

  await withCluster('a joining table loads the snapshot', async (cluster, key) => {
    const c = 'a joining table loads the snapshot';
    const { tables } = cluster;
    tables[0]!.set(key('kept'), 'b1');
    tables[1]!.set(key('deleted'), 'b2');
    await eventually(c, 'writes never reached every table', () => everywhere(tables, key('deleted'), 'b2'));
    tables[0]!.delete(key('deleted'));
    tables[1]!.set(key('late'), 'b3');
    await Promise.all(tables.map((t) => t.flush()));
    await eventually(c, 'writes never reached every table', () => everywhere(tables, key('late'), 'b3') && everywhere(tables, key('deleted'), undefined));
    const joined = await cluster.join();
    if (joined.get(key('kept')) !== 'b1') fail(c, 'a new table did not load a value from the snapshot');
    if (joined.get(key('late')) !== 'b3') fail(c, 'a new table did not load the latest value from the snapshot');
    if (joined.get(key('deleted')) !== undefined) fail(c, 'a new table loaded a deleted key from the snapshot');
  });

  await withCluster('entries travel unchanged', async ({ replicators }, key) => {
    const c = 'entries travel unchanged';
    const now = Date.now();
    const sent: StickEntry<string>[] = [
      { key: key('plain'), value: 'b1', updatedAt: now, expiresAt: now + 60_000, origin: 'peer-x' },
      { key: key('ünï 🍪 "quoted"'), value: "value with 'quotes' and \u00e9", updatedAt: now + 0.5, expiresAt: now + 60_000, origin: 'peer.y:1' },
      { key: key('gone'), updatedAt: now, expiresAt: now + 60_000, origin: 'peer-x', deleted: true },
      ...Array.from({ length: 300 }, (_, i): StickEntry<string> => ({
        key: key(`bulk-${i}`),
        value: `b${i % 7}`,
        updatedAt: now,
        expiresAt: now + 60_000,
        origin: 'peer-z',
      })),
    ];
    const received = new Map<string, StickEntry<string>>();
    const late: StickEntry<string>[] = [];
    let unsubscribed = false;
    const unsubscribe = replicators[1]!.subscribe((entries) => {
      for (const entry of entries) {
        if (unsubscribed) late.push(entry);
        else received.set(entry.key, entry);
      }
    });
    await replicators[0]!.publish(sent);
    await eventually(c, `only ${received.size} of ${sent.length} published entries arrived`, () => sent.every((e) => received.has(e.key)));
    for (const entry of sent) {
      const got = received.get(entry.key)!;
      const same =
        got.updatedAt === entry.updatedAt &&
        got.expiresAt === entry.expiresAt &&
        got.origin === entry.origin &&
        (got.deleted === true) === (entry.deleted === true) &&
        (entry.deleted === true || got.value === entry.value);
      if (!same) fail(c, `entry ${JSON.stringify(entry.key)} arrived as ${JSON.stringify(got)}, sent ${JSON.stringify(entry)}`);
    }
    unsubscribe();
    unsubscribed = true;
    await replicators[0]!.publish([{ key: key('after'), value: 'x', updatedAt: now, expiresAt: now + 60_000, origin: 'peer-x' }]);
    await sleep(4 * batchMs + 100);
    if (late.some((e) => e.key === key('after'))) fail(c, 'a batch was delivered after unsubscribe');
  });

  await withCluster(
    'expired entries are not resurrected',
    async (cluster, key) => {
      const c = 'expired entries are not resurrected';
      const { tables, replicators } = cluster;
      tables[0]!.set(key('short'), 'b1');
      await eventually(c, 'a value never appeared on all tables', () => everywhere(tables, key('short'), 'b1'));
      const expiresAt = Date.now() + ttlMs;
      await sleep(ttlMs + 20);
      if (!everywhere(tables, key('short'), undefined)) fail(c, 'an entry was still readable after its expiresAt');
      // A late message carrying an expired entry, and a snapshot that still holds it, must not revive it.
      await replicators[1]!.publish([{ key: key('short'), value: 'stale', updatedAt: expiresAt - ttlMs, expiresAt: Date.now() - 1, origin: 'ghost' }]);
      const joined = await cluster.join();
      await sleep(4 * batchMs + 50);
      if (joined.get(key('short')) !== undefined) fail(c, 'a joining table loaded an expired entry');
      if (!everywhere(tables, key('short'), undefined)) fail(c, 'a late message brought an expired entry back');
    },
    ttlMs,
  );
}
