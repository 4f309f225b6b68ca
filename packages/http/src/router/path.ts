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
  return (
    (code >= 65 && code <= 90) || (code >= 97 && code <= 122) || (code >= 48 && code <= 57) || code === 45 || code === 46 || code === 95 || code === 126
  );
}

/**
 * Normalise a request target (`req.url`) as described in the file header. Returns `undefined` for a
 * target the router will not route (not origin-form, malformed percent-encoding, backslash, `..;`).
 * Never throws.
 */
export function normaliseTarget(url: string | undefined): NormalisedTarget | undefined {
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
  const path = resolveSegments(decoded);
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

/** Steps 2–4: merge slashes, resolve dot segments, refuse `.;` / `..;` segments. */
function resolveSegments(path: string): string | undefined {
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
    output.push(segment);
  }
  return `/${output.join('/')}`;
}
