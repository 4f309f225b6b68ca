/**
 * Stick-table replication for the standalone proxy: one replicator per instance (one Redis
 * connection pair, one SQL pool, one directory), shared by every pool's stick-table and every shared
 * rate limit through NAMESPACES — each user's keys travel prefixed with its namespace (`web␟ip:10.0.0.7`)
 * and each user sees only its own, so two pools never read each other's `ip:` entries.
 *
 * The session packages are optional peers of `@fulcrum/cli`: they are imported only when the
 * config asks for them (`replication.redis` needs `@fulcrum/session-redis` and `ioredis`,
 * `replication.sql` needs `@fulcrum/session-sql` and `mysql2`, `replication.directory` needs
 * `@fulcrum/session-fs`), so a proxy without replication installs none of them.
 */
import type { Replicator, StickEntry } from '@fulcrum/core';
import type { NormalizedReplication } from './config';

/** Loads an optional module by name (`(name) => import(name)` by default). */
export type ModuleLoader = (name: string) => Promise<unknown>;

const SEPARATOR = '\u001f';

/** A replicator plus what must be closed with it. */
export interface OpenReplicator {
  readonly replicator: Replicator<unknown>;
  close(): Promise<void>;
}

async function load<T>(loader: ModuleLoader, name: string, why: string): Promise<T> {
  try {
    return (await loader(name)) as T;
  } catch (error) {
    throw new Error(`replication: ${why} needs the package ${name} (install it next to @fulcrum/cli)`, { cause: error });
  }
}

/** Open the configured replicator. */
export async function openReplicator(spec: NormalizedReplication, nodeId: string, loader: ModuleLoader): Promise<OpenReplicator> {
  if (spec.kind === 'directory') {
    const fs = await load<{ FileReplicator: new (o: Record<string, unknown>) => Replicator<unknown> }>(loader, '@fulcrum/session-fs', 'replication.directory');
    const replicator = new fs.FileReplicator({ dir: spec.dir, nodeId, ...(spec.pollIntervalMs === undefined ? {} : { pollIntervalMs: spec.pollIntervalMs }) });
    return { replicator, close: () => replicator.close() };
  }
  if (spec.kind === 'redis') {
    const session = await load<{ RedisReplicator: new (o: Record<string, unknown>) => Replicator<unknown> }>(
      loader,
      '@fulcrum/session-redis',
      'replication.redis',
    );
    const ioredis = await load<{
      default?: new (url: string, o?: object) => { quit(): Promise<unknown> };
      Redis?: new (url: string, o?: object) => { quit(): Promise<unknown> };
    }>(loader, 'ioredis', 'replication.redis');
    const Redis = ioredis.Redis ?? ioredis.default!;
    const client = new Redis(spec.url);
    const replicator = new session.RedisReplicator({
      client,
      ...(spec.channel === undefined ? {} : { channel: spec.channel }),
      ...(spec.key === undefined ? {} : { key: spec.key }),
    });
    return {
      replicator,
      close: async () => {
        await replicator.close();
        await client.quit().catch(() => undefined);
      },
    };
  }
  const session = await load<{ SqlReplicator: new (o: Record<string, unknown>) => Replicator<unknown> }>(loader, '@fulcrum/session-sql', 'replication.sql');
  const mysql = await load<{ createPool(uri: string): { end(): Promise<void> } }>(loader, 'mysql2/promise', 'replication.sql');
  const pool = mysql.createPool(spec.url);
  const replicator = new session.SqlReplicator({ pool, ...(spec.table === undefined ? {} : { table: spec.table }) });
  return {
    replicator,
    close: async () => {
      await replicator.close();
      await pool.end().catch(() => undefined);
    },
  };
}

/**
 * A view of `replicator` for one namespace: keys are published with the prefix and only this
 * namespace's entries are delivered (prefix removed). `close` only detaches the view.
 */
export function namespaced<V>(replicator: Replicator<unknown>, namespace: string): Replicator<V> {
  const prefix = `${namespace}${SEPARATOR}`;
  const strip = (entries: readonly StickEntry<unknown>[]): StickEntry<V>[] => {
    const mine: StickEntry<V>[] = [];
    for (const entry of entries) {
      if (entry.key.startsWith(prefix)) mine.push({ ...entry, key: entry.key.slice(prefix.length) } as StickEntry<V>);
    }
    return mine;
  };
  return {
    publish: (entries) => replicator.publish(entries.map((entry) => ({ ...entry, key: prefix + entry.key }) as StickEntry<unknown>)),
    subscribe: (onEntries) =>
      replicator.subscribe((entries) => {
        const mine = strip(entries);
        if (mine.length > 0) onEntries(mine);
      }),
    snapshot: async () => strip(await replicator.snapshot()),
    close: async () => undefined,
  };
}
