/**
 * Response heads the raw engine writes to clients: relayed ones (the backend's fields without the
 * hop-by-hop ones and those its `Connection` names, RFC 9110 §7.6.1 — the same set `createProxy`
 * drops) and the proxy's own short error answers, which never carry a backend's address.
 */
import { STATUS_CODES } from 'node:http';
import { HOP_BY_HOP, connectionListed } from '../proxy/headers';
import { FIELD_STRIDE, nameIs, type ResponseHead } from './parser';

/** Lengths of hop-by-hop names and `set-cookie`: other names are relayed without being lower-cased. */
const CHECKED_LENGTH = new Uint8Array(32);
for (const name of [...HOP_BY_HOP, 'set-cookie']) CHECKED_LENGTH[name.length] = 1;

/** The names `FieldRelay.scan` looks for — hop-by-hop, `set-cookie`, `close` — lower-case, by length. */
const SCANNED_BY_LENGTH: readonly (readonly string[])[] = (() => {
  const table: string[][] = [];
  for (const name of [...HOP_BY_HOP, 'set-cookie', 'close']) (table[name.length] ??= []).push(name);
  for (let i = 0; i < 32; i++) table[i] ??= [];
  return table;
})();

/** The scanned name (lower-case constant) that `buf[start, start + length)` spells in any case, if any: no string made. */
function scannedName(buf: Buffer, start: number, length: number): string | undefined {
  const candidates = SCANNED_BY_LENGTH[length]!;
  for (let c = 0; c < candidates.length; c++) if (nameIs(buf, start, candidates[c]!)) return candidates[c];
  return undefined;
}

/** The backend's fields to relay, as `name: value\r\n` lines, and its `Set-Cookie` values. */
export function relayedFields(raw: readonly string[], keepUpgrade: boolean): { lines: string; setCookie: string[] | undefined } {
  let listed: Set<string> | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 10 && name.toLowerCase() === 'connection') {
      const value = raw[i + 1]!;
      // `keep-alive` / `close` name only hop-by-hop fields: no set to build for the common case.
      if (value.length <= 10 && HOP_BY_HOP.has(value.toLowerCase())) continue;
      const names = connectionListed(value)!;
      if (listed === undefined) listed = names;
      else for (const n of names) listed.add(n);
    }
  }
  let lines = '';
  let setCookie: string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    if (listed === undefined && (name.length >= 32 || CHECKED_LENGTH[name.length] !== 1)) {
      lines += `${name}: ${value}\r\n`;
      continue;
    }
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || listed?.has(lower)) {
      if (!(keepUpgrade && lower === 'upgrade')) continue;
    }
    if (lower === 'set-cookie') (setCookie ??= []).push(value);
    lines += `${name}: ${value}\r\n`;
  }
  return { lines, setCookie };
}

/**
 * The fields of a response head to relay, as byte ranges of the buffer it was parsed from: the lines
 * are copied as the backend sent them, never turned into strings (a backend's fields are nearly all
 * relayed untouched). Hop-by-hop fields are dropped; only names of a hop-by-hop field's length are
 * read as strings. For heads whose `Connection` names no other field (`relayedFields` handles those).
 *
 * One instance serves every exchange: `scan` and `writeTo` run back to back, synchronously, while the
 * buffer still holds the head.
 */
export class FieldRelay {
  /** Runs of consecutive kept lines: start, end, start, end … */
  readonly #ranges: number[] = [];
  #buffer: Buffer | undefined;
  /** Bytes of the kept lines. */
  bytes = 0;
  /** The backend's `Set-Cookie` values. */
  setCookie: string[] | undefined;

  scan(head: ResponseHead): void {
    const ranges = this.#ranges;
    ranges.length = 0;
    this.bytes = 0;
    this.setCookie = undefined;
    const buf = head.buffer;
    this.#buffer = buf;
    const offsets = head.fieldOffsets;
    // `Connection: close` names a field too (`relayedFields` drops one called `close`).
    const dropClose = head.connectionClose;
    let runStart = -1;
    let runEnd = -1;
    for (let i = 0; i < offsets.length; i += FIELD_STRIDE) {
      const nameStart = offsets[i]!;
      const nameLength = offsets[i + 1]! - nameStart;
      if ((nameLength < 32 && CHECKED_LENGTH[nameLength] === 1) || (dropClose && nameLength === 5)) {
        // Compared byte for byte: no string per checked name (a backend's `Connection` and `Keep-Alive`).
        const lower = scannedName(buf, nameStart, nameLength);
        if (lower === 'set-cookie') (this.setCookie ??= []).push(buf.toString('latin1', offsets[i + 2]!, offsets[i + 3]!));
        else if (lower !== undefined && (lower !== 'close' || dropClose)) continue;
      }
      const lineEnd = offsets[i + 4]!;
      if (nameStart === runEnd) {
        runEnd = lineEnd;
        continue;
      }
      if (runStart >= 0) ranges.push(runStart, runEnd);
      runStart = nameStart;
      runEnd = lineEnd;
    }
    if (runStart >= 0) ranges.push(runStart, runEnd);
    for (let i = 0; i < ranges.length; i += 2) this.bytes += ranges[i + 1]! - ranges[i]!;
  }

  /** Nothing to copy (the head was relayed from strings). */
  clear(): void {
    this.#ranges.length = 0;
    this.bytes = 0;
    this.setCookie = undefined;
    this.#buffer = undefined;
  }

  /** Copy the kept lines into `out` at `at`; returns the offset after them. */
  writeTo(out: Buffer, at: number): number {
    const ranges = this.#ranges;
    const buf = this.#buffer;
    if (buf === undefined) return at;
    for (let i = 0; i < ranges.length; i += 2) at += buf.copy(out, at, ranges[i]!, ranges[i + 1]!);
    this.#buffer = undefined;
    return at;
  }
}

/** The backend's fields to relay as a record (lower-case names, repeated ones a list), for `on.proxyRes`. */
export function relayedRecord(raw: readonly string[]): Record<string, string | string[]> {
  const record: Record<string, string | string[]> = {};
  const { lines } = relayedFields(raw, false);
  for (const line of lines.split('\r\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).toLowerCase();
    const value = line.slice(colon + 2);
    const existing = record[name];
    if (existing === undefined) record[name] = value;
    else if (typeof existing === 'string') record[name] = [existing, value];
    else existing.push(value);
  }
  return record;
}

/** A record of header values (checked by `on.proxyRes`'s runner) as lines, and its `Set-Cookie` values. */
export function recordFields(record: Readonly<Record<string, string | string[]>>): { lines: string; setCookie: string[] | undefined } {
  let lines = '';
  let setCookie: string[] | undefined;
  for (const name of Object.keys(record)) {
    const value = record[name]!;
    for (const v of typeof value === 'string' ? [value] : value) {
      if (name === 'set-cookie') (setCookie ??= []).push(v);
      lines += `${name}: ${v}\r\n`;
    }
  }
  return { lines, setCookie };
}

/** A short plain-text answer from the proxy itself. */
export function errorResponse(status: number, message: string, headers: Readonly<Record<string, string>> | undefined, close: boolean): string {
  const body = `${message}\n`;
  let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n`;
  if (headers !== undefined) {
    for (const name of Object.keys(headers)) {
      const value = String(headers[name]);
      // A value from an admission hook must not split the response.
      if (/[\r\n\0]/.test(name) || /[\r\n\0]/.test(value)) continue;
      head += `${name}: ${value}\r\n`;
    }
  }
  head += `content-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\n`;
  if (close) head += 'connection: close\r\n';
  return `${head}\r\n${body}`;
}

/** The status line of a relayed response (always HTTP/1.1: RFC 9110 §6.2, the proxy's own version). */
export function statusLine(status: number, message: string): string {
  const standard = STATUS_CODES[status];
  // The standard phrase (what nearly every backend sends): one string per status, built once.
  if (standard !== undefined && (message === '' || message === standard)) return (STANDARD_LINES[status] ??= `HTTP/1.1 ${status} ${standard}\r\n`);
  return `HTTP/1.1 ${status} ${message === '' ? (standard ?? '') : message}\r\n`;
}

/** `statusLine` with the standard reason phrase, by status. */
const STANDARD_LINES: string[] = [];
/** The same lines as bytes. */
const STANDARD_LINE_BYTES: Buffer[] = [];

/**
 * The bytes of `statusLine(status, message)` when it is a standard line (one Buffer per status, made
 * once: copied into a head without a string write), else `undefined`.
 */
export function statusLineBytes(status: number, message: string): Buffer | undefined {
  const standard = STATUS_CODES[status];
  if (standard === undefined || (message !== '' && message !== standard)) return undefined;
  return (STANDARD_LINE_BYTES[status] ??= Buffer.from(statusLine(status, message), 'latin1'));
}

/**
 * The bytes of a few lines that response heads repeat (the `Set-Cookie` line of each backend's
 * sticky cookie), `before + value + after` for the last `size` values asked for: a head copies them
 * instead of building a string and writing it (a call into C++ that flattens the built string).
 */
export class LineBytes {
  readonly #lines: string[] = [];
  readonly #bytes: Buffer[] = [];
  readonly #size: number;
  readonly #before: string;
  readonly #after: string;
  #next = 0;

  constructor(size: number, before: string, after: string) {
    this.#size = size;
    this.#before = before;
    this.#after = after;
    for (let i = 0; i < size; i++) {
      this.#lines.push('');
      this.#bytes.push(EMPTY);
    }
  }

  /** The line of `value`, as latin1 bytes. */
  get(value: string): Buffer {
    const lines = this.#lines;
    for (let i = 0; i < lines.length; i++) if (lines[i] === value && this.#bytes[i] !== EMPTY) return this.#bytes[i]!;
    const bytes = Buffer.from(`${this.#before}${value}${this.#after}`, 'latin1');
    const at = this.#next;
    this.#next = at + 1 === this.#size ? 0 : at + 1;
    lines[at] = value;
    this.#bytes[at] = bytes;
    return bytes;
  }
}

const EMPTY = Buffer.alloc(0);
