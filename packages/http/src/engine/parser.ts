/**
 * A strict HTTP/1.1 message-head parser (RFC 9112) for the raw-socket engine: request heads from
 * clients, response heads from backends, and chunked bodies. It works on a Buffer with offsets and
 * allocates only the strings it returns (method, target, header names and values).
 *
 * Strict as HAProxy is, because a proxy that accepts what its backend parses differently is the
 * request-smuggling bug (CL.TE, TE.CL, TE.TE). Every ambiguity is refused, never repaired:
 * - Content-Length together with Transfer-Encoding; a Transfer-Encoding other than one header whose
 *   value is exactly `chunked`; a Content-Length that is repeated, a list, signed, empty or longer
 *   than 15 digits (RFC 9112 §6.1, §6.3: the message framing must be unambiguous);
 * - obs-fold (a line starting with SP or HTAB), a bare CR or a bare LF anywhere, whitespace between a
 *   field name and its colon (RFC 9112 §5.1: "MUST reject"), control characters, characters outside
 *   `tchar` in names and methods, and anything but VCHAR in the target;
 * - a request without Host (HTTP/1.1), with two Hosts or an invalid one (RFC 9112 §3.2);
 * - an HTTP/0.9 request line, a version other than HTTP/1.0 and HTTP/1.1, a `#` in the target, an
 *   absolute-form target unless the caller allows it, CONNECT, and any method Node's own parser
 *   (llhttp) does not know — so nothing llhttp refuses is ever accepted here;
 * - a head larger than `maxHeadBytes` (default 16 KiB, HAProxy's `tune.bufsize`) or with more than
 *   `maxHeaders` fields (default 100, HAProxy's `tune.http.maxhdr` is 101): 431, never truncation.
 * Leading empty lines (CRLF) before a request line are skipped, as RFC 9112 §2.2 allows.
 *
 * Header values are decoded as latin1, as Node's parser does, so a value round-trips byte for byte.
 */
import { METHODS } from 'node:http';

/** How a message body is delimited (RFC 9112 §6.3). */
export const enum Framing {
  /** No body. */
  None = 0,
  /** `Content-Length` bytes. */
  Length = 1,
  /** `Transfer-Encoding: chunked`. */
  Chunked = 2,
  /** Until the connection closes (responses only). */
  Close = 3,
}

/** Limits of a head, validated by the caller. */
export interface HeadLimits {
  /** Largest head in bytes, request/status line and final CRLF included. */
  readonly maxHeadBytes: number;
  /** Most header fields. */
  readonly maxHeaders: number;
}

/** A refusal: the status to answer (400, 422, 431, 417) and a short reason for logs. */
export class HeadError {
  readonly status: number;
  readonly reason: string;
  constructor(status: number, reason: string) {
    this.status = status;
    this.reason = reason;
  }
}

/** What a head says about its connection and body, shared by requests and responses. */
interface MessageHead {
  /** Flat `[name, value, name, value, …]` as received (names keep their case). */
  rawHeaders: string[];
  /** 10 or 11. */
  version: number;
  /** Bytes the head took, from the offset given to the parser. */
  headLength: number;
  framing: Framing;
  /** The body's length with `Framing.Length`; 0 otherwise. */
  contentLength: number;
  /** Whether the connection stays open after this message (version and `Connection`). */
  keepAlive: boolean;
  /** `Connection` lists `upgrade` and an `Upgrade` header is present: its value. */
  upgrade: string | undefined;
}

export interface RequestHead extends MessageHead {
  method: string;
  /** The request target exactly as sent (origin-form, `*`, or absolute-form when allowed). */
  target: string;
  /** The Host header's value (`undefined` only for HTTP/1.0 without one). */
  host: string | undefined;
  /** `Expect: 100-continue` was sent. */
  expectContinue: boolean;
  /**
   * The buffer the head was parsed from (the engine never writes into it), and in it the request
   * line's first byte, the first field line's and the end of the last one (before the empty line):
   * the raw engine copies the lines it forwards unchanged from there instead of writing them anew.
   */
  readonly buffer: Buffer;
  readonly lineStart: number;
  readonly fieldsStart: number;
  fieldsEnd: number;
  /** Every field line is exactly `name: value\r\n` (one space after the colon, none at the end): copied, it is what a proxy writing the fields anew would write. */
  canonicalFields: boolean;
}

export interface ResponseHead extends MessageHead {
  status: number;
  statusMessage: string;
  /**
   * The buffer the head was parsed from and, per field, five offsets into it: name start, name end,
   * value start, value end (whitespace trimmed) and line end (after its CRLF). `rawHeaders` is built
   * from them on first read — so it must be read before the caller reuses the buffer.
   */
  readonly buffer: Buffer;
  readonly fieldOffsets: readonly number[];
  /** `Connection` names fields other than `close`, `keep-alive` and `upgrade` (they are hop-by-hop too). */
  connectionListsFields: boolean;
  /** `Connection` lists `close` (so a field named `close`, were there one, is not relayed either). */
  connectionClose: boolean;
}

/**
 * A parsed response head. A proxy relays most of a backend's fields without looking at them, so
 * they are kept as offsets into the read buffer (the relay copies the bytes) and become strings only
 * when something asks for `rawHeaders`.
 */
class ParsedResponseHead implements ResponseHead {
  status: number;
  statusMessage: string;
  version: number;
  headLength = 0;
  framing = Framing.None;
  contentLength = 0;
  keepAlive = false;
  upgrade: string | undefined = undefined;
  host: string | undefined = undefined;
  expectContinue = false;
  connectionListsFields = false;
  connectionClose = false;
  readonly buffer: Buffer;
  readonly fieldOffsets: number[] = [];
  #rawHeaders: string[] | undefined;

  constructor(buffer: Buffer, status: number, statusMessage: string, version: number) {
    this.buffer = buffer;
    this.status = status;
    this.statusMessage = statusMessage;
    this.version = version;
  }

  get rawHeaders(): string[] {
    if (this.#rawHeaders !== undefined) return this.#rawHeaders;
    const raw: string[] = [];
    const offsets = this.fieldOffsets;
    const buf = this.buffer;
    for (let i = 0; i < offsets.length; i += FIELD_STRIDE) {
      raw.push(buf.toString('latin1', offsets[i]!, offsets[i + 1]!), buf.toString('latin1', offsets[i + 2]!, offsets[i + 3]!));
    }
    this.#rawHeaders = raw;
    return raw;
  }
}

/** Offsets per field in `ResponseHead.fieldOffsets`. */
export const FIELD_STRIDE = 5;

/** What the parser needs to know about a request to frame its response. */
export interface RequestOptions extends HeadLimits {
  /** Accept absolute-form targets (`GET http://host/path`). Default false: this is not a forward proxy. */
  readonly allowAbsoluteForm?: boolean;
}

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;

/** tchar (RFC 9110 §5.6.2). */
const TOKEN = new Uint8Array(256);
for (const c of "!#$%&'*+-.^_`|~") TOKEN[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) TOKEN[c] = 1;
for (let c = 65; c <= 90; c++) TOKEN[c] = 1;
for (let c = 97; c <= 122; c++) TOKEN[c] = 1;

/** field-vchar, SP and HTAB: VCHAR and obs-text (RFC 9110 §5.5). */
const FIELD_VALUE = new Uint8Array(256);
FIELD_VALUE[SP] = 1;
FIELD_VALUE[HTAB] = 1;
for (let c = 0x21; c <= 0x7e; c++) FIELD_VALUE[c] = 1;
for (let c = 0x80; c <= 0xff; c++) FIELD_VALUE[c] = 1;

/** Request-target characters: VCHAR without `#` (a fragment is never sent, RFC 9110 §4.2.4). */
const TARGET = new Uint8Array(256);
for (let c = 0x21; c <= 0x7e; c++) TARGET[c] = 1;
TARGET[35] = 0;

/** Host header characters: reg-name, IP-literal and port (RFC 3986 §3.2.2). */
const HOST = new Uint8Array(256);
for (const c of "-._~!$&'()*+,;=:[]%") HOST[c.charCodeAt(0)] = 1;
for (let c = 48; c <= 57; c++) HOST[c] = 1;
for (let c = 65; c <= 90; c++) HOST[c] = 1;
for (let c = 97; c <= 122; c++) HOST[c] = 1;

/** The methods llhttp knows (Node's `http.METHODS`), without CONNECT (this is not a forward proxy). */
const KNOWN_METHODS = new Set(METHODS.filter((m) => m !== 'CONNECT'));

/** Longest Content-Length accepted: 15 digits stay below 2^53. */
const MAX_LENGTH_DIGITS = 15;

/**
 * Tokens most requests carry, by length, spelled as clients send them. A method or field name that
 * matches one byte for byte (case included: `rawHeaders` keeps the client's spelling) is that
 * constant string: no copy out of the buffer, no new string per request.
 */
function byLength(tokens: readonly string[]): readonly (readonly string[])[] {
  const table: string[][] = [];
  for (const token of tokens) (table[token.length] ??= []).push(token);
  for (let i = 0; i < table.length; i++) table[i] ??= [];
  return table;
}
const COMMON_METHODS = byLength(['GET', 'POST', 'HEAD', 'PUT', 'DELETE', 'OPTIONS', 'PATCH']);
const COMMON_NAMES = byLength([
  'Host',
  'host',
  'User-Agent',
  'user-agent',
  'Accept',
  'accept',
  'Accept-Encoding',
  'accept-encoding',
  'Accept-Language',
  'accept-language',
  'Connection',
  'connection',
  'Cookie',
  'cookie',
  'Referer',
  'referer',
  'Origin',
  'origin',
  'Content-Type',
  'content-type',
  'Content-Length',
  'content-length',
  'Cache-Control',
  'cache-control',
  'Pragma',
  'If-None-Match',
  'if-none-match',
  'If-Modified-Since',
  'if-modified-since',
  'Authorization',
  'authorization',
  'Upgrade-Insecure-Requests',
  'Sec-Fetch-Site',
  'Sec-Fetch-Mode',
  'Sec-Fetch-Dest',
  'Sec-Fetch-User',
  'sec-fetch-site',
  'sec-fetch-mode',
  'sec-fetch-dest',
  'Sec-CH-UA',
  'Sec-CH-UA-Mobile',
  'Sec-CH-UA-Platform',
  'sec-ch-ua',
  'sec-ch-ua-mobile',
  'sec-ch-ua-platform',
  'X-Forwarded-For',
  'x-forwarded-for',
  'X-Forwarded-Proto',
  'x-forwarded-proto',
  'X-Request-Id',
  'x-request-id',
  'Upgrade',
  'upgrade',
  'Sec-WebSocket-Key',
  'Sec-WebSocket-Version',
  'Priority',
  'priority',
  'DNT',
  'TE',
  'te',
]);

/** Reason phrases most responses carry (Node's and most servers' spelling): constants, not copies. */
const COMMON_REASONS = byLength([
  'OK',
  'Created',
  'Accepted',
  'No Content',
  'Moved Permanently',
  'Found',
  'See Other',
  'Not Modified',
  'Temporary Redirect',
  'Permanent Redirect',
  'Bad Request',
  'Unauthorized',
  'Forbidden',
  'Not Found',
  'Internal Server Error',
  'Bad Gateway',
  'Service Unavailable',
  'Gateway Timeout',
  'Switching Protocols',
  'Continue',
  'Early Hints',
  'Partial Content',
]);

/** `buf[start, end)` as a string: the matching constant of `table` when there is one, else a copy. */
function internedToken(buf: Buffer, start: number, end: number, table: readonly (readonly string[])[]): string {
  const length = end - start;
  if (length < table.length) {
    const candidates = table[length]!;
    next: for (let c = 0; c < candidates.length; c++) {
      const token = candidates[c]!;
      for (let i = 0; i < length; i++) if (buf[start + i] !== token.charCodeAt(i)) continue next;
      return token;
    }
  }
  return buf.toString('latin1', start, end);
}

const HEADER_COUNT = new HeadError(431, 'too many header fields');
const HEAD_TOO_LARGE = new HeadError(431, 'head too large');

/**
 * Parse a request head from `buf[start, end)`. Returns the head, a `HeadError` to answer, or `null`
 * when more bytes are needed (the head is incomplete and still within the size limit).
 *
 * `previous`: the `rawHeaders` of the connection's previous request. A client sends mostly the same
 * fields on every request of a connection (Host, User-Agent, Accept…, Cookie): a field whose name
 * and value bytes equal the previous request's at the same position gets that request's value
 * string instead of a new copy out of the buffer (compared byte for byte, so it is the same value
 * whatever happened to the previous list since). Validation is unchanged: every byte is checked.
 */
export function parseRequestHead(
  buf: Buffer,
  start: number,
  end: number,
  options: RequestOptions,
  previous?: readonly string[],
): RequestHead | HeadError | null {
  let pos = start;
  // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
  // They count towards the head's size, so a stream of empty lines cannot grow the buffer forever.
  const limit = Math.min(end, start + options.maxHeadBytes);
  while (pos + 1 < limit && buf[pos] === CR && buf[pos + 1] === LF) pos += 2;
  const lineStart = pos;
  // Method.
  while (pos < limit && TOKEN[buf[pos]!] === 1) pos++;
  if (pos >= limit) return incomplete(end, start, options);
  if (buf[pos] !== SP || pos === lineStart) return new HeadError(400, 'invalid method');
  const method = internedToken(buf, lineStart, pos, COMMON_METHODS);
  if (!KNOWN_METHODS.has(method)) return new HeadError(method === 'CONNECT' ? 405 : 400, 'unsupported method');
  const targetStart = ++pos;
  while (pos < limit && TARGET[buf[pos]!] === 1) pos++;
  if (pos >= limit) return incomplete(end, start, options);
  if (pos === targetStart) return new HeadError(400, 'invalid request target');
  if (buf[pos] !== SP) {
    // `GET /\r\n` is HTTP/0.9; anything else is a character the target may not hold.
    return new HeadError(400, buf[pos] === CR || buf[pos] === LF ? 'HTTP/0.9 request line' : 'invalid request target');
  }
  // `/` alone (a health check, a benchmark, many APIs' root) is a constant, not a copy.
  const target = pos === targetStart + 1 && buf[targetStart] === 47 ? '/' : buf.toString('latin1', targetStart, pos);
  pos++;
  if (limit - pos < 10) return incomplete(end, start, options);
  const version = parseVersion(buf, pos);
  if (version === 0) return new HeadError(400, 'invalid HTTP version');
  pos += 8;
  if (buf[pos] !== CR || buf[pos + 1] !== LF) return new HeadError(400, 'invalid request line');
  pos += 2;
  const first = target.charCodeAt(0);
  if (first !== 47 /* / */) {
    if (target === '*') {
      if (method !== 'OPTIONS') return new HeadError(400, 'asterisk-form is only for OPTIONS');
    } else if (!options.allowAbsoluteForm || !/^https?:\/\/[^/?]/i.test(target)) {
      return new HeadError(400, 'only origin-form request targets are accepted');
    }
  }
  const head = {
    method,
    target,
    host: undefined as string | undefined,
    expectContinue: false,
    rawHeaders: [] as string[],
    version,
    headLength: 0,
    framing: Framing.None,
    contentLength: 0,
    keepAlive: false,
    upgrade: undefined as string | undefined,
    buffer: buf,
    lineStart,
    fieldsStart: pos,
    fieldsEnd: pos,
    canonicalFields: true,
  };
  const fields = parseFields(buf, pos, limit, end, start, options, head, true, previous);
  if (fields !== undefined) return fields;
  if (head.version === 11 && head.host === undefined) return new HeadError(400, 'missing Host header');
  return head;
}

/**
 * Parse a response head from `buf[start, end)`. `method` is the request's (a HEAD response has no
 * body). Returns the head, a `HeadError` (the caller answers 502 and discards the connection), or
 * `null` when more bytes are needed.
 */
export function parseResponseHead(buf: Buffer, start: number, end: number, method: string, limits: HeadLimits): ResponseHead | HeadError | null {
  const limit = Math.min(end, start + limits.maxHeadBytes);
  let pos = start;
  if (limit - pos < 13) return incomplete(end, start, limits);
  const version = parseVersion(buf, pos);
  if (version === 0) return new HeadError(502, 'invalid HTTP version in response');
  pos += 8;
  if (buf[pos] !== SP) return new HeadError(502, 'invalid status line');
  const d0 = buf[pos + 1]! - 48;
  const d1 = buf[pos + 2]! - 48;
  const d2 = buf[pos + 3]! - 48;
  if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) return new HeadError(502, 'invalid status code');
  const status = d0 * 100 + d1 * 10 + d2;
  pos += 4;
  let statusMessage = '';
  if (buf[pos] === SP) {
    const reasonStart = ++pos;
    while (pos < limit && FIELD_VALUE[buf[pos]!] === 1) pos++;
    if (pos >= limit) return incomplete(end, start, limits);
    statusMessage = internedToken(buf, reasonStart, pos, COMMON_REASONS);
  }
  if (pos + 1 >= limit) return incomplete(end, start, limits);
  if (buf[pos] !== CR || buf[pos + 1] !== LF) return new HeadError(502, 'invalid status line');
  pos += 2;
  const head = new ParsedResponseHead(buf, status, statusMessage, version);
  const fields = parseFields(buf, pos, limit, end, start, limits, head, false);
  if (fields === null) return null;
  if (fields !== undefined) return new HeadError(502, `invalid response head: ${fields.reason}`);
  // RFC 9112 §6.3: no body after HEAD, 1xx, 204 and 304, whatever the fields say.
  if (method === 'HEAD' || status < 200 || status === 204 || status === 304) {
    head.framing = Framing.None;
    head.contentLength = 0;
  } else if (head.framing === Framing.None) {
    // Neither Transfer-Encoding nor Content-Length (a response's Content-Length, 0 included, is
    // Framing.Length): the body ends with the connection.
    head.framing = Framing.Close;
    head.keepAlive = false;
  }
  return head;
}

/** `HTTP/1.0` → 10, `HTTP/1.1` → 11, anything else → 0. Reads 8 bytes at `pos`. */
function parseVersion(buf: Buffer, pos: number): number {
  if (buf[pos] !== 72 || buf[pos + 1] !== 84 || buf[pos + 2] !== 84 || buf[pos + 3] !== 80 || buf[pos + 4] !== 47 || buf[pos + 5] !== 49 || buf[pos + 6] !== 46)
    return 0;
  const minor = buf[pos + 7];
  return minor === 49 ? 11 : minor === 48 ? 10 : 0;
}

/** Out of bytes: a 431 when the size limit is what stopped us, else `null` (wait for more). */
function incomplete(end: number, start: number, limits: HeadLimits): HeadError | null {
  return end - start >= limits.maxHeadBytes ? HEAD_TOO_LARGE : null;
}

type AnyHead = RequestHead | ParsedResponseHead;

/** Whether `buf[start, end)` decodes (latin1) to exactly `text`. */
function spells(buf: Buffer, start: number, end: number, text: string): boolean {
  if (text.length !== end - start) return false;
  for (let i = 0; i < text.length; i++) if (buf[start + i] !== text.charCodeAt(i)) return false;
  return true;
}

/** Whether the token `buf[start, start + lower.length)` is `lower` in any case (`lower`: a-z, 0-9, `-`). */
export function nameIs(buf: Buffer, start: number, lower: string): boolean {
  for (let i = 0; i < lower.length; i++) {
    // Names are tchar: the only byte that ORs to a lower-case letter is its upper case.
    if ((buf[start + i]! | 0x20) !== lower.charCodeAt(i)) return false;
  }
  return true;
}

/** The fields after the start line, into `head`: `undefined` when complete, `null` for more bytes, or an error. */
function parseFields(
  buf: Buffer,
  start: number,
  limit: number,
  end: number,
  headStart: number,
  limits: HeadLimits,
  head: AnyHead,
  isRequest: boolean,
  previous?: readonly string[],
): HeadError | null | undefined {
  // Requests: strings now (routing, affinity and hooks read them all). Responses: offsets.
  const raw = isRequest ? head.rawHeaders : undefined;
  const offsets = isRequest ? undefined : (head as ParsedResponseHead).fieldOffsets;
  let count = 0;
  let pos = start;
  let lengthSeen = false;
  let transferEncoding: string | undefined;
  let connectionClose = false;
  let connectionKeepAlive = false;
  let connectionUpgrade = false;
  let connectionListsFields = false;
  let upgrade: string | undefined;
  let hosts = 0;
  let expects = 0;
  for (;;) {
    if (pos + 1 >= limit) return incomplete(end, headStart, limits);
    const c = buf[pos]!;
    if (c === CR) {
      if (buf[pos + 1] !== LF) return new HeadError(400, 'bare CR');
      pos += 2;
      break;
    }
    if (c === SP || c === HTAB) return new HeadError(400, 'obsolete line folding');
    const nameStart = pos;
    while (pos < limit && TOKEN[buf[pos]!] === 1) pos++;
    if (pos >= limit) return incomplete(end, headStart, limits);
    if (buf[pos] !== COLON) {
      const b = buf[pos]!;
      return new HeadError(400, b === SP || b === HTAB ? 'whitespace before colon' : b === LF ? 'bare LF' : 'invalid header name');
    }
    if (pos === nameStart) return new HeadError(400, 'empty header name');
    const nameEnd = pos++;
    while (pos < limit && (buf[pos] === SP || buf[pos] === HTAB)) pos++;
    const valueStart = pos;
    while (pos < limit && FIELD_VALUE[buf[pos]!] === 1) pos++;
    if (pos + 1 >= limit) return incomplete(end, headStart, limits);
    if (buf[pos] !== CR) return new HeadError(400, buf[pos] === LF ? 'bare LF' : 'invalid character in header value');
    if (buf[pos + 1] !== LF) return new HeadError(400, 'bare CR');
    let valueEnd = pos;
    while (valueEnd > valueStart && (buf[valueEnd - 1] === SP || buf[valueEnd - 1] === HTAB)) valueEnd--;
    pos += 2;
    if (++count > limits.maxHeaders) return HEADER_COUNT;
    const nameLength = nameEnd - nameStart;
    let value: string;
    if (raw !== undefined) {
      const name = internedToken(buf, nameStart, nameEnd, COMMON_NAMES);
      const at = raw.length;
      const same = previous !== undefined && at + 1 < previous.length && previous[at] === name ? previous[at + 1]! : undefined;
      value = same !== undefined && spells(buf, valueStart, valueEnd, same) ? same : buf.toString('latin1', valueStart, valueEnd);
      raw.push(name, value);
      if (valueEnd !== pos - 2 || valueStart !== nameEnd + 2 || buf[nameEnd + 1] !== SP) (head as RequestHead).canonicalFields = false;
    } else {
      offsets!.push(nameStart, nameEnd, valueStart, valueEnd, pos);
      value = '';
    }
    // Only the few names that frame the message or the connection are looked at here (a response's
    // value becomes a string only then).
    switch (nameLength) {
      case 4:
        if (isRequest && nameIs(buf, nameStart, 'host')) {
          if (++hosts > 1) return new HeadError(400, 'duplicate Host header');
          for (let i = valueStart; i < valueEnd; i++) if (HOST[buf[i]!] !== 1) return new HeadError(400, 'invalid Host header');
          head.host = value;
        }
        break;
      case 6:
        if (isRequest && nameIs(buf, nameStart, 'expect')) {
          if (++expects > 1 || value.toLowerCase() !== '100-continue') return new HeadError(417, 'unsupported Expect');
          head.expectContinue = true;
        }
        break;
      case 7:
        if (nameIs(buf, nameStart, 'upgrade')) {
          if (upgrade !== undefined) return new HeadError(400, 'duplicate Upgrade header');
          upgrade = raw !== undefined ? value : buf.toString('latin1', valueStart, valueEnd);
        }
        break;
      case 10:
        if (nameIs(buf, nameStart, 'connection')) {
          if (raw === undefined) {
            // A backend's one-token value (nearly always `keep-alive` or `close`) is compared in
            // place: no string. (`nameIs` holds for values too: CR, the one byte besides `-` that
            // ORs to `-`, cannot be in a value.)
            const length = valueEnd - valueStart;
            if (length === 10 && nameIs(buf, valueStart, 'keep-alive')) {
              connectionKeepAlive = true;
              break;
            }
            if (length === 5 && nameIs(buf, valueStart, 'close')) {
              connectionClose = true;
              break;
            }
            value = buf.toString('latin1', valueStart, valueEnd);
          }
          // One token (`keep-alive`, `close`: nearly every message) needs no list; the value has no
          // leading or trailing whitespace left.
          const tokens = value.includes(',') ? value.split(',') : undefined;
          for (let k = 0, n = tokens === undefined ? 1 : tokens.length; k < n; k++) {
            const t = tokens === undefined ? value.toLowerCase() : tokens[k]!.trim().toLowerCase();
            if (t === 'close') connectionClose = true;
            else if (t === 'keep-alive') connectionKeepAlive = true;
            else if (t === 'upgrade') connectionUpgrade = true;
            else if (t !== '') connectionListsFields = true;
          }
        }
        break;
      case 14:
        if (nameIs(buf, nameStart, 'content-length')) {
          if (lengthSeen) return new HeadError(400, 'duplicate Content-Length');
          lengthSeen = true;
          const digits = valueEnd - valueStart;
          if (digits === 0 || digits > MAX_LENGTH_DIGITS) return new HeadError(400, 'invalid Content-Length');
          let length = 0;
          for (let i = valueStart; i < valueEnd; i++) {
            const d = buf[i]! - 48;
            if (d < 0 || d > 9) return new HeadError(400, 'invalid Content-Length');
            length = length * 10 + d;
          }
          head.contentLength = length;
        }
        break;
      case 17:
        if (nameIs(buf, nameStart, 'transfer-encoding')) {
          if (transferEncoding !== undefined) return new HeadError(400, 'duplicate Transfer-Encoding');
          transferEncoding = raw !== undefined ? value : buf.toString('latin1', valueStart, valueEnd);
        }
        break;
      default:
    }
  }
  // Every byte from the caller's offset, leading empty lines included.
  head.headLength = pos - headStart;
  if (isRequest) (head as RequestHead).fieldsEnd = pos - 2;
  if (transferEncoding !== undefined) {
    if (lengthSeen) return new HeadError(400, 'Content-Length with Transfer-Encoding');
    // Only a single `chunked` is unambiguous: `gzip, chunked` would be legal, but no backend needs a
    // proxy to pass transfer codings, and every list is a way to make two parsers disagree.
    // 422 as HAProxy answers a request whose coding is not chunked alone (`identity, chunked`).
    if (transferEncoding.toLowerCase() !== 'chunked') return new HeadError(isRequest ? 422 : 400, 'unsupported Transfer-Encoding');
    if (isRequest && head.version === 10) return new HeadError(400, 'Transfer-Encoding in an HTTP/1.0 request');
    head.framing = Framing.Chunked;
  } else if (lengthSeen) {
    head.framing = head.contentLength > 0 || !isRequest ? Framing.Length : Framing.None;
  }
  head.keepAlive = head.version === 11 ? !connectionClose : connectionKeepAlive && !connectionClose;
  head.upgrade = connectionUpgrade && upgrade !== undefined ? upgrade : undefined;
  if (!isRequest) {
    (head as ParsedResponseHead).connectionListsFields = connectionListsFields;
    (head as ParsedResponseHead).connectionClose = connectionClose;
  }
  return undefined;
}

const enum ChunkState {
  Size = 0,
  Extension = 1,
  SizeLf = 2,
  Data = 3,
  DataCr = 4,
  DataLf = 5,
  TrailerStart = 6,
  TrailerLine = 7,
  TrailerLf = 8,
  FinalLf = 9,
  Done = 10,
}

/** Longest chunk-size line (size and extensions) and trailer section accepted, bytes. */
const MAX_CHUNK_LINE = 4096;
const MAX_TRAILER_BYTES = 16_384;

/**
 * A strict chunked-body decoder (RFC 9112 §7.1): hex sizes with an overflow check (a size over 2^53
 * is refused, never wrapped), CRLF everywhere, chunk extensions read and ignored within a line limit,
 * trailer fields validated like header fields and dropped. `push` hands each data span to `onData`
 * (slices of the input, no copy) and returns the bytes it consumed: fewer than given once the last
 * chunk and trailers ended (what follows is the next message), or a `HeadError` for a malformed body.
 */
export class ChunkedDecoder {
  #state = ChunkState.Size;
  #size = 0;
  #digits = 0;
  #lineBytes = 0;
  #trailerBytes = 0;

  get done(): boolean {
    return this.#state === ChunkState.Done;
  }

  reset(): void {
    this.#state = ChunkState.Size;
    this.#size = 0;
    this.#digits = 0;
    this.#lineBytes = 0;
    this.#trailerBytes = 0;
  }

  push(buf: Buffer, start: number, end: number, onData: (data: Buffer) => void): number | HeadError {
    let pos = start;
    while (pos < end) {
      const c = buf[pos]!;
      switch (this.#state) {
        case ChunkState.Size: {
          const d = hexValue(c);
          if (d >= 0) {
            this.#size = this.#size * 16 + d;
            if (++this.#digits > 13 || this.#size > Number.MAX_SAFE_INTEGER) return new HeadError(400, 'chunk size overflow');
            pos++;
            break;
          }
          if (this.#digits === 0) return new HeadError(400, 'invalid chunk size');
          if (c === CR) this.#state = ChunkState.SizeLf;
          else if (c === 59 /* ; */) this.#state = ChunkState.Extension;
          else return new HeadError(400, 'invalid chunk size');
          this.#lineBytes = this.#digits + 1;
          pos++;
          break;
        }
        case ChunkState.Extension:
          if (c === CR) this.#state = ChunkState.SizeLf;
          else if (FIELD_VALUE[c] !== 1) return new HeadError(400, 'invalid chunk extension');
          if (++this.#lineBytes > MAX_CHUNK_LINE) return new HeadError(400, 'chunk extension too long');
          pos++;
          break;
        case ChunkState.SizeLf:
          if (c !== LF) return new HeadError(400, 'bare CR in chunk size line');
          pos++;
          this.#digits = 0;
          this.#state = this.#size === 0 ? ChunkState.TrailerStart : ChunkState.Data;
          break;
        case ChunkState.Data: {
          const take = Math.min(this.#size, end - pos);
          onData(buf.subarray(pos, pos + take));
          pos += take;
          this.#size -= take;
          if (this.#size === 0) this.#state = ChunkState.DataCr;
          break;
        }
        case ChunkState.DataCr:
          if (c !== CR) return new HeadError(400, 'chunk data longer than its size');
          this.#state = ChunkState.DataLf;
          pos++;
          break;
        case ChunkState.DataLf:
          if (c !== LF) return new HeadError(400, 'bare CR after chunk data');
          this.#state = ChunkState.Size;
          pos++;
          break;
        case ChunkState.TrailerStart:
          if (c === CR) {
            this.#state = ChunkState.FinalLf;
          } else if (TOKEN[c] === 1) {
            this.#state = ChunkState.TrailerLine;
            this.#lineBytes = 0;
          } else {
            return new HeadError(400, 'invalid trailer field');
          }
          if (++this.#trailerBytes > MAX_TRAILER_BYTES) return new HeadError(400, 'trailers too large');
          pos++;
          break;
        case ChunkState.TrailerLine:
          // Names are tokens up to the colon, then field-value bytes; the field is dropped.
          if (c === CR) {
            if (this.#lineBytes === 0) return new HeadError(400, 'invalid trailer field');
            this.#state = ChunkState.TrailerLf;
          } else if (this.#lineBytes === 0 && c === COLON) {
            this.#lineBytes = 1;
          } else if (this.#lineBytes === 0 ? TOKEN[c] !== 1 : FIELD_VALUE[c] !== 1) {
            return new HeadError(400, 'invalid trailer field');
          }
          if (++this.#trailerBytes > MAX_TRAILER_BYTES) return new HeadError(400, 'trailers too large');
          pos++;
          break;
        case ChunkState.TrailerLf:
          if (c !== LF) return new HeadError(400, 'bare CR in trailers');
          this.#state = ChunkState.TrailerStart;
          pos++;
          break;
        case ChunkState.FinalLf:
          if (c !== LF) return new HeadError(400, 'bare CR after last chunk');
          this.#state = ChunkState.Done;
          return pos + 1;
        case ChunkState.Done:
          return pos;
      }
    }
    return pos;
  }
}

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  const lower = c | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -1;
}
