/**
 * A raw-engine listener that stops accepting (a shutdown, or a listener handed to a successor)
 * answers the connections that arrived just before — their first request is on its way — instead of
 * resetting them; only connections idle between requests are closed at once, which a client reusing
 * them retries (RFC 9112 §9.3.1).
 */
import { connect, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createProxyServer, type ProxyServer } from '@fulcrum/http';
import { startBackend, type TestBackend } from '../proxy/helpers';
import { deferred, waitFor } from '../../../../test-support/wait-for';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function setup(): Promise<{ proxy: ProxyServer; port: number; backend: TestBackend }> {
  const backend = await startBackend('a');
  cleanups.push(() => backend.close());
  const proxy = createProxyServer({ balancer: { backends: [{ id: backend.id, address: backend.address }] } });
  await proxy.listen(0);
  cleanups.push(() => proxy.close(0));
  return { proxy, port: proxy.address()!.port, backend };
}

/** Connect and resolve once connected, collecting what the proxy sends until it closes. */
async function open(port: number): Promise<{ socket: Socket; received: Promise<string> }> {
  const socket = connect({ host: '127.0.0.1', port });
  cleanups.push(() => void socket.destroy());
  const connected = deferred<void>();
  socket.once('connect', () => connected.resolve());
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  const received = new Promise<string>((resolve) => {
    socket.on('close', () => resolve(text));
    socket.on('error', () => undefined);
  });
  await connected.promise;
  return { socket, received };
}

describe('shutdown of a raw-engine listener', () => {
  it('answers a connection whose first request arrives after the shutdown began, with Connection: close', async () => {
    const { proxy, port } = await setup();
    const fresh = await open(port);
    // The proxy has accepted the connection (it counts it) before the shutdown starts.
    await waitFor(() => proxy.connections === 1);
    const closed = proxy.close(5000);
    fresh.socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    const text = await fresh.received;
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text.toLowerCase()).toContain('connection: close');
    await closed;
  });

  it('closes a keep-alive connection idle between requests at once', async () => {
    const { proxy, port } = await setup();
    const kept = await open(port);
    const first = deferred<void>();
    kept.socket.on('data', () => first.resolve());
    kept.socket.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    await first.promise;
    await proxy.close(5000);
    const text = await kept.received;
    expect(text.match(/HTTP\/1\.1 200 /g)).toHaveLength(1);
  });
});
