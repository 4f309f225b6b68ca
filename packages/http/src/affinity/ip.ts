/**
 * IP address parsing, canonical formatting and CIDR matching for the affinity layer.
 *
 * Why not `net.BlockList`: affinity needs three things BlockList does not give in one place — a
 * canonical text form (the source-IP stick key must be the same string whether the address came from
 * the socket as `::ffff:10.0.0.1`, from `X-Forwarded-For` as `10.0.0.1`, or as `0:0::1` vs `::1`),
 * IPv4-mapped IPv6 treated as the IPv4 address it carries (what a dual-stack `::` listener reports for
 * IPv4 clients), and strict validation of configured ranges with messages that name the mistake.
 *
 * Forms follow RFC 4291 (IPv6 text), RFC 5952 (the canonical IPv6 text: lowercase, no leading zeros,
 * the longest run of two or more zero groups compressed, the first on a tie) and RFC 4291 §2.5.5.2
 * (`::ffff:a.b.c.d`). IPv4 with leading zeros (`010.0.0.1`) is refused, as Node's `isIPv4` does:
 * some parsers read it as octal, so accepting it would let two parsers disagree about one address.
 * CIDR matching is the classic network/mask comparison that proxy-addr (Express's `trust proxy`),
 * nginx's `set_real_ip_from` and HAProxy's ACL `src` use.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** An address in binary form: 4 bytes for IPv4 (including IPv4-mapped IPv6), 16 for IPv6. */
export interface ParsedIp {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
}

/** A parsed CIDR range: `prefix` leading bits of `bytes` must match. */
export interface CidrRange {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

/** Longest textual IPv6 address with an embedded IPv4 tail is 45 characters; zones add a few. */
const MAX_ADDRESS_TEXT = 80;
const ZONE_PATTERN = /^[A-Za-z0-9._~-]{1,32}$/;

/**
 * Parse an IPv4 or IPv6 address. IPv4-mapped IPv6 (`::ffff:a.b.c.d`) becomes IPv4; an IPv6 zone
 * (`fe80::1%eth0`) is accepted and dropped (it names an interface of the host that wrote it, not the
 * client). Returns `undefined` for anything else — never throws.
 */
export function parseIp(text: string): ParsedIp | undefined {
  if (typeof text !== 'string' || text.length === 0 || text.length > MAX_ADDRESS_TEXT) return undefined;
  if (isIPv4(text)) return { family: 4, bytes: ipv4Bytes(text) };
  let address = text;
  const percent = address.indexOf('%');
  if (percent !== -1) {
    if (!ZONE_PATTERN.test(address.slice(percent + 1))) return undefined;
    address = address.slice(0, percent);
  }
  if (!isIPv6(address)) return undefined;
  const bytes = ipv6Bytes(address);
  if (bytes === undefined) return undefined;
  if (isIpv4Mapped(bytes)) return { family: 4, bytes: bytes.slice(12) };
  return { family: 6, bytes };
}

/** The canonical text of an address: dotted quad for IPv4, RFC 5952 for IPv6. */
export function formatIp(ip: ParsedIp): string {
  const b = ip.bytes;
  if (ip.family === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i]! << 8) | b[i + 1]!);
  // Longest run of ≥ 2 zero groups (RFC 5952 §4.2.2: a single zero group is never compressed).
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestStart === -1) return groups.map((g) => g.toString(16)).join(':');
  const head = groups
    .slice(0, bestStart)
    .map((g) => g.toString(16))
    .join(':');
  const tail = groups
    .slice(bestStart + bestLength)
    .map((g) => g.toString(16))
    .join(':');
  return `${head}::${tail}`;
}

/** `formatIp(parseIp(text))`, or `undefined` when `text` is not an address. */
export function normalizeIp(text: string): string | undefined {
  // The common case — a plain IPv4 socket address — is already canonical.
  if (typeof text === 'string' && isIPv4(text)) return text;
  const parsed = parseIp(text);
  return parsed === undefined ? undefined : formatIp(parsed);
}

/**
 * Parse `a.b.c.d/n`, `x::y/n`, or a single address (a /32 or /128). A range inside `::ffff:0:0/96`
 * with a prefix of at least 96 is the IPv4 range it maps. Returns an error sentence instead of
 * throwing so the caller can name the option it came from.
 */
export function parseCidr(text: string): CidrRange | string {
  if (typeof text !== 'string') return 'must be a string';
  const trimmed = text.trim();
  const slash = trimmed.indexOf('/');
  const addressText = slash === -1 ? trimmed : trimmed.slice(0, slash);
  if (addressText.includes('%')) return 'must not carry an IPv6 zone (%…)';
  const parsed = parseCidrAddress(addressText);
  if (parsed === undefined) return 'must be an IPv4 or IPv6 address, optionally with a /prefix';
  let { family, bytes } = parsed;
  const width = family === 4 ? 32 : 128;
  let prefix = width;
  if (slash !== -1) {
    const prefixText = trimmed.slice(slash + 1);
    if (!/^(?:0|[1-9][0-9]{0,2})$/.test(prefixText)) return `has an invalid prefix length (0–${width})`;
    prefix = Number(prefixText);
    if (prefix > width) return `has a prefix length above ${width}`;
  }
  if (family === 6 && prefix >= 96 && isIpv4Mapped(bytes)) {
    family = 4;
    bytes = bytes.slice(12);
    prefix -= 96;
  }
  const masked = maskBytes(bytes, prefix);
  if (!bytesEqual(masked, bytes)) {
    // 10.0.0.1/8 is almost always a typo for 10.0.0.0/8 or 10.0.0.1/32; guessing could trust far
    // more addresses than intended, so refuse and say which two were probably meant.
    const network = formatIp({ family, bytes: masked });
    const single = formatIp({ family, bytes });
    return `has bits set beyond its /${prefix} prefix (did you mean ${network}/${prefix} or ${single}/${family === 4 ? 32 : 128}?)`;
  }
  return { family, bytes, prefix };
}

/** Whether `ip` lies in `range`. */
export function cidrContains(range: CidrRange, ip: ParsedIp): boolean {
  if (range.family !== ip.family) return false;
  const full = range.prefix >> 3;
  for (let i = 0; i < full; i++) if (range.bytes[i] !== ip.bytes[i]) return false;
  const rest = range.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (range.bytes[full]! & mask) === (ip.bytes[full]! & mask);
}

// ── internals ──────────────────────────────────────────────────────────────────────────────────────

function parseCidrAddress(text: string): ParsedIp | undefined {
  if (isIPv4(text)) return { family: 4, bytes: ipv4Bytes(text) };
  if (!isIPv6(text)) return undefined;
  // Keep mapped ranges as IPv6 here: the prefix decides whether they become IPv4 (see parseCidr).
  const bytes = ipv6Bytes(text);
  return bytes === undefined ? undefined : { family: 6, bytes };
}

function ipv4Bytes(text: string): Uint8Array {
  const bytes = new Uint8Array(4);
  let part = 0;
  let value = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      bytes[part++] = value;
      value = 0;
    } else {
      value = value * 10 + (c - 48);
    }
  }
  bytes[part] = value;
  return bytes;
}

/** Expand a textual IPv6 address that `isIPv6` accepted into 16 bytes. */
function ipv6Bytes(text: string): Uint8Array | undefined {
  const bytes = new Uint8Array(16);
  const doubleColon = text.indexOf('::');
  const headText = doubleColon === -1 ? text : text.slice(0, doubleColon);
  const tailText = doubleColon === -1 ? '' : text.slice(doubleColon + 2);
  const head = headText === '' ? [] : headText.split(':');
  const tail = tailText === '' ? [] : tailText.split(':');
  const groups: number[] = [];
  const toGroups = (parts: string[], into: number[]): boolean => {
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i]!;
      if (part.includes('.')) {
        if (i !== parts.length - 1 || !isIPv4(part)) return false;
        const v4 = ipv4Bytes(part);
        into.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9A-Fa-f]{1,4}$/.test(part)) return false;
        into.push(Number.parseInt(part, 16));
      }
    }
    return true;
  };
  const headGroups: number[] = [];
  const tailGroups: number[] = [];
  // An embedded IPv4 may only end the address, so only the last part list may hold one.
  if (!toGroups(head, headGroups) || !toGroups(tail, tailGroups)) return undefined;
  if (doubleColon !== -1 && headGroups.length > 0 && head[head.length - 1]!.includes('.')) return undefined;
  const missing = 8 - headGroups.length - tailGroups.length;
  if (doubleColon === -1 ? missing !== 0 : missing < 1) return undefined;
  groups.push(...headGroups);
  for (let i = 0; i < missing && doubleColon !== -1; i++) groups.push(0);
  groups.push(...tailGroups);
  for (let i = 0; i < 8; i++) {
    bytes[i * 2] = groups[i]! >> 8;
    bytes[i * 2 + 1] = groups[i]! & 0xff;
  }
  return bytes;
}

function isIpv4Mapped(bytes: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

function maskBytes(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = new Uint8Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    out[i] = bytes[i]! & ((0xff << (8 - bits)) & 0xff);
  }
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
