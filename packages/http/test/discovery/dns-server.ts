// A tiny authoritative DNS responder over node:dgram, for testing discovery against a real DNS
// exchange on loopback (RFC 1035 messages; A, AAAA and SRV answers with TTLs; NXDOMAIN for unknown
// names, an empty NOERROR answer for a known name without the asked type, SERVFAIL on demand).
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import type { AddressInfo } from 'node:net';

export interface SrvRecord {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

export interface ZoneEntry {
  A?: { address: string; ttl: number }[];
  AAAA?: { address: string; ttl: number }[];
  SRV?: (SrvRecord & { ttl: number })[];
}

export interface DnsServer {
  port: number;
  /** Names (lower case, no trailing dot) → records. Mutate freely between queries. */
  zone: Map<string, ZoneEntry>;
  /** Answer every query with SERVFAIL while true. */
  servfail: boolean;
  /** Queries received, as `TYPE name`. */
  queries: string[];
  close(): Promise<void>;
}

const TYPE = { A: 1, AAAA: 28, SRV: 33 } as const;
const TYPE_NAMES: Record<number, string> = { 1: 'A', 28: 'AAAA', 33: 'SRV' };

export async function startDnsServer(): Promise<DnsServer> {
  const socket: Socket = createSocket('udp4');
  const server: DnsServer = {
    port: 0,
    zone: new Map(),
    servfail: false,
    queries: [],
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
  socket.on('message', (message: Buffer, remote: RemoteInfo) => {
    const reply = answer(server, message);
    if (reply !== undefined) socket.send(reply, remote.port, remote.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  server.port = (socket.address() as AddressInfo).port;
  return server;
}

function answer(server: DnsServer, query: Buffer): Buffer | undefined {
  if (query.length < 12) return undefined;
  const id = query.readUInt16BE(0);
  const { name, end } = readName(query, 12);
  if (end + 4 > query.length) return undefined;
  const type = query.readUInt16BE(end);
  const question = query.subarray(12, end + 4);
  server.queries.push(`${TYPE_NAMES[type] ?? type} ${name}`);
  const entry = server.zone.get(name);
  let rcode = 0;
  const answers: Buffer[] = [];
  if (server.servfail) rcode = 2;
  else if (entry === undefined) rcode = 3;
  else if (type === TYPE.A) for (const r of entry.A ?? []) answers.push(record(TYPE.A, r.ttl, ipv4(r.address)));
  else if (type === TYPE.AAAA) for (const r of entry.AAAA ?? []) answers.push(record(TYPE.AAAA, r.ttl, ipv6(r.address)));
  else if (type === TYPE.SRV) {
    for (const r of entry.SRV ?? []) {
      const fixed = Buffer.alloc(6);
      fixed.writeUInt16BE(r.priority, 0);
      fixed.writeUInt16BE(r.weight, 2);
      fixed.writeUInt16BE(r.port, 4);
      answers.push(record(TYPE.SRV, r.ttl, Buffer.concat([fixed, encodeName(r.target)])));
    }
  }
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  // QR=1, opcode 0, AA=1, RD copied, RA=1, rcode.
  header.writeUInt16BE(0x8000 | 0x0400 | (query.readUInt16BE(2) & 0x0100) | 0x0080 | rcode, 2);
  header.writeUInt16BE(1, 4);
  header.writeUInt16BE(answers.length, 6);
  return Buffer.concat([header, question, ...answers]);
}

function record(type: number, ttl: number, data: Buffer): Buffer {
  const fixed = Buffer.alloc(12);
  fixed.writeUInt16BE(0xc00c, 0); // the name: a pointer to the question's
  fixed.writeUInt16BE(type, 2);
  fixed.writeUInt16BE(1, 4); // class IN
  fixed.writeUInt32BE(ttl, 6);
  fixed.writeUInt16BE(data.length, 10);
  return Buffer.concat([fixed, data]);
}

function readName(message: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let at = offset;
  while (at < message.length) {
    const length = message[at]!;
    if (length === 0) return { name: labels.join('.').toLowerCase(), end: at + 1 };
    labels.push(message.toString('latin1', at + 1, at + 1 + length));
    at += 1 + length;
  }
  return { name: labels.join('.').toLowerCase(), end: at };
}

function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, '').split('.');
  return Buffer.concat([...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'latin1')])), Buffer.from([0])]);
}

function ipv4(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

function ipv6(address: string): Buffer {
  const [head = '', tail = ''] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === '' ? [] : tail.split(':');
  const groups = address.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}
