/**
 * The raw engine's backend connections read into one reused buffer (`net.connect`'s `onread`): the
 * bytes handed to an owner stay valid only until the next read, unless the owner says it still holds
 * them — then the next read must land in a new buffer. Checked on a real socket with an owner that
 * keeps what it was given. Inactivity is the sweep's: a connection whose byte counts did not move for
 * its `timeoutMs` times out (checked with the sweep's clock given, not waited for).
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createLoadBalancer } from '@fulcrum/core';
import { BackendPool, type BackendConnection, type ConnectionOwner } from '../../src/engine/backend-pool';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0).reverse()) cleanup();
});

/** A backend that writes `first`, waits for the client's "next", then writes `second`. */
async function twoWrites(first: string, second: string): Promise<number> {
  const server = createServer((socket: Socket) => {
    socket.write(first);
    socket.once('data', () => socket.write(second));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => server.close());
  return (server.address() as AddressInfo).port;
}

async function receiveTwice(holds: boolean): Promise<{ kept: string; second: string }> {
  const port = await twoWrites('AAAAAAAA', 'BBBBBBBB');
  const lb = createLoadBalancer({ backends: [{ id: 'b', address: `http://127.0.0.1:${port}` }] });
  cleanups.push(() => lb.close());
  const pool = new BackendPool(lb.backends[0]!, { connectMs: 2000, headersMs: 2000, backendIdleMs: 4000, connectionsPerBackend: 1, backendTls: undefined });
  cleanups.push(() => pool.close());
  return new Promise((resolve) => {
    let kept: Buffer | undefined;
    const owner: ConnectionOwner = {
      onUpstreamConnect: () => undefined,
      onUpstreamData: (connection: BackendConnection, chunk: Buffer) => {
        if (kept === undefined) {
          kept = chunk;
          connection.socket.write('next');
        } else {
          resolve({ kept: kept.toString(), second: chunk.toString() });
          connection.destroy();
        }
      },
      onUpstreamClose: () => undefined,
      onUpstreamDrain: () => undefined,
      onUpstreamTimeout: () => undefined,
      holdsUpstreamBytes: () => holds,
    };
    const connection = pool.acquire(owner, { onPoolFree: () => undefined });
    if (typeof connection === 'function') throw new Error('pool full');
  });
}

describe('backend connections reading into a reused buffer', () => {
  it('moves to a new buffer while the owner still holds the last bytes', async () => {
    expect(await receiveTwice(true)).toEqual({ kept: 'AAAAAAAA', second: 'BBBBBBBB' });
  });

  it('reuses the buffer when the owner is done with the bytes (which is why holding matters)', async () => {
    // The first slice now shows the second read's bytes: the memory was reused, no copy was made.
    expect(await receiveTwice(false)).toEqual({ kept: 'BBBBBBBB', second: 'BBBBBBBB' });
  });
});

/** A backend that accepts and never answers. */
async function silent(): Promise<number> {
  const sockets: Socket[] = [];
  const server = createServer((socket: Socket) => void sockets.push(socket.on('error', () => undefined)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    server.close();
  });
  return (server.address() as AddressInfo).port;
}

/** A connected connection of a fresh pool, its owner counting timeouts. */
async function connected(): Promise<{ pool: BackendPool; connection: BackendConnection; timeouts: () => number }> {
  const port = await silent();
  const lb = createLoadBalancer({ backends: [{ id: 'b', address: `http://127.0.0.1:${port}` }] });
  cleanups.push(() => lb.close());
  const pool = new BackendPool(lb.backends[0]!, { connectMs: 2000, headersMs: 1000, backendIdleMs: 1e9, connectionsPerBackend: 1, backendTls: undefined });
  cleanups.push(() => pool.close());
  let timeouts = 0;
  return new Promise((resolve) => {
    const owner: ConnectionOwner = {
      onUpstreamConnect: (connection: BackendConnection) => resolve({ pool, connection, timeouts: () => timeouts }),
      onUpstreamData: () => undefined,
      onUpstreamClose: () => undefined,
      onUpstreamDrain: () => undefined,
      onUpstreamTimeout: () => void timeouts++,
      holdsUpstreamBytes: () => false,
    };
    const connection = pool.acquire(owner, { onPoolFree: () => undefined });
    if (typeof connection === 'function') throw new Error('pool full');
  });
}

describe('backend connections timed out by the sweep', () => {
  it('times out after timeoutMs without a byte either way, not before', async () => {
    const { pool, connection, timeouts } = await connected();
    expect(connection.timeoutMs).toBe(1000);
    const t = 1_000_000;
    pool.sweep(t);
    pool.sweep(t + 999);
    expect(timeouts()).toBe(0);
    pool.sweep(t + 1000);
    expect(timeouts()).toBe(1);
    // Once per period of inactivity, not at every sweep after it.
    pool.sweep(t + 1500);
    expect(timeouts()).toBe(1);
  });

  it('counts a write (even one still queued) as activity', async () => {
    const { pool, connection, timeouts } = await connected();
    const t = 1_000_000;
    pool.sweep(t);
    connection.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    pool.sweep(t + 900);
    pool.sweep(t + 1800);
    expect(timeouts()).toBe(0);
    pool.sweep(t + 1900);
    expect(timeouts()).toBe(1);
  });

  it('never times out a connection whose limit is 0 (a tunnel), and closes an idle one that timed out', async () => {
    const { pool, connection, timeouts } = await connected();
    connection.timeoutMs = 0;
    pool.sweep(1_000_000);
    pool.sweep(9_000_000);
    expect(timeouts()).toBe(0);
    connection.timeoutMs = 1000;
    pool.release(connection);
    expect(pool.idleCount).toBe(1);
    pool.sweep(9_001_000);
    expect(connection.closed).toBe(false);
    pool.sweep(9_002_000);
    expect(connection.closed).toBe(true);
    expect(pool.size).toBe(0);
  });
});
