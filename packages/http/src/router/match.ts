/**
 * Route conditions, compiled once at construction into plain data the hot path compares.
 *
 * The conditions are those of HAProxy's ACLs (`hdr(host)`, `path`, `path_beg`, `method`, `req.hdr`,
 * `req.cook_cnt`) and Envoy's route matchers (`prefix`, `path`, `headers`), with one rule throughout:
 * every comparison is exact and anchored. A host is equal or it is not (`evilexample.com` never
 * matches `example.com`); a wildcard `*.example.com` matches names ending in `.example.com` — any
 * depth, as nginx's `server_name *.example.com` does, and never the bare `example.com`; a prefix
 * matches whole segments (`/api` matches `/api` and `/api/x`, not `/apix`); a header regex must
 * match the WHOLE value (it is wrapped in `^(?:…)$`), so `admin` does not match `notadmin`.
 *
 * The Host is read as RFC 9110 §7.2 defines it: lower-cased, the port and one trailing dot dropped,
 * IPv6 literals kept in brackets. A Host that is not syntactically a host (spaces, `@`, `/`, empty)
 * matches no host condition — routes without one still apply. Header values are compared as Node
 * presents them (repeated headers joined with `, `). Regexes come from configuration, and shapes that
 * backtrack exponentially (nested quantifiers, repeated alternations, backreferences) are refused
 * when they are compiled; a regex only ever sees values up to `MAX_REGEX_INPUT` characters — a
 * longer value does not match — so even the polynomial shapes left (`.*a.*`) cost a bounded time
 * whatever a client sends (a 60 KB header once cost seconds of the event loop).
 */
import type { IncomingMessage } from 'node:http';
import { readCookie } from '../affinity/cookie-header';

/** A compiled host condition: exact name, or suffix (`.example.com`) for a wildcard. */
export interface HostCondition {
  readonly exact: string | undefined;
  readonly suffix: string | undefined;
}

/** A compiled header condition. `value` and `regex` are exclusive; neither = presence. */
export interface HeaderCondition {
  readonly name: string;
  readonly value: string | undefined;
  readonly regex: RegExp | undefined;
}

/** Every condition of one route; `undefined` means "any". */
export interface CompiledMatch {
  readonly host: HostCondition | undefined;
  readonly path: string | undefined;
  /** The prefix without a trailing slash (`''` for `/`), and whether one was given. */
  readonly prefix: string | undefined;
  readonly prefixTrailingSlash: boolean;
  readonly methods: ReadonlySet<string> | undefined;
  readonly header: HeaderCondition | undefined;
  readonly cookie: string | undefined;
}

/**
 * The longest header value a route regex is run on, in characters; longer values do not match. 1024
 * holds any user agent, version or tenant header routes are written for, and caps a quadratic
 * pattern at about a million steps.
 */
export const MAX_REGEX_INPUT = 1024;

const HOST_CHARS = /^(?:[a-z0-9](?:[a-z0-9_-]*[a-z0-9_])?)(?:\.[a-z0-9](?:[a-z0-9_-]*[a-z0-9_])?)*$/;
const IPV6_LITERAL = /^\[[0-9a-f:.]+\]$/;

/**
 * The host named by a `Host` header value: lower-cased, without port or trailing dot; `undefined`
 * when the value is not a host. Never throws.
 */
export function parseHost(value: string | undefined): string | undefined {
  if (typeof value !== 'string' || value.length === 0 || value.length > 260) return undefined;
  let host = value.toLowerCase();
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    if (close === -1) return undefined;
    const rest = host.slice(close + 1);
    if (rest !== '' && !/^:[0-9]{1,5}$/.test(rest)) return undefined;
    host = host.slice(0, close + 1);
    return IPV6_LITERAL.test(host) ? host : undefined;
  }
  const colon = host.indexOf(':');
  if (colon !== -1) {
    if (!/^[0-9]{1,5}$/.test(host.slice(colon + 1))) return undefined;
    host = host.slice(0, colon);
  }
  if (host.endsWith('.')) host = host.slice(0, -1);
  if (host.length === 0 || host.length > 253 || !HOST_CHARS.test(host)) return undefined;
  return host;
}

/** Whether `host` (already parsed by `parseHost`) satisfies `condition`. */
export function hostMatches(condition: HostCondition, host: string | undefined): boolean {
  if (host === undefined) return false;
  if (condition.exact !== undefined) return host === condition.exact;
  const suffix = condition.suffix!;
  // Strictly longer than the suffix: `*.example.com` never matches `.example.com` or `example.com`.
  return host.length > suffix.length && host.endsWith(suffix);
}

/** Whether the normalised `path` satisfies the route's path and prefix conditions. */
export function pathMatches(match: CompiledMatch, path: string): boolean {
  if (match.path !== undefined && path !== match.path) return false;
  const prefix = match.prefix;
  if (prefix === undefined) return true;
  if (match.prefixTrailingSlash) {
    // `/api/` asks for something below /api: `/api/` and `/api/x`, not `/api`.
    return path.length > prefix.length && path.startsWith(prefix) && path.charCodeAt(prefix.length) === 47;
  }
  if (!path.startsWith(prefix)) return false;
  return path.length === prefix.length || path.charCodeAt(prefix.length) === 47;
}

/** Whether the request's headers and cookies satisfy the route's header and cookie conditions. */
export function headersMatch(match: CompiledMatch, req: IncomingMessage): boolean {
  const header = match.header;
  if (header !== undefined) {
    const raw = req.headers[header.name];
    const value = typeof raw === 'string' ? raw : Array.isArray(raw) ? raw.join(', ') : undefined;
    if (value === undefined) return false;
    if (header.value !== undefined && value !== header.value) return false;
    if (header.regex !== undefined && (value.length > MAX_REGEX_INPUT || !header.regex.test(value))) return false;
  }
  if (match.cookie !== undefined) {
    const cookie = readCookie(req.headers.cookie, match.cookie, false);
    if (typeof cookie !== 'string') return false;
  }
  return true;
}
