import { request as httpsRequest, createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { connect, createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInvalidOptionError } from '@fulcrum/core';
import { createTlsContext, tlsOptions, type TlsContext } from '../../src/tls';
import { certDir, type CertDir, type TestCert } from './certs';

let dir: CertDir;
let a: TestCert;
let aV2: TestCert;
let wild: TestCert;
let fallback: TestCert;
let cnOnly: TestCert;

beforeAll(() => {
  dir = certDir();
  a = dir.make('a', 'a.test', ['a.test', 'www.a.test']);
  aV2 = dir.make('a2', 'a.test v2', ['a.test']);
  wild = dir.make('wild', 'wild', ['*.wild.test']);
  fallback = dir.make('default', 'default.test', ['default.test']);
  cnOnly = dir.make('cn', 'cn.test', []);
});
afterAll(() => dir.remove());

/** An echo server over TLS with the given context; every socket is tracked for cleanup. */
async function echoServer(context: TlsContext): Promise<{ server: TlsServer; port: number; close(): Promise<void> }> {
  const sockets = new Set<TLSSocket>();
  const server = createTlsServer(context.serverOptions, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  context.attach(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Connect with (or without) SNI; resolves with the socket and the CN it was served. */
function open(port: number, servername?: string): Promise<{ socket: TLSSocket; cn: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...(servername === undefined ? {} : { servername }) }, () => {
      resolve({ socket, cn: String(socket.getPeerCertificate().subject.CN) });
    });
    socket.once('error', reject);
  });
}

async function cnFor(port: number, servername?: string): Promise<string> {
  const { socket, cn } = await open(port, servername);
  socket.destroy();
  return cn;
}

function echo(socket: TLSSocket, text: string): Promise<string> {
  return new Promise((resolve) => {
    socket.once('data', (chunk: Buffer) => resolve(chunk.toString()));
    socket.write(text);
  });
}

describe('createTlsContext: SNI selection', () => {
  it('serves each name its certificate, wildcards one label deep, and the first certificate otherwise', async () => {
    const context = createTlsContext({ certs: [fallback, a, wild] });
    const { port, close } = await echoServer(context);
    try {
      expect(await cnFor(port, 'a.test')).toBe('a.test');
      expect(await cnFor(port, 'WWW.A.TEST')).toBe('a.test');
      expect(await cnFor(port, 'x.wild.test')).toBe('wild');
      expect(await cnFor(port, 'x.y.wild.test')).toBe('default.test');
      expect(await cnFor(port, 'wild.test')).toBe('default.test');
      expect(await cnFor(port, 'evila.test')).toBe('default.test');
      expect(await cnFor(port)).toBe('default.test');
    } finally {
      await close();
    }
    expect(context.servernames).toEqual(['default.test', 'a.test', 'www.a.test', '*.wild.test']);
  });

  it('uses the certificate marked default, explicit servernames, and the CN of a certificate without SAN', async () => {
    const context = createTlsContext({ certs: [a, { ...fallback, default: true }, { ...wild, servernames: ['other.test'] }, cnOnly] });
    const { port, close } = await echoServer(context);
    try {
      expect(await cnFor(port)).toBe('default.test');
      expect(await cnFor(port, 'other.test')).toBe('wild');
      expect(await cnFor(port, 'x.wild.test')).toBe('default.test');
      expect(await cnFor(port, 'cn.test')).toBe('cn.test');
    } finally {
      await close();
    }
  });

  it('builds https.createServer options that serve real HTTPS requests', async () => {
    const server = createHttpsServer(tlsOptions({ certs: [a] }), (_req, res) => res.end('secure'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const body = await new Promise<string>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, servername: 'a.test', ca: a.cert, headers: { host: 'a.test' }, agent: false }, (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c));
          res.on('end', () => resolve(text));
        });
        req.on('error', reject);
        req.end();
      });
      // `ca: a.cert` with default verification: the chosen certificate is valid for a.test.
      expect(body).toBe('secure');
    } finally {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it.each([
    [{ certs: [] }, 'certs'],
    [{ certs: [{ cert: 'not pem', key: 'x' }] }, 'certs[0].cert'],
    [{ certs: [{ cert: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n', key: '-----BEGIN PRIVATE KEY-----\n' }] }, 'certs[0].cert'],
    [{ minVersion: 'TLSv1' }, 'minVersion'],
  ])('refuses %j at %s', (options, path) => {
    try {
      createTlsContext({ certs: [a], ...(options as object) } as never);
      expect.unreachable();
    } catch (error) {
      expect(isInvalidOptionError(error) && error.path).toBe(path);
    }
  });

  it('refuses a key that does not belong to its certificate, without echoing the key', () => {
    try {
      createTlsContext({ certs: [a, { cert: wild.cert, key: a.key }] });
      expect.unreachable();
    } catch (error) {
      expect(isInvalidOptionError(error) && error.path).toBe('certs[1].key');
      expect(String((error as Error).message)).not.toContain('PRIVATE KEY');
    }
  });

  it('refuses two defaults and invalid servernames', () => {
    const paths = [
      () =>
        createTlsContext({
          certs: [
            { ...a, default: true },
            { ...wild, default: true },
          ],
        }),
      () => createTlsContext({ certs: [{ ...a, servernames: ['bad name'] }] }),
    ].map((fn) => {
      try {
        fn();
        return 'no error';
      } catch (error) {
        return isInvalidOptionError(error) ? error.path : 'other error';
      }
    });
    expect(paths).toEqual(['certs[1].default', 'certs[0].servernames[0]']);
  });
});

describe('createTlsContext: reload', () => {
  it('swaps certificates for new handshakes without dropping an open connection', async () => {
    const context = createTlsContext({ certs: [a, wild] });
    const { port, close } = await echoServer(context);
    try {
      const before = await open(port, 'a.test');
      expect(before.cn).toBe('a.test');
      expect(await echo(before.socket, 'one')).toBe('one');

      await context.reload([aV2, wild]);

      expect(await cnFor(port, 'a.test')).toBe('a.test v2');
      // No SNI: the attached server's default context was replaced too.
      expect(await cnFor(port)).toBe('a.test v2');
      // The connection negotiated before the reload is still up and still served.
      expect(before.socket.destroyed).toBe(false);
      expect(await echo(before.socket, 'two')).toBe('two');
      before.socket.destroy();
    } finally {
      await close();
    }
  });

  it('keeps the old certificates when the new ones are invalid', async () => {
    const context = createTlsContext({ certs: [a] });
    const { port, close } = await echoServer(context);
    try {
      await expect(context.reload([{ cert: aV2.cert, key: wild.key }])).rejects.toMatchObject({ path: 'certs[0].key' });
      expect(await cnFor(port, 'a.test')).toBe('a.test');
      expect(context.servernames).toEqual(['a.test', 'www.a.test']);
    } finally {
      await close();
    }
  });
});

describe('createTlsContext: renegotiation', () => {
  /** Renegotiate from the client side of a TLS 1.2 connection; resolves with the error, or undefined if the server went along. */
  async function renegotiate(port: number, servername: string | undefined): Promise<Error | undefined> {
    const socket = await new Promise<TLSSocket>((resolve, reject) => {
      const s = connect(
        { host: '127.0.0.1', port, rejectUnauthorized: false, maxVersion: 'TLSv1.2', ...(servername === undefined ? {} : { servername }) },
        () => resolve(s),
      );
      s.once('error', reject);
    });
    expect(socket.getProtocol()).toBe('TLSv1.2');
    expect(await echo(socket, 'before')).toBe('before');
    const error = await new Promise<Error | undefined>((resolve) => {
      // A refusal arrives as the server's no_renegotiation alert: OpenSSL fails the connection with
      // an EPROTO error (the renegotiate callback then never runs). Success calls back with null.
      socket.once('error', resolve);
      const started = socket.renegotiate({ rejectUnauthorized: false }, (err) => resolve(err ?? undefined));
      if (!started) resolve(new Error('renegotiate() refused to start'));
      // Application data after the ClientHello makes both sides process the handshake records.
      socket.write('after');
    });
    socket.destroy();
    return error;
  }

  it('refuses a client-initiated renegotiation on TLS 1.2, with and without SNI, as HAProxy and nginx do', async () => {
    const context = createTlsContext({ certs: [fallback, a] });
    const { port, close } = await echoServer(context);
    try {
      for (const servername of [undefined, 'a.test']) {
        const error = await renegotiate(port, servername);
        expect(error, `renegotiation with SNI ${servername}`).toBeInstanceOf(Error);
        expect(error!.message).toContain('no renegotiation');
      }
    } finally {
      await close();
    }
  });

  it('still refuses renegotiation after the certificates were reloaded', async () => {
    const context = createTlsContext({ certs: [a] });
    const { port, close } = await echoServer(context);
    try {
      await context.reload([aV2]);
      expect((await renegotiate(port, 'a.test'))?.message).toContain('no renegotiation');
      expect((await renegotiate(port, undefined))?.message).toContain('no renegotiation');
    } finally {
      await close();
    }
  });
});
