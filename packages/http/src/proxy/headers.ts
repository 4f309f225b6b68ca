/**
 * Request and response headers at the proxy boundary (RFC 9110 §7.6.1, RFC 7239).
 *
 * Hop-by-hop headers describe one connection, not the message, so a proxy must drop them — and
 * every header the `Connection` header names. Fulcrum strips those FIRST and adds its own
 * `X-Forwarded-*` and `Forwarded` headers AFTER, so a client sending `Connection: close,
 * X-Forwarded-For` cannot make the proxy drop the address it appends (the trick that defeats proxies
 * which strip after adding).
 *
 * `X-Forwarded-For` gets the socket address appended to whatever the client sent (the backend decides
 * how far to trust the chain, as with nginx's `$proxy_add_x_forwarded_for`). `X-Forwarded-Proto`,
 * `X-Forwarded-Host` and `Forwarded` are replaced unless the immediate peer is a trusted proxy, in
 * which case theirs are kept and extended.
 *
 * Header names and values containing CR, LF or NUL are refused: forwarded, they could split a
 * request or response (Node's parser refuses most of them already; this is the belt to its braces).
 */

export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  // Node answers `Expect: 100-continue` itself before the handler runs; forwarding it would make the
  // backend wait for a continue that never comes from us.
  'expect',
]);

const FORWARDING = new Set(['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded']);

const UNSAFE = /[\r\n\0]/;

/**
 * Length and first letter of the names `requestHeaders` treats specially (hop-by-hop, forwarding,
 * Host, Upgrade): any other name is copied without being lower-cased (no new string, no set lookup
 * per field). The letter is taken as its low five bits, the same for both cases, so a special name
 * in any case is found; another name that shares a slot only takes the slow path. (The length
 * alone sent `User-Agent` there, as long as `connection`.)
 */
const SPECIAL = new Uint8Array(32 * 32);
for (const name of [...HOP_BY_HOP, ...FORWARDING, 'host', 'upgrade']) SPECIAL[name.length * 32 + (name.charCodeAt(0) & 31)] = 1;

/** Whether a field name may be one of those `requestHeaders` drops or rewrites. */
function maybeSpecial(name: string): boolean {
  return name.length < 32 && SPECIAL[name.length * 32 + (name.charCodeAt(0) & 31)] === 1;
}

/** Names listed in `Connection` header values (comma-separated, case-insensitive). */
export function connectionListed(values: string | readonly string[] | undefined): Set<string> | undefined {
  if (values === undefined) return undefined;
  const listed = new Set<string>();
  for (const value of typeof values === 'string' ? [values] : values) {
    for (const token of value.split(',')) {
      const name = token.trim().toLowerCase();
      if (name !== '') listed.add(name);
    }
  }
  return listed;
}

export interface ForwardingContext {
  /** The socket's remote address. */
  remoteAddress: string;
  /** Whether the client connection is TLS. */
  encrypted: boolean;
  /** Whether the socket peer is a trusted proxy (its forwarding headers are kept and extended). */
  peerTrusted: boolean;
  /** Keep the client's Host header (default) rather than the backend's. */
  preserveHost: boolean;
  /** Add X-Forwarded-* and Forwarded headers. */
  addForwarded: boolean;
  /** Keep `Upgrade` and `Connection: upgrade` (WebSocket handshakes). */
  upgrade?: boolean;
}

/**
 * Build the upstream request headers from the client's raw headers, as a flat `[name, value, …]`
 * list (undici's cheapest form). Returns `undefined` when a header is unsafe (the caller answers 400).
 */
export function requestHeaders(rawHeaders: readonly string[], ctx: ForwardingContext, backendHost: string): string[] | undefined {
  if (!scanRequestHead(rawHeaders)) return undefined;
  const connection = scannedConnection;
  const out: string[] = [];
  clearTaken();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    if ((connection === undefined && !maybeSpecial(name)) || keepField(name, value, connection, ctx.upgrade)) out.push(name, value);
  }
  forwardingFields(out, ctx, backendHost, scannedHost, takenUpgrade, takenXff, takenXfProto, takenXfHost, takenForwarded);
  return out;
}

// The client's fields that `keepField` took out (forwarding, upgrade), read by its caller after the
// loop: module state rather than an object, so no hot path allocates for them.
let takenXff: string | undefined;
let takenXfProto: string | undefined;
let takenXfHost: string | undefined;
let takenForwarded: string | undefined;
let takenUpgrade: string | undefined;

function clearTaken(): void {
  takenXff = takenXfProto = takenXfHost = takenForwarded = takenUpgrade = undefined;
}

/**
 * Whether a client's field goes on to the backend as it is: not Host (the proxy sets it), not
 * hop-by-hop or named by `Connection`, not a forwarding field (its value is taken into `taken*`, the
 * proxy's own field extends or replaces it), not `Upgrade` of a handshake (taken too: the proxy
 * writes it after `Connection: upgrade`).
 */
function keepField(name: string, value: string, connection: Set<string> | undefined, upgrade: boolean | undefined): boolean {
  const lower = name === 'Host' ? 'host' : name.toLowerCase();
  if (lower === 'upgrade' && upgrade) {
    takenUpgrade = value;
    return false;
  }
  if (lower === 'host' || HOP_BY_HOP.has(lower) || connection?.has(lower)) return false;
  if (FORWARDING.has(lower)) {
    if (lower === 'x-forwarded-for') takenXff = takenXff === undefined ? value : `${takenXff}, ${value}`;
    else if (lower === 'x-forwarded-proto') takenXfProto ??= value;
    else if (lower === 'x-forwarded-host') takenXfHost ??= value;
    else takenForwarded = takenForwarded === undefined ? value : `${takenForwarded}, ${value}`;
    return false;
  }
  return true;
}

/**
 * The fields the proxy sets after the client's kept ones — Host, `Connection: upgrade` + `Upgrade`,
 * and the forwarding fields — pushed onto `out` as name, value pairs.
 */
function forwardingFields(
  out: string[],
  ctx: ForwardingContext,
  backendHost: string,
  host: string | undefined,
  upgradeValue: string | undefined,
  xff: string | undefined,
  xfProto: string | undefined,
  xfHost: string | undefined,
  forwarded: string | undefined,
): void {
  out.push('host', ctx.preserveHost && host !== undefined ? host : backendHost);
  if (ctx.upgrade && upgradeValue !== undefined) out.push('connection', 'upgrade', 'upgrade', upgradeValue);
  if (ctx.addForwarded) {
    const proto = ctx.encrypted ? 'https' : 'http';
    const client = ctx.remoteAddress;
    out.push('x-forwarded-for', xff === undefined ? client : `${xff}, ${client}`);
    out.push('x-forwarded-proto', ctx.peerTrusted && xfProto !== undefined ? xfProto : proto);
    if (host !== undefined) out.push('x-forwarded-host', ctx.peerTrusted && xfHost !== undefined ? xfHost : host);
    const element = `for=${forwardedNode(client)};proto=${proto}${host !== undefined ? `;host=${quoteIfNeeded(host)}` : ''}`;
    out.push('forwarded', ctx.peerTrusted && forwarded !== undefined ? `${forwarded}, ${element}` : element);
  } else {
    if (xff !== undefined) out.push('x-forwarded-for', xff);
    if (xfProto !== undefined) out.push('x-forwarded-proto', xfProto);
    if (xfHost !== undefined) out.push('x-forwarded-host', xfHost);
    if (forwarded !== undefined) out.push('forwarded', forwarded);
  }
}

/**
 * What `requestHeadLines` and `h2RequestHeaders` add after the client's fields (Host and the
 * forwarding fields), remembered per client connection: every request of a connection that sends
 * the same Host and no forwarding or upgrade fields of its own gets the same, so they are built once,
 * not per request. One per connection; `get` checks every input the fields depend on — the backend's
 * host only when it is the one sent (the client's Host not kept, or none), so that requests balanced
 * over several backends share the entry.
 */
export class ForwardingCache<T> {
  #host: string | undefined = undefined;
  #backendHost = '';
  #remoteAddress = '';
  #flags = -1;
  #value: T | undefined = undefined;

  /** The cached value for these inputs, or `undefined`. */
  get(ctx: ForwardingContext, backendHost: string, host: string | undefined): T | undefined {
    return this.#flags === flagsOf(ctx) &&
      this.#host === host &&
      this.#backendHost === sentBackendHost(ctx, backendHost, host) &&
      this.#remoteAddress === ctx.remoteAddress
      ? this.#value
      : undefined;
  }

  set(ctx: ForwardingContext, backendHost: string, host: string | undefined, value: T): void {
    this.#flags = flagsOf(ctx);
    this.#host = host;
    this.#backendHost = sentBackendHost(ctx, backendHost, host);
    this.#remoteAddress = ctx.remoteAddress;
    this.#value = value;
  }
}

/** The header lines of the HTTP/1.1 engine's requests (see `ForwardingCache`). */
export class ForwardingLines extends ForwardingCache<string> {}

/** The backend's host when the request carries it (`forwardingFields`' Host), else '' (it does not matter). */
function sentBackendHost(ctx: ForwardingContext, backendHost: string, host: string | undefined): string {
  return ctx.preserveHost && host !== undefined ? '' : backendHost;
}

function flagsOf(ctx: ForwardingContext): number {
  return (ctx.encrypted ? 1 : 0) | (ctx.peerTrusted ? 2 : 0) | (ctx.preserveHost ? 4 : 0) | (ctx.addForwarded ? 8 : 0);
}

/**
 * `requestHeaders` as the text of the header lines (`name: value\r\n` each, in the same order, no
 * final empty line), for an engine that writes the head itself: no list, and with `cache` the
 * forwarding lines are built once per connection (see `ForwardingLines`). `undefined` when a header
 * is unsafe, as `requestHeaders`.
 */
export function requestHeadLines(rawHeaders: readonly string[], ctx: ForwardingContext, backendHost: string, cache?: ForwardingLines): string | undefined {
  if (!scanRequestHead(rawHeaders)) return undefined;
  const connection = scannedConnection;
  let lines = '';
  clearTaken();
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    if ((connection === undefined && !maybeSpecial(name)) || keepField(name, value, connection, ctx.upgrade)) lines += `${name}: ${value}\r\n`;
  }
  return lines + forwardingLines(ctx, backendHost, cache, asText);
}

/**
 * The lines `forwardingFields` adds after the fields `keepField` kept (with what it took and
 * `scanRequestHead`'s Host), made by `of` from their text — from `cache` when the client sent no
 * forwarding or upgrade field.
 */
function forwardingLines<T>(ctx: ForwardingContext, backendHost: string, cache: ForwardingCache<T> | undefined, of: (text: string) => T): T {
  const host = scannedHost;
  const cacheable = cache !== undefined && !takenAny();
  if (cacheable) {
    const cached = cache.get(ctx, backendHost, host);
    if (cached !== undefined) return cached;
  }
  const fields: string[] = [];
  forwardingFields(fields, ctx, backendHost, host, takenUpgrade, takenXff, takenXfProto, takenXfHost, takenForwarded);
  let text = '';
  for (let i = 0; i < fields.length; i += 2) text += `${fields[i]!}: ${fields[i + 1]!}\r\n`;
  const tail = of(text);
  if (cacheable) cache.set(ctx, backendHost, host, tail);
  return tail;
}

const asText = (text: string): string => text;
const asLatin1 = (text: string): Buffer => Buffer.from(text, 'latin1');

function takenAny(): boolean {
  return takenXff !== undefined || takenXfProto !== undefined || takenXfHost !== undefined || takenForwarded !== undefined || takenUpgrade !== undefined;
}

/** `ForwardingLines` as bytes, for `requestHeadRanges`. */
export class ForwardingBytes extends ForwardingCache<Buffer> {}

/**
 * `requestHeadLines` for a head whose field lines are still in the buffer the raw engine parsed
 * them from, each exactly `name: value\r\n` (its parser says when): the kept lines are not written
 * out as text but pushed onto `ranges` as `[start, end)` offsets of that buffer (adjoining lines
 * merged into one range), and the lines the proxy adds are returned as bytes. `fieldsStart` and
 * `fieldsEnd` bound the field lines (the head's last CRLF not included): the lines' lengths must add
 * up to that span, else `undefined` (the list is not the one parsed from those bytes; the caller
 * takes `requestHeadLines`). The values are not scanned for CR, LF or NUL: the parser refused them,
 * and the bytes sent are those it checked.
 */
export function requestHeadRanges(
  rawHeaders: readonly string[],
  fieldsStart: number,
  fieldsEnd: number,
  ctx: ForwardingContext,
  backendHost: string,
  cache: ForwardingBytes,
  ranges: number[],
): Buffer | undefined {
  scanConnectionAndHost(rawHeaders);
  const connection = scannedConnection;
  clearTaken();
  let at = fieldsStart;
  let rangeStart = -1;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    const value = rawHeaders[i + 1]!;
    if ((connection === undefined && !maybeSpecial(name)) || keepField(name, value, connection, ctx.upgrade)) {
      if (rangeStart === -1) rangeStart = at;
    } else if (rangeStart !== -1) {
      ranges.push(rangeStart, at);
      rangeStart = -1;
    }
    at += name.length + value.length + 4;
  }
  if (at !== fieldsEnd) return undefined;
  if (rangeStart !== -1) ranges.push(rangeStart, at);
  return forwardingLines(ctx, backendHost, cache, asLatin1);
}

/** Header fields HTTP/2 forbids (RFC 9113 §8.2.2: connection-specific). */
export const H2_FORBIDDEN: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/**
 * The HTTP/2 request header object of `requestHeaders`' list (after `on.proxyReq`), added to `out`
 * (which holds the pseudo-headers): Host as `:authority`, a name on several lines as a list, the
 * fields HTTP/2 forbids left out.
 */
export function h2HeadersFromList(out: Record<string, string | string[]>, raw: readonly string[]): Record<string, string | string[]> {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    if (name === 'host') {
      out[':authority'] = value;
      continue;
    }
    if (H2_FORBIDDEN.has(name)) continue;
    const existing = out[name];
    if (existing === undefined) out[name] = value;
    else if (Array.isArray(existing)) existing.push(value);
    else out[name] = [existing, value];
  }
  return out;
}

/** An HTTP/2 request's header fields, by lower-case name (pseudo-headers included). */
export type H2RequestFields = Record<string, string | string[] | undefined>;

/**
 * `requestHeaders` and then the HTTP/2 request header object made from its list (Host as
 * `:authority`, a name on several lines as a list), in one pass over an HTTP/2 client's header
 * object and without the list, added to `out` (which holds the request's pseudo-headers). For the
 * fields as `node:http2` hands them over: lower-case names that nghttp2 has checked, and no
 * `Connection` field (nghttp2 refuses connection-specific fields) — the caller takes
 * `requestHeaders` otherwise; `ctx.upgrade` is not read (a stream is no upgrade). The Host is
 * `host`, else `:authority`. With `cache` the forwarding fields are built once per client
 * connection. False when a value is unsafe (the caller answers 400), as `requestHeaders`.
 */
export function h2RequestHeaders(
  out: Record<string, string | string[]>,
  fields: Readonly<H2RequestFields>,
  ctx: ForwardingContext,
  backendHost: string,
  cache?: ForwardingCache<readonly string[]>,
): boolean {
  let xff: string | undefined;
  let xfProto: string | undefined;
  let xfHost: string | undefined;
  let forwarded: string | undefined;
  for (const name in fields) {
    if (name.charCodeAt(0) === 0x3a /* : */) continue;
    const value = fields[name];
    if (value === undefined) continue;
    if (typeof value === 'string' ? UNSAFE.test(value) : !value.every(isSafe)) return false;
    if (maybeSpecial(name)) {
      if (name === 'host' || HOP_BY_HOP.has(name)) continue;
      if (FORWARDING.has(name)) {
        // As `requestHeaders` reads the lines a list would be: each of its items a line.
        for (const item of typeof value === 'string' ? [value] : value) {
          if (name === 'x-forwarded-for') xff = xff === undefined ? item : `${xff}, ${item}`;
          else if (name === 'x-forwarded-proto') xfProto ??= item;
          else if (name === 'x-forwarded-host') xfHost ??= item;
          else forwarded = forwarded === undefined ? item : `${forwarded}, ${item}`;
        }
        continue;
      }
    }
    if (typeof value === 'string') out[name] = value;
    else if (value.length > 0) out[name] = value.length === 1 ? value[0]! : value.slice();
  }
  const given = fields.host;
  let host: string | undefined;
  if (given !== undefined) host = typeof given === 'string' ? given : given[0];
  else {
    const authority = fields[':authority'];
    if (typeof authority === 'string') {
      if (UNSAFE.test(authority)) return false;
      host = authority;
    }
  }
  const cacheable = cache !== undefined && xff === undefined && xfProto === undefined && xfHost === undefined && forwarded === undefined;
  let added = cacheable ? cache.get(ctx, backendHost, host) : undefined;
  if (added === undefined) {
    const list: string[] = [];
    forwardingFields(list, ctx, backendHost, host, undefined, xff, xfProto, xfHost, forwarded);
    if (cacheable) cache.set(ctx, backendHost, host, list);
    added = list;
  }
  // The first is Host.
  out[':authority'] = added[1]!;
  for (let i = 2; i < added.length; i += 2) out[added[i]!] = added[i + 1]!;
  return true;
}

function isSafe(value: string): boolean {
  return !UNSAFE.test(value);
}

// What `scanRequestHead` found, read by its caller right after it returns: module state rather than
// a returned object, so the raw engine's hot path allocates nothing per request for it.
let scannedConnection: Set<string> | undefined;
let scannedHost: string | undefined;

/**
 * The first pass of `requestHeaders` and `requestHeadLines` over the client's raw headers: false when
 * one is unsafe; else the names its Connection headers list in `scannedConnection` and its first Host
 * in `scannedHost`.
 */
function scanRequestHead(rawHeaders: readonly string[]): boolean {
  for (let i = 0; i < rawHeaders.length; i++) if (UNSAFE.test(rawHeaders[i]!)) return false;
  scanConnectionAndHost(rawHeaders);
  return true;
}

/** `scanRequestHead` without the safety check (for fields a strict parser has checked). */
function scanConnectionAndHost(rawHeaders: readonly string[]): void {
  let connection: Set<string> | undefined;
  let host: string | undefined;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    // The two usual spellings first: `toLowerCase` is a call, and a new string when the case changes.
    if (name.length === 10 ? name === 'Connection' || name === 'connection' || name.toLowerCase() === 'connection' : false) {
      connection = mergeSet(connection, rawHeaders[i + 1]!);
    } else if (name.length === 4 && (name === 'Host' || name === 'host' || name.toLowerCase() === 'host')) host ??= rawHeaders[i + 1]!;
  }
  scannedConnection = connection;
  scannedHost = host;
}

function mergeSet(set: Set<string> | undefined, value: string): Set<string> {
  const listed = connectionListed(value)!;
  if (set === undefined) return listed;
  for (const name of listed) set.add(name);
  return set;
}

/** RFC 7239 node: IPv6 in brackets and quotes. */
function forwardedNode(address: string): string {
  return address.includes(':') ? `"[${address}]"` : address;
}

function quoteIfNeeded(value: string): string {
  return /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(value) ? value : `"${value.replace(/["\\]/g, '\\$&')}"`;
}

/**
 * The upstream response headers to send to the client: hop-by-hop ones and those named in the
 * upstream `Connection` header dropped, unsafe values dropped, `Set-Cookie` kept as a list.
 */
export function responseHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const listed = headers.connection;
  // Almost every backend says `Connection: keep-alive` (or `close`): a single hop-by-hop token, which
  // is dropped anyway, so there is no set of extra names to build.
  const connection = typeof listed === 'string' && listed.length <= 10 && HOP_BY_HOP.has(listed.toLowerCase()) ? undefined : connectionListed(listed);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || connection?.has(lower)) continue;
    if (typeof value === 'string') {
      if (!UNSAFE.test(value)) out[lower] = value;
    } else {
      const safe = value.filter((v) => !UNSAFE.test(v));
      if (safe.length > 0) out[lower] = safe;
    }
  }
  return out;
}

/** Fields Node's `IncomingMessage.headers` keeps only the first of (`_http_incoming`'s `matchKnownFields`). */
export const FIRST_ONLY: ReadonlySet<string> = new Set([
  'content-type',
  'content-length',
  'user-agent',
  'referer',
  'host',
  'authorization',
  'proxy-authorization',
  'if-modified-since',
  'if-unmodified-since',
  'from',
  'location',
  'max-forwards',
  'retry-after',
  'etag',
  'last-modified',
  'server',
  'age',
  'expires',
]);

/**
 * The `headers` object Node builds from `rawHeaders`: lower-case names, `set-cookie` a list,
 * `cookie` joined with `; `, the `FIRST_ONLY` fields their first value, every other joined with `, `.
 */
export function headersOf(raw: readonly string[]): Record<string, string | string[]> {
  const headers = Object.create(null) as Record<string, string | string[]>;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    const value = raw[i + 1]!;
    const existing = headers[name];
    if (existing === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
    else if (name === 'set-cookie') (existing as string[]).push(value);
    else if (FIRST_ONLY.has(name)) continue;
    else headers[name] = `${existing as string}${name === 'cookie' ? '; ' : ', '}${value}`;
  }
  return headers;
}

/**
 * The client's header lines as the application left them: `req.rawHeaders` when `req.headers` still
 * says what they say, else those lines with every header the application changed, added or deleted
 * in `req.headers` (Express middleware setting `req.headers['x-user']`, a Fastify `onRequest` hook)
 * replaced by its new value. Headers it did not touch keep their lines, spelling and order.
 *
 * The usual case costs one pass: every line's value is compared with `req.headers` under its
 * lower-case name, and the names are counted. Only when that differs (a change, or a header on
 * several lines) is Node's object rebuilt from the lines and compared name by name.
 */
export function honouredRawHeaders(req: {
  readonly rawHeaders: string[];
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}): string[] {
  const raw = req.rawHeaders;
  const headers = req.headers;
  let same = true;
  for (let i = 0; i < raw.length; i += 2) {
    if (headers[raw[i]!.toLowerCase()] !== raw[i + 1]) {
      same = false;
      break;
    }
  }
  if (same) {
    let names = 0;
    for (const name in headers) if (headers[name] !== undefined) names++;
    if (names * 2 === raw.length) return raw;
  }
  const original = headersOf(raw);
  // Lower-case name → the key of `req.headers` holding its new value (absent: deleted).
  let changed: Map<string, string | undefined> | undefined;
  for (const name in original) {
    if (!sameValue(original[name]!, headers[name])) (changed ??= new Map()).set(name, headers[name] === undefined ? undefined : name);
  }
  for (const key in headers) {
    const lower = key.toLowerCase();
    if (original[lower] === undefined && headers[key] !== undefined) (changed ??= new Map()).set(lower, key);
  }
  if (changed === undefined) return raw;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) if (!changed.has(raw[i]!.toLowerCase())) out.push(raw[i]!, raw[i + 1]!);
  for (const [name, key] of changed) {
    if (key === undefined) continue;
    const value = headers[key]!;
    // A number set by middleware (`req.headers['x-count'] = 3`) is what Node would send as text.
    if (Array.isArray(value)) for (const v of value) out.push(name, String(v));
    else out.push(name, String(value));
  }
  return out;
}

function sameValue(a: string | string[], b: string | string[] | undefined): boolean {
  if (typeof a === 'string' || b === undefined || typeof b === 'string') return a === b;
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** The `host[:port]` of a backend address, for the Host header when the client's is not kept. */
export function hostOf(origin: string): string {
  return new URL(origin).host;
}

/** A backend address as a URL origin undici can connect to ('host:port' means plain HTTP). */
export function originOf(address: string): string {
  return address.includes('://') ? new URL(address).origin : `http://${address}`;
}
