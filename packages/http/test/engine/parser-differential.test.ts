/**
 * The raw engine's parser against Node's llhttp in strict mode, by property (fast-check, fixed seeds):
 * valid requests and mutations of them — byte flips, inserted delimiters, duplicated and reordered
 * header lines, framing variants — go to both. Nothing llhttp refuses may be accepted, and what both
 * accept must parse to the same method, target, headers, framing and body.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ChunkedDecoder, Framing, HeadError, parseRequestHead } from '../../src/engine/parser';
import { LlhttpOracle } from './oracle';

const LIMITS = { maxHeadBytes: 16_384, maxHeaders: 100 };

type Ours = { accepted: true; method: string; url: string; rawHeaders: string[]; body: Buffer; bodyComplete: boolean } | { accepted: false; reason: string };

/** What our parser makes of the first message in `bytes`, body included. */
export function ours(bytes: Buffer): Ours {
  const head = parseRequestHead(bytes, 0, bytes.length, LIMITS);
  if (head === null) return { accepted: false, reason: 'incomplete head' };
  if (head instanceof HeadError) return { accepted: false, reason: head.reason };
  const at = head.headLength;
  if (head.framing === Framing.Length) {
    const end = Math.min(bytes.length, at + head.contentLength);
    return {
      accepted: true,
      method: head.method,
      url: head.target,
      rawHeaders: head.rawHeaders,
      body: bytes.subarray(at, end),
      bodyComplete: end - at === head.contentLength,
    };
  }
  if (head.framing === Framing.Chunked) {
    const decoder = new ChunkedDecoder();
    const parts: Buffer[] = [];
    const used = decoder.push(bytes, at, bytes.length, (d) => parts.push(Buffer.from(d)));
    if (used instanceof HeadError) return { accepted: false, reason: used.reason };
    return { accepted: true, method: head.method, url: head.target, rawHeaders: head.rawHeaders, body: Buffer.concat(parts), bodyComplete: decoder.done };
  }
  return { accepted: true, method: head.method, url: head.target, rawHeaders: head.rawHeaders, body: Buffer.alloc(0), bodyComplete: true };
}

let oracle: LlhttpOracle;
beforeAll(async () => {
  oracle = new LlhttpOracle();
  await oracle.start();
});
afterAll(() => oracle.close());

const tchar = fc.constantFrom(..."abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~".split(''));
const token = fc.string({ unit: tchar, minLength: 1, maxLength: 12 });
const valueChar = fc.constantFrom(...'abcXYZ019 -_.;=,/"()'.split(''), '\t', '\u00e9');
const fieldValue = fc.string({ unit: valueChar, maxLength: 20 }).map((v) => v.trim());
const pathChar = fc.constantFrom(..."abcxyz019-._~!$&'()*+,;=:@/%?".split(''));
const target = fc.string({ unit: pathChar, maxLength: 24 }).map((p) => `/${p}`);
const method = fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH');
const body = fc.string({ unit: fc.constantFrom('a', 'b', '\r', '\n', '0', ';'), maxLength: 40 });

interface Message {
  requestLine: string;
  headers: [string, string][];
  body: string;
}

const framing = fc.oneof(
  fc.constant({ kind: 'none' as const }),
  fc.record({ kind: fc.constant('length' as const) }),
  fc.record({ kind: fc.constant('chunked' as const), split: fc.array(fc.nat(12), { maxLength: 4 }), ext: fc.boolean(), trailer: fc.boolean() }),
);

const valid: fc.Arbitrary<Message> = fc
  .record({
    method,
    target,
    version: fc.constantFrom('HTTP/1.1', 'HTTP/1.1', 'HTTP/1.0'),
    host: fc.constantFrom('example.com', 'a.example:8080', '127.0.0.1', '[::1]:80', ''),
    headers: fc.array(fc.tuple(token, fieldValue), { maxLength: 6 }),
    framing,
    body,
  })
  .map(({ method: m, target: t, version, host, headers, framing: f, body: b }) => {
    const list: [string, string][] = [
      ['Host', host],
      ...headers.filter(([n]) => !/^(host|content-length|transfer-encoding|expect|connection|upgrade)$/i.test(n)),
    ];
    let wire = '';
    if (f.kind === 'length') {
      list.push(['Content-Length', String(b.length)]);
      wire = b;
    } else if (f.kind === 'chunked' && version === 'HTTP/1.1') {
      list.push(['Transfer-Encoding', 'chunked']);
      let rest = b;
      for (const n of f.split) {
        const piece = rest.slice(0, n + 1);
        rest = rest.slice(piece.length);
        if (piece.length > 0) wire += `${piece.length.toString(16)}${f.ext ? ';x=y' : ''}\r\n${piece}\r\n`;
      }
      if (rest.length > 0) wire += `${rest.length.toString(16)}\r\n${rest}\r\n`;
      wire += `0\r\n${f.trailer ? 'X-Trailer: t\r\n' : ''}\r\n`;
    }
    return { requestLine: `${m} ${t} ${version}`, headers: list, body: wire };
  });

function serialize(message: Message): Buffer {
  return Buffer.from(`${message.requestLine}\r\n${message.headers.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n${message.body}`, 'latin1');
}

const interesting = [0x0d, 0x0a, 0x20, 0x09, 0x3a, 0x00, 0x7f, 0x80, 0xff, 0x2c, 0x23, 0x22, 0x3b, 0x30, 0x41, 0x0b, 0x0c];

const framingHeaders = fc.constantFrom<[string, string][]>(
  [
    ['Content-Length', '5'],
    ['Transfer-Encoding', 'chunked'],
  ],
  [
    ['Transfer-Encoding', 'chunked'],
    ['Content-Length', '5'],
  ],
  [
    ['Content-Length', '5'],
    ['Content-Length', '5'],
  ],
  [
    ['Content-Length', '5'],
    ['Content-Length', '6'],
  ],
  [['Content-Length', '5, 5']],
  [['Content-Length', '+5']],
  [['Content-Length', '-1']],
  [['Content-Length', '0x5']],
  [['Content-Length', '5 5']],
  [['Content-Length', '']],
  [['Content-Length', '99999999999999999999']],
  [['Transfer-Encoding', 'chunked, identity']],
  [['Transfer-Encoding', 'identity, chunked']],
  [
    ['Transfer-Encoding', 'chunked'],
    ['Transfer-Encoding', 'chunked'],
  ],
  [['Transfer-Encoding', 'xchunked']],
  [['Transfer-Encoding', 'CHUNKED']],
  [['Transfer-Encoding', 'gzip']],
  [['Transfer-Encoding', '\tchunked']],
  [['Transfer-Encoding ', 'chunked']],
  [['Transfer_Encoding', 'chunked']],
  [['Host', 'other.example']],
  [['Expect', '100-continue']],
  [['Expect', 'something']],
  [
    ['Connection', 'Upgrade'],
    ['Upgrade', 'websocket'],
  ],
  [['Connection', 'close, keep-alive']],
);

const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.oneof(fc.constantFrom(...interesting), fc.nat(255)) }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), byte: fc.constantFrom(...interesting) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), at: fc.nat(), with: fc.nat() }),
  fc.record({ kind: fc.constant('framing' as const), headers: framingHeaders, at: fc.nat() }),
  fc.record({
    kind: fc.constant('chunked-body' as const),
    body: fc.constantFrom(
      '5\r\nhello\r\n0\r\n\r\n',
      '5 \r\nhello\r\n0\r\n\r\n',
      '5\nhello\n0\n\n',
      'fffffffffffffffffff\r\n',
      '0x5\r\nhello\r\n0\r\n\r\n',
      '5\r\nhelloX\r\n0\r\n\r\n',
      '-5\r\nhello\r\n0\r\n\r\n',
      '5;a=b\r\nhello\r\n0\r\nT: v\r\n\r\n',
      '5\r\nhello\r\n0\r\nT v\r\n\r\n',
      '5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n',
    ),
  }),
);

function mutate(message: Message, m: Mutation): Buffer {
  const headers = message.headers.slice();
  switch (m.kind) {
    case 'duplicate':
      if (headers.length > 0) headers.splice(m.at % headers.length, 0, headers[m.at % headers.length]!);
      return serialize({ ...message, headers });
    case 'swap':
      if (headers.length > 1) {
        const a = m.at % headers.length;
        const b = m.with % headers.length;
        [headers[a], headers[b]] = [headers[b]!, headers[a]!];
      }
      return serialize({ ...message, headers });
    case 'framing':
      headers.splice(m.at % (headers.length + 1), 0, ...m.headers);
      return serialize({ ...message, headers, body: 'hello' });
    case 'chunked-body':
      return serialize({
        ...message,
        headers: [...headers.filter(([n]) => !/^(content-length|transfer-encoding)$/i.test(n)), ['Transfer-Encoding', 'chunked']],
        body: m.body,
      });
    default: {
      const bytes = [...serialize(message)];
      const at = m.at % (bytes.length + 1);
      if (m.kind === 'flip') bytes[Math.min(at, bytes.length - 1)] = m.byte;
      else if (m.kind === 'insert') bytes.splice(at, 0, m.byte);
      else bytes.splice(at, 1);
      return Buffer.from(bytes);
    }
  }
}

type Mutation =
  | { kind: 'flip'; at: number; byte: number }
  | { kind: 'insert'; at: number; byte: number }
  | { kind: 'delete'; at: number }
  | { kind: 'duplicate'; at: number }
  | { kind: 'swap'; at: number; with: number }
  | { kind: 'framing'; headers: [string, string][]; at: number }
  | { kind: 'chunked-body'; body: string };

/** The property: compare one input's two verdicts. */
async function agree(bytes: Buffer): Promise<void> {
  const mine = ours(bytes);
  const theirs = await oracle.judge(bytes);
  const shown = JSON.stringify(bytes.toString('latin1'));
  if (!mine.accepted) return;
  expect(theirs.accepted, `accepted what llhttp refused (${theirs.accepted ? '' : theirs.code}): ${shown}`).toBe(true);
  if (!theirs.accepted) return;
  expect({ method: mine.method, url: mine.url, rawHeaders: mine.rawHeaders }, shown).toEqual({
    method: theirs.method,
    url: theirs.url,
    rawHeaders: theirs.rawHeaders,
  });
  // llhttp streams a body it may later refuse; compare bodies both parsers finished.
  if (mine.bodyComplete && theirs.bodyComplete) expect(mine.body.toString('latin1'), shown).toBe(theirs.body.toString('latin1'));
  else expect(mine.body.length <= theirs.body.length || !theirs.bodyComplete, shown).toBe(true);
}

describe('the request parser against llhttp (strict)', () => {
  it('parses valid requests exactly as llhttp does (property)', async () => {
    await fc.assert(
      fc.asyncProperty(valid, async (message) => {
        const bytes = serialize(message);
        const mine = ours(bytes);
        expect(mine.accepted, `refused a valid request: ${JSON.stringify(bytes.toString('latin1'))} (${mine.accepted ? '' : mine.reason})`).toBe(true);
        await agree(bytes);
      }),
      { seed: 17, numRuns: 300 },
    );
  });

  it('never accepts a mutated request llhttp refuses, and parses the rest the same (property)', async () => {
    await fc.assert(
      fc.asyncProperty(valid, mutation as fc.Arbitrary<Mutation>, async (message, m) => {
        await agree(mutate(message, m));
      }),
      { seed: 1917, numRuns: 1500 },
    );
  });
});
