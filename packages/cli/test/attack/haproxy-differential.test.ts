/**
 * Differential test against a real HAProxy (Debian's `haproxy` 2.6): the same raw request bytes go
 * to HAProxy and to the `fulcrum` CLI, both in front of the same backend, and their verdicts are
 * compared by class — accepted (the backend served it) or refused (a 4xx, nothing forwarded) — so
 * that Fulcrum refuses what HAProxy refuses and serves what it serves. HAProxy runs from a generated
 * config on a free loopback port as a child process and is killed after the suite.
 *
 * Where Fulcrum is deliberately stricter than HAProxy (it refuses a request HAProxy would repair and
 * forward), the case says so and the test checks exactly that difference.
 *
 * Without `/usr/sbin/haproxy` the suite is skipped, except under `CI=true`, where it must run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFulcrum, type FulcrumInstance } from '../../src';
import { rawExchange, type RawReply } from '../../../http/test/attack/raw';

const HAPROXY = '/usr/sbin/haproxy';
const present = existsSync(HAPROXY);
const required = process.env.CI === 'true';

type Verdict = 'accepted' | 'refused';

interface Case {
  name: string;
  bytes: string;
  /** What HAProxy 2.6 answers (checked, so a different HAProxy shows up as a failure here). */
  haproxy: Verdict;
  /** What Fulcrum answers when it differs on purpose, and why. */
  fulcrum?: { verdict: Verdict; why: string };
}

function pad(n: number): string {
  let out = '';
  for (let i = 0; i < n; i++) out += `X-Pad-${i}: v\r\n`;
  return out;
}

const CASES: Case[] = [
  { name: 'a plain GET', bytes: 'GET /ok HTTP/1.1\r\nHost: a\r\n\r\n', haproxy: 'accepted' },
  { name: 'two different Host headers', bytes: 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', haproxy: 'refused' },
  {
    name: 'the same Host twice',
    bytes: 'GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n',
    haproxy: 'accepted',
    fulcrum: { verdict: 'refused', why: 'RFC 9112 §3.2: more than one Host field line is a 400; HAProxy merges identical ones' },
  },
  { name: 'no Host in HTTP/1.1', bytes: 'GET / HTTP/1.1\r\n\r\n', haproxy: 'refused' },
  { name: 'an HTTP/0.9 request line', bytes: 'GET /\r\n\r\n', haproxy: 'refused' },
  { name: 'a fragment in the target', bytes: 'GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n', haproxy: 'refused' },
  {
    name: 'Transfer-Encoding: identity, chunked',
    bytes: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n',
    haproxy: 'refused',
  },
  { name: 'Transfer-Encoding: gzip, chunked', bytes: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n', haproxy: 'refused' },
  {
    name: 'Transfer-Encoding: chunked, chunked',
    bytes: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n',
    haproxy: 'refused',
  },
  {
    name: 'two Transfer-Encoding headers',
    bytes: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    haproxy: 'refused',
  },
  { name: 'a chunked body', bytes: 'POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n', haproxy: 'accepted' },
  { name: 'two different Content-Lengths', bytes: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab', haproxy: 'refused' },
  { name: 'a Content-Length with a sign', bytes: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\na', haproxy: 'refused' },
  { name: '100 header lines', bytes: `GET / HTTP/1.1\r\nHost: a\r\n${pad(99)}\r\n`, haproxy: 'accepted' },
  { name: '101 header lines', bytes: `GET / HTTP/1.1\r\nHost: a\r\n${pad(100)}\r\n`, haproxy: 'refused' },
  { name: '1,100 header lines', bytes: `GET / HTTP/1.1\r\nHost: a\r\n${pad(1099)}\r\n`, haproxy: 'refused' },
  { name: 'a 20 KB header', bytes: `GET / HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, haproxy: 'refused' },
  { name: 'a space inside a header name', bytes: 'GET / HTTP/1.1\r\nHost: a\r\nBad Header: v\r\n\r\n', haproxy: 'refused' },
  { name: 'a space before the colon', bytes: 'GET / HTTP/1.1\r\nHost: a\r\nX-A : v\r\n\r\n', haproxy: 'refused' },
  { name: 'a NUL in a header value', bytes: 'GET / HTTP/1.1\r\nHost: a\r\nX-A: a\0b\r\n\r\n', haproxy: 'refused' },
  { name: 'a bad method token', bytes: 'G(T / HTTP/1.1\r\nHost: a\r\n\r\n', haproxy: 'refused' },
  {
    name: 'an unknown HTTP version',
    bytes: 'GET / HTTP/3.7\r\nHost: a\r\n\r\n',
    haproxy: 'accepted',
    fulcrum: { verdict: 'refused', why: 'HAProxy forwards it as HTTP/1.1; Node parses HTTP/1.0 and 1.1 heads only' },
  },
  {
    name: 'Transfer-Encoding with Content-Length',
    bytes: 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n',
    haproxy: 'accepted',
    fulcrum: { verdict: 'refused', why: 'HAProxy drops the Content-Length and closes after; Node refuses the ambiguous framing (the smuggling shape)' },
  },
  {
    name: 'an absolute-form target',
    bytes: 'GET http://a/ok HTTP/1.1\r\nHost: a\r\n\r\n',
    haproxy: 'accepted',
    fulcrum: { verdict: 'refused', why: 'Fulcrum is a reverse proxy: absolute-form targets are for forward proxies' },
  },
];

function verdictOf(reply: RawReply): Verdict | `unexpected ${number}` {
  if (reply.status >= 200 && reply.status < 400) return 'accepted';
  if (reply.status >= 400 && reply.status < 500) return 'refused';
  // No status line at all: the connection was closed without an answer — a refusal.
  if (reply.status === 0 && reply.closedByServer) return 'refused';
  return `unexpected ${reply.status}`;
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Resolve once `port` accepts a connection (HAProxy is up), or reject when the child exits. */
function accepting(port: number, child: ChildProcess): Promise<void> {
  return new Promise((resolve, reject) => {
    let exited = false;
    child.once('exit', (code) => {
      exited = true;
      reject(new Error(`haproxy exited with ${code} before listening`));
    });
    const attempt = (): void => {
      if (exited) return;
      const socket = connect({ host: '127.0.0.1', port }, () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', () => setImmediate(attempt));
    };
    attempt();
  });
}

describe.skipIf(!present && !required)('HAProxy 2.6 and Fulcrum, fed the same bytes', () => {
  let backend: Server;
  let haproxy: ChildProcess | undefined;
  let haproxyPort = 0;
  let fulcrum: FulcrumInstance;
  let dir = '';
  const seen: { url: string; upgrade: string | undefined; xff: string | string[] | undefined }[] = [];

  beforeAll(async () => {
    if (!present) throw new Error(`${HAPROXY} is missing: under CI=true the differential test must run (apt-get install haproxy)`);
    backend = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        seen.push({ url: req.url ?? '', upgrade: req.headers.upgrade, xff: req.headers['x-forwarded-for'] });
        res.end('served');
      });
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const backendPort = (backend.address() as AddressInfo).port;
    haproxyPort = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'fulcrum-haproxy-'));
    const config = join(dir, 'haproxy.cfg');
    writeFileSync(
      config,
      [
        'global',
        '  maxconn 200',
        'defaults',
        '  mode http',
        '  timeout connect 2s',
        '  timeout client 2s',
        '  timeout server 2s',
        '  timeout http-request 2s',
        'frontend web',
        `  bind 127.0.0.1:${haproxyPort}`,
        '  option forwardfor',
        '  default_backend app',
        'backend app',
        `  server s1 127.0.0.1:${backendPort}`,
        '',
      ].join('\n'),
    );
    haproxy = spawn(HAPROXY, ['-f', config, '-db'], { stdio: ['ignore', 'ignore', 'ignore'] });
    await accepting(haproxyPort, haproxy);
    fulcrum = await startFulcrum(
      {
        frontends: [{ port: 0, host: '127.0.0.1' }],
        pools: { app: { backends: [{ id: 's1', address: `http://127.0.0.1:${backendPort}` }] } },
        server: { headersTimeoutMs: 2000, requestTimeoutMs: 2000 },
      },
      { logger: () => undefined },
    );
  }, 20_000);

  afterAll(async () => {
    haproxy?.kill('SIGKILL');
    await fulcrum?.close(500);
    backend?.closeAllConnections();
    await new Promise<void>((resolve) => (backend ? backend.close(() => resolve()) : resolve()));
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it.each(CASES.map((c) => [c.name, c] as const))('gives the verdict HAProxy gives (or the stated stricter one) for %s', async (_name, c) => {
    const [fromHaproxy, fromFulcrum] = await Promise.all([
      rawExchange(haproxyPort, c.bytes, 1000),
      rawExchange(fulcrum.addresses().frontends[0]!.port, c.bytes, 1000),
    ]);
    expect(verdictOf(fromHaproxy), `HAProxy answered ${JSON.stringify(fromHaproxy.text.slice(0, 60))}`).toBe(c.haproxy);
    const expected = c.fulcrum?.verdict ?? c.haproxy;
    expect(verdictOf(fromFulcrum), `Fulcrum answered ${JSON.stringify(fromFulcrum.text.slice(0, 60))}`).toBe(expected);
    // A refusal closes the connection, as HAProxy does: nothing after it is read as a request.
    if (expected === 'refused') expect(fromFulcrum.closedByServer).toBe(true);
  });

  it.each([
    ['websocket', 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'],
    ['h2c', 'Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n'],
  ])('treats the request after a refused %s upgrade as HAProxy does: a request of its own, with X-Forwarded-For', async (_kind, upgrade) => {
    const bytes = `GET /up HTTP/1.1\r\nHost: a\r\n${upgrade}\r\nGET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`;
    const results: Record<string, typeof seen> = {};
    for (const [name, port] of [
      ['haproxy', haproxyPort],
      ['fulcrum', fulcrum.addresses().frontends[0]!.port],
    ] as const) {
      seen.length = 0;
      const reply = await rawExchange(port, bytes, 2000);
      expect(reply.text.match(/HTTP\/1\.1 200/g)?.length, `${name} answered ${JSON.stringify(reply.text.slice(0, 80))}`).toBe(2);
      results[name] = seen.map((s) => ({ ...s }));
    }
    // Both deliver two requests, and the second carries the proxy's X-Forwarded-For: it was parsed
    // and forwarded as a request, not piped through a tunnel.
    for (const name of ['haproxy', 'fulcrum']) {
      expect(results[name]!.map((s) => s.url).sort(), name).toEqual(['/after', '/up']);
      expect(results[name]!.find((s) => s.url === '/after')!.xff, name).toBe('127.0.0.1');
    }
  });
});
