/**
 * Where a session lives on disk and what its file holds.
 *
 * Name: `<sha256(id) in hex>.session`. Hashing (as nginx's proxy cache names its files) means no
 * byte of a client-supplied id ever reaches a path — no `../`, NUL, `:` (illegal on Windows and
 * SMB), reserved names (`CON`), length past NAME_MAX, or case clash on a case-insensitive file
 * system (hex is single-case) — and every host computes the same name for the same id.
 *
 * Content: one header line, then the serialised session:
 *
 *     fulcrum-session/1 <expiresAt ms> <body bytes> <digest> <id>\n<body>
 *
 * The header carries the expiry (so a reader refuses an expired session without parsing it, and the
 * sweeper needs no serializer), the length and a digest of id + expiry + body (so a file a
 * replication tool has only half copied, or an NFS client zero-filled after a crash, is detected
 * instead of parsed), and the id (which the hashed name cannot give back, and which `ids()` lists).
 */
import { createHash } from 'node:crypto';
import { digest } from './atomic-file';

export const SESSION_SUFFIX = '.session';
const MAGIC = 'fulcrum-session/1';
const NAME_PATTERN = /^[0-9a-f]{64}\.session$/;

/** Bytes enough for any header: the magic, three numbers, a digest and a 256-character id. */
export const MAX_HEADER_BYTES = 512;

export function isSessionFileName(name: string): boolean {
  return NAME_PATTERN.test(name);
}

/** A decoded session file. */
export interface SessionFile {
  readonly id: string;
  readonly expiresAt: number;
  readonly body: string;
}

/** What `decodeSessionFile` answers for a file that fails its checks. */
export interface DecodeFailure {
  readonly reason: 'header' | 'truncated' | 'checksum';
  readonly detail: string;
}

export function encodeSessionFile(id: string, expiresAt: number, body: string): string {
  const at = Math.round(expiresAt);
  return `${MAGIC} ${at} ${Buffer.byteLength(body)} ${digest(id, String(at), body)} ${id}\n${body}`;
}

export function decodeSessionFile(bytes: Buffer): SessionFile | DecodeFailure {
  const newline = bytes.indexOf(10);
  if (newline < 0 || newline > MAX_HEADER_BYTES) {
    return { reason: bytes.length < MAX_HEADER_BYTES ? 'truncated' : 'header', detail: 'no header line' };
  }
  const fields = bytes.toString('latin1', 0, newline).split(' ');
  if (fields.length !== 5 || fields[0] !== MAGIC) return { reason: 'header', detail: 'not a fulcrum-session/1 file' };
  const expiresAt = Number(fields[1]);
  const length = Number(fields[2]);
  const expected = fields[3]!;
  const id = fields[4]!;
  if (!Number.isSafeInteger(expiresAt) || !Number.isSafeInteger(length) || length < 0 || id.length === 0) {
    return { reason: 'header', detail: 'malformed header' };
  }
  const bodyBytes = bytes.length - newline - 1;
  if (bodyBytes !== length) {
    return { reason: 'truncated', detail: `expected ${length} bytes of session, found ${bodyBytes}` };
  }
  const body = bytes.toString('utf8', newline + 1);
  if (digest(id, String(expiresAt), body) !== expected) return { reason: 'checksum', detail: 'digest mismatch' };
  return { id, expiresAt, body };
}

export function isDecodeFailure(result: SessionFile | DecodeFailure): result is DecodeFailure {
  return (result as DecodeFailure).reason !== undefined;
}

/** The file name of session `id` (already checked with core's `isValidSessionId`). */
export function sessionFileName(id: string): string {
  return `${createHash('sha256').update(id).digest('hex')}${SESSION_SUFFIX}`;
}
