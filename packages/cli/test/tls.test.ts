// TLS frontends of the runner: SNI selection through a running instance, certificates swapped by a
// config reload while a connection stays open, and a redirect-to-https frontend. Certificates are
// throwaway ones made by `openssl` in a temp dir (test/tls/certs.ts).
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request as httpsRequest } from 'node:https';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFulcrum, validateConfig, validateConfigAsync, type FulcrumInstance } from '../src';
import { certDir, type CertDir } from '../../http/test/tls/certs';
import { get, startBackend } from './helpers';

const quiet = (): void => undefined;
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

let certs: CertDir;
let work: string;
beforeAll(() => {
  certs = certDir();
  work = mkdtempSync(join(tmpdir(), 'fulcrum-cli-tls-'));
  // Files the config points at: a.test, b.test, and a renewed a.test written over the first later.
  for (const [name, cn, dns] of [
    ['a', 'a.test', ['a.test']],
    ['a-renewed', 'a.test renewed', ['a.test']],
    ['b', 'b.test', ['b.test', '*.b.test']],
  ] as const) {
    const pair = certs.make(name, cn, dns);
    writeFileSync(join(work, `${name}.crt`), pair.cert);
    writeFileSync(join(work, `${name}.key`), pair.key);
  }
  copyFileSync(join(work, 'a.crt'), join(work, 'live.crt'));
  copyFileSync(join(work, 'a.key'), join(work, 'live.key'));
});
afterAll(() => {
  certs.remove();
  rmSync(work, { recursive: true, force: true });
});

interface TlsReply {
  status: number;
  body: string;
  cn: string;
  reused: boolean;
  headers: Record<string, string | string[] | undefined>;
}

/** One https request to 127.0.0.1 with the given SNI (none when undefined); reports the certificate's CN. */
function tlsGet(port: number, path: string, servername: string | undefined, agent: Agent | false = false): Promise<TlsReply> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        agent,
        rejectUnauthorized: false,
        ...(servername === undefined ? {} : { servername }),
        headers: agent === false ? { connection: 'close' } : {},
      },
      (res) => {
        const socket = res.socket as TLSSocket;
        const cn = String(socket.getPeerCertificate().subject.CN);
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), cn, reused: req.reusedSocket, headers: res.headers }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** A WebSocket handshake in clear text; resolves with what the server answered before closing. */
function upgradeOver(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(
        'GET /ws HTTP/1.1\r\nhost: a.test\r\nconnection: upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
    });
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
}

async function startWithFile(config: unknown): Promise<{ fulcrum: FulcrumInstance; file: string }> {
  const file = join(work, `fulcrum-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(config));
  cleanups.push(() => rmSync(file, { force: true }));
  const fulcrum = await startFulcrum(validateConfig(config, { baseDir: work }), { configFile: file, watch: false, logger: quiet });
  cleanups.push(() => fulcrum.close(1000));
  return { fulcrum, file };
}

describe('startFulcrum: TLS frontends', () => {
  it('picks the certificate by SNI, exact and wildcard names, and the first one without SNI', async () => {
    const backend = await startBackend('b1');
    cleanups.push(() => backend.close());
    const { fulcrum } = await startWithFile({
      frontends: [
        {
          port: 0,
          host: '127.0.0.1',
          tls: {
            certs: [
              { cert: 'a.crt', key: 'a.key' },
              { cert: 'b.crt', key: 'b.key' },
            ],
          },
        },
      ],
      pools: { web: { backends: [{ id: 'b1', address: backend.url }] } },
    });
    const port = fulcrum.addresses().frontends[0]!.port;
    expect(await tlsGet(port, '/', 'a.test')).toMatchObject({ status: 200, body: 'b1', cn: 'a.test' });
    expect((await tlsGet(port, '/', 'b.test')).cn).toBe('b.test');
    expect((await tlsGet(port, '/', 'api.b.test')).cn).toBe('b.test');
    expect((await tlsGet(port, '/', 'unknown.test')).cn).toBe('a.test');
    expect((await tlsGet(port, '/', undefined)).cn).toBe('a.test');
  });

  it('swaps certificates on a config reload without dropping an open connection', async () => {
    const backend = await startBackend('b1');
    cleanups.push(() => backend.close());
    const { fulcrum } = await startWithFile({
      frontends: [{ port: 0, host: '127.0.0.1', tls: { certs: [{ cert: 'live.crt', key: 'live.key' }] } }],
      pools: { web: { backends: [{ id: 'b1', address: backend.url }] } },
    });
    const port = fulcrum.addresses().frontends[0]!.port;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    const before = await tlsGet(port, '/', 'a.test', agent);
    expect(before).toMatchObject({ status: 200, cn: 'a.test', reused: false });

    // The renewal lands on disk (as certbot or consul-template would write it), then a reload.
    copyFileSync(join(work, 'a-renewed.crt'), join(work, 'live.crt'));
    copyFileSync(join(work, 'a-renewed.key'), join(work, 'live.key'));
    await fulcrum.reload();

    // The open connection keeps working on what it negotiated…
    const same = await tlsGet(port, '/', 'a.test', agent);
    expect(same).toMatchObject({ status: 200, body: 'b1', cn: 'a.test', reused: true });
    // …and new handshakes, with and without SNI, get the renewed certificate.
    expect((await tlsGet(port, '/', 'a.test')).cn).toBe('a.test renewed');
    expect((await tlsGet(port, '/', undefined)).cn).toBe('a.test renewed');
  });

  it('refuses a reload whose key does not match its certificate and keeps serving the old one', async () => {
    const backend = await startBackend('b1');
    cleanups.push(() => backend.close());
    const good = {
      frontends: [{ port: 0, host: '127.0.0.1', tls: { certs: [{ cert: 'a.crt', key: 'a.key' }] } }],
      pools: { web: { backends: [{ id: 'b1', address: backend.url }] } },
    };
    const { fulcrum, file } = await startWithFile(good);
    const port = fulcrum.addresses().frontends[0]!.port;
    writeFileSync(file, JSON.stringify({ ...good, frontends: [{ port: 0, host: '127.0.0.1', tls: { certs: [{ cert: 'b.crt', key: 'a.key' }] } }] }));
    await expect(fulcrum.reload()).rejects.toThrow(/^frontends\[0\]\.tls\.certs\[0\]\.key: must be the private key/);
    expect((await tlsGet(port, '/', 'a.test')).cn).toBe('a.test');
  });
});

describe('startFulcrum: TLS renegotiation', () => {
  it('refuses a client-initiated renegotiation on a TLS frontend after serving a request on the connection', async () => {
    const backend = await startBackend('b1');
    cleanups.push(() => backend.close());
    const { fulcrum } = await startWithFile({
      frontends: [{ port: 0, host: '127.0.0.1', tls: { certs: [{ cert: 'a.crt', key: 'a.key' }] } }],
      pools: { web: { backends: [{ id: 'b1', address: backend.url }] } },
    });
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const s = tlsConnect(
        { host: '127.0.0.1', port: fulcrum.addresses().frontends[0]!.port, servername: 'a.test', rejectUnauthorized: false, maxVersion: 'TLSv1.2' },
        () => resolve(s),
      );
      s.once('error', reject);
    });
    cleanups.push(() => socket.destroy());
    const head = await new Promise<string>((resolve) => {
      socket.once('data', (chunk: Buffer) => resolve(chunk.toString('latin1')));
      socket.write('GET / HTTP/1.1\r\nhost: a.test\r\n\r\n');
    });
    expect(head).toMatch(/^HTTP\/1\.1 200 /);
    const error = await new Promise<Error | undefined>((resolve) => {
      socket.once('error', resolve);
      if (!socket.renegotiate({ rejectUnauthorized: false }, (err) => resolve(err ?? undefined))) resolve(new Error('renegotiate() refused to start'));
      socket.write('GET / HTTP/1.1\r\nhost: a.test\r\n\r\n');
    });
    expect(error?.message).toContain('no renegotiation');
  });
});

describe('validateConfig: TLS and redirect frontends', () => {
  const pools = { web: { backends: [] } };

  it('checks that each key matches its certificate, so --check catches it', () => {
    expect(() => validateConfig({ frontends: [{ port: 8443, tls: { certs: [{ cert: 'a.crt', key: 'b.key' }] } }], pools }, { baseDir: work })).toThrow(
      /^frontends\[0\]\.tls\.certs\[0\]\.key: must be the private key/,
    );
  });

  it('refuses a redirect on a TLS frontend and keeps a valid redirect as given', () => {
    expect(() =>
      validateConfig({ frontends: [{ port: 8443, tls: { certs: [{ cert: 'a.crt', key: 'a.key' }] }, redirectToHttps: {} }], pools }, { baseDir: work }),
    ).toThrow('frontends[0].redirectToHttps: must not be set on a TLS frontend');
    const config = validateConfig({
      frontends: [
        { port: 80, redirectToHttps: { port: 8443, hosts: ['a.test'] } },
        { port: 81, redirectToHttps: {} },
      ],
      pools,
    });
    expect(config.frontends.map((f) => f.redirectToHttps)).toEqual([{ port: 8443, hosts: ['a.test'] }, {}]);
  });
});

describe('startFulcrum: redirectToHttps frontends', () => {
  it('redirects every request to https on the configured port, and serves the proxy on the TLS frontend', async () => {
    const backend = await startBackend('b1');
    cleanups.push(() => backend.close());
    const config = (port: number) => ({
      frontends: [
        { port: 0, host: '127.0.0.1', redirectToHttps: { port } },
        { port: 0, host: '127.0.0.1', tls: { certs: [{ cert: 'a.crt', key: 'a.key' }] } },
      ],
      pools: { web: { backends: [{ id: 'b1', address: backend.url }] } },
      admin: { path: '/fulcrum/admin', token: 'admin-token-0123456789abcdef' },
    });
    const { fulcrum, file } = await startWithFile(config(8443));
    const [plain, secure] = fulcrum.addresses().frontends as [AddressInfo, AddressInfo];

    const redirected = await get(plain.port, '/shop/cart?id=7', { headers: { host: 'a.test' } });
    expect(redirected.status).toBe(301);
    expect(redirected.headers.location).toBe('https://a.test:8443/shop/cart?id=7');
    const post = await get(plain.port, '/form', { method: 'POST', headers: { host: 'a.test' }, body: 'x=1' });
    expect(post.status).toBe(308);
    // Nothing is proxied, and the admin API is not reachable in clear text.
    expect((await get(plain.port, '/fulcrum/admin/state', { headers: { host: 'a.test' } })).status).toBe(301);
    expect((await get(plain.port, '/', { headers: { host: 'evil.test/x' } })).status).toBe(400);
    expect(await upgradeOver(plain.port)).toMatch(/^HTTP\/1\.1 400 /);
    expect(backend.hits).toBe(0);
    expect((await tlsGet(secure.port, '/', 'a.test')).body).toBe('b1');

    // A reload changes the target port on the same listening socket.
    writeFileSync(file, JSON.stringify(config(443)));
    await fulcrum.reload();
    expect(fulcrum.addresses().frontends[0]!.port).toBe(plain.port);
    expect((await get(plain.port, '/x', { headers: { host: 'a.test' } })).headers.location).toBe('https://a.test/x');
  });
});

describe('certificate paths that are not regular files', () => {
  let special: string;
  beforeAll(() => {
    special = mkdtempSync(join(tmpdir(), 'fulcrum-cli-fifo-'));
    execFileSync('mkfifo', [join(special, 'cert.fifo')]);
  });
  afterAll(() => rmSync(special, { recursive: true, force: true }));

  it.each([
    ['a FIFO', () => join(special, 'cert.fifo'), 'is a FIFO (named pipe), not a regular file'],
    ['/dev/urandom', () => '/dev/urandom', 'is a character device, not a regular file'],
    ['a directory', () => special, 'is a directory, not a regular file'],
  ])('refuses %s as a certificate with a named error, asynchronously and synchronously, without waiting on it', async (_what, path, reason) => {
    const config = { frontends: [{ port: 8443, tls: { certs: [{ cert: path(), key: 'a.key' }] } }], pools: { web: { backends: [] } } };
    const message = `frontends[0].tls.certs[0].cert: must be a readable regular file of at most 1 MiB, but it ${reason}`;
    await expect(validateConfigAsync(config, { baseDir: work })).rejects.toThrow(message);
    expect(() => validateConfig(config, { baseDir: work })).toThrow(message);
  });

  it('refuses a key file over 1 MiB', async () => {
    const big = join(special, 'big.key');
    writeFileSync(big, `-----BEGIN PRIVATE KEY-----\n${'A'.repeat(1024 * 1024)}\n`);
    await expect(
      validateConfigAsync({ frontends: [{ port: 8443, tls: { certs: [{ cert: 'a.crt', key: big }] } }], pools: { web: { backends: [] } } }, { baseDir: work }),
    ).rejects.toThrow(
      /^frontends\[0\]\.tls\.certs\[0\]\.key: must be a readable regular file of at most 1 MiB, but it is \d+ bytes, over the 1048576-byte limit/,
    );
  });

  it('keeps the old config and certificate when a reload names a FIFO, and the proxy keeps answering', async () => {
    const backend = await startBackend('b1');
    cleanups.push(() => backend.close());
    const good = {
      frontends: [{ port: 0, host: '127.0.0.1', tls: { certs: [{ cert: 'a.crt', key: 'a.key' }] } }],
      pools: { web: { backends: [{ id: 'b1', address: backend.url }] } },
    };
    const { fulcrum, file } = await startWithFile(good);
    const port = fulcrum.addresses().frontends[0]!.port;
    writeFileSync(
      file,
      JSON.stringify({ ...good, frontends: [{ port: 0, host: '127.0.0.1', tls: { certs: [{ cert: join(special, 'cert.fifo'), key: 'a.key' }] } }] }),
    );
    // A blocking read of the FIFO would never return (nothing writes to it): the reload would hang
    // and, being on the event loop, so would every request.
    await expect(fulcrum.reload()).rejects.toThrow('frontends[0].tls.certs[0].cert: must be a readable regular file of at most 1 MiB, but it is a FIFO');
    expect(await tlsGet(port, '/', 'a.test')).toMatchObject({ status: 200, body: 'b1', cn: 'a.test' });
  });
});
