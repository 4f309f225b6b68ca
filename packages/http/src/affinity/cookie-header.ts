/**
 * Reading one cookie out of a `Cookie` request header, and one cookie out of `Set-Cookie` response
 * headers, without a dependency and without trusting the input.
 *
 * The `Cookie` grammar is RFC 6265 §4.2 (`name=value` pairs separated by `;` and optional
 * whitespace); parsing is as lenient as browsers are about whitespace and quotes (a DQUOTE-wrapped
 * value is unwrapped, as the `cookie` package behind Express and Fastify does), and strict about
 * everything that decides affinity: names compare exactly (cookie names are case-sensitive), a pair
 * without `=` is skipped, and a pair longer than 4096 bytes — the per-cookie size RFC 6265 §6.1 asks
 * browsers to support, and more than any cookie we look for can legitimately be — is never returned.
 * The scan walks the header with `indexOf` and allocates only the value it returns, so a 16 KiB
 * header full of other cookies costs one pass. When a request carries the same name twice (a
 * browser holding two cookies of that name for different paths or domains — or a sibling subdomain
 * "tossing" one in), the caller decides: the first one (what most cookie parsers and applications
 * use) or nothing at all (what affinity cookies need, so that a tossed cookie cannot choose a backend).
 *
 * `Set-Cookie` (RFC 6265 §5.2) is read to learn an application's session cookie: the value, and
 * whether the header deletes the cookie (`Max-Age` ≤ 0, which wins over `Expires`; an `Expires` in
 * the past; or an empty value, which is how most frameworks clear a cookie).
 */

/**
 * The `Cookie` lines of a request, read from `rawHeaders`: `undefined`, the one line, or every line
 * when a client sent several (each is parsed on its own, as `readCookie` accepts). Node builds
 * `req.headers` lazily, on first access; reading the raw list instead spares a proxy that never
 * needs it that object on every request. The names Node's parser hands over are the client's, so
 * they are compared without regard to case.
 */
export function requestCookieLines(req: {
  readonly rawHeaders?: readonly string[];
  readonly headers?: { readonly cookie?: string | string[] | undefined };
}): string | string[] | undefined {
  const raw = req.rawHeaders;
  // Something that is not a node:http request (a test double, a framework's own object): its headers.
  if (!Array.isArray(raw)) return req.headers?.cookie;
  let lines: string | string[] | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // The two usual spellings first: `toLowerCase` is a call, and a new string when the case changes.
    if (name.length !== 6 || (name !== 'Cookie' && name !== 'cookie' && name.toLowerCase() !== 'cookie')) continue;
    const value = raw[i + 1]!;
    if (lines === undefined) lines = value;
    else if (typeof lines === 'string') lines = [lines, value];
    else lines.push(value);
  }
  return lines;
}

/** Bytes of one `name=value` pair above which it is ignored (RFC 6265 §6.1). */
export const MAX_COOKIE_PAIR_BYTES = 4096;

/** `readCookie`'s answer when the name appears more than once and `unique` was asked. */
export const DUPLICATE_COOKIE: unique symbol = Symbol('duplicate cookie');

/**
 * The value of cookie `name` in a `Cookie` header (one string, or several lines), unquoted;
 * `undefined` when absent, empty or oversized. With `unique: true`, a name present more than once
 * yields `DUPLICATE_COOKIE`; otherwise the first occurrence wins. Never throws.
 */
export function readCookie(header: string | readonly string[] | undefined, name: string, unique: boolean): string | undefined | typeof DUPLICATE_COOKIE {
  if (header === undefined) return undefined;
  let found: ScanState;
  if (typeof header === 'string') {
    found = scan(header, name, unique, undefined);
  } else if (Array.isArray(header)) {
    for (const line of header) {
      if (typeof line !== 'string') continue;
      found = scan(line, name, unique, found);
      if (found === DUPLICATE_COOKIE || (found !== undefined && !unique)) break;
    }
  }
  return found === UNUSABLE ? undefined : found;
}

/** What one `Set-Cookie` header says about a cookie. */
export interface SetCookieInfo {
  readonly value: string;
  /** The header removes the cookie (Max-Age ≤ 0, Expires in the past, or an empty value). */
  readonly deleted: boolean;
}

/**
 * The last `Set-Cookie` header among `lines` that sets cookie `name` (a response may clear and then
 * set a cookie; browsers apply them in order), or `undefined` when none does. Never throws.
 */
export function readSetCookie(lines: readonly string[] | string | undefined, name: string, now: number): SetCookieInfo | undefined {
  if (lines === undefined) return undefined;
  const list = typeof lines === 'string' ? [lines] : Array.isArray(lines) ? lines : [];
  let result: SetCookieInfo | undefined;
  for (const line of list) {
    if (typeof line !== 'string' || line.length > MAX_COOKIE_PAIR_BYTES * 2) continue;
    const semicolon = line.indexOf(';');
    const pair = semicolon === -1 ? line : line.slice(0, semicolon);
    const equals = pair.indexOf('=');
    if (equals === -1 || pair.slice(0, equals).trim() !== name) continue;
    const value = unquote(pair.slice(equals + 1).trim());
    let deleted = value === '';
    let maxAgeSeen = false;
    let expiresPast = false;
    if (semicolon !== -1) {
      for (const attribute of line.slice(semicolon + 1).split(';')) {
        const eq = attribute.indexOf('=');
        const key = (eq === -1 ? attribute : attribute.slice(0, eq)).trim().toLowerCase();
        const attrValue = eq === -1 ? '' : attribute.slice(eq + 1).trim();
        if (key === 'max-age') {
          // RFC 6265 §5.2.2: a leading '-' or digits; anything else is ignored.
          if (!/^-?[0-9]+$/.test(attrValue)) continue;
          maxAgeSeen = true;
          if (Number(attrValue) <= 0) deleted = true;
        } else if (key === 'expires') {
          const at = Date.parse(attrValue);
          if (Number.isFinite(at) && at <= now) expiresPast = true;
        }
      }
    }
    // Max-Age wins over Expires (RFC 6265 §5.3 step 3).
    if (!maxAgeSeen && expiresPast) deleted = true;
    result = { value, deleted };
  }
  return result;
}

/** An occurrence that cannot be used (empty or oversized) but still counts towards duplicates. */
const UNUSABLE: unique symbol = Symbol('unusable cookie');
type ScanState = string | undefined | typeof DUPLICATE_COOKIE | typeof UNUSABLE;

function scan(header: string, name: string, unique: boolean, previous: ScanState): ScanState {
  let found = previous;
  let start = 0;
  const length = header.length;
  while (start < length) {
    let end = header.indexOf(';', start);
    if (end === -1) end = length;
    let i = start;
    while (i < end && (header.charCodeAt(i) === 32 || header.charCodeAt(i) === 9)) i++;
    if (header.startsWith(name, i)) {
      let j = i + name.length;
      while (j < end && (header.charCodeAt(j) === 32 || header.charCodeAt(j) === 9)) j++;
      if (j < end && header.charCodeAt(j) === 61 /* = */) {
        // With `unique`, every occurrence counts, usable or not: a second, valid-looking cookie
        // after an empty or oversized one must not be taken as "the" cookie.
        if (unique && found !== undefined) return DUPLICATE_COOKIE;
        const value = end - i <= MAX_COOKIE_PAIR_BYTES ? unquote(header.slice(j + 1, end).trim()) : '';
        if (value !== '') {
          if (!unique) return value;
          found = value;
        } else if (unique) {
          found = UNUSABLE;
        }
      }
    }
    start = end + 1;
  }
  return found;
}

function unquote(value: string): string {
  return value.length >= 2 && value.charCodeAt(0) === 34 && value.charCodeAt(value.length - 1) === 34 ? value.slice(1, -1) : value;
}
