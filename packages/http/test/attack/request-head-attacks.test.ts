/**
 * Hostile request heads against `createProxy` over raw sockets: each case is a head Node's parser
 * accepts but HAProxy 2.6 refuses, and the proxy must refuse it too — answering with the status
 * HAProxy uses (431 for too many headers, as RFC 6585 names it), closing the connection, and never
 * letting anything of it reach a backend, the rate limiter or the access log as a forwarded request.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AccessLogEntry } from '@fulcrum/http';
import { startBackend, startProxy, type TestBackend, type TestProxy } from '../proxy/helpers';
import { rawExchange } from './raw';

let backend: TestBackend;
let proxy: TestProxy;
const log: AccessLogEntry[] = [];
let admitted = 0;

beforeAll(async () => {
  backend = await startBackend('a');
  proxy = await startProxy({
    balancer: { backends: [{ id: 'a', address: backend.address }] },
    trustedProxies: ['loopback'],
    accessLog: (entry) => log.push(entry),
    admission: () => {
      admitted++;
      return { admit: true };
    },
  });
});

afterAll(async () => {
  await proxy?.close();
  await backend?.close();
});

function headers(n: number): string {
  let out = '';
  for (let i = 0; i < n; i++) out += `X-Pad-${i}: v\r\n`;
  return out;
}

const refused: [string, string, number][] = [
  ['two different Host headers', 'GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n', 400],
  ['an HTTP/0.9 request line', 'GET /\r\n\r\n', 400],
  ['a fragment in the request target', 'GET /page#frag HTTP/1.1\r\nHost: a\r\n\r\n', 400],
  ['Transfer-Encoding: identity, chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n', 422],
  ['Transfer-Encoding: gzip, chunked', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', 422],
  ['two Transfer-Encoding headers', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400],
  ['101 header lines', `GET / HTTP/1.1\r\nHost: a\r\n${headers(100)}\r\n`, 431],
  ['1,100 header lines, past what Node keeps', `GET / HTTP/1.1\r\nHost: a\r\n${headers(1099)}\r\n`, 431],
];

describe('request heads the proxy refuses', () => {
  it.each(refused)('refuses %s, closes the connection, and forwards nothing', async (_name, bytes, status) => {
    const hitsBefore = backend.hits.length;
    const admittedBefore = admitted;
    const logBefore = log.length;
    // A second, valid request follows on the same connection: it must not be served either.
    const reply = await rawExchange(proxy.port, `${bytes}GET /second HTTP/1.1\r\nHost: a\r\n\r\n`);
    expect(reply.status).toBe(status);
    expect(reply.closedByServer).toBe(true);
    expect(reply.text.match(/^HTTP\/1\.1 /gm)?.length ?? 0).toBeLessThanOrEqual(1);
    expect(backend.hits.length).toBe(hitsBefore);
    expect(admitted).toBe(admittedBefore);
    const entries = log.slice(logBefore);
    expect(entries.every((e) => e.termination === 'bad-request' && e.attempts === 0)).toBe(true);
  });

  it("drops nothing silently: with 1,100 headers the trusted proxy's X-Forwarded-For at the end is never replaced by the client's claim", async () => {
    const hitsBefore = backend.hits.length;
    const reply = await rawExchange(
      proxy.port,
      `GET /xff HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\n${headers(1100)}X-Forwarded-For: 10.1.2.3\r\nConnection: close\r\n\r\n`,
    );
    expect(reply.status).toBe(431);
    expect(backend.hits.length).toBe(hitsBefore);
  });

  it('serves heads at the limit, and refuses the same Host twice as RFC 9112 says (HAProxy merges it)', async () => {
    const atLimit = await rawExchange(proxy.port, `GET /limit HTTP/1.1\r\nHost: a\r\n${headers(98)}Connection: close\r\n\r\n`);
    expect(atLimit.status).toBe(200);
    expect(backend.hits.at(-1)!.url).toBe('/limit');
    const hitsBefore = backend.hits.length;
    const sameHost = await rawExchange(proxy.port, 'GET /same HTTP/1.1\r\nHost: a\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(sameHost.status).toBe(400);
    expect(backend.hits.length).toBe(hitsBefore);
  });
});

describe('request heads generated at random', () => {
  /** The rules, written out plainly: the status a head must get, or 200 when it must be served. */
  function expected(lines: readonly [string, string][]): number {
    // Every line counts, with the Host and Connection lines every generated head carries.
    if (lines.length + 2 > 100) return 431;
    const hosts = [{ v: 'a' }, ...lines.filter(([n]) => n.toLowerCase() === 'host').map(([, v]) => ({ v }))];
    if (hosts.length > 1) return 400;
    const te = lines.filter(([n]) => n.toLowerCase() === 'transfer-encoding');
    if (te.length > 1) return 400;
    if (te.length === 1 && te[0]![1].trim().toLowerCase() !== 'chunked') return 422;
    return 200;
  }

  const headerLine = fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom<[string, string]>(['X-Pad', 'v'], ['Accept', '*/*'], ['X-Forwarded-For', '10.0.0.1']) },
    { weight: 1, arbitrary: fc.constantFrom<[string, string]>(['Host', 'a'], ['host', 'A'], ['Host', 'b'], ['HOST', 'c']) },
    {
      weight: 1,
      arbitrary: fc.constantFrom<[string, string]>(
        ['Transfer-Encoding', 'chunked'],
        ['transfer-encoding', 'Chunked'],
        ['Transfer-Encoding', 'identity, chunked'],
        ['Transfer-Encoding', 'gzip, chunked'],
      ),
    },
  );

  it('refuses exactly the heads the rules refuse, with their status, and forwards only the others (property)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(headerLine, { maxLength: 20 }), fc.nat({ max: 110 }), async (lines, padding) => {
        const all: [string, string][] = [...lines, ...Array.from({ length: padding }, (_, i): [string, string] => [`X-Fill-${i}`, 'v'])];
        const chunked = all.some(([n]) => n.toLowerCase() === 'transfer-encoding');
        const head = `POST /prop HTTP/1.1\r\nHost: a\r\n${all.map(([n, v]) => `${n}: ${v}\r\n`).join('')}${chunked ? '' : 'Content-Length: 0\r\n'}Connection: close\r\n\r\n${chunked ? '0\r\n\r\n' : ''}`;
        // Content-Length counts as a line too when there is no Transfer-Encoding.
        const want = expected(chunked ? all : [...all, ['Content-Length', '0']]);
        const hitsBefore = backend.hits.length;
        const reply = await rawExchange(proxy.port, head, 3000);
        // Node's own parser refuses some TE lists first (two 'chunked'): a 400 then, never a forward.
        if (want === 200) {
          expect(reply.status).toBe(200);
          expect(backend.hits.length).toBe(hitsBefore + 1);
        } else {
          expect([want, 400]).toContain(reply.status);
          expect(reply.closedByServer).toBe(true);
          expect(backend.hits.length).toBe(hitsBefore);
        }
      }),
      { seed: 1919, numRuns: 120 },
    );
  });
});
