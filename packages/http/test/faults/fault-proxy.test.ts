/**
 * The `FaultProxy` test utility itself: each mode does to a real TCP echo server what its table in
 * fault-proxy.ts promises, and `close()` leaves nothing open. The scenario suites rely on these.
 */
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultProxy } from './fault-proxy';
import { waitFor } from '../../../../test-support/wait-for';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Echo {
  server: Server;
  port: number;
  received: Buffer[];
}

async function echoServer(): Promise<Echo> {
  const received: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      if (!socket.writableEnded) socket.write(chunk);
    });
    socket.on('end', () => socket.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  );
  return { server, port: (server.address() as AddressInfo).port, received };
}

async function relay(echo: Echo): Promise<FaultProxy> {
  const fault = await FaultProxy.start(`127.0.0.1:${echo.port}`);
  cleanups.push(() => fault.close());
  return fault;
}

interface Client {
  socket: Socket;
  data: () => string;
  ended: Promise<'end' | 'error' | 'close'>;
  error: () => string | undefined;
}

function client(port: number): Promise<Client> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const socket = connect({ host: '127.0.0.1', port, allowHalfOpen: true });
    cleanups.push(async () => void socket.destroy());
    const ended = new Promise<'end' | 'error' | 'close'>((done) => {
      socket.on('end', () => done('end'));
      socket.on('error', (e: NodeJS.ErrnoException) => {
        error = e.code;
        done('error');
      });
      socket.on('close', () => done('close'));
    });
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('connect', () => resolve({ socket, data: () => Buffer.concat(chunks).toString(), ended, error: () => error }));
    socket.once('error', reject);
  });
}

async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  await waitFor(condition, { timeoutMs });
}

describe('FaultProxy', () => {
  it('relays bytes both ways untouched in pass mode', async () => {
    const echo = await echoServer();
    const fault = await relay(echo);
    const c = await client(fault.port);
    c.socket.write('hello');
    await until(() => c.data() === 'hello');
    expect(fault.accepted).toBe(1);
    expect(fault.open).toBe(1);
  });

  it('delays every chunk in latency mode and keeps their order when switched back to pass', async () => {
    const echo = await echoServer();
    const fault = await relay(echo);
    const c = await client(fault.port);
    await fault.latency(150);
    c.socket.write('a');
    await new Promise((r) => setTimeout(r, 40));
    expect(c.data()).toBe('');
    await fault.pass();
    c.socket.write('b');
    await until(() => c.data().length === 2);
    expect(c.data()).toBe('ab');
  });

  it('stalls open connections in blackhole mode and delivers their bytes in order once healed', async () => {
    const echo = await echoServer();
    const fault = await relay(echo);
    const c = await client(fault.port);
    c.socket.write('before-');
    await until(() => c.data() === 'before-');
    await fault.blackhole();
    c.socket.write('during');
    await new Promise((r) => setTimeout(r, 100));
    expect(Buffer.concat(echo.received).toString()).toBe('before-');
    await fault.pass();
    await until(() => c.data() === 'before-during');
  });

  it('accepts but forwards nothing in blackhole mode, and connections made then stay dead', async () => {
    const echo = await echoServer();
    const fault = await relay(echo);
    await fault.blackhole();
    const c = await client(fault.port);
    c.socket.write('lost');
    await new Promise((r) => setTimeout(r, 100));
    expect(echo.received).toHaveLength(0);
    expect(c.data()).toBe('');
    await fault.pass();
    c.socket.write('still lost');
    const fresh = await client(fault.port);
    fresh.socket.write('ok');
    await until(() => fresh.data() === 'ok');
    expect(c.data()).toBe('');
  });

  it('resets open and new connections in reset mode', async () => {
    const echo = await echoServer();
    const fault = await relay(echo);
    const open = await client(fault.port);
    await fault.reset();
    expect(await open.ended).toBe('error');
    expect(open.error()).toBe('ECONNRESET');
    // A new connection is accepted then reset: the RST lands during connect or just after it.
    const late = await client(fault.port).then(
      async (c) => {
        await c.ended;
        return c.error();
      },
      (e: NodeJS.ErrnoException) => e.code,
    );
    expect(late).toBe('ECONNRESET');
  });

  it('refuses connections on the same port in refuse mode and listens again on the next mode', async () => {
    const echo = await echoServer();
    const fault = await relay(echo);
    const port = fault.port;
    await fault.refuse();
    const refused = await client(port).then(
      () => 'connected',
      (e: NodeJS.ErrnoException) => e.code,
    );
    expect(refused).toBe('ECONNREFUSED');
    await fault.pass();
    expect(fault.port).toBe(port);
    const c = await client(port);
    c.socket.write('back');
    await until(() => c.data() === 'back');
  });

  it('limits throughput in slowDrip mode without losing or reordering bytes', async () => {
    const echo = await echoServer();
    const fault = await relay(echo);
    await fault.slowDrip(200);
    const c = await client(fault.port);
    const payload = 'x'.repeat(60) + 'y'.repeat(60);
    c.socket.write(payload);
    await new Promise((r) => setTimeout(r, 120));
    expect(c.data().length).toBeLessThan(payload.length);
    await until(() => c.data().length === payload.length, 10_000);
    expect(c.data()).toBe(payload);
  });

  it('sends the client a FIN in halfClose mode while still forwarding what it sends', async () => {
    const echo = await echoServer();
    const fault = await relay(echo);
    const c = await client(fault.port);
    await fault.halfClose();
    expect(await c.ended).toBe('end');
    c.socket.write('after fin');
    await until(() => Buffer.concat(echo.received).toString() === 'after fin');
    expect(c.data()).toBe('');
  });

  it('closes every socket and the listener on close()', async () => {
    const echo = await echoServer();
    const fault = await FaultProxy.start({ host: '127.0.0.1', port: echo.port });
    const c = await client(fault.port);
    await fault.latency(10_000);
    c.socket.write('pending');
    await fault.close();
    await c.ended;
    expect(c.socket.destroyed || c.socket.readableEnded).toBe(true);
    expect(fault.open).toBe(0);
    const after = await client(fault.port).then(
      () => 'connected',
      (e: NodeJS.ErrnoException) => e.code,
    );
    expect(after).toBe('ECONNREFUSED');
  });
});
