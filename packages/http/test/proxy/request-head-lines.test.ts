import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { rawFromHeaders } from '../../src/h2/client-side';
import {
  ForwardingCache,
  ForwardingLines,
  h2HeadersFromList,
  h2RequestHeaders,
  requestHeadLines,
  requestHeaders,
  type ForwardingContext,
  type H2RequestFields,
} from '../../src/proxy/headers';
import { forwardingContext as context } from './forwarding-context';

/** `requestHeaders`' list as the lines the raw engine writes. */
function asLines(list: readonly string[] | undefined): string | undefined {
  if (list === undefined) return undefined;
  let text = '';
  for (let i = 0; i < list.length; i += 2) text += `${list[i]}: ${list[i + 1]}\r\n`;
  return text;
}

const NAMES = [
  'Host',
  'host',
  'HOST',
  'Connection',
  'connection',
  'Upgrade',
  'Keep-Alive',
  'TE',
  'Expect',
  'X-Forwarded-For',
  'x-forwarded-proto',
  'X-Forwarded-Host',
  'Forwarded',
  'Accept',
  'X-Custom',
  'x-custom',
  'Cookie',
  'Proxy-Authorization',
];
const VALUES = [
  'a',
  'example.com',
  'example.com:8080',
  'close',
  'keep-alive, x-custom',
  'upgrade',
  'websocket',
  '10.0.0.1',
  'https',
  'for=1.2.3.4',
  'x\r\ny',
  'v\0',
  '',
];

const rawHeaders = fc
  .array(fc.tuple(fc.constantFrom(...NAMES), fc.oneof(fc.constantFrom(...VALUES), fc.string({ maxLength: 12 }))), { maxLength: 8 })
  .map((pairs) => pairs.flat());

describe('requestHeadLines', () => {
  it('writes exactly the fields requestHeaders lists, with or without the per-connection cache (property)', () => {
    // One cache across every run: a connection's requests differ in Host, fields and engine options,
    // and the cache must never hand one request the lines of another.
    const cache = new ForwardingLines();
    fc.assert(
      fc.property(rawHeaders, context, fc.constantFrom('b1:8080', 'b2:9090'), (raw, ctx: ForwardingContext, backendHost) => {
        const expected = asLines(requestHeaders(raw, ctx, backendHost));
        expect(requestHeadLines(raw, ctx, backendHost)).toBe(expected);
        expect(requestHeadLines(raw, ctx, backendHost, cache)).toBe(expected);
        expect(requestHeadLines(raw, ctx, backendHost, cache)).toBe(expected);
      }),
      { seed: 17, numRuns: 3000 },
    );
  });

  it("hands a request the previous request's lines only when its fields and every input are the same (property)", () => {
    // A connection's requests: often the same fields again (the parser hands the same strings),
    // sometimes another list, another engine option or backend, or a list a hook edited in place.
    const step = fc.record({ pick: fc.nat(2), ctx: context, backendHost: fc.constantFrom('b1:8080', 'b2:9090'), edit: fc.boolean() });
    fc.assert(
      fc.property(fc.array(rawHeaders, { minLength: 3, maxLength: 3 }), fc.array(step, { minLength: 1, maxLength: 12 }), (lists, steps) => {
        const cache = new ForwardingLines();
        for (const { pick, ctx, backendHost, edit } of steps) {
          const raw = lists[pick]!;
          expect(requestHeadLines(raw, ctx, backendHost, cache)).toBe(asLines(requestHeaders(raw, ctx, backendHost)));
          if (edit) raw.push('X-Custom', 'edited');
        }
      }),
      { seed: 17, numRuns: 3000 },
    );
  });

  it('builds the forwarding lines once for the requests of a connection that sends the same Host', () => {
    const cache = new ForwardingLines();
    const ctx: ForwardingContext = { remoteAddress: '10.0.0.7', encrypted: false, peerTrusted: false, preserveHost: true, addForwarded: true };
    const first = requestHeadLines(['Host', 'example.com', 'Accept', '*/*'], ctx, 'b1:80', cache);
    expect(first).toBe(
      'Accept: */*\r\nhost: example.com\r\nx-forwarded-for: 10.0.0.7\r\nx-forwarded-proto: http\r\nx-forwarded-host: example.com\r\nforwarded: for=10.0.0.7;proto=http;host=example.com\r\n',
    );
    const tail = cache.get(ctx, 'b1:80', 'example.com');
    expect(first!.endsWith(tail!)).toBe(true);
    // Another Host, another engine option or a client's own forwarding field: not the cached lines.
    expect(cache.get(ctx, 'b1:80', 'other.example')).toBeUndefined();
    expect(cache.get({ ...ctx, addForwarded: false }, 'b1:80', 'example.com')).toBeUndefined();
    expect(requestHeadLines(['Host', 'example.com', 'X-Forwarded-For', '1.2.3.4'], ctx, 'b1:80', cache)).toContain('x-forwarded-for: 1.2.3.4, 10.0.0.7\r\n');
    expect(cache.get(ctx, 'b1:80', 'example.com')).toBe(tail);
  });

  it('never copies a hop-by-hop, forwarding, Host or Upgrade field as the client spelled it, whatever its case', () => {
    const special = ['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect', 'host'];
    const forwarding = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded'];
    fc.assert(
      fc.property(fc.mixedCase(fc.constantFrom(...special, ...forwarding)), context, (name, ctx) => {
        const lines = requestHeadLines([name, 'from-client', 'User-Agent', 'ua'], ctx, 'b1:80')!;
        // Dropped, or rewritten under its lower-case name; any other field is copied as sent.
        if (name !== name.toLowerCase()) expect(lines).not.toContain(`${name}: `);
        // (Host's value goes on in X-Forwarded-Host / Forwarded, an upgrade request's Upgrade in `upgrade`.)
        const lower = name.toLowerCase();
        if (special.includes(lower) && lower !== 'host' && !(lower === 'upgrade' && ctx.upgrade)) expect(lines).not.toMatch(/from-client/);
        expect(lines.startsWith('User-Agent: ua\r\n') || lines.includes('\nUser-Agent: ua\r\n')).toBe(true);
      }),
      { seed: 17, numRuns: 2000 },
    );
  });
});

/** Header fields as `node:http2` hands them over: lower-case names, pseudo-headers first, `set-cookie` a list. */
const H2_NAMES = [
  'host',
  'te',
  'trailer',
  'expect',
  'proxy-authorization',
  'keep-alive',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'forwarded',
  'accept',
  'content-type',
  'user-agent',
  'cookie',
  'set-cookie',
  'grpc-timeout',
  'x-custom',
];
const h2Value = fc.oneof(fc.constantFrom(...VALUES), fc.string({ maxLength: 12 }));
const h2Fields = fc
  .record(
    {
      // Mostly the same few, as one connection's streams send: the cache is hit across runs.
      authority: fc.option(fc.oneof({ arbitrary: fc.constantFrom('example.com', 'api.example:8443', 'a b', 'x\ny'), weight: 4 }, fc.string({ maxLength: 8 })), {
        nil: undefined,
      }),
      fields: fc.uniqueArray(fc.tuple(fc.constantFrom(...H2_NAMES), fc.oneof(h2Value, fc.array(h2Value, { maxLength: 3 }))), {
        selector: ([name]) => name,
        maxLength: 9,
      }),
    },
    { requiredKeys: ['fields'] },
  )
  .map(({ authority, fields }) => {
    const headers: H2RequestFields = { ':method': 'POST', ':scheme': 'http', ':path': '/svc/Call' };
    if (authority !== undefined) headers[':authority'] = authority;
    // Node gives Host as one value.
    for (const [name, value] of fields) headers[name] = name === 'host' && Array.isArray(value) ? (value[0] ?? 'h') : value;
    return headers;
  });
const h2Context = fc.record({
  remoteAddress: fc.constantFrom('127.0.0.1', '::1', '10.1.2.3'),
  encrypted: fc.boolean(),
  peerTrusted: fc.boolean(),
  preserveHost: fc.boolean(),
  addForwarded: fc.boolean(),
});

describe('h2RequestHeaders', () => {
  it("makes the header object requestHeaders' list makes, fields and order, with or without the per-connection cache (property)", () => {
    // One cache across every run, as one client connection's streams share it.
    const cache = new ForwardingCache<readonly string[]>();
    fc.assert(
      fc.property(h2Fields, h2Context, fc.boolean(), (fields, ctx: ForwardingContext, swap) => {
        const pseudo = (): Record<string, string | string[]> => ({ ':method': 'POST', ':scheme': 'http', ':path': '/svc/Call' });
        // One stream's attempts, or one connection's streams, balanced over two backends.
        for (const backendHost of swap ? ['b2:9090', 'b1:8080'] : ['b1:8080', 'b2:9090']) {
          const list = requestHeaders(rawFromHeaders(fields), ctx, backendHost);
          const expected = list === undefined ? undefined : h2HeadersFromList(pseudo(), list);
          for (const given of [undefined, cache, cache]) {
            const out = pseudo();
            const ok = h2RequestHeaders(out, fields, ctx, backendHost, given);
            expect(ok).toBe(expected !== undefined);
            if (expected === undefined) continue;
            expect(Object.entries(out)).toEqual(Object.entries(expected));
          }
        }
      }),
      { seed: 17, numRuns: 3000 },
    );
  });

  it("shares one connection's forwarding fields over the backends its calls are balanced to, while the client's Host is kept", () => {
    const cache = new ForwardingCache<readonly string[]>();
    const ctx: ForwardingContext = { remoteAddress: '10.0.0.7', encrypted: false, peerTrusted: false, preserveHost: true, addForwarded: true };
    const fields: H2RequestFields = { ':method': 'POST', ':scheme': 'http', ':authority': 'api.example', ':path': '/a', 'content-type': 'application/grpc' };
    const first: Record<string, string | string[]> = {};
    expect(h2RequestHeaders(first, fields, ctx, 'b1:80', cache)).toBe(true);
    expect(first).toEqual({
      'content-type': 'application/grpc',
      ':authority': 'api.example',
      'x-forwarded-for': '10.0.0.7',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': 'api.example',
      forwarded: 'for=10.0.0.7;proto=http;host=api.example',
    });
    const built = cache.get(ctx, 'b1:80', 'api.example');
    expect(built).toBeDefined();
    expect(cache.get(ctx, 'b2:80', 'api.example')).toBe(built);
    // The backend's host is what the request carries when the client's is not kept: not shared then.
    const own = { ...ctx, preserveHost: false };
    cache.set(own, 'b1:80', 'api.example', ['host', 'b1:80']);
    expect(cache.get(own, 'b2:80', 'api.example')).toBeUndefined();
  });
});
