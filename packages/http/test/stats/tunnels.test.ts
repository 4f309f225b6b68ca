/**
 * Upgrade tunnels in the pool and backend counters, as HAProxy counts a tunnelled session: one
 * session of the pool while it lasts, the backend's attempt with its 101, and the bytes relayed
 * both ways (what the client sent after its request head, what the backend sent after its 101).
 * Both engines: `createProxy` on a `node:http` server (`server.on('upgrade', proxy.upgrade)`) and
 * `createProxyServer`; and a layer-4 relay of `createTcpProxy` is a session of its pool the same way
 * (there every byte is relayed, the request head and the 101 included). Real sockets: a backend that switches to an upper-casing echo after its 101.
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createLoadBalancer, type LoadBalancer } from '@fulcrum/core';
import { createProxy, createProxyServer, createTcpProxy, trafficOf } from '@fulcrum/http';
import { deferred, waitFor } from '../../../../test-support/wait-for';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const SWITCH = 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n';

/** After a request head, answer 101 and echo upper-cased from then on. */
async function echoBackend(): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => undefined);
    let head = '';
    let switched = false;
    socket.on('data', (chunk: Buffer) => {
      if (switched) return void socket.write(chunk.toString('latin1').toUpperCase());
      head += chunk.toString('latin1');
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) return;
      switched = true;
      socket.write(SWITCH);
      const rest = head.slice(end + 4);
      if (rest.length > 0) socket.write(rest.toUpperCase());
    });
    socket.on('end', () => socket.end());
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    for (const socket of sockets) socket.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Through the proxy at `port`: upgrade, send `hello`, read `HELLO`, and hold the tunnel until `close()`. */
async function openTunnel(port: number): Promise<{ close(): Promise<void> }> {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => undefined);
  const received = deferred<void>();
  let text = '';
  socket.on('data', (chunk: Buffer) => {
    text += chunk.toString('latin1');
    if (text.startsWith('HTTP/1.1 101') && text.endsWith('\r\n\r\nHELLO')) received.resolve();
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write('GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
  await waitFor(() => text.includes('\r\n\r\n'), { what: 'the 101' });
  socket.write('hello');
  await received.promise;
  return {
    close: async () => {
      socket.end();
      await closed;
    },
  };
}

async function viaCreateProxy(lb: LoadBalancer): Promise<number> {
  const proxy = createProxy({ balancer: lb });
  const server: Server = createHttpServer(proxy);
  server.on('upgrade', proxy.upgrade);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve(undefined)));
  });
  return (server.address() as AddressInfo).port;
}

async function viaProxyServer(lb: LoadBalancer): Promise<number> {
  const server = createProxyServer({ balancer: lb });
  await server.listen(0);
  cleanups.push(() => server.close(0));
  return server.address()!.port;
}

describe.each([
  ['createProxy', viaCreateProxy],
  ['createProxyServer', viaProxyServer],
])('stats: upgrade tunnels through %s', (_engine, start) => {
  it('count as a session of the pool and an attempt of the backend while open, with the bytes relayed both ways', async () => {
    const lb = createLoadBalancer({ name: 'ws', backends: [{ id: 'e1', address: await echoBackend() }] });
    cleanups.push(() => lb.close());
    const port = await start(lb);
    const traffic = trafficOf(lb);

    const tunnel = await openTunnel(port);
    expect(traffic.sessions).toBe(1);
    expect(lb.get('e1')!.inflight).toBe(1);
    expect(traffic.requests).toBe(0);

    await tunnel.close();
    await waitFor(() => traffic.requests === 1, { what: 'the tunnel counted as ended' });
    const pool = traffic.toJSON();
    expect(pool).toMatchObject({ sessions: 0, sessionsMax: 1, requests: 1, errors: 0, bytesIn: 5, responses: { '1xx': 1 } });
    // The backend's bytes after its 101: the echo, in both engines.
    expect(pool.bytesOut).toBe(5);
    expect(pool.backends.e1).toMatchObject({ sessionsMax: 1, bytesIn: 5, bytesOut: 5, responses: { '1xx': 1 } });
    expect(lb.get('e1')!.inflight).toBe(0);
  });
});

describe('stats: createTcpProxy', () => {
  it('counts a relayed connection as a session of the pool and an attempt of the backend, with every byte both ways', async () => {
    const lb = createLoadBalancer({ name: 'tcp', backends: [{ id: 'e1', address: (await echoBackend()).replace('http://', '') }] });
    cleanups.push(() => lb.close());
    const proxy = createTcpProxy({ balancer: lb });
    const server = createServer({ allowHalfOpen: true }, proxy);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      await proxy.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const traffic = trafficOf(lb);

    const tunnel = await openTunnel((server.address() as AddressInfo).port);
    expect(traffic.sessions).toBe(1);
    expect(lb.get('e1')!.inflight).toBe(1);
    await tunnel.close();
    await waitFor(() => traffic.requests === 1, { what: 'the relay counted as ended' });
    const head = 'GET /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n';
    const pool = traffic.toJSON();
    expect(pool).toMatchObject({ sessions: 0, sessionsMax: 1, requests: 1, errors: 0, bytesIn: head.length + 5, bytesOut: SWITCH.length + 5 });
    expect(pool.backends.e1).toMatchObject({ sessionsMax: 1, bytesIn: head.length + 5, bytesOut: SWITCH.length + 5, connectionErrors: 0 });
  });
});
