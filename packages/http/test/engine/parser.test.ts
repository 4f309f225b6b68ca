/**
 * The raw engine's parser on its own: what it accepts and how, every refusal the issue lists, the
 * published request-smuggling vectors (CL.TE, TE.CL, TE.TE obfuscations, …), chunked decoding and
 * response heads.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ChunkedDecoder, Framing, HeadError, parseRequestHead, parseResponseHead, type RequestHead, type ResponseHead } from '../../src/engine/parser';
import { FieldRelay, relayedFields, statusLine } from '../../src/engine/response';

const LIMITS = { maxHeadBytes: 16_384, maxHeaders: 100 };

function request(text: string, limits = LIMITS): RequestHead | HeadError | null {
  const bytes = Buffer.from(text, 'latin1');
  return parseRequestHead(bytes, 0, bytes.length, limits);
}

function accepted(text: string): RequestHead {
  const head = request(text);
  if (head === null || head instanceof HeadError) throw new Error(`refused ${JSON.stringify(text)}: ${head?.reason}`);
  return head;
}

function refused(text: string, status = 400): HeadError {
  const head = request(text);
  expect(head, JSON.stringify(text)).toBeInstanceOf(HeadError);
  expect((head as HeadError).status, `${JSON.stringify(text)}: ${(head as HeadError).reason}`).toBe(status);
  return head as HeadError;
}

function response(text: string, method = 'GET'): ResponseHead | HeadError | null {
  const bytes = Buffer.from(text, 'latin1');
  return parseResponseHead(bytes, 0, bytes.length, method, LIMITS);
}

function decodeChunked(text: string): { body: string; used: number; done: boolean } | HeadError {
  const bytes = Buffer.from(text, 'latin1');
  const decoder = new ChunkedDecoder();
  let body = '';
  const used = decoder.push(bytes, 0, bytes.length, (d) => (body += d.toString('latin1')));
  return used instanceof HeadError ? used : { body, used, done: decoder.done };
}

describe('request heads', () => {
  it('parses method, target, version, headers and framing', () => {
    const head = accepted('POST /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-Thing:  spaced value \t\r\nContent-Length: 5\r\n\r\nhello');
    expect(head.method).toBe('POST');
    expect(head.target).toBe('/a?b=1');
    expect(head.version).toBe(11);
    expect(head.rawHeaders).toEqual(['Host', 'example.com', 'X-Thing', 'spaced value', 'Content-Length', '5']);
    expect(head.framing).toBe(Framing.Length);
    expect(head.contentLength).toBe(5);
    expect(head.headLength).toBe(Buffer.byteLength('POST /a?b=1 HTTP/1.1\r\nHost: example.com\r\nX-Thing:  spaced value \t\r\nContent-Length: 5\r\n\r\n'));
    expect(head.keepAlive).toBe(true);
  });

  it('asks for more bytes while the head is incomplete and within the limit', () => {
    expect(request('GET / HTTP/1.1\r\nHost: a\r\n')).toBeNull();
    expect(request('GET / HTT')).toBeNull();
    expect(request('')).toBeNull();
  });

  it('skips empty lines before the request line, counting them towards the head size', () => {
    expect(accepted('\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n').headLength).toBe(31);
    expect(request('\r\n'.repeat(40))).toBeNull();
    expect(request('\r\n'.repeat(40), { maxHeadBytes: 64, maxHeaders: 10 })).toBeInstanceOf(HeadError);
  });

  it('derives keep-alive from the version and Connection', () => {
    expect(accepted('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n').keepAlive).toBe(false);
    expect(accepted('GET / HTTP/1.0\r\n\r\n').keepAlive).toBe(false);
    expect(accepted('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n').keepAlive).toBe(true);
    expect(accepted('GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n').upgrade).toBe('websocket');
    expect(accepted('GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n').upgrade).toBeUndefined();
  });

  it('reads Expect: 100-continue and answers 417 to any other expectation', () => {
    expect(accepted('PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n').expectContinue).toBe(true);
    refused('PUT / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n', 417);
  });

  it('refuses every malformed head the issue lists', () => {
    const cases: [string, number][] = [
      ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 422],
      ['GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n', 400],
      ['GET / HTTP/1.1\nHost: a\n\n', 400],
      ['GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost : a\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nX\t: b\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nX: a\x7fb\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a b\r\n\r\n', 400],
      ['GET / HTTP/1.1\r\nHost: a/b\r\n\r\n', 400],
      ['GET /\r\n\r\n', 400],
      ['GET / HTTP/0.9\r\n\r\n', 400],
      ['GET / HTTP/2.0\r\nHost: a\r\n\r\n', 400],
      ['GET / http/1.1\r\nHost: a\r\n\r\n', 400],
      ['GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n', 400],
      ['GET a.example:80 HTTP/1.1\r\nHost: a\r\n\r\n', 400],
      ['GET * HTTP/1.1\r\nHost: a\r\n\r\n', 400],
      ['GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n', 400],
      ['GET /a b HTTP/1.1\r\nHost: a\r\n\r\n', 400],
      ['GET  / HTTP/1.1\r\nHost: a\r\n\r\n', 400],
      ['GET / HTTP/1.1 \r\nHost: a\r\n\r\n', 400],
      ['GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n', 400],
      ['GET /\xe9 HTTP/1.1\r\nHost: a\r\n\r\n', 400],
      ['G(T / HTTP/1.1\r\nHost: a\r\n\r\n', 400],
      ['FOO / HTTP/1.1\r\nHost: a\r\n\r\n', 400],
      ['get / HTTP/1.1\r\nHost: a\r\n\r\n', 400],
      ['CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n', 405],
      ['PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400],
      ['POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 400],
    ];
    for (const [text, status] of cases) refused(text, status);
  });

  it('accepts absolute-form targets only when allowed', () => {
    const bytes = Buffer.from('GET http://a.example/x HTTP/1.1\r\nHost: a.example\r\n\r\n');
    const head = parseRequestHead(bytes, 0, bytes.length, { ...LIMITS, allowAbsoluteForm: true });
    expect((head as RequestHead).target).toBe('http://a.example/x');
    expect(accepted('OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n').target).toBe('*');
  });

  it('answers 431 for a head over the size limit, never truncating it', () => {
    const big = `GET / HTTP/1.1\r\nHost: a\r\nX: ${'v'.repeat(16_400)}\r\n\r\n`;
    refused(big, 431);
    // Incomplete but already past the limit: refused at once, not waited for.
    refused(big.slice(0, 16_500), 431);
    const small = { maxHeadBytes: 40, maxHeaders: 100 };
    expect((request('GET / HTTP/1.1\r\nHost: a\r\nX-Long: 0123456789\r\n\r\n', small) as HeadError).status).toBe(431);
    expect(request('GET / HTTP/1.1\r\nHost: a\r\n\r\n', small)).not.toBeInstanceOf(HeadError);
  });

  it('answers 431 for more header fields than the count limit', () => {
    const lines = (n: number) => Array.from({ length: n }, (_, i) => `X-${i}: v\r\n`).join('');
    expect(accepted(`GET / HTTP/1.1\r\nHost: a\r\n${lines(99)}\r\n`).rawHeaders.length).toBe(200);
    refused(`GET / HTTP/1.1\r\nHost: a\r\n${lines(100)}\r\n`, 431);
    // The X-Forwarded-For a front proxy appended after 1,100 headers is never silently dropped.
    refused(`GET / HTTP/1.1\r\nHost: a\r\n${lines(1100)}X-Forwarded-For: 1.2.3.4\r\n\r\n`, 431);
  });
});

describe('common methods and names', () => {
  it('keep the spelling the client sent, byte for byte, whether or not they are common', () => {
    const head = accepted('PATCH / HTTP/1.1\r\nHoSt: a\r\nUser-Agenx: b\r\nuser-agent: c\r\nACCEPT: d\r\nX-Odd: e\r\n\r\n');
    expect(head.method).toBe('PATCH');
    expect(head.rawHeaders).toEqual(['HoSt', 'a', 'User-Agenx', 'b', 'user-agent', 'c', 'ACCEPT', 'd', 'X-Odd', 'e']);
    expect(accepted('PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n').method).toBe('PROPFIND');
  });

  it("parses a head the same whatever the connection's previous request held (property)", () => {
    const field = fc.tuple(
      fc.constantFrom('Host', 'host', 'Accept', 'Cookie', 'X-A', 'x-a', 'User-Agent'),
      fc.constantFrom('a', 'b', 'ab', 'a b', 'caf\xe9', 'caf\xe8', ''),
    );
    const head = fc.array(field, { maxLength: 6 }).map((fields) => {
      const lines = fields.filter(([n]) => n.toLowerCase() !== 'host').map(([n, v]) => `${n}: ${v}\r\n`);
      return `GET /${lines.length} HTTP/1.1\r\nHost: h\r\n${lines.join('')}\r\n`;
    });
    fc.assert(
      fc.property(head, head, fc.array(fc.string({ maxLength: 4 }), { maxLength: 8 }), (first, second, junk) => {
        const bytes = Buffer.from(second, 'latin1');
        const plain = parseRequestHead(bytes, 0, bytes.length, LIMITS);
        expect(parseRequestHead(bytes, 0, bytes.length, LIMITS, accepted(first).rawHeaders)).toEqual(plain);
        // Whatever the previous list became (a hook may edit it), only equal bytes are reused.
        expect(parseRequestHead(bytes, 0, bytes.length, LIMITS, junk)).toEqual(plain);
      }),
      { seed: 1777, numRuns: 1000 },
    );
    expect(accepted('GET / HTTP/1.1\r\nHost: a\r\n\r\n').target).toBe('/');
    expect(accepted('GET /a HTTP/1.1\r\nHost: a\r\n\r\n').target).toBe('/a');
  });
});

describe('published request-smuggling vectors', () => {
  // PortSwigger's "HTTP request smuggling" labs and Kettle's "HTTP Desync Attacks" (2019) TE.TE
  // obfuscations, Linhart et al.'s (2005) originals, and the CL.0 / TE.0 variants since.
  const vectors: string[] = [
    // CL.TE and TE.CL: both framings present.
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 13\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nSMUGGLED',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n8\r\nSMUGGLED\r\n0\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n',
    // TE.TE obfuscations.
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-encoding: x\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\n Transfer-Encoding: chunked\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nX: X[\n]Transfer-Encoding: chunked\r\n\r\n'.replace('[\n]', '\n'),
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding\r\n : chunked\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "chunked"\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunk\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\x00\r\n\r\n',
    'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n chunked\r\n\r\n',
    // Content-Length ambiguities.
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nContent-Length: 5\r\n\r\n12345G',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n12345',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5 \r\nContent-Length:5\r\n\r\n12345',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n12345',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\n12345',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5e0\r\n\r\n12345',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n12345',
    'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551621\r\n\r\n12345',
    // Line-ending tricks.
    'GET / HTTP/1.1\r\nHost: a\r\nX: y\rContent-Length: 5\r\n\r\n12345',
    'GET / HTTP/1.1\r\nHost: a\nContent-Length: 5\r\n\r\n12345',
    'GET / HTTP/1.1\r\nHost: a\r\n\nContent-Length: 5\r\n\r\n12345',
    // Host confusion and request-line tricks.
    'GET / HTTP/1.1\r\nHost: a\r\nHost: evil\r\n\r\n',
    'GET http://evil/ HTTP/1.1\r\nHost: a\r\n\r\n',
    'GET /admin HTTP/1.1 X\r\nHost: a\r\n\r\n',
    'GET /\r\n',
  ];

  it('refuses every vector', () => {
    for (const text of vectors) {
      const head = request(text);
      expect(head, JSON.stringify(text)).toBeInstanceOf(HeadError);
    }
  });

  it('refuses malformed chunked bodies: size overflow, bad sizes, missing CRLF, bare LF', () => {
    for (const body of [
      'fffffffffffffffff\r\n',
      '10000000000000\r\n',
      '-1\r\nx\r\n0\r\n\r\n',
      '0x5\r\nhello\r\n0\r\n\r\n',
      '5 \r\nhello\r\n0\r\n\r\n',
      ' 5\r\nhello\r\n0\r\n\r\n',
      '5\nhello\n0\n\n',
      '5\r\nhelloX\r\n0\r\n\r\n',
      '5\r\nhello\n0\r\n\r\n',
      '\r\n',
      '5;\x01\r\nhello\r\n0\r\n\r\n',
      `5;${'x'.repeat(5000)}\r\nhello\r\n0\r\n\r\n`,
      '0\r\nBad Trailer: x\r\n\r\n',
      '0\r\n: x\r\n\r\n',
      '0\r\nT: v\n\r\n',
      '0\r\n\n',
    ]) {
      expect(decodeChunked(body), JSON.stringify(body)).toBeInstanceOf(HeadError);
    }
  });
});

describe('chunked bodies', () => {
  it('decodes sizes in either case, ignores extensions and trailers, and stops at the end', () => {
    expect(decodeChunked('5;name=value;q="x y"\r\nhello\r\nA\r\n0123456789\r\na\r\n0123456789\r\n0\r\nX-T: v\r\n\r\nGET')).toEqual({
      body: 'hello01234567890123456789',
      used: Buffer.byteLength('5;name=value;q="x y"\r\nhello\r\nA\r\n0123456789\r\na\r\n0123456789\r\n0\r\nX-T: v\r\n\r\n'),
      done: true,
    });
  });

  it('decodes a body split at every byte the same as in one piece', () => {
    const text = '3\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\n';
    const bytes = Buffer.from(text);
    const decoder = new ChunkedDecoder();
    let body = '';
    for (let i = 0; i < bytes.length; i++) {
      const used = decoder.push(bytes, i, i + 1, (d) => (body += d.toString()));
      expect(used).toBe(i + 1);
    }
    expect(decoder.done).toBe(true);
    expect(body).toBe('abc0123456789abcdef');
  });
});

describe('response heads', () => {
  it('frames responses by status, method and fields', () => {
    const ok = response('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc') as ResponseHead;
    expect([ok.status, ok.statusMessage, ok.framing, ok.contentLength, ok.keepAlive]).toEqual([200, 'OK', Framing.Length, 3, true]);
    expect((response('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n') as ResponseHead).framing).toBe(Framing.Chunked);
    const close = response('HTTP/1.1 200 OK\r\n\r\nbody until close') as ResponseHead;
    expect([close.framing, close.keepAlive]).toEqual([Framing.Close, false]);
    expect((response('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n', 'HEAD') as ResponseHead).framing).toBe(Framing.None);
    expect((response('HTTP/1.1 304 Not Modified\r\nContent-Length: 3\r\n\r\n') as ResponseHead).framing).toBe(Framing.None);
    expect((response('HTTP/1.1 204 No Content\r\n\r\n') as ResponseHead).framing).toBe(Framing.None);
    expect((response('HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n') as ResponseHead).status).toBe(103);
    expect((response('HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n') as ResponseHead).statusMessage).toBe('');
    expect((response('HTTP/1.1 200 Okay\r\nContent-Length: 0\r\n\r\n') as ResponseHead).statusMessage).toBe('Okay');
    expect((response('HTTP/1.1 404 not found\r\nContent-Length: 0\r\n\r\n') as ResponseHead).statusMessage).toBe('not found');
    // The status line relayed: the standard phrase (built once), or the backend's own, as sent.
    expect([statusLine(200, 'OK'), statusLine(200, ''), statusLine(200, 'Okay'), statusLine(599, ''), statusLine(404, 'OK')]).toEqual([
      'HTTP/1.1 200 OK\r\n',
      'HTTP/1.1 200 OK\r\n',
      'HTTP/1.1 200 Okay\r\n',
      'HTTP/1.1 599 \r\n',
      'HTTP/1.1 404 OK\r\n',
    ]);
    expect((response('HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n') as ResponseHead).keepAlive).toBe(false);
    expect((response('HTTP/1.0 200 OK\r\nConnection: KEEP-Alive\r\nContent-Length: 0\r\n\r\n') as ResponseHead).keepAlive).toBe(true);
    expect((response('HTTP/1.1 200 OK\r\nConnection: cLoSe\r\nContent-Length: 0\r\n\r\n') as ResponseHead).keepAlive).toBe(false);
    const near = response('HTTP/1.0 200 OK\r\nConnection: keep-alivf\r\nContent-Length: 0\r\n\r\n') as ResponseHead;
    expect([near.keepAlive, near.connectionListsFields]).toEqual([false, true]);
    const closer = response('HTTP/1.1 200 OK\r\nConnection: closf\r\nContent-Length: 0\r\n\r\n') as ResponseHead;
    expect([closer.keepAlive, closer.connectionListsFields, closer.connectionClose]).toEqual([true, true, false]);
  });

  it('answers 502 for a malformed backend response', () => {
    for (const text of [
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n',
      'HTTP/1.1 200 OK\nContent-Length: 0\n\n',
      'HTTP/1.1 2000 OK\r\n\r\n',
      'HTTP/1.1 099 OK\r\n\r\n',
      'HTTP/2 200 OK\r\n\r\n',
      'ICY 200 OK\r\n\r\n',
      'HTTP/1.1 200 OK\r\nX: \x00\r\n\r\n',
      `HTTP/1.1 200 OK\r\n${'X: y\r\n'.repeat(101)}\r\n`,
    ]) {
      const head = response(text);
      expect(head, JSON.stringify(text)).toBeInstanceOf(HeadError);
      expect((head as HeadError).status).toBe(502);
    }
  });

  it('keeps response fields as offsets and builds rawHeaders from them, byte for byte, when read', () => {
    const head = response('HTTP/1.1 200 OK\r\nX-A:  spaced \t\r\nContent-Length: 0\r\nX-Latin: caf\xe9\r\n\r\n') as ResponseHead;
    expect(head.fieldOffsets.length).toBe(15);
    expect(head.rawHeaders).toEqual(['X-A', 'spaced', 'Content-Length', '0', 'X-Latin', 'caf\xe9']);
    expect(head.connectionListsFields).toBe(false);
    expect((response('HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Secret\r\nContent-Length: 0\r\n\r\n') as ResponseHead).connectionListsFields).toBe(true);
    expect((response('HTTP/1.1 200 OK\r\nCONNECTION: Close\r\nContent-Length: 0\r\n\r\n') as ResponseHead).keepAlive).toBe(false);
  });
});

describe('relaying response fields', () => {
  function relay(text: string): { lines: string; setCookie: string[] | undefined } {
    const head = response(text) as ResponseHead;
    const relay = new FieldRelay();
    relay.scan(head);
    const out = Buffer.alloc(relay.bytes);
    expect(relay.writeTo(out, 0)).toBe(relay.bytes);
    return { lines: out.toString('latin1'), setCookie: relay.setCookie };
  }

  it('copies every end-to-end line as sent and drops the hop-by-hop ones', () => {
    const { lines, setCookie } = relay(
      'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nKeep-Alive: timeout=5\r\nX-A:  spaced \r\nConnection: keep-alive\r\nSet-Cookie: a=1\r\n' +
        'Transfer-Encoding: chunked\r\nset-cookie: b=2\r\nUpgrade: h2c\r\nProxy-Connection: x\r\nTE: trailers\r\nTrailer: X\r\nX-Z: caf\xe9\r\n\r\n',
    );
    expect(lines).toBe('Content-Type: text/plain\r\nX-A:  spaced \r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nX-Z: caf\xe9\r\n');
    expect(setCookie).toEqual(['a=1', 'b=2']);
  });

  it('keeps the same fields, with the same values, as the string relay', () => {
    const text =
      'HTTP/1.1 200 OK\r\nDate: x\r\nConnection: close\r\nSet-Cookie: s=1\r\nContent-Length: 0\r\nHTTP2-Settings: a\r\nExpect: b\r\nETag: "1"\r\n\r\n';
    const copied = relay(text);
    const strings = relayedFields((response(text) as ResponseHead).rawHeaders, false);
    const parse = (lines: string): string[] =>
      lines
        .split('\r\n')
        .filter((l) => l !== '')
        .map((l) => l.replace(/:\s*/, ': ').trimEnd());
    expect(parse(copied.lines)).toEqual(parse(strings.lines));
    expect(copied.setCookie).toEqual(strings.setCookie);
    // A field named by `Connection: close` itself is dropped by both.
    const closing = 'HTTP/1.1 200 OK\r\nConnection: close\r\nClose: x\r\nAllow: GET\r\n\r\n';
    expect(relay(closing).lines).toBe('Allow: GET\r\n');
    expect(relayedFields((response(closing) as ResponseHead).rawHeaders, false).lines).toBe('Allow: GET\r\n');
  });

  it('keeps exactly the lines the string relay keeps, whatever the names and their case (property)', () => {
    const names = [
      'Connection',
      'KEEP-ALIVE',
      'keep-alive',
      'Set-Cookie',
      'SET-cookie',
      'Transfer-Encoding',
      'TE',
      'Te',
      'Trailer',
      'Upgrade',
      'Proxy-Connection',
      'HTTP2-Settings',
      'Http2-settings',
      'Expect',
      'Close',
      'CLOSE',
      'Closer',
      'Set-Cookies',
      'Content-Type',
      'Date',
      'X-Te',
      'Tf',
      'Keep-Alivf',
    ];
    const field = fc.tuple(fc.constantFrom(...names), fc.constantFrom('a', 'b=1', 'close', 'keep-alive', 'x y'));
    fc.assert(
      fc.property(fc.array(field, { maxLength: 10 }), (fields) => {
        // `Connection` values that name no other field: the heads `FieldRelay` is used for.
        const text = `HTTP/1.1 200 OK\r\n${fields.map(([n, v]) => `${n}: ${n.toLowerCase() === 'connection' ? (v === 'close' ? 'close' : 'keep-alive') : v}\r\n`).join('')}Content-Length: 0\r\n\r\n`;
        const head = response(text);
        if (!(head instanceof Object) || head instanceof HeadError) return;
        const copied = relay(text);
        const strings = relayedFields(head.rawHeaders, false);
        expect(copied.lines).toBe(strings.lines);
        expect(copied.setCookie).toEqual(strings.setCookie);
      }),
      { seed: 1717, numRuns: 2000 },
    );
  });
});
