/**
 * The PROXY protocol header (HAProxy's specification, "The PROXY protocol, Versions 1 & 2"): the
 * first bytes a layer-4 proxy sends a backend, so the backend learns the client's address and port
 * that TCP itself hides behind the proxy. MariaDB (`proxy_protocol_networks`), PostgreSQL poolers,
 * nginx (`listen … proxy_protocol`), HAProxy, Redis-compatible servers and most ingress controllers
 * read it.
 *
 * v1 is one text line: `PROXY TCP4 <src> <dst> <srcport> <dstport>\r\n` (`TCP6` for IPv6), or
 * `PROXY UNKNOWN\r\n` when the addresses are not known. v2 is binary: the 12-byte signature
 * `\r\n\r\n\0\r\nQUIT\n`, version/command `0x21` (v2, PROXY), family/transport `0x11` (TCP over
 * IPv4) or `0x21` (TCP over IPv6), a big-endian length (12 or 36), then source address, destination
 * address, source port, destination port. Unknown addresses are `AF_UNSPEC` (`0x00`, length 0), as
 * the spec asks, so the receiver uses the connection's own addresses.
 *
 * "Source" is the client's address as our socket sees it; "destination" is the address the client
 * connected to (our listener), as HAProxy sends. IPv4-mapped IPv6 (`::ffff:10.0.0.1`, what a
 * dual-stack listener reports for IPv4 clients) is written as the IPv4 address it carries; when the
 * two ends have different families the header uses IPv6, with the IPv4 one in its mapped form —
 * the spec requires one family for both.
 */
import { parseIp, type ParsedIp } from '../affinity/ip';

/** PROXY protocol versions. */
export type ProxyProtocolVersion = 'v1' | 'v2';

/** The addresses of one client connection. */
export interface ConnectionAddresses {
  sourceAddress: string | undefined;
  sourcePort: number | undefined;
  destinationAddress: string | undefined;
  destinationPort: number | undefined;
}

/** The v2 signature. */
export const PROXY_V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

interface Resolved {
  family: 4 | 6;
  source: Uint8Array;
  destination: Uint8Array;
  sourcePort: number;
  destinationPort: number;
}

function mapped(ip: ParsedIp): Uint8Array {
  if (ip.family === 6) return ip.bytes;
  const bytes = new Uint8Array(16);
  bytes[10] = 0xff;
  bytes[11] = 0xff;
  bytes.set(ip.bytes, 12);
  return bytes;
}

function validPort(port: number | undefined): port is number {
  return typeof port === 'number' && Number.isInteger(port) && port >= 0 && port <= 65535;
}

function resolve(addresses: ConnectionAddresses): Resolved | undefined {
  const source = addresses.sourceAddress === undefined ? undefined : parseIp(addresses.sourceAddress);
  const destination = addresses.destinationAddress === undefined ? undefined : parseIp(addresses.destinationAddress);
  if (source === undefined || destination === undefined || !validPort(addresses.sourcePort) || !validPort(addresses.destinationPort)) return undefined;
  if (source.family === 4 && destination.family === 4) {
    return { family: 4, source: source.bytes, destination: destination.bytes, sourcePort: addresses.sourcePort, destinationPort: addresses.destinationPort };
  }
  return { family: 6, source: mapped(source), destination: mapped(destination), sourcePort: addresses.sourcePort, destinationPort: addresses.destinationPort };
}

function formatV6(bytes: Uint8Array): string {
  // RFC 5952 form via parseIp/format would drop the mapping; write the plain eight groups compressed.
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (bestStart === -1) return groups.join(':');
  return `${groups.slice(0, bestStart).join(':')}::${groups.slice(bestStart + bestLength).join(':')}`;
}

function formatAddress(family: 4 | 6, bytes: Uint8Array): string {
  return family === 4 ? `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}` : formatV6(bytes);
}

/** The v1 (text) header for a connection. */
export function proxyHeaderV1(addresses: ConnectionAddresses): Buffer {
  const r = resolve(addresses);
  if (r === undefined) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const line = `PROXY TCP${r.family} ${formatAddress(r.family, r.source)} ${formatAddress(r.family, r.destination)} ${r.sourcePort} ${r.destinationPort}\r\n`;
  return Buffer.from(line, 'latin1');
}

/** The v2 (binary) header for a connection. */
export function proxyHeaderV2(addresses: ConnectionAddresses): Buffer {
  const r = resolve(addresses);
  if (r === undefined) {
    const header = Buffer.alloc(16);
    PROXY_V2_SIGNATURE.copy(header, 0);
    header[12] = 0x21;
    header[13] = 0x00;
    header.writeUInt16BE(0, 14);
    return header;
  }
  const addressBytes = r.family === 4 ? 4 : 16;
  const length = addressBytes * 2 + 4;
  const header = Buffer.alloc(16 + length);
  PROXY_V2_SIGNATURE.copy(header, 0);
  header[12] = 0x21; // version 2, command PROXY
  header[13] = r.family === 4 ? 0x11 : 0x21; // AF_INET / AF_INET6, STREAM
  header.writeUInt16BE(length, 14);
  header.set(r.source, 16);
  header.set(r.destination, 16 + addressBytes);
  header.writeUInt16BE(r.sourcePort, 16 + addressBytes * 2);
  header.writeUInt16BE(r.destinationPort, 18 + addressBytes * 2);
  return header;
}

/** The header of `version` for a connection. */
export function proxyHeader(version: ProxyProtocolVersion, addresses: ConnectionAddresses): Buffer {
  return version === 'v1' ? proxyHeaderV1(addresses) : proxyHeaderV2(addresses);
}
