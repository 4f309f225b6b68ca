/**
 * The request path a router matches on, normalised so that one resource has one spelling.
 *
 * A path-based route is only as strong as the agreement between the proxy and the backend about
 * which path a request names. `/api/../admin`, `//admin`, `/%61dmin` and `/admin` are the same
 * resource to most servers; a proxy that compares raw strings routes them differently, and a route
 * meant to keep `/admin` on one pool is bypassed by the first of them. So, before any comparison and
 * for the path sent upstream (the backend sees exactly what was matched):
 *
 * 1. Percent-encodings of UNRESERVED characters (`A–Z a–z 0–9 - . _ ~`) are decoded and every other
 *    encoding is upper-cased — RFC 3986 §6.2.2.1–2, the normalisations that never change meaning.
 *    Reserved characters stay encoded: `%2F` is data inside a segment, not a separator (decoding it
 *    would turn `/files/a%2Fb` into two segments and change what the backend receives). A `%` not
 *    followed by two hex digits makes the path unusable.
 * 2. Runs of `/` are merged (nginx's `merge_slashes on`, its default, for the same reason: most
 *    backends treat `//admin` as `/admin`).
 * 3. Dot segments are resolved (RFC 3986 §5.2.4 `remove_dot_segments`), `..` never climbing above
 *    the root — after step 1, so `%2e%2e` is `..` too.
 * 4. Paths the router refuses to interpret (it answers "no route", i.e. 404) rather than guess how a
 *    backend would: a backslash (Windows servers and some frameworks treat it as `/`), and a segment
 *    that is `.` or `..` followed by `;` (Tomcat and Jetty strip path parameters before resolving
 *    dots, the `/..;/` bypass). A target that is not origin-form (`http://…`, `*`) also has no path.
 * 5. By default, also a segment in which an ENCODED separator — `%2F` (`/`), `%5C` (`\`) or `%3B`
 *    (`;`) — borders a `.` or `..`: `/public/..%2Fadmin`, `/public/..%5Cadmin`, `/public/..%3B/admin`,
 *    `/public/a%2F..%2F..%2Fadmin`. Step 1 keeps these escapes (they are data to RFC 3986), so the
 *    router sees one harmless segment under `/public`; but a backend that decodes `%2F` or `%5C`
 *    before resolving dots (many servers do, some only on Windows), or strips `;` parameters after
 *    decoding (Tomcat, Jetty), resolves the same bytes to `/admin` — a prefix route bypassed. The
 *    router cannot know which backend decodes what, so it does what HAProxy's `normalize-uri` rules
 *    and Envoy's `path_with_escaped_slashes_action: REJECT_REQUEST` do for the dangerous case: it
 *    refuses it. Only the dot-bordering positions are refused, so ordinary data such as
 *    `/files/a%2Fb` or `/q/x%3By` still routes. `createRouter({ encodedDotSegments: 'pass' })` turns
 *    this step off for backends that treat every escape as data (the path then goes upstream as it
 *    came, after steps 1–4). A double encoding (`%252F`) is data after one decoding, as it is to
 *    HAProxy and nginx; a backend that decodes twice is outside what a proxy can normalise for.
 *
 * Matching is case-sensitive (RFC 3986: paths are). The query string is passed through untouched.
 * Clean paths (no `%`, no `//`, no `/.`, no `\`) are returned as they are without allocation — the
 * common case costs one scan.
 */

/** The normalised path of a request target and the untouched query (with its `?`), or `undefined`. */
export interface NormalisedTarget {
  readonly path: string;
  readonly query: string;
}

const HEX = '0123456789ABCDEF';

function hexValue(code: number): number {
  if (code >= 48 && code <= 57) return code - 48;
  if (code >= 65 && code <= 70) return code - 55;
  if (code >= 97 && code <= 102) return code - 87;
  return -1;
}

function isUnreserved(code: number): boolean {
  return (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || (code >= 48 && code <= 57) || code === 45 || code === 46 || code === 95 || code === 126;
}

/**
 * Normalise a request target (`req.url`) as described in the file header. Returns `undefined` for a
 * target the router will not route (not origin-form, malformed percent-encoding, backslash, `..;`,
 * and — unless `passEncodedDotSegments` — an encoded `/`, `\` or `;` bordering a dot segment).
 * Never throws.
 */
export function normaliseTarget(url: string | undefined, passEncodedDotSegments = false): NormalisedTarget | undefined {
  if (typeof url !== 'string' || url.charCodeAt(0) !== 47 /* / */) return undefined;
  const question = url.indexOf('?');
  const rawPath = question === -1 ? url : url.slice(0, question);
  const query = question === -1 ? '' : url.slice(question);
  let clean = true;
  for (let i = 0; i < rawPath.length; i++) {
    const c = rawPath.charCodeAt(i);
    if (c === 92 /* \ */) return undefined;
    if (c === 37 /* % */) clean = false;
    else if (c === 47 /* / */ && i + 1 < rawPath.length) {
      const next = rawPath.charCodeAt(i + 1);
      if (next === 47 || next === 46 /* . */) clean = false;
    }
  }
  if (clean) return { path: rawPath, query };
  const decoded = decodeUnreserved(rawPath);
  if (decoded === undefined) return undefined;
  const path = resolveSegments(decoded, passEncodedDotSegments);
  return path === undefined ? undefined : { path, query };
}

/** Step 1: decode unreserved escapes, upper-case the others; `undefined` on a malformed escape. */
function decodeUnreserved(path: string): string | undefined {
  if (path.indexOf('%') === -1) return path;
  let out = '';
  let from = 0;
  for (let i = path.indexOf('%'); i !== -1; i = path.indexOf('%', i)) {
    const high = hexValue(path.charCodeAt(i + 1));
    const low = hexValue(path.charCodeAt(i + 2));
    if (high < 0 || low < 0) return undefined;
    const code = high * 16 + low;
    out += path.slice(from, i);
    out += isUnreserved(code) ? String.fromCharCode(code) : `%${HEX[high]}${HEX[low]}`;
    i += 3;
    from = i;
  }
  return out + path.slice(from);
}

/** Steps 2–5: merge slashes, resolve dot segments, refuse `.;` / `..;` and encoded separators at dots. */
function resolveSegments(path: string, passEncodedDotSegments: boolean): string | undefined {
  const segments = path.split('/');
  const output: string[] = [];
  // segments[0] is the empty string before the leading '/'.
  for (let i = 1; i < segments.length; i++) {
    const segment = segments[i]!;
    const last = i === segments.length - 1;
    if (segment === '') {
      // An empty segment is a doubled slash (merged away) — or the trailing slash, which is kept.
      if (last) output.push('');
      continue;
    }
    if (segment === '.') {
      if (last) output.push('');
      continue;
    }
    if (segment === '..') {
      output.pop();
      if (last) output.push('');
      continue;
    }
    const semicolon = segment.indexOf(';');
    if (semicolon !== -1) {
      const head = segment.slice(0, semicolon);
      if (head === '.' || head === '..') return undefined;
    }
    if (!passEncodedDotSegments && hasEncodedDotSegment(segment)) return undefined;
    output.push(segment);
  }
  return `/${output.join('/')}`;
}

/**
 * Step 5: true when `segment` (escapes already upper-cased by step 1) holds an encoded `/`, `\` or
 * `;` and, cut at those escapes and at raw `;`, has a piece that is `.` or `..` — what a backend that
 * decodes before resolving would take for a dot segment.
 */
function hasEncodedDotSegment(segment: string): boolean {
  if (segment.indexOf('%') === -1) return false;
  let encoded = false;
  let pieceStart = 0;
  for (let i = 0; i <= segment.length; i++) {
    let cut = 0; // length of the separator at i, 0 when none
    if (i === segment.length) cut = 1;
    else {
      const c = segment.charCodeAt(i);
      if (c === 59 /* ; */) cut = 1;
      else if (c === 37 /* % */ && isEncodedSeparator(segment, i)) {
        cut = 3;
        encoded = true;
      }
    }
    if (cut === 0) continue;
    const length = i - pieceStart;
    if ((length === 1 || length === 2) && segment.charCodeAt(pieceStart) === 46 && segment.charCodeAt(i - 1) === 46) {
      // A '.' or '..' piece; it matters only once an encoded separator is somewhere in the segment.
      if (encoded || hasEncodedSeparatorFrom(segment, i)) return true;
    }
    i += cut - 1;
    pieceStart = i + 1;
  }
  return false;
}

/** `%2F`, `%5C` or `%3B` at `i` (upper case: step 1 normalised every kept escape). */
function isEncodedSeparator(segment: string, i: number): boolean {
  const high = segment.charCodeAt(i + 1);
  const low = segment.charCodeAt(i + 2);
  return (high === 50 /* 2 */ && low === 70) /* F */ || (high === 53 /* 5 */ && low === 67) /* C */ || (high === 51 /* 3 */ && low === 66); /* B */
}

function hasEncodedSeparatorFrom(segment: string, from: number): boolean {
  for (let i = segment.indexOf('%', from); i !== -1; i = segment.indexOf('%', i + 1)) {
    if (isEncodedSeparator(segment, i)) return true;
  }
  return false;
}
