import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Framing, HeadError, parseRequestHead, type RequestHead } from '../../src/engine/parser';
import { requestHeadBytes } from '../../src/engine/request-head';
import { ForwardingBytes, requestHeadLines, type ForwardingContext } from '../../src/proxy/headers';
import { forwardingContext as context } from '../proxy/forwarding-context';

const LIMITS = { maxHeadBytes: 16 * 1024, maxHeaders: 100, allowAbsoluteForm: true };

const NAMES = [
  'Connection',
  'connection',
  'Upgrade',
  'Keep-Alive',
  'TE',
  'Trailer',
  'Proxy-Connection',
  'X-Forwarded-For',
  'x-forwarded-proto',
  'X-Forwarded-Host',
  'Forwarded',
  'Accept',
  'User-Agent',
  'X-Custom',
  'x-custom',
  'close',
  'Cookie',
];
const VALUES = [
  'a',
  'example.com',
  'example.com:8080',
  'close',
  'keep-alive',
  'keep-alive, x-custom',
  'Close, TE',
  'upgrade',
  'websocket',
  '10.0.0.1',
  'https',
  'for=1.2.3.4',
  '',
  'x y',
];
/** How a field line is spelled: the one canonical way (0), or one a proxy writing the fields anew would change. */
const SPACING = [
  (n: string, v: string) => `${n}: ${v}`,
  (n: string, v: string) => `${n}:${v}`,
  (n: string, v: string) => `${n}:  ${v}`,
  (n: string, v: string) => `${n}:\t${v}`,
  (n: string, v: string) => `${n}: ${v} `,
];

const spacing = fc.oneof({ arbitrary: fc.constant(0), weight: 12 }, { arbitrary: fc.integer({ min: 1, max: SPACING.length - 1 }), weight: 1 });
const request = fc.record({
  method: fc.constantFrom('GET', 'POST', 'HEAD', 'DELETE'),
  target: fc.constantFrom('/', '/a/b?c=d', '/x', 'http://example.com/p?q'),
  version: fc.constantFrom('1.1', '1.1', '1.0'),
  fields: fc.array(fc.tuple(fc.constantFrom(...NAMES), fc.oneof(fc.constantFrom(...VALUES), fc.stringMatching(/^[!-~]{0,10}$/)), spacing), { maxLength: 9 }),
  host: fc.option(fc.tuple(fc.constantFrom('Host', 'host', 'HOST'), fc.constantFrom('example.com', 'a.example:8080', ''), spacing, fc.nat(9)), { freq: 8 }),
  chunked: fc.boolean(),
  emptyLines: fc.nat(2),
  before: fc.nat(5),
});

type Request = typeof request extends fc.Arbitrary<infer T> ? T : never;

/** The request's bytes, behind `before` bytes of something else (a previous request's tail). */
function bytesOf(r: Request): Buffer {
  let text = `${'\r\n'.repeat(r.emptyLines)}${r.method} ${r.target} HTTP/${r.version}\r\n`;
  const fields = [...r.fields];
  if (r.host !== null) fields.splice(r.host[3] % (fields.length + 1), 0, r.host.slice(0, 3) as [string, string, number]);
  for (const [name, value, spacing] of fields) text += `${SPACING[spacing]!(name, value)}\r\n`;
  if (r.chunked && r.version === '1.1') text += 'Transfer-Encoding: chunked\r\n';
  return Buffer.from(`${'x'.repeat(r.before)}${text}\r\n`, 'latin1');
}

/** What the engine writes as text for the same head: request line, `requestHeadLines`, framing, empty line. */
function asText(head: RequestHead, path: string, framing: string, ctx: ForwardingContext, backendHost: string): Buffer {
  return Buffer.from(`${head.method} ${path} HTTP/1.1\r\n${requestHeadLines(head.rawHeaders, ctx, backendHost)!}${framing}\r\n`, 'latin1');
}

describe('requestHeadBytes', () => {
  it('writes the bytes the text path writes, for every head whose lines it can copy, with one cache across requests (property)', () => {
    const cache = new ForwardingBytes();
    let copied = 0;
    let text = 0;
    fc.assert(
      fc.property(
        request,
        context,
        fc.constantFrom('b1:8080', 'b2:9090'),
        fc.boolean(),
        fc.constantFrom('', 'content-length: 12\r\n', 'transfer-encoding: chunked\r\n'),
        (r, ctx: ForwardingContext, backendHost, samePath, framing) => {
          const bytes = bytesOf(r);
          const head = parseRequestHead(bytes, r.before, bytes.length, LIMITS);
          if (head === null || head instanceof HeadError) return;
          const path = samePath ? head.target : '/rewritten/path';
          const canonical = r.fields.every(([, , spacing]) => spacing === 0) && (r.host === null || r.host[2] === 0);
          const out = requestHeadBytes(head, path, framing, ctx, backendHost, cache);
          expect(head.canonicalFields).toBe(canonical);
          if (!canonical) {
            expect(out).toBeUndefined();
            text++;
            return;
          }
          copied++;
          expect(out?.toString('latin1')).toBe(asText(head, path, framing, ctx, backendHost).toString('latin1'));
          // The same head again, from the cache this time.
          expect(requestHeadBytes(head, path, framing, ctx, backendHost, cache)?.toString('latin1')).toBe(out!.toString('latin1'));
        },
      ),
      { seed: 17, numRuns: 4000 },
    );
    // Both paths were exercised.
    expect(copied).toBeGreaterThan(500);
    expect(text).toBeGreaterThan(500);
  });

  it('copies nothing for a field list that is not the one parsed from the bytes', () => {
    const bytes = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n', 'latin1');
    const head = parseRequestHead(bytes, 0, bytes.length, LIMITS) as RequestHead;
    const ctx: ForwardingContext = { remoteAddress: '10.0.0.1', encrypted: false, peerTrusted: false, preserveHost: true, addForwarded: false };
    expect(requestHeadBytes(head, '/', '', ctx, 'b:1', new ForwardingBytes())?.toString('latin1')).toBe('GET / HTTP/1.1\r\nAccept: */*\r\nhost: a\r\n\r\n');
    head.rawHeaders.push('X-Added', 'by a hook');
    expect(requestHeadBytes(head, '/', '', ctx, 'b:1', new ForwardingBytes())).toBeUndefined();
  });

  it('keeps the request line as sent only when path and version go unchanged', () => {
    const ctx: ForwardingContext = { remoteAddress: '10.0.0.1', encrypted: false, peerTrusted: false, preserveHost: true, addForwarded: false };
    const parse = (text: string): RequestHead => parseRequestHead(Buffer.from(text, 'latin1'), 0, text.length, LIMITS) as RequestHead;
    const http10 = parse('GET /a HTTP/1.0\r\nX-A: 1\r\n\r\n');
    expect(http10.framing).toBe(Framing.None);
    expect(requestHeadBytes(http10, '/a', '', ctx, 'b:1', new ForwardingBytes())?.toString('latin1')).toBe('GET /a HTTP/1.1\r\nX-A: 1\r\nhost: b:1\r\n\r\n');
    const rewritten = parse('GET /api/a HTTP/1.1\r\nHost: h\r\n\r\n');
    expect(requestHeadBytes(rewritten, '/a', '', ctx, 'b:1', new ForwardingBytes())?.toString('latin1')).toBe('GET /a HTTP/1.1\r\nhost: h\r\n\r\n');
  });
});
