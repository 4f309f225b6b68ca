import { createServer, request } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInvalidOptionError } from '@fulcrum/core';
import { redirectToHttps, type RedirectToHttpsOptions } from '../../src/tls';

/** Send raw bytes (so Host and the target can be anything) and return status line and Location. */
function raw(port: number, head: string): Promise<{ status: number; location: string | undefined }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      if (text.includes('\r\n\r\n')) {
        socket.destroy();
        resolve({ status: Number(text.slice(9, 12)), location: /\r\nlocation: ([^\r]*)/i.exec(text)?.[1] });
      }
    });
    socket.on('error', reject);
    socket.write(head);
  });
}

const servers: { close(): Promise<void> }[] = [];
async function serve(options?: RedirectToHttpsOptions): Promise<number> {
  const server = createServer(redirectToHttps(options));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push({
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  });
  return (server.address() as AddressInfo).port;
}

let plain: number;
let custom: number;
beforeAll(async () => {
  plain = await serve();
  custom = await serve({ port: 8443, hosts: ['example.com', '*.example.net'] });
});
afterAll(async () => {
  for (const s of servers.splice(0)) await s.close();
});

describe('redirectToHttps', () => {
  it('answers GET and HEAD with 301 to the same host, path and query over https', async () => {
    expect(await raw(plain, 'GET /a/b?x=1&y=%2F HTTP/1.1\r\nHost: Example.COM:80\r\n\r\n')).toEqual({
      status: 301,
      location: 'https://example.com/a/b?x=1&y=%2F',
    });
    expect(await raw(plain, 'HEAD / HTTP/1.1\r\nHost: example.com\r\n\r\n')).toEqual({ status: 301, location: 'https://example.com/' });
  });

  it('answers other methods with 308 so the method and body are kept', async () => {
    const result = await new Promise<{ status: number; location: string | undefined }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: plain, method: 'POST', path: '/form', headers: { host: 'example.com' }, agent: false }, (res) => {
        res.resume();
        resolve({ status: res.statusCode ?? 0, location: res.headers.location });
      });
      req.on('error', reject);
      req.end('a=1');
    });
    expect(result).toEqual({ status: 308, location: 'https://example.com/form' });
  });

  it('uses the configured https port and accepts only the configured hosts', async () => {
    expect(await raw(custom, 'GET /p HTTP/1.1\r\nHost: example.com\r\n\r\n')).toEqual({ status: 301, location: 'https://example.com:8443/p' });
    expect(await raw(custom, 'GET /p HTTP/1.1\r\nHost: a.b.example.net\r\n\r\n')).toEqual({ status: 301, location: 'https://a.b.example.net:8443/p' });
    expect((await raw(custom, 'GET /p HTTP/1.1\r\nHost: evil.com\r\n\r\n')).status).toBe(421);
    expect((await raw(custom, 'GET /p HTTP/1.1\r\nHost: example.net\r\n\r\n')).status).toBe(421);
    expect((await raw(custom, 'GET /p HTTP/1.1\r\nHost: evilexample.com\r\n\r\n')).status).toBe(421);
  });

  it('refuses malformed Host values with 400 so none can redirect to another origin', async () => {
    for (const host of ['evil.com/x', 'user@evil.com', 'evil.com:80:80', 'evil.com\\x', '', 'a b']) {
      const result = await raw(plain, `GET /p HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
      expect(result.status, host).toBe(400);
      expect(result.location).toBeUndefined();
    }
    expect((await raw(plain, 'GET /p HTTP/1.0\r\n\r\n')).status).toBe(400);
  });

  it('refuses absolute-form and asterisk targets with 400', async () => {
    expect((await raw(plain, 'GET http://evil.com/p HTTP/1.1\r\nHost: example.com\r\n\r\n')).status).toBe(400);
    expect((await raw(plain, 'OPTIONS * HTTP/1.1\r\nHost: example.com\r\n\r\n')).status).toBe(400);
  });

  it('validates its options', () => {
    for (const [options, path] of [
      [{ port: 0 }, 'port'],
      [{ hosts: [] }, 'hosts'],
      [{ hosts: ['ok.com', 'bad host'] }, 'hosts[1]'],
      [{ prot: 1 }, 'prot'],
    ] as const) {
      try {
        redirectToHttps(options as RedirectToHttpsOptions);
        expect.unreachable();
      } catch (error) {
        expect(isInvalidOptionError(error) && error.path).toBe(path);
      }
    }
  });
});
