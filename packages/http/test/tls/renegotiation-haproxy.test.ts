// Client-initiated TLS renegotiation, Fulcrum against a real HAProxy (Debian's `haproxy`) fed the
// same client: both must refuse it the same way. Skips when HAProxy is not installed, except under
// CI=true, where it must run (.ci/run installs it).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTlsContext } from '../../src/tls';
import { certDir, type CertDir } from './certs';

const HAPROXY = ['/usr/sbin/haproxy', '/usr/local/sbin/haproxy'].find((path) => spawnSync(path, ['-v'], { stdio: 'ignore' }).status === 0);
const required = process.env.CI === 'true';

/** Renegotiate from the client on a TLS 1.2 connection; the error, or `undefined` if the server went along. */
async function renegotiate(port: number): Promise<Error | undefined> {
  const socket = await new Promise<TLSSocket>((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, maxVersion: 'TLSv1.2', servername: 'a.test' }, () => resolve(s));
    s.once('error', reject);
  });
  expect(socket.getProtocol()).toBe('TLSv1.2');
  // Data first, so both servers are past the handshake and relaying.
  const echoed = await new Promise<string>((resolve) => {
    socket.once('data', (chunk: Buffer) => resolve(chunk.toString()));
    socket.write('ping');
  });
  expect(echoed).toBe('ping');
  const error = await new Promise<Error | undefined>((resolve) => {
    socket.once('error', resolve);
    if (!socket.renegotiate({ rejectUnauthorized: false }, (err) => resolve(err ?? undefined))) resolve(new Error('renegotiate() refused to start'));
    socket.write('after');
  });
  socket.destroy();
  return error;
}

describe.skipIf(HAPROXY === undefined && !required)('TLS renegotiation: Fulcrum and HAProxy 2.6 refuse it alike', () => {
  let certs: CertDir;
  let work: string;
  let echo: NetServer;
  let fulcrum: TlsServer;
  let haproxy: ChildProcess | undefined;
  let haproxyPort = 0;
  const sockets = new Set<Socket>();

  beforeAll(async () => {
    if (HAPROXY === undefined) throw new Error('CI=true but no haproxy binary (apt-get install haproxy)');
    certs = certDir();
    const pair = certs.make('a', 'a.test', ['a.test']);
    work = mkdtempSync(join(tmpdir(), 'fulcrum-haproxy-tls-'));
    writeFileSync(join(work, 'a.pem'), `${pair.cert}${pair.key}`);
    // The plaintext echo both TLS terminators relay to.
    echo = createNetServer((socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
    const echoPort = (echo.address() as AddressInfo).port;

    const context = createTlsContext({ certs: [pair] });
    fulcrum = createTlsServer(context.serverOptions, (socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
      socket.pipe(socket);
    });
    context.attach(fulcrum);
    await new Promise<void>((resolve) => fulcrum.listen(0, '127.0.0.1', resolve));

    // A free port for HAProxy: bind one, release it, hand it over.
    const probe = createNetServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    haproxyPort = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    writeFileSync(
      join(work, 'haproxy.cfg'),
      [
        'global',
        '  maxconn 100',
        'defaults',
        '  mode tcp',
        '  timeout connect 2s',
        '  timeout client 10s',
        '  timeout server 10s',
        'frontend tls',
        `  bind 127.0.0.1:${haproxyPort} ssl crt ${join(work, 'a.pem')}`,
        '  default_backend echo',
        'backend echo',
        `  server echo 127.0.0.1:${echoPort}`,
        '',
      ].join('\n'),
    );
    const check = spawnSync(HAPROXY, ['-c', '-f', join(work, 'haproxy.cfg')], { encoding: 'utf8' });
    if (check.status !== 0) throw new Error(`haproxy -c failed: ${check.stdout}${check.stderr}`);
    haproxy = spawn(HAPROXY, ['-db', '-f', join(work, 'haproxy.cfg')], { stdio: ['ignore', 'ignore', 'pipe'] });
    // Ready once it accepts a connection (each refused attempt is an event, not a sleep).
    for (let attempt = 0; ; attempt++) {
      const ok = await new Promise<boolean>((resolve) => {
        const s = connect({ host: '127.0.0.1', port: haproxyPort, rejectUnauthorized: false }, () => {
          s.destroy();
          resolve(true);
        });
        s.once('error', () => resolve(false));
      });
      if (ok) break;
      if (attempt > 100) throw new Error('haproxy did not start listening');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }, 30_000);

  afterAll(async () => {
    haproxy?.kill('SIGKILL');
    for (const socket of sockets) socket.destroy();
    await Promise.all([new Promise((resolve) => fulcrum?.close(resolve)), new Promise((resolve) => echo?.close(resolve))]);
    certs?.remove();
    if (work !== undefined) rmSync(work, { recursive: true, force: true });
  });

  it('answers a client renegotiation with the same no_renegotiation refusal as HAProxy', async () => {
    const theirs = await renegotiate(haproxyPort);
    const ours = await renegotiate((fulcrum.address() as AddressInfo).port);
    expect(theirs, 'HAProxy refuses it').toBeInstanceOf(Error);
    expect(ours, 'Fulcrum refuses it').toBeInstanceOf(Error);
    // The client's OpenSSL names the alert it received: the same one from both.
    expect(theirs!.message).toContain('no renegotiation');
    expect(ours!.message).toContain('no renegotiation');
    expect((ours as NodeJS.ErrnoException).code).toBe((theirs as NodeJS.ErrnoException).code);
  });
});
