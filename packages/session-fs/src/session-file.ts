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
 *     fulcrum-session/1 <expiresAt ms> <body bytes> <digest> <id, percent-encoded>\n<body>
 *
 * The header carries the expiry (so a reader refuses an expired session without parsing it, and the
 * sweeper needs no serializer), the length and a digest of id + expiry + body (so a file a
 * replication tool has only half copied, or an NFS client zero-filled after a crash, is detected
 * instead of parsed), and the id (which the hashed name cannot give back, and which `ids()` lists).
 * Session ids are any string express-session can make (`'a b'`, `'%'`, a line break, Unicode), so
 * the header holds the id percent-encoded: every UTF-8 byte outside `[A-Za-z0-9_.:+=-]` as `%XX`
 * (upper-case hex). The encoding is one-to-one and canonical — a reader refuses lower-case hex,
 * an escaped safe byte or invalid UTF-8 — and the ids of earlier versions (only those characters)
 * encode to themselves, so their files read unchanged.
 */
import { createHash } from 'node:crypto';
import { digest } from './atomic-file';

export const SESSION_SUFFIX = '.session';
const MAGIC = 'fulcrum-session/1';
const NAME_PATTERN = /^[0-9a-f]{64}\.session$/;

/**
 * Bytes enough for any header: the magic, three numbers, a digest and an id of
 * `MAX_SESSION_ID_LENGTH` (1024) code units — at most 3072 UTF-8 bytes, 9216 percent-encoded.
 */
export const MAX_HEADER_BYTES = 10_240;

const HEADER_SAFE_BYTE = /^[A-Za-z0-9_.:+=-]$/;
const HEX = '0123456789ABCDEF';
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** The id as the header holds it (see the file comment): no space, no line break, ASCII only. */
export function encodeHeaderId(id: string): string {
  let encoded = '';
  for (const byte of Buffer.from(id, 'utf8')) {
    const char = String.fromCharCode(byte);
    encoded += byte < 0x80 && HEADER_SAFE_BYTE.test(char) ? char : `%${HEX[byte >> 4]}${HEX[byte & 15]}`;
  }
  return encoded;
}

/** The id of a header field, or undefined when the field is not the canonical encoding of an id. */
export function decodeHeaderId(field: string): string | undefined {
  const bytes: number[] = [];
  for (let i = 0; i < field.length; i++) {
    const char = field[i]!;
    if (char === '%') {
      const hex = field.slice(i + 1, i + 3);
      if (!/^[0-9A-F]{2}$/.test(hex)) return undefined;
      const byte = Number.parseInt(hex, 16);
      if (byte < 0x80 && HEADER_SAFE_BYTE.test(String.fromCharCode(byte))) return undefined;
      bytes.push(byte);
      i += 2;
    } else if (HEADER_SAFE_BYTE.test(char)) {
      bytes.push(char.charCodeAt(0));
    } else {
      return undefined;
    }
  }
  try {
    return strictUtf8.decode(Uint8Array.from(bytes));
  } catch {
    return undefined;
  }
}

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
  return `${MAGIC} ${at} ${Buffer.byteLength(body)} ${digest(id, String(at), body)} ${encodeHeaderId(id)}\n${body}`;
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
  const id = decodeHeaderId(fields[4]!);
  if (!Number.isSafeInteger(expiresAt) || !Number.isSafeInteger(length) || length < 0 || id === undefined || id.length === 0) {
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

/**
 * The file name of session `id` (already checked with core's `isValidSessionId`): its SHA-256 in
 * hex, 72 bytes whatever the id, so no byte of the id reaches the path, no two ids share a name
 * (short of a SHA-256 collision), no name exceeds NAME_MAX, and case-insensitive file systems
 * cannot merge two names.
 */
export function sessionFileName(id: string): string {
  return `${createHash('sha256').update(id).digest('hex')}${SESSION_SUFFIX}`;
}
