/**
 * The on-disk form of replicated stick-table entries: one append-only log per node,
 * `<nodeId>.sticklog`, one line per published batch.
 *
 *     fulcrum-sticklog/1 <generation> <createdAt ms> <nodeId>\n
 *     <digest> [<entry>, <entry>, …]\n
 *     <digest> […]\n
 *
 * Why a log per node rather than a file per key: every file then has exactly ONE writer, its node,
 * so a replication tool only ever copies files one way and never has to settle a write-write
 * conflict (lsyncd's last push wins, GlusterFS's split-brain) — the conflicts are settled by the
 * stick-table's last-writer-wins merge, in memory, where they belong. A batch of a thousand
 * entries is one `write`, not a thousand renames; and polling costs one `stat` per node, not one
 * per key, which is what makes polling cheap enough to be the fallback (HAProxy's peers likewise
 * stream updates in order and resync whole tables only on connect).
 *
 * The generation is a random token that changes when the owner rewrites (compacts) its log: a
 * reader that sees a new generation re-reads the file from the start; one that sees the same
 * generation, longer, reads on from its offset — even if a tool such as rsync replaced the file by a
 * fresh copy (a new inode) on the way. Each line carries a digest, so a line a tool has only half
 * copied, or an NFS client shows zero-filled, is never parsed: the reader waits for it to complete.
 */
import { randomBytes } from 'node:crypto';
import { isStickEntry } from '@fulcrum/core/session';
import type { StickEntry } from '@fulcrum/core';
import { digest } from './atomic-file';

export const LOG_SUFFIX = '.sticklog';
const MAGIC = 'fulcrum-sticklog/1';

/** Node ids of the replicator: core's node id rule minus a leading dot (no hidden files). */
export const LOG_NODE_ID_PATTERN = /^[A-Za-z0-9_-][A-Za-z0-9._:-]{0,63}$/;

/** `:` is legal in node ids but not in Windows or SMB file names; `~` is in no node id, so this is one-to-one. */
export function logFileName(nodeId: string): string {
  return `${nodeId.replaceAll(':', '~')}${LOG_SUFFIX}`;
}

export function isLogFileName(name: string): boolean {
  return name.endsWith(LOG_SUFFIX) && LOG_NODE_ID_PATTERN.test(name.slice(0, -LOG_SUFFIX.length).replaceAll('~', ':'));
}

export interface LogHeader {
  readonly generation: string;
  readonly createdAt: number;
  readonly nodeId: string;
}

export function newGeneration(): string {
  return randomBytes(8).toString('hex');
}

export function encodeHeader(header: LogHeader): string {
  return `${MAGIC} ${header.generation} ${Math.round(header.createdAt)} ${header.nodeId}\n`;
}

/** Parses a header line (without its newline); undefined when it is not one. */
export function decodeHeader(line: string): LogHeader | undefined {
  const fields = line.split(' ');
  if (fields.length !== 4 || fields[0] !== MAGIC) return undefined;
  const generation = fields[1]!;
  const createdAt = Number(fields[2]);
  const nodeId = fields[3]!;
  if (!/^[0-9a-f]{16}$/.test(generation) || !Number.isSafeInteger(createdAt) || !LOG_NODE_ID_PATTERN.test(nodeId)) return undefined;
  return { generation, createdAt, nodeId };
}

/** One line of entries, newline included. Values must be JSON data (they cross hosts). */
export function encodeRecord<V>(entries: readonly StickEntry<V>[]): string {
  const json = JSON.stringify(entries);
  return `${digest(json)} ${json}\n`;
}

/**
 * Parses one record line (without its newline): the entries that pass core's shape check, or
 * undefined when the line is damaged (digest mismatch, not JSON, not an array).
 */
export function decodeRecord(line: string): StickEntry<unknown>[] | undefined {
  if (line.length < 34 || line.charCodeAt(32) !== 32) return undefined;
  const json = line.slice(33);
  if (digest(json) !== line.slice(0, 32)) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (!Array.isArray(parsed)) return undefined;
  return parsed.filter(isStickEntry);
}
