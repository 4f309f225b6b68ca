/**
 * gRPC end to end through `createProxyServer` with real grpc-js servers and clients: every call
 * kind, per-call balancing over one client connection, trailers, deadlines, a backend killed
 * mid-call, and the proxy's own errors as gRPC statuses.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createLoadBalancer, type LoadBalancer } from '@fulcrum/core';
import { createProxyServer, type AccessLogEntry, type ProxyServer, type ProxyServerOptions } from '@fulcrum/http';
import { deferred, waitFor } from '../../../../test-support/wait-for';
import { echoClient, failure, grpc, startEchoBackend, unary, type EchoBackend, type EchoClient, type Message } from './grpc-fixtures';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function backends(n: number): Promise<EchoBackend[]> {
  const list: EchoBackend[] = [];
  for (let i = 0; i < n; i++) {
    const backend = await startEchoBackend(`b${i}`);
    cleanups.push(() => backend.kill());
    list.push(backend);
  }
  return list;
}

async function proxyTo(
  list: readonly EchoBackend[],
  options: Partial<ProxyServerOptions> = {},
  algorithm: 'round-robin' | 'p2c' = 'round-robin',
): Promise<{ proxy: ProxyServer; lb: LoadBalancer; client: EchoClient }> {
  const lb = createLoadBalancer({ algorithm, backends: list.map((b) => ({ id: b.id, address: b.address })) });
  cleanups.push(() => lb.close());
  const proxy = createProxyServer({ balancer: lb, upstreamProtocol: 'h2', http2: { h2c: true }, ...options });
  await proxy.listen(0);
  cleanups.push(() => proxy.close(0));
  const client = echoClient(`127.0.0.1:${proxy.address()!.port}`);
  cleanups.push(() => client.close());
  return { proxy, lb, client };
}

describe('gRPC through createProxyServer (h2c both sides)', () => {
  it('spreads the unary calls of one client connection over every backend', async () => {
    const list = await backends(3);
    const { client } = await proxyTo(list);
    const seen: Record<string, number> = {};
    for (let i = 0; i < 30; i++) {
      const { message, trailers } = await unary(client, { text: `hello ${i}` });
      expect(message.text).toBe(`hello ${i}`);
      // Trailing metadata comes through with the status.
      expect(trailers.get('x-backend')).toEqual([message.backend]);
      seen[message.backend!] = (seen[message.backend!] ?? 0) + 1;
    }
    expect(seen).toEqual({ b0: 10, b1: 10, b2: 10 });
  });

  it('relays server-streaming, client-streaming and bidi calls', async () => {
    const list = await backends(2);
    const { client } = await proxyTo(list);

    const streamed: Message[] = [];
    await new Promise<void>((resolve, reject) => {
      const call = client.serverStream({ n: 50 });
      call.on('data', (m: Message) => streamed.push(m));
      call.on('error', reject);
      call.on('end', () => resolve());
    });
    expect(streamed.map((m) => m.n)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(new Set(streamed.map((m) => m.backend)).size).toBe(1);

    const sum = await new Promise<Message>((resolve, reject) => {
      const call = client.clientStream(new grpc.Metadata(), {}, (error, response) => (error ? reject(error) : resolve(response!)));
      for (let i = 1; i <= 100; i++) call.write({ n: i });
      call.end();
    });
    expect(sum.n).toBe(5050);

    const echoed: Message[] = [];
    const call = client.bidi();
    const done = deferred();
    call.on('data', (m: Message) => {
      echoed.push(m);
      if (echoed.length < 20) call.write({ text: `m${echoed.length}`, n: echoed.length });
      else call.end();
    });
    call.on('end', () => done.resolve());
    call.on('error', (error: Error) => done.reject(error));
    call.write({ text: 'm0', n: 0 });
    await done.promise;
    expect(echoed.map((m) => m.n)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('answers with UNAVAILABLE, not an HTTP 502 page, when no backend is reachable', async () => {
    const list = await backends(1);
    const { client, lb } = await proxyTo(list);
    list[0]!.kill();
    const error = await failure(unary(client, { text: 'x' }));
    expect(error.code).toBe(grpc.status.UNAVAILABLE);
    lb.maintain('b0');
    const none = await failure(unary(client, { text: 'x' }));
    expect(none.code).toBe(grpc.status.UNAVAILABLE);
    expect(none.details).toContain('no backend');
  });

  it('retries a call that never reached a backend on another one, and sends it once', async () => {
    const list = await backends(2);
    const { client } = await proxyTo(list);
    // b0 is gone before any call: its connect fails, nothing was sent, the call goes to b1.
    list[0]!.kill();
    for (let i = 0; i < 4; i++) {
      const { message } = await unary(client, { text: 'x' });
      expect(message.backend).toBe('b1');
    }
    expect(list[1]!.calls.unary).toBe(4);
  });

  it('replays a client stream held for replay to another backend when the first was never reached', async () => {
    const list = await backends(2);
    const { client } = await proxyTo(list);
    list[0]!.kill();
    for (let round = 0; round < 2; round++) {
      const sum = await new Promise<Message>((resolve, reject) => {
        const call = client.clientStream(new grpc.Metadata(), {}, (error, response) => (error ? reject(error) : resolve(response!)));
        for (let i = 1; i <= 100; i++) call.write({ n: i });
        call.end();
      });
      expect(sum).toEqual({ backend: 'b1', n: 5050 });
    }
    expect(list[1]!.calls.clientStream).toBe(2);
  });

  it('stops using a backend connection that sent GOAWAY, and no call fails for it', async () => {
    const list = await backends(2);
    const { client } = await proxyTo(list);
    // Both backends have a session with the proxy.
    for (let i = 0; i < 4; i++) await unary(client, { text: `warm ${i}` });
    // b0 shuts down gracefully: GOAWAY on its session, then its port closes.
    await list[0]!.close();
    for (let i = 0; i < 6; i++) expect((await unary(client, { text: `after ${i}` })).message.backend).toBe('b1');
  });

  it('finishes a call in flight when the server closes, and takes no new one', async () => {
    const list = await backends(1);
    const { client, proxy } = await proxyTo(list);
    const arrived = deferred();
    list[0]!.onCall = () => arrived.resolve();
    const held = unary(client, { text: 'in flight', hold: true });
    await arrived.promise;
    const closing = proxy.close(10_000);
    list[0]!.release();
    expect((await held).message.text).toBe('in flight');
    await closing;
    const error = await failure(unary(client, { text: 'late' }, { deadline: Date.now() + 5000 }));
    expect(error.code).toBe(grpc.status.UNAVAILABLE);
  });

  it('fails a call whose backend dies mid-call with UNAVAILABLE and never sends it twice', async () => {
    const list = await backends(2);
    const { client } = await proxyTo(list, { attempts: 3 });
    const arrived = deferred<string>();
    for (const backend of list) backend.onCall = () => arrived.resolve(backend.id);
    const call = unary(client, { text: 'x', hold: true });
    const where = await arrived.promise;
    const victim = list.find((b) => b.id === where)!;
    const other = list.find((b) => b.id !== where)!;
    victim.kill();
    const error = await failure(call);
    expect(error.code).toBe(grpc.status.UNAVAILABLE);
    // The call reached a backend: it is not replayed (a POST with effects).
    expect(other.calls.unary ?? 0).toBe(0);
  });

  it('ends a server stream whose backend dies after its first messages with UNAVAILABLE, the messages kept', async () => {
    const list = await backends(1);
    const { client } = await proxyTo(list);
    const got: Message[] = [];
    const status = await new Promise<grpc.StatusObject>((resolve) => {
      const call = client.serverStream({ n: 1 });
      call.on('data', (m: Message) => got.push(m));
      call.on('error', () => undefined);
      call.on('status', resolve);
    });
    expect(status.code).toBe(grpc.status.OK);
    // A bidi call in progress when the backend is killed.
    const bidi = client.bidi();
    const first = deferred<Message>();
    const ended = deferred<grpc.StatusObject>();
    bidi.on('data', (m: Message) => first.resolve(m));
    bidi.on('error', () => undefined);
    bidi.on('status', (s: grpc.StatusObject) => ended.resolve(s));
    bidi.write({ text: 'one', n: 1 });
    expect((await first.promise).text).toBe('one');
    list[0]!.kill();
    const end = await ended.promise;
    expect(end.code).toBe(grpc.status.UNAVAILABLE);
    expect(got).toHaveLength(1);
  });

  it('retries a call a route marks idempotent after its backend died mid-call', async () => {
    const list = await backends(2);
    const { client } = await proxyTo(list, { attempts: 3, grpc: { idempotentMethods: ['/fulcrum.test.Echo/*'] } });
    const first = deferred<string>();
    list[0]!.onCall = (m) => {
      if (m.hold === true) first.resolve('b0');
    };
    list[1]!.onCall = (m) => {
      if (m.hold === true) first.resolve('b1');
    };
    const call = unary(client, { text: 'again', hold: true });
    const where = await first.promise;
    const other = list.find((b) => b.id !== where)!;
    // The replay holds too; the other backend answers it once it arrives.
    other.onCall = () => queueMicrotask(() => other.release());
    list.find((b) => b.id === where)!.kill();
    const { message } = await call;
    expect(message.backend).toBe(other.id);
  });

  it('turns grpc-timeout into the deadline: the call ends DEADLINE_EXCEEDED', async () => {
    const list = await backends(1);
    const log: AccessLogEntry[] = [];
    const { client } = await proxyTo(list, { accessLog: (entry) => log.push(entry) });
    const started = Date.now();
    const error = await failure(unary(client, { text: 'slow', delayMs: 30_000 }, { deadline: Date.now() + 300 }));
    expect(error.code).toBe(grpc.status.DEADLINE_EXCEEDED);
    expect(Date.now() - started).toBeLessThan(20_000);
    await waitFor(() => log.length === 1, { what: 'the access log entry' });
    expect(log[0]!.termination === 'timeout' || log[0]!.termination === 'client-aborted').toBe(true);
  });

  it('answers DEADLINE_EXCEEDED itself when the proxy deadline (timeouts.totalMs) passes first', async () => {
    const list = await backends(1);
    const { client } = await proxyTo(list, { timeouts: { totalMs: 200 } });
    const error = await failure(unary(client, { text: 'slow', delayMs: 30_000 }, { deadline: Date.now() + 20_000 }));
    expect(error.code).toBe(grpc.status.DEADLINE_EXCEEDED);
  });

  it('answers RESOURCE_EXHAUSTED when every backend is full and the queue is too', async () => {
    const list = await backends(1);
    const lb = createLoadBalancer({ backends: [{ id: 'b0', address: list[0]!.address, maxConnections: 1 }] });
    cleanups.push(() => lb.close());
    const proxy = createProxyServer({ balancer: lb, upstreamProtocol: 'h2', http2: { h2c: true }, maxQueue: 0 });
    await proxy.listen(0);
    cleanups.push(() => proxy.close(0));
    const client = echoClient(`127.0.0.1:${proxy.address()!.port}`);
    cleanups.push(() => client.close());
    const arrived = deferred();
    list[0]!.onCall = () => arrived.resolve();
    const held = unary(client, { text: 'held', hold: true });
    await arrived.promise;
    const error = await failure(unary(client, { text: 'x' }));
    expect(error.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    list[0]!.release();
    await held;
  });

  it('answers RESOURCE_EXHAUSTED when admission refuses the call (rate limit)', async () => {
    const list = await backends(1);
    const { client } = await proxyTo(list, { admission: () => ({ admit: false, status: 429, message: 'Too Many Requests' }) });
    const error = await failure(unary(client, { text: 'x' }));
    expect(error.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    expect(list[0]!.calls.unary ?? 0).toBe(0);
  });

  it('feeds grpc-status outcomes to passive health: UNAVAILABLE counts as a failure, NOT_FOUND does not', async () => {
    const list = await backends(1);
    const { client, lb } = await proxyTo(list);
    const backend = lb.backends[0]!;
    const error = await failure(unary(client, { fail: grpc.status.NOT_FOUND }));
    expect(error.code).toBe(grpc.status.NOT_FOUND);
    expect(error.details).toBe('failed by b0');
    expect(backend.failures).toBe(0);
    const unavailable = await failure(unary(client, { fail: grpc.status.UNAVAILABLE }));
    expect(unavailable.code).toBe(grpc.status.UNAVAILABLE);
    expect(backend.failures).toBe(1);
    await unary(client, { text: 'ok' });
    expect(backend.failures).toBe(1);
    expect(backend.requests).toBe(3);
  });

  it('takes the failure statuses from grpc.failureStatuses', async () => {
    const list = await backends(1);
    const { client, lb } = await proxyTo(list, { grpc: { failureStatuses: [grpc.status.NOT_FOUND] } });
    await failure(unary(client, { fail: grpc.status.UNAVAILABLE }));
    expect(lb.backends[0]!.failures).toBe(0);
    await failure(unary(client, { fail: grpc.status.NOT_FOUND }));
    expect(lb.backends[0]!.failures).toBe(1);
  });
});
