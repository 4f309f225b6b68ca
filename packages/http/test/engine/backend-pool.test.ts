/**
 * The raw engine's backend connections read into one reused buffer (`net.connect`'s `onread`): the
 * bytes handed to an owner stay valid only until the next read, unless the owner says it still holds
 * them — then the next read must land in a new buffer. Checked on a real socket with an owner that
 * keeps what it was given.
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
