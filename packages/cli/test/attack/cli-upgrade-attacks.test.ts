/**
 * A refused upgrade through the `fulcrum` CLI, plaintext and TLS: the backend's answer is relayed,
 * and the next request on the same connection is parsed and served by the frontend again (the
 * connection goes back to its server), never piped blind to the backend. And the global connection
 * cap on a TLS frontend, which refuses the excess TCP connection before any handshake.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startFulcrum, validateConfig } from '../../src';
import { certDir, type CertDir } from '../../../http/test/tls/certs';
import { startBackend } from '../helpers';
import { RawConnection, count } from '../../../http/test/attack/raw';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

let certs: CertDir;
let work: string;
beforeAll(() => {
  certs = certDir();
  work = mkdtempSync(join(tmpdir(), 'fulcrum-upgrade-'));
  const pair = certs.make('a', 'a.test', ['a.test']);
  writeFileSync(join(work, 'a.crt'), pair.cert);
  writeFileSync(join(work, 'a.key'), pair.key);
});
afterAll(() => {
  certs.remove();
  rmSync(work, { recursive: true, force: true });
});

const UPGRADE_THEN_REQUEST =
  'GET /ws HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n' +
  'GET /next HTTP/1.1\r\nHost: a.test\r\n\r\n';

async function start(frontend: Record<string, unknown>) {
  const backend = await startBackend('b1');
  cleanups.push(() => backend.close());
  const config = validateConfig(
    { frontends: [{ port: 0, host: '127.0.0.1', ...frontend }], pools: { web: { backends: [{ id: 'b1', address: backend.url }] } } },
    { baseDir: work },
  );
  const fulcrum = await startFulcrum(config, { logger: () => undefined });
  cleanups.push(() => fulcrum.close(500));
  return { backend, port: fulcrum.addresses().frontends[0]!.port };
}

describe('a refused upgrade through the CLI', () => {
  it('serves the next request on a plaintext connection through the frontend', async () => {
    const { backend, port } = await start({});
    const conn = await RawConnection.open(port);
    cleanups.push(() => conn.destroy());
    conn.write(UPGRADE_THEN_REQUEST);
    const text = await conn.until((t) => count(t, 'b1') === 2 && count(t, 'HTTP/1.1 200') === 2);
    expect(text.startsWith('HTTP/1.1 200')).toBe(true);
    expect(backend.hits).toBe(2);
    expect(conn.closed).toBe(false);
  });

  it('serves the next request on a TLS connection through the frontend', async () => {
    const { backend, port } = await start({ tls: { certs: [{ cert: 'a.crt', key: 'a.key' }] } });
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'a.test', rejectUnauthorized: false });
    cleanups.push(() => socket.destroy());
    let text = '';
    await new Promise<void>((resolve, reject) => {
      socket.once('secureConnect', () => socket.write(UPGRADE_THEN_REQUEST));
      socket.on('data', (c: Buffer) => {
        text += c.toString('latin1');
        if (count(text, 'b1') === 2) resolve();
      });
      socket.once('close', () => reject(new Error(`closed after ${JSON.stringify(text)}`)));
      socket.once('error', reject);
    });
    expect(count(text, 'HTTP/1.1 200')).toBe(2);
    expect(backend.hits).toBe(2);
  });
});

describe('the global connection cap on a TLS frontend', () => {
  it('closes the excess TCP connection before its handshake and keeps serving the first', async () => {
    const capped = await startFulcrum(
      validateConfig(
        {
          frontends: [{ port: 0, host: '127.0.0.1', tls: { certs: [{ cert: 'a.crt', key: 'a.key' }] } }],
          pools: { web: { backends: [{ id: 'b1', address: 'http://127.0.0.1:1' }] } },
          server: { maxConnections: 1 },
        },
        { baseDir: work },
      ),
      { logger: () => undefined },
    );
    cleanups.push(() => capped.close(500));
    const cport = capped.addresses().frontends[0]!.port;
    const first = tlsConnect({ host: '127.0.0.1', port: cport, servername: 'a.test', rejectUnauthorized: false });
    cleanups.push(() => first.destroy());
    await new Promise<void>((resolve, reject) => {
      first.once('secureConnect', () => resolve());
      first.once('error', reject);
    });
    const second = tlsConnect({ host: '127.0.0.1', port: cport, servername: 'a.test', rejectUnauthorized: false });
    cleanups.push(() => second.destroy());
    const outcome = await new Promise<string>((resolve) => {
      second.once('secureConnect', () => resolve('handshake'));
      second.once('error', () => resolve('refused'));
      second.once('close', () => resolve('refused'));
    });
    expect(outcome).toBe('refused');
    // The first connection is still served (the pool's backend is down: a 502 or 503 is an answer).
    first.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n');
    const answer = await new Promise<string>((resolve) => first.once('data', (c: Buffer) => resolve(c.toString('latin1'))));
    expect(answer).toMatch(/^HTTP\/1\.1 50[23] /);
  });
});
