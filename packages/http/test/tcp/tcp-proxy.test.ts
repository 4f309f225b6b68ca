import { createHash, randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createLoadBalancer, isInvalidOptionError, type LoadBalancer } from '@fulcrum/core';
import { createTcpProxy, type TcpProxyOptions } from '../../src/tcp';
import { closedPort, connectClient, listen, startService, startTcpProxy, type TestProxy, type TestService } from './helpers';
import { waitFor } from '../../../../test-support/wait-for';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function services(...ids: string[]): Promise<TestService[]> {
  const started = await Promise.all(ids.map((id) => startService(id)));
  for (const s of started) cleanups.push(() => s.close());
  return started;
}

async function proxyFor(options: TcpProxyOptions): Promise<TestProxy> {
  const proxy = await startTcpProxy(options);
  cleanups.push(() => proxy.close());
  return proxy;
}

function lb(options: Parameters<typeof createLoadBalancer>[0]): LoadBalancer {
  const balancer = createLoadBalancer(options);
  cleanups.push(() => balancer.close());
  return balancer;
}

/** Open a connection through the proxy and return the greeting line (who answered). */
async function whoAnswers(port: number): Promise<string> {
  const client = await connectClient(port);
  const text = await client.waitFor('\n');
  client.socket.destroy();
  await client.closed;
  return text.split('\n')[0]!;
}

async function settled(balancer: LoadBalancer): Promise<void> {
  // Leases are released when both sockets have closed: wait for the close events.
  await waitFor(() => balancer.backends.every((b) => b.inflight === 0), { what: 'every lease to be released' });
}

describe('createTcpProxy', () => {
  it('spreads connections over the backends (round-robin) and relays both ways', async () => {
    const backends = await services('db1', 'db2', 'db3');
    const balancer = lb({ algorithm: 'round-robin', backends: backends.map((s) => ({ id: s.id, address: s.address })) });
    const { port } = await proxyFor({ balancer });
    const counts: Record<string, number> = {};
    for (let i = 0; i < 12; i++) {
      const who = await whoAnswers(port);
      counts[who] = (counts[who] ?? 0) + 1;
    }
    expect(counts).toEqual({ db1: 4, db2: 4, db3: 4 });

    const client = await connectClient(port);
    await client.waitFor('\n');
    client.socket.write('SELECT 1;');
    expect(await client.waitFor('SELECT 1;')).toMatch(/^db\d\nSELECT 1;$/);
    client.socket.destroy();
    await settled(balancer);
    expect(balancer.backends.every((b) => b.inflight === 0)).toBe(true);
  });

  it('keeps a client address on one backend with hashBy source-ip, and uses a custom key function', async () => {
    const backends = await services('h1', 'h2', 'h3', 'h4');
    const specs = backends.map((s) => ({ id: s.id, address: s.address }));
    const { port } = await proxyFor({ balancer: lb({ algorithm: 'maglev', backends: specs }), hashBy: 'source-ip' });
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) seen.add(await whoAnswers(port));
    expect(seen.size).toBe(1);

    const keys: string[] = [];
    const custom = await proxyFor({
      balancer: lb({ algorithm: 'ring-hash', backends: specs }),
      hashBy: (socket: Socket) => {
        keys.push(`${socket.remoteAddress}`);
        return 'tenant-42';
      },
    });
    const first = await whoAnswers(custom.port);
    expect(await whoAnswers(custom.port)).toBe(first);
    expect(keys.length).toBe(2);
  });

  it('retries a failed connect on another backend, nothing having been sent, and reports the failure to the balancer', async () => {
    const [live] = await services('live');
    const dead = await closedPort();
    const balancer = lb({
      algorithm: 'round-robin',
      backends: [
        { id: 'dead', address: `127.0.0.1:${dead}` },
        { id: 'live', address: live!.address },
      ],
    });
    const errors: string[] = [];
    const { port } = await proxyFor({ balancer, onError: (_e, ctx) => errors.push(`${ctx.phase}:${ctx.backendId}`) });
    for (let i = 0; i < 4; i++) {
      const client = await connectClient(port);
      client.socket.write(`hello ${i}`);
      expect(await client.waitFor(`hello ${i}`)).toBe(`live\nhello ${i}`);
      client.socket.destroy();
      await client.closed;
    }
    await settled(balancer);
    const dead0 = balancer.backends.find((b) => b.id === 'dead')!;
    expect(dead0.failures).toBeGreaterThanOrEqual(2);
    expect(errors).toContain('connect:dead');
    // Each client's bytes reached the live backend exactly once.
    expect(live!.received.map((chunks) => Buffer.concat(chunks).toString())).toEqual(['hello 0', 'hello 1', 'hello 2', 'hello 3']);
  });

  it('closes the client when every attempt fails or no backend is eligible', async () => {
    const dead = await closedPort();
    const balancer = lb({ backends: [{ id: 'dead', address: `127.0.0.1:${dead}` }] });
    const { port } = await proxyFor({ balancer, attempts: 2 });
    const client = await connectClient(port);
    expect(await client.closed).toBe('');
    await settled(balancer);
    expect(balancer.backends[0]!.failures).toBe(2);

    const [svc] = await services('m1');
    const maintained = lb({ backends: [{ id: 'm1', address: svc!.address }] });
    maintained.maintain('m1');
    const other = await proxyFor({ balancer: maintained });
    const refused = await connectClient(other.port);
    expect(await refused.closed).toBe('');
    expect(svc!.received).toEqual([]);
  });

  it('writes the PROXY v1 header before the client bytes', async () => {
    const first: Buffer[] = [];
    const backend = await listen((socket) => socket.on('data', (chunk: Buffer) => first.push(chunk)));
    cleanups.push(() => backend.close());
    const { port } = await proxyFor({ balancer: lb({ backends: [{ id: 'b', address: `127.0.0.1:${backend.port}` }] }), proxyProtocol: 'v1' });
    const client = await connectClient(port);
    client.socket.write('PING\r\n');
    await waitFor(() => Buffer.concat(first).toString().endsWith('PING\r\n'), { what: 'the PING to come back' });
    const clientPort = client.socket.localPort!;
    expect(Buffer.concat(first).toString('latin1')).toBe(`PROXY TCP4 127.0.0.1 127.0.0.1 ${clientPort} ${port}\r\nPING\r\n`);
    client.socket.destroy();
  });

  it('writes the PROXY v2 header before the client bytes', async () => {
    const first: Buffer[] = [];
    const backend = await listen((socket) => socket.on('data', (chunk: Buffer) => first.push(chunk)));
    cleanups.push(() => backend.close());
    const { port } = await proxyFor({ balancer: lb({ backends: [{ id: 'b', address: `127.0.0.1:${backend.port}` }] }), proxyProtocol: 'v2' });
    const client = await connectClient(port);
    client.socket.write('x');
    await waitFor(() => Buffer.concat(first).length >= 29, { what: '29 bytes to come back' });
    const expected = Buffer.alloc(28);
    Buffer.from('0d0a0d0a000d0a515549540a2111000c7f0000017f000001', 'hex').copy(expected);
    expected.writeUInt16BE(client.socket.localPort!, 24);
    expected.writeUInt16BE(port, 26);
    expect(Buffer.concat(first).toString('hex')).toBe(Buffer.concat([expected, Buffer.from('x')]).toString('hex'));
    client.socket.destroy();
  });

  it('relays a large stream intact in both directions', async () => {
    const [svc] = await services('big');
    const { port } = await proxyFor({ balancer: lb({ backends: [{ id: 'big', address: svc!.address }] }) });
    const payload = randomBytes(8 * 1024 * 1024);
    const client = await connectClient(port);
    const received: Buffer[] = [];
    client.socket.removeAllListeners('data');
    client.socket.on('data', (chunk: Buffer) => received.push(chunk));
    client.socket.end(payload);
    await client.closed;
    const all = Buffer.concat(received);
    const echoed = all.subarray('big\n'.length, 'big\n'.length + payload.length);
    expect(createHash('sha256').update(echoed).digest('hex')).toBe(createHash('sha256').update(payload).digest('hex'));
    expect(all.subarray('big\n'.length + payload.length).toString()).toBe(`bye ${payload.length}\n`);
  });

  it('passes a half-close on, so the backend can still answer after the client finished sending', async () => {
    const [svc] = await services('half');
    const { port } = await proxyFor({ balancer: lb({ backends: [{ id: 'half', address: svc!.address }] }) });
    const client = await connectClient(port);
    client.socket.end('abc');
    expect(await client.closed).toBe('half\nabcbye 3\n');
  });

  it('closes a connection idle for idleMs, and releases its lease', async () => {
    const [svc] = await services('idle');
    const balancer = lb({ backends: [{ id: 'idle', address: svc!.address }] });
    const { port, proxy } = await proxyFor({ balancer, timeouts: { idleMs: 50 } });
    const client = await connectClient(port);
    await client.waitFor('\n');
    expect(await client.closed).toBe('idle\n');
    await settled(balancer);
    expect(balancer.backends[0]!.inflight).toBe(0);
    expect(proxy.connections).toBe(0);
  });

  it('survives resets on either side and reports a backend reset as a failure', async () => {
    const resetting = await listen((socket) => socket.once('data', () => socket.resetAndDestroy()));
    cleanups.push(() => resetting.close());
    const balancer = lb({ backends: [{ id: 'r', address: `127.0.0.1:${resetting.port}` }] });
    const { port } = await proxyFor({ balancer });
    const client = await connectClient(port);
    client.socket.write('boom');
    await client.closed;
    await settled(balancer);
    expect(balancer.backends[0]!.failures).toBe(1);

    const [svc] = await services('c');
    const other = lb({ backends: [{ id: 'c', address: svc!.address }] });
    const second = await proxyFor({ balancer: other });
    const resetter = await connectClient(second.port);
    await resetter.waitFor('\n');
    resetter.socket.resetAndDestroy();
    await settled(other);
    expect(other.backends[0]!.inflight).toBe(0);
    expect(other.backends[0]!.failures).toBe(0);
    // The proxy is still serving.
    expect(await whoAnswers(second.port)).toBe('c');
  });

  it('close() ends open relays, refuses new connections and closes a balancer it created', async () => {
    const [svc] = await services('z');
    const test = await proxyFor({ balancer: { backends: [{ id: 'z', address: svc!.address }] } });
    const client = await connectClient(test.port);
    await client.waitFor('\n');
    expect(test.proxy.connections).toBe(1);
    await test.proxy.close();
    await client.closed;
    expect(test.proxy.connections).toBe(0);
    expect(test.proxy.lb.acquire()).toBeUndefined();
    const late = await connectClient(test.port);
    expect(await late.closed).toBe('');
  });

  it('validates its options with the option path', () => {
    const cases: [unknown, string][] = [
      [{ balancer: { backends: [{ id: 'a', address: 'nope' }] } }, 'balancer.backends[0].address'],
      [{ balancer: 5 }, 'balancer'],
      [{ balancer: { backends: [] }, proxyProtocol: 'v3' }, 'proxyProtocol'],
      [{ balancer: { backends: [] }, hashBy: 'uri' }, 'hashBy'],
      [{ balancer: { backends: [] }, timeouts: { connectMs: 0 } }, 'timeouts.connectMs'],
      [{ balancer: { backends: [] }, timeouts: { idle: 1 } }, 'timeouts.idle'],
      [{ balancer: { backends: [] }, attempts: 0 }, 'attempts'],
      [{ balancer: { backends: [] }, maxQueue: -1 }, 'maxQueue'],
      [{ balancer: { backends: [] }, maxQueue: 1.5 }, 'maxQueue'],
      [{ balancer: { backends: [] }, queueTimeoutMs: 0 }, 'queueTimeoutMs'],
      [{ balancer: { backends: [] }, extra: 1 }, 'extra'],
    ];
    for (const [options, path] of cases) {
      try {
        createTcpProxy(options as TcpProxyOptions);
        expect.unreachable();
      } catch (error) {
        expect(isInvalidOptionError(error) && error.path, JSON.stringify(options)).toBe(path);
      }
    }
  });
});

describe('createTcpProxy with maxConnections: the wait queue', () => {
  it('holds a connection while every backend is full and connects it when a slot frees, in arrival order', async () => {
    const [svc] = await services('solo');
    const balancer = lb({ backends: [{ id: 'solo', address: svc!.address, maxConnections: 1 }] });
    const { port, proxy } = await proxyFor({ balancer, queueTimeoutMs: 10_000 });
    const first = await connectClient(port);
    expect((await first.waitFor('\n')).startsWith('solo')).toBe(true);
    const second = await connectClient(port);
    const third = await connectClient(port);
    second.socket.write('from second;');
    third.socket.write('from third;');
    // Both wait: nothing reaches them, the backend holds one connection, and the proxy counts three.
    await waitFor(() => proxy.connections >= 3, { what: 'three proxied connections' });
    expect(proxy.connections).toBe(3);
    expect(second.text()).toBe('');
    expect(svc!.received).toHaveLength(1);
    expect(balancer.backends[0]!.inflight).toBe(1);

    first.socket.destroy();
    // The second (arrived first) gets the slot, with the bytes it sent while waiting.
    expect(await second.waitFor('from second;')).toBe('solo\nfrom second;');
    expect(third.text()).toBe('');
    second.socket.destroy();
    expect(await third.waitFor('from third;')).toBe('solo\nfrom third;');
    third.socket.destroy();
    await settled(balancer);
    expect(balancer.backends[0]!.inflight).toBe(0);
    expect(balancer.backends[0]!.failures).toBe(0);
  });

  it('relays the bytes and the half-close of a client that finished sending while it waited', async () => {
    const [svc] = await services('solo');
    const balancer = lb({ backends: [{ id: 'solo', address: svc!.address, maxConnections: 1 }] });
    const { port, proxy } = await proxyFor({ balancer, queueTimeoutMs: 10_000 });
    const holder = await connectClient(port);
    await holder.waitFor('\n');
    const client = await connectClient(port);
    client.socket.end('query;');
    await waitFor(() => proxy.connections >= 2, { what: 'two proxied connections' });
    await new Promise((r) => setTimeout(r, 50));
    expect(proxy.connections).toBe(2);
    holder.socket.destroy();
    // Connected once the slot frees: the buffered bytes, then the FIN, which the service answers.
    expect(await client.closed).toBe('solo\nquery;bye 6\n');
  });

  it('closes a connection when the queue is full, and one that waited past queueTimeoutMs', async () => {
    const [svc] = await services('solo');
    const balancer = lb({ backends: [{ id: 'solo', address: svc!.address, maxConnections: 1 }] });
    const { port } = await proxyFor({ balancer, maxQueue: 1, queueTimeoutMs: 150 });
    const holder = await connectClient(port);
    await holder.waitFor('\n');
    const waiting = await connectClient(port);
    const overflow = await connectClient(port);
    // The queue holds one: the next is closed at once, without a byte.
    expect(await overflow.closed).toBe('');
    // The waiting one is closed when its time in the queue is up, also without a byte.
    expect(await waiting.closed).toBe('');
    expect(svc!.received).toHaveLength(1);
    holder.socket.destroy();
    await settled(balancer);
    expect(balancer.backends[0]!.inflight).toBe(0);
  });

  it('closes at once with maxQueue 0, and forgets a client that leaves while waiting', async () => {
    const [svc] = await services('solo');
    const balancer = lb({ backends: [{ id: 'solo', address: svc!.address, maxConnections: 1 }] });
    const noQueue = await proxyFor({ balancer, maxQueue: 0 });
    const holder = await connectClient(noQueue.port);
    await holder.waitFor('\n');
    expect(await (await connectClient(noQueue.port)).closed).toBe('');

    const queued = await proxyFor({ balancer, queueTimeoutMs: 10_000 });
    const leaver = await connectClient(queued.port);
    await waitFor(() => queued.proxy.connections >= 1, { what: 'the queued connection to be counted' });
    leaver.socket.destroy();
    await leaver.closed;
    await waitFor(() => queued.proxy.connections === 0, { what: 'the queued connection to end' });
    expect(queued.proxy.connections).toBe(0);
    // The slot that frees later goes to nobody: the leaver is gone, nothing connects on its behalf.
    holder.socket.destroy();
    await settled(balancer);
    expect(svc!.received).toHaveLength(1);
    expect(balancer.backends[0]!.inflight).toBe(0);
  });

  it('close() closes the connections waiting in the queue', async () => {
    const [svc] = await services('solo');
    const balancer = lb({ backends: [{ id: 'solo', address: svc!.address, maxConnections: 1 }] });
    const { port, proxy } = await proxyFor({ balancer, queueTimeoutMs: 10_000 });
    const holder = await connectClient(port);
    await holder.waitFor('\n');
    const waiting = await connectClient(port);
    await waitFor(() => proxy.connections >= 2, { what: 'two proxied connections' });
    await proxy.close();
    expect(await waiting.closed).toBe('');
    await holder.closed;
    expect(proxy.connections).toBe(0);
  });
});
