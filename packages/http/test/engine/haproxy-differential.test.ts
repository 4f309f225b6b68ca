/**
 * The raw engine against a real HAProxy (Debian's 2.6) on the same bytes: the request-parsing claim
 * of `parser.ts` is "strict as HAProxy is", so whatever HAProxy refuses, the raw engine must refuse
 * too (it may refuse more). Valid requests must pass both, which shows the harness forwards at all.
 * Skips with one line when HAProxy is not installed; under `CI=true` it must run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProxyServer, type ProxyServer } from '@fulcrum/http';
import { startBackend, type TestBackend } from '../proxy/helpers';
import { waitFor } from '../../../../test-support/wait-for';

const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy'].find((path) => existsSync(path));
const required = process.env.CI === 'true';
if (HAPROXY === undefined && !required) console.log('haproxy-differential: HAProxy is not installed; skipped (required under CI=true)');

/** Well-formed requests: both must forward them. */
const VALID = [
  'GET / HTTP/1.1\r\nHost: a\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
  'GET /p?q=1 HTTP/1.0\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nX-Spaces:   v  \r\n\r\n',
];

/** Malformed and smuggling requests (issue #17's list, issue #19's findings, published vectors). */
const HOSTILE = [
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -5\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello',
  'GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n',
  'GET / HTTP/1.1\r\nHost : a\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nX(y): b\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n',
  'GET / HTTP/1.1\r\n\r\n',
  'GET /\r\n\r\n',
  'GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n',
  'GET / HTTP/2.0\r\nHost: a\r\n\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n' + 'X-Pad: v\r\n'.repeat(120) + '\r\n',
  'GET / HTTP/1.1\r\nHost: a\r\nX-Big: ' + 'v'.repeat(20_000) + '\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nx\r\n0\r\n\r\n',
  'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloX\r\n0\r\n\r\n',
];

type Verdict = 'forwarded' | 'refused' | 'none';

/** Send `bytes` on a fresh connection; what came back: the backend's answer, a refusal, or nothing. */
function probe(port: number, bytes: string): Promise<Verdict> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    const finish = (): void => {
      clearTimeout(timer);
      socket.destroy();
      const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(text)?.[1] ?? 0);
      resolve(status === 0 ? 'none' : status === 200 && text.includes('x-backend: hd') ? 'forwarded' : status >= 400 ? 'refused' : 'none');
    };
    const timer = setTimeout(finish, 1500);
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      if (/^HTTP\/1\.[01] [1-5]\d\d [\s\S]*\r\n\r\n/.test(text)) finish();
    });
    socket.on('error', () => undefined);
    socket.on('close', finish);
    socket.write(Buffer.from(bytes, 'latin1'));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createNetServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

describe.runIf(HAPROXY !== undefined || required)('the raw engine against HAProxy on the same bytes', () => {
  let backend: TestBackend;
  let haproxy: ChildProcess;
  let haproxyPort = 0;
  let raw: ProxyServer;
  let rawPort = 0;
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-haproxy-'));

  beforeAll(async () => {
    if (HAPROXY === undefined) throw new Error('CI=true: HAProxy is required for the differential test (apt-get install -y haproxy)');
    backend = await startBackend('hd');
    haproxyPort = await freePort();
    const config = join(dir, 'haproxy.cfg');
    writeFileSync(
      config,
      [
        'global',
        '    nbthread 1',
        'defaults',
        '    mode http',
        '    timeout connect 2s',
        '    timeout client 2s',
        '    timeout server 2s',
        '    timeout http-request 1s',
        'frontend fe',
        `    bind 127.0.0.1:${haproxyPort}`,
        '    default_backend be',
        'backend be',
        `    server hd 127.0.0.1:${backend.port}`,
        '',
      ].join('\n'),
    );
    haproxy = spawn(HAPROXY, ['-db', '-f', config], { stdio: 'ignore' });
    raw = createProxyServer({ balancer: { backends: [{ id: 'hd', address: backend.address }] }, headersTimeoutMs: 1000 });
    await raw.listen(0);
    rawPort = raw.address()!.port;
    // HAProxy prints nothing when ready: wait until it forwards a valid request.
    await waitFor(async () => (await probe(haproxyPort, VALID[0]!)) === 'forwarded', { what: 'HAProxy to forward a request', intervalMs: 50 });
  });

  afterAll(async () => {
    haproxy?.kill('SIGKILL');
    await raw?.close(0);
    await backend?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('forwards the valid requests HAProxy forwards', async () => {
    for (const bytes of VALID) {
      const [theirs, ours] = await Promise.all([probe(haproxyPort, bytes), probe(rawPort, bytes)]);
      expect({ bytes, theirs }).toEqual({ bytes, theirs: 'forwarded' });
      expect({ bytes, ours }).toEqual({ bytes, ours: 'forwarded' });
    }
  });

  it('refuses every hostile request HAProxy refuses, and forwards none of the corpus HAProxy would not', async () => {
    const verdicts = await Promise.all(
      HOSTILE.map(async (bytes) => ({
        bytes: JSON.stringify(bytes.slice(0, 120)),
        theirs: await probe(haproxyPort, bytes),
        ours: await probe(rawPort, bytes),
      })),
    );
    for (const { bytes, theirs, ours } of verdicts) {
      if (theirs !== 'forwarded') expect({ bytes, ours }).not.toEqual({ bytes, ours: 'forwarded' });
    }
    // The raw engine refuses every one of them outright (HAProxy forwards a few it can normalise).
    expect(verdicts.filter((v) => v.ours !== 'refused').map((v) => v.bytes)).toEqual([]);
  });
});
