/**
 * Who is the client? The socket's peer, unless that peer is a proxy we trust, in which case the
 * answer is in `X-Forwarded-For` — read from the RIGHT.
 *
 * Every hop appends the address it received the request from, so the right-most entries were written
 * by our own infrastructure and the left-most by whoever spoke first, which may be an attacker. The
 * walk (nginx's `real_ip_recursive on` with `set_real_ip_from`, HAProxy's `option forwardfor` read
 * back with trusted sources, proxy-addr behind Express's `trust proxy`) starts at the socket peer and
 * moves left only while the current address is trusted; the first untrusted address is the client.
 * A client that connects directly can therefore write anything it likes in `X-Forwarded-For` and it
 * changes nothing: its socket address is not trusted, so the header is never read.
 *
 * A hop that is not an address (`unknown`, garbage, an obfuscated RFC 7239 identifier) stops the
 * walk and the last address we could vouch for is used: skipping it would hand the decision to the
 * entries further left, which are exactly the ones a client controls. Ports (`1.2.3.4:5678`, some
 * cloud load balancers add them) and brackets (`[2001:db8::1]`, `[2001:db8::1]:443`) are accepted
 * and stripped; empty list elements are ignored, as HTTP's list syntax requires. Several header
 * lines are one list, in order. At most 64 hops are examined: a longer chain of trusted proxies does
 * not exist in practice, and the bound keeps the work per request small whatever `maxHeaderSize` is.
 *
 * Only `X-Forwarded-For` is read (not RFC 7239 `Forwarded`): it is what every proxy and CDN in front
 * of a Node process sets, and reading two headers would let a client play one against the other.
 *
 * Addresses come back in canonical form (see `ip.ts`): IPv4-mapped IPv6 as IPv4, IPv6 per RFC 5952,
 * so one client is one stick-table key however its address was written.
 */
import type { IncomingMessage } from 'node:http';
import { InvalidOptionError } from '@fulcrum/core';
import { cidrContains, formatIp, normalizeIp, parseCidr, parseIp, type CidrRange, type ParsedIp } from './ip';

/**
 * Named groups accepted in a trusted-proxy list, as in proxy-addr:
 * - `'loopback'`: `127.0.0.0/8`, `::1/128`
 * - `'private'`: RFC 1918 `10.0.0.0/8`, `172.16.0.0/12`, `192.168.0.0/16` and RFC 4193 `fc00::/7`
 *   (`'uniquelocal'` is accepted as an alias)
 * - `'linklocal'`: `169.254.0.0/16`, `fe80::/10`
 */
export const TRUSTED_PROXY_GROUPS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  loopback: Object.freeze(['127.0.0.0/8', '::1/128']),
  private: Object.freeze(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7']),
  uniquelocal: Object.freeze(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', 'fc00::/7']),
  linklocal: Object.freeze(['169.254.0.0/16', 'fe80::/10']),
});

/** Hops of `X-Forwarded-For` examined at most, right to left (see the file header). */
export const MAX_FORWARDED_HOPS = 64;

/**
 * The set of proxies whose `X-Forwarded-For` entries are believed: IPv4 and IPv6 CIDRs
 * (`10.0.0.0/8`, `2001:db8::/32`), single addresses (`192.0.2.7`, `::1`) and the named groups of
 * {@link TRUSTED_PROXY_GROUPS}. An empty list trusts nobody (the socket address is always the
 * client). Invalid entries throw `InvalidOptionError` naming the entry (`trustedProxies[2]`).
 * Ranges with host bits set (`10.0.0.1/8`) are refused rather than guessed.
 */
export class TrustedProxies {
  /** The entries as given (groups not expanded). */
  readonly entries: readonly string[];
  readonly #v4: CidrRange[] = [];
  readonly #v6: CidrRange[] = [];

  constructor(cidrs: readonly string[], path = 'trustedProxies') {
    if (!Array.isArray(cidrs)) throw new InvalidOptionError(path, cidrs, 'must be an array of CIDRs or addresses');
    for (let i = 0; i < cidrs.length; i++) {
      const entry: unknown = cidrs[i];
      const entryPath = `${path}[${i}]`;
      if (typeof entry !== 'string') throw new InvalidOptionError(entryPath, entry, 'must be a CIDR or address string');
      const group = Object.hasOwn(TRUSTED_PROXY_GROUPS, entry) ? TRUSTED_PROXY_GROUPS[entry] : undefined;
      for (const cidr of group ?? [entry]) {
        const range = parseCidr(cidr);
        if (typeof range === 'string') {
          throw new InvalidOptionError(
            entryPath,
            entry,
            `${range}; use e.g. "10.0.0.0/8", "2001:db8::/32", "192.0.2.7" or one of ${Object.keys(TRUSTED_PROXY_GROUPS).join(', ')}`,
          );
        }
        (range.family === 4 ? this.#v4 : this.#v6).push(range);
      }
    }
    this.entries = Object.freeze([...cidrs]);
  }

  /** Whether nothing is trusted. */
  get empty(): boolean {
    return this.#v4.length === 0 && this.#v6.length === 0;
  }

  /** Whether `ip` (any textual form, IPv4-mapped included) lies in a trusted range. Garbage → false. */
  contains(ip: string): boolean {
    const parsed = parseIp(ip);
    return parsed !== undefined && this.containsParsed(parsed);
  }

  /** `contains` for an address already parsed by `parseIp`. */
  containsParsed(ip: ParsedIp): boolean {
    const ranges = ip.family === 4 ? this.#v4 : this.#v6;
    for (let i = 0; i < ranges.length; i++) if (cidrContains(ranges[i]!, ip)) return true;
    return false;
  }
}

/**
 * The client's address for `req`, canonical (IPv4-mapped IPv6 → IPv4, IPv6 per RFC 5952).
 *
 * Without `trusted`, or when the socket peer is not trusted, that is the socket's remote address.
 * Otherwise `X-Forwarded-For` (all lines, comma lists) is walked from the right, skipping trusted
 * hops; the first untrusted hop is the client; a malformed hop stops the walk and the last address
 * vouched for is returned; when every hop is trusted, the left-most is. Never throws. Returns `''`
 * when the socket has already closed and no address is known.
 */
export function clientAddress(req: IncomingMessage, trusted?: TrustedProxies): string {
  const remote = req.socket?.remoteAddress;
  if (typeof remote !== 'string') return '';
  if (trusted === undefined || trusted.empty) return normalizeIp(remote) ?? remote;
  const peer = parseIp(remote);
  if (peer === undefined) return remote;
  if (!trusted.containsParsed(peer)) return formatIp(peer);

  let current = peer;
  const header = req.headers['x-forwarded-for'];
  if (header === undefined) return formatIp(current);
  const lines = typeof header === 'string' ? [header] : header;
  let examined = 0;
  for (let l = lines.length - 1; l >= 0; l--) {
    const line = lines[l];
    if (typeof line !== 'string') break;
    let end = line.length;
    for (;;) {
      const comma = end > 0 ? line.lastIndexOf(',', end - 1) : -1;
      const hopText = line.slice(comma + 1, end);
      end = comma;
      if (!isBlank(hopText)) {
        if (++examined > MAX_FORWARDED_HOPS) return formatIp(current);
        const hop = parseForwardedHop(hopText);
        if (hop === undefined) return formatIp(current);
        current = hop;
        if (!trusted.containsParsed(hop)) return formatIp(hop);
      }
      if (comma < 0) break;
    }
  }
  return formatIp(current);
}

/**
 * One `X-Forwarded-For` element as an address: a bare IPv4 or IPv6 address, `a.b.c.d:port`,
 * `[v6]` or `[v6]:port`, surrounded by optional whitespace. Anything else → `undefined`.
 */
export function parseForwardedHop(text: string): ParsedIp | undefined {
  const hop = text.trim();
  if (hop.length === 0 || hop.length > 100) return undefined;
  if (hop.charCodeAt(0) === 91 /* [ */) {
    const close = hop.indexOf(']');
    if (close === -1) return undefined;
    const rest = hop.slice(close + 1);
    if (rest !== '' && !isPortSuffix(rest)) return undefined;
    const inside = hop.slice(1, close);
    // Brackets hold IPv6 only (RFC 3986 IP-literal); `[10.0.0.1]` is not a form any proxy writes.
    return inside.includes(':') ? parseIp(inside) : undefined;
  }
  const direct = parseIp(hop);
  if (direct !== undefined) return direct;
  // `a.b.c.d:port`: exactly one colon, and what precedes it is IPv4 (an IPv6 address with a port
  // must be bracketed, or `2001:db8::1:80` would be ambiguous).
  const colon = hop.indexOf(':');
  if (colon === -1 || hop.indexOf(':', colon + 1) !== -1 || !isPortSuffix(hop.slice(colon))) return undefined;
  const address = parseIp(hop.slice(0, colon));
  return address !== undefined && hop.slice(0, colon).includes('.') ? address : undefined;
}

/**
 * The `X-Forwarded-For` value a proxy sends upstream: what the request carried (every line, in
 * order) with `address` (the socket peer) appended — nginx's `$proxy_add_x_forwarded_for`. Lines
 * holding CR, LF or NUL are dropped (they could never be forwarded safely).
 */
export function forwardedFor(existing: string | readonly string[] | undefined, address: string): string {
  let prior = '';
  if (typeof existing === 'string') {
    prior = isSafeHeaderValue(existing) ? existing.trim() : '';
  } else if (Array.isArray(existing)) {
    const kept: string[] = [];
    for (const line of existing) if (typeof line === 'string' && isSafeHeaderValue(line) && !isBlank(line)) kept.push(line.trim());
    prior = kept.join(', ');
  }
  const self = normalizeIp(address) ?? address;
  return prior === '' ? self : `${prior}, ${self}`;
}

function isPortSuffix(text: string): boolean {
  if (!/^:[0-9]{1,5}$/.test(text)) return false;
  return Number(text.slice(1)) <= 65535;
}

function isBlank(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 32 && c !== 9) return false;
  }
  return true;
}

function isSafeHeaderValue(text: string): boolean {
  return !/[\r\n\0]/.test(text);
}
