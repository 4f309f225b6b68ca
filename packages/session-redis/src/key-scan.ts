/**
 * Visiting every key under a prefix, on a standalone Redis, a Sentinel-managed one, or every master
 * of a Redis Cluster. SCAN (never KEYS, which blocks the server for the whole keyspace) with MATCH on
 * the escaped prefix; on a Cluster, SCAN only sees the node it is sent to, so each master is scanned
 * in turn (connect-redis's approach; replicas are skipped because they hold the same keys).
 *
 * Multi-key commands are not allowed across hash slots in a Cluster, even on one node, so batches
 * there go out as a pipeline of single-key commands to the node that holds them; on a standalone
 * server a batch is one MGET / UNLINK.
 */
import type { Cluster, Redis } from 'ioredis';

export type RedisClient = Redis | Cluster;

/** The connections to scan: every master of a Cluster, or the client itself. */
export function scanTargets(client: RedisClient): Redis[] {
  return client.isCluster ? (client as Cluster).nodes('master') : [client as Redis];
}

/** GET each key on `node` (one MGET standalone, a pipeline of GETs on a Cluster node). */
export async function getMany(node: Redis, keys: string[], cluster: boolean): Promise<(string | null)[]> {
  if (!cluster) return node.mget(keys);
  const results = (await node.pipeline(keys.map((key) => ['get', key])).exec()) ?? [];
  // A key that moved to another node mid-scan answers MOVED here; it is reported by that node's scan.
  return results.map(([error, value]) => (error ? null : (value as string | null)));
}

/** UNLINK each key on `node` (one UNLINK standalone, a pipeline on a Cluster node). */
export async function unlinkMany(node: Redis, keys: string[], cluster: boolean): Promise<void> {
  if (!cluster) {
    await node.unlink(keys);
    return;
  }
  const results = (await node.pipeline(keys.map((key) => ['unlink', key])).exec()) ?? [];
  const failed = results.find(([error]) => error !== null);
  if (failed?.[0]) throw failed[0];
}
