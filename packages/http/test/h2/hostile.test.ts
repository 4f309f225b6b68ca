/**
 * Hostile HTTP/2, sent as raw frames to an h2c listener of `createProxyServer`: every limit holds,
 * the offending stream or connection is closed with an error, and nothing malformed reaches a
 * backend (each test's backend counts what it was sent).
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createProxyServer, type ProxyServerOptions } from '@fulcrum/http';
import { waitFor } from '../../../../test-support/wait-for';
import { ErrorCode, FrameType, RawH2, errorCode, indexed, indexedLiteral, request, setting, type Frame } from './raw-frames';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Backend {
  address: string;
  seen: IncomingMessage[];
  open: number;
  maxOpen: number;
  /** Answer held requests. */
  release(): void;
}

async function backend(hold = false): Promise<Backend> {
  const held: (() => void)[] = [];
  const state: Backend = { address: '', seen: [], open: 0, maxOpen: 0, release: () => held.splice(0).forEach((f) => f()) };
  const server = createServer((req, res) => {
    state.seen.push(req);
    state.open++;
    state.maxOpen = Math.max(state.maxOpen, state.open);
    res.on('close', () => state.open--);
    const answer = (): void => {
      res.end('ok');
    };
    req.resume();
    if (hold) held.push(answer);
    else answer();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  cleanups.push(() => server.closeAllConnections());
  state.address = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

async function proxy(b: Backend, http2: ProxyServerOptions['http2'] = { h2c: true }): Promise<number> {
  const server = createProxyServer({ balancer: { backends: [{ id: 'b', address: b.address }] }, http2 });
  await server.listen(0);
  cleanups.push(() => server.close(0));
  return server.address()!.port;
}

async function open(port: number): Promise<RawH2> {
  const conn = await RawH2.open(port);
  cleanups.push(() => conn.close());
  return conn;
}

const isError = (f: Frame): boolean => f.type === FrameType.RST_STREAM || f.type === FrameType.GOAWAY;

describe('hostile HTTP/2 against the h2c listener', () => {
  it('serves a well-formed request sent as raw frames (the harness itself works)', async () => {
    const b = await backend();
    const conn = await open(await proxy(b));
    conn.headers(1, request('/fine'));
    const end = await conn.streamEnd(1);
    expect(isError(end)).toBe(false);
    expect(b.seen.map((r) => r.url)).toEqual(['/fine']);
  });

  const malformed: [string, Buffer][] = [
    ['a connection-specific header (connection: keep-alive)', request('/x', [['connection', 'keep-alive']])],
    ['transfer-encoding', request('/x', [['transfer-encoding', 'chunked']])],
    ['te other than trailers', request('/x', [['te', 'gzip']])],
    ['an upper-case header name', request('/x', [['X-Upper', 'v']])],
    ['an unknown pseudo-header', request('/x', [[':evil', 'v']])],
    [
      'a pseudo-header after a regular one',
      Buffer.concat([
        request('/x', [['x-a', '1']]),
        request('/y').subarray(0, 0),
        Buffer.from([0x00, 5]),
        Buffer.from(':path'),
        Buffer.from([2]),
        Buffer.from('/z'),
      ]),
    ],
    [
      'no :path',
      Buffer.concat([
        Buffer.from([0x00, 7]),
        Buffer.from(':method'),
        Buffer.from([3]),
        Buffer.from('GET'),
        Buffer.from([0x00, 7]),
        Buffer.from(':scheme'),
        Buffer.from([4]),
        Buffer.from('http'),
      ]),
    ],
  ];
  for (const [what, headerBlock] of malformed) {
    it(`refuses ${what} with a stream or connection error, and forwards nothing`, async () => {
      const b = await backend();
      const conn = await open(await proxy(b));
      conn.headers(1, headerBlock);
      const end = await conn.streamEnd(1);
      // A stream or connection error from the HTTP/2 layer, or the proxy's own 400 (HPACK static
      // index 12, `:status 400`) for what got past it.
      expect(isError(end) || (end.type === FrameType.HEADERS && end.payload[0] === 0x8c)).toBe(true);
      // A good request on a new connection is still served: the listener is fine.
      const next = await open(await proxy(b));
      next.headers(1, request('/after'));
      await next.streamEnd(1);
      expect(b.seen.map((r) => r.url)).toEqual(['/after']);
    });
  }

  const invalidValues: [string, Buffer][] = [
    ['a CR LF in a header value', request('/x', [['x-split', 'a\r\nx-injected: 1']])],
    ['a NUL in a header value', request('/x', [['x-split', 'a\0b']])],
    ['a bare LF in a header value', request('/x', [['x-split', 'a\nb']])],
  ];
  for (const [what, headerBlock] of invalidValues) {
    // nghttp2 drops a field whose value has CR, LF or NUL (RFC 9113 §8.2.1 calls the message
    // malformed; nghttp2 ignores the field instead): it never reaches the backend either way.
    it(`never forwards ${what}`, async () => {
      const b = await backend();
      const conn = await open(await proxy(b));
      conn.headers(1, headerBlock);
      await conn.streamEnd(1);
      for (const req of b.seen) {
        expect(req.headers['x-split']).toBeUndefined();
        expect(req.headers['x-injected']).toBeUndefined();
        expect(req.rawHeaders.join('\n')).not.toMatch(/[\r\0]/);
      }
    });
  }

  it('advertises SETTINGS_MAX_CONCURRENT_STREAMS and refuses streams past it', async () => {
    const b = await backend(true);
    const conn = await open(await proxy(b, { h2c: true, maxConcurrentStreams: 3 }));
    const settings = await conn.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & 1) === 0);
    expect(setting(settings, 0x3)).toBe(3);
    for (let i = 0; i < 6; i++) conn.headers(1 + 2 * i, request(`/s${i}`));
    // Past an acknowledged limit, nghttp2 makes it a connection error (RFC 9113 §5.1.2 allows a
    // stream error; a client that ignores a setting it acknowledged gets no second chance).
    const refused = await conn.waitFor(isError);
    expect(errorCode(refused)).not.toBe(ErrorCode.NO_ERROR);
    await conn.closed.promise;
    expect(b.maxOpen).toBeLessThanOrEqual(3);
    for (const req of b.seen) expect(['/s0', '/s1', '/s2']).toContain(req.url);
    b.release();
  });

  it('advertises SETTINGS_MAX_HEADER_LIST_SIZE and resets a larger header list before the backend sees it', async () => {
    const b = await backend();
    const conn = await open(await proxy(b, { h2c: true, maxHeaderListSize: 4096 }));
    const settings = await conn.waitFor((f) => f.type === FrameType.SETTINGS && (f.flags & 1) === 0);
    expect(setting(settings, 0x6)).toBe(4096);
    conn.headers(1, request('/big', [['x-big', 'a'.repeat(8000)]]));
    expect(isError(await conn.streamEnd(1))).toBe(true);
    expect(b.seen.length).toBe(0);
  });

  it('resets a request with more header fields than maxHeaderListPairs', async () => {
    const b = await backend();
    const conn = await open(await proxy(b, { h2c: true, maxHeaderListPairs: 20 }));
    const many = Array.from({ length: 40 }, (_, i) => [`x-h${i}`, 'v'] as const);
    conn.headers(1, request('/many', many));
    expect(isError(await conn.streamEnd(1))).toBe(true);
    expect(b.seen.length).toBe(0);
  });

  it('closes an HTTP/2 connection idle for idleTimeoutMs with GOAWAY', async () => {
    const b = await backend();
    const conn = await open(await proxy(b, { h2c: true, idleTimeoutMs: 200 }));
    conn.headers(1, request('/one'));
    await conn.streamEnd(1);
    const goaway = await conn.waitFor((f) => f.type === FrameType.GOAWAY);
    expect(errorCode(goaway)).toBe(ErrorCode.NO_ERROR);
    await conn.closed.promise;
  });

  it('cuts an HPACK bomb: a few bytes on the wire that decode past the header list limit', async () => {
    const b = await backend();
    const conn = await open(await proxy(b));
    // Stream 1 puts a 4000-byte field in the dynamic table (refused: 4 KiB is within 16 KiB, so it is served).
    conn.headers(1, Buffer.concat([request('/seed'), indexedLiteral('x-bomb', 'b'.repeat(4000))]));
    await conn.streamEnd(1);
    // Stream 3 names it 200 times: 200 bytes on the wire, 800 KB decoded.
    const bomb = Buffer.concat([request('/bomb'), ...Array.from({ length: 200 }, () => indexed(62))]);
    expect(bomb.length).toBeLessThan(300);
    conn.headers(3, bomb);
    expect(isError(await conn.streamEnd(3))).toBe(true);
    expect(b.seen.map((r) => r.url)).toEqual(['/seed']);
  });

  it('closes a connection that resets streams faster than maxResetsPerSecond (rapid reset) with ENHANCE_YOUR_CALM', async () => {
    const b = await backend(true);
    const conn = await open(await proxy(b, { h2c: true, maxResetsPerSecond: 20 }));
    for (let i = 0; i < 200; i++) {
      const id = 1 + 2 * i;
      conn.headers(id, request(`/r${i}`));
      conn.reset(id);
    }
    const goaway = await conn.waitFor((f) => f.type === FrameType.GOAWAY);
    expect(errorCode(goaway)).toBe(ErrorCode.ENHANCE_YOUR_CALM);
    await conn.closed.promise;
    // A stream reset in the same read as its HEADERS is never forwarded: the attack cost the
    // backend (almost) nothing, not 200 requests.
    expect(b.seen.length).toBeLessThanOrEqual(20);
    b.release();
  });

  it('leaves a client that cancels a few streams alone', async () => {
    const b = await backend(true);
    const conn = await open(await proxy(b, { h2c: true, maxResetsPerSecond: 20 }));
    for (let i = 0; i < 5; i++) {
      conn.headers(1 + 2 * i, request(`/r${i}`));
      conn.reset(1 + 2 * i);
    }
    conn.headers(101, request('/kept'));
    await waitFor(() => b.seen.some((r) => r.url === '/kept'), { what: 'the next stream at the backend' });
    b.release();
    const end = await conn.streamEnd(101);
    expect(isError(end)).toBe(false);
    expect(conn.frames.some((f) => f.type === FrameType.GOAWAY)).toBe(false);
  });
});
