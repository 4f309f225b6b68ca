/**
 * Connection-level attacks on the `fulcrum` CLI's frontends, over raw sockets: slowloris heads that
 * never finish, clients that never close their half, and floods of idle connections. The proxy must
 * destroy what it times out (not half-close it and wait for a FIN that never comes), hold its
 * header/request timeouts to within a second, and refuse connections past its caps.
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startFulcrum, type FulcrumInstance } from '../../src';
import { startBackend } from '../helpers';
import { RawConnection } from '../../../http/test/attack/raw';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function start(config: Record<string, unknown>): Promise<FulcrumInstance> {
  const backend = await startBackend('b1');
  cleanups.push(() => backend.close());
  const instance = await startFulcrum({ pools: { web: { backends: [{ id: 'b1', address: backend.url }] } }, ...config }, { logger: () => undefined });
  cleanups.push(() => instance.close(500));
  return instance;
}

/** A client that never sends its FIN (allowHalfOpen), to see whether the server destroys or waits. */
function halfOpenClient(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Resolves with what the server sent once it has sent its FIN; the client stays silent. */
function serverFin(socket: Socket): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
    });
    socket.on('error', () => undefined);
    socket.once('end', () => resolve(text));
  });
}

/**
 * Whether a new connection is served: the cap counts a connection until the server has destroyed
 * it, so a half-closed one (waiting for a FIN that never comes) keeps the cap full. Node counts a
 * destroyed connection down when its handle has closed: a few tries absorb that.
 */
async function servedAgain(port: number): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    const conn = await RawConnection.open(port);
    conn.write('GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    await conn.closedPromise();
    if (conn.text.endsWith('b1')) return true;
  }
  return false;
}

describe('slowloris heads on a frontend', () => {
  it('destroys every connection whose head is unfinished (408) or never started after headersTimeoutMs, though the client never closes its half', async () => {
    const fulcrum = await start({
      frontends: [{ port: 0, host: '127.0.0.1' }],
      server: { headersTimeoutMs: 300, requestTimeoutMs: 600, maxConnections: 20 },
    });
    const port = fulcrum.addresses().frontends[0]!.port;
    const clients = await Promise.all(Array.from({ length: 20 }, () => halfOpenClient(port)));
    for (const c of clients) cleanups.push(() => c.destroy());
    // Half of them start a head and stall; the other half never send a byte.
    const answers = clients.map((c, i) => {
      const fin = serverFin(c);
      if (i % 2 === 0) c.write('GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ');
      return fin;
    });
    const texts = await Promise.all(answers);
    expect(texts.filter((_, i) => i % 2 === 0).every((text) => text.startsWith('HTTP/1.1 408 '))).toBe(true);
    // The 20 silent clients still hold their half: only destroyed server sockets free the cap.
    expect(await servedAgain(port)).toBe(true);
  });

  it('destroys a connection that sent a malformed head after answering 400', async () => {
    const fulcrum = await start({ frontends: [{ port: 0, host: '127.0.0.1' }], server: { maxConnections: 1 } });
    const port = fulcrum.addresses().frontends[0]!.port;
    const client = await halfOpenClient(port);
    cleanups.push(() => client.destroy());
    const fin = serverFin(client);
    client.write('GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n');
    expect((await fin).startsWith('HTTP/1.1 400 ')).toBe(true);
    expect(await servedAgain(port)).toBe(true);
  });
});

describe('connection caps', () => {
  async function held(port: number): Promise<RawConnection> {
    // A served keep-alive request proves the connection was accepted and is being held.
    const conn = await RawConnection.open(port);
    cleanups.push(() => conn.destroy());
    conn.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
    await conn.until((t) => t.endsWith('b1'));
    return conn;
  }

  it("refuses connections past a frontend's maxConnections, and accepts again once one closes", async () => {
    const fulcrum = await start({ frontends: [{ port: 0, host: '127.0.0.1', maxConnections: 3 }] });
    const port = fulcrum.addresses().frontends[0]!.port;
    const open = [await held(port), await held(port), await held(port)];
    const excess = await RawConnection.open(port).catch(() => undefined);
    if (excess !== undefined) {
      excess.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
      await excess.closedPromise();
      expect(excess.text).toBe('');
    }
    open[0]!.destroy();
    await open[0]!.closedPromise();
    expect(await servedAgain(port)).toBe(true);
  });

  it('refuses connections past server.maxConnections over all frontends together', async () => {
    const fulcrum = await start({
      frontends: [
        { port: 0, host: '127.0.0.1' },
        { port: 0, host: '127.0.0.1' },
      ],
      server: { maxConnections: 2 },
    });
    const [a, b] = fulcrum.addresses().frontends.map((f) => f.port) as [number, number];
    await held(a);
    await held(b);
    for (const port of [a, b]) {
      const excess = await RawConnection.open(port);
      excess.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
      await excess.closedPromise();
      expect(excess.text).toBe('');
    }
  });
});

describe('limits in the config file', () => {
  it('names the option and the value of a cap or an upgrade timeout it cannot honour', async () => {
    const { validateConfig } = await import('../../src');
    const base = { pools: { web: { backends: [{ id: 'b1', address: 'http://127.0.0.1:1' }] } } };
    expect(() => validateConfig({ ...base, frontends: [{ port: 0, maxConnections: 0 }] })).toThrow(/frontends\[0\]\.maxConnections.*0/);
    expect(() => validateConfig({ ...base, frontends: [{ port: 0 }], server: { maxConnections: 1.5 } })).toThrow(/server\.maxConnections.*1\.5/);
    expect(() => validateConfig({ frontends: [{ port: 0 }], pools: { web: { ...base.pools.web, upgradeTimeouts: { tunnelMs: 'long' } } } })).toThrow(
      /upgradeTimeouts\.tunnelMs.*long/,
    );
    expect(() => validateConfig({ frontends: [{ port: 0 }], pools: { web: { ...base.pools.web, maxHeaderCount: 5000 } } })).toThrow(/maxHeaderCount.*5000/);
  });
});

describe('a peer that never reads the answer to its refused request', () => {
  it('has its connection destroyed once the grace period is over, not held half-closed', async () => {
    const { closeAfterAnswer } = await import('@fulcrum/http');
    const { createServer: createNetServer } = await import('node:net');
    const closed = new Promise<boolean>((resolve) => {
      const server = createNetServer({ allowHalfOpen: true }, (socket) => {
        // More than the socket buffers hold: the end never completes while the client does not read.
        closeAfterAnswer(socket, Buffer.alloc(32 * 1024 * 1024, 0x61));
        socket.once('close', () => {
          server.close();
          resolve(socket.destroyed);
        });
      });
      server.listen(0, '127.0.0.1', () => {
        const client = connect({ host: '127.0.0.1', port: (server.address() as { port: number }).port, allowHalfOpen: true });
        client.pause();
        client.on('error', () => undefined);
        cleanups.push(() => client.destroy());
      });
    });
    expect(await closed).toBe(true);
  });
});
