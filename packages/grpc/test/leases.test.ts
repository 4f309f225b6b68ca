import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { deferred, waitFor } from '../../../test-support/wait-for';
import { connect, startBackend, testTarget, uniquePolicyName } from './fixtures';
import type { Backend, EchoReply, EchoRequest } from './fixtures';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0).reverse()) await fn();
});

async function backends(n: number): Promise<Backend[]> {
  const list = await Promise.all(Array.from({ length: n }, (_, i) => startBackend(`b${i}`)));
  for (const b of list) cleanup.push(() => b.close());
  return list;
}

/** Call credentials whose metadata arrives only when the test says: grpc-js starts the call after. */
function slowCredentials() {
  const requested = deferred<void>();
  const release = deferred<void>();
  const credentials = grpc.credentials.createFromMetadataGenerator((_params, callback) => {
    requested.resolve();
    void release.promise.then(() => callback(null, new grpc.Metadata()));
  });
  return { credentials, requested, release };
}

function unaryWith(client: unknown, request: EchoRequest, callOptions: grpc.CallOptions): Promise<EchoReply> {
  return new Promise((resolve, reject) => {
    (client as { Unary: (...args: unknown[]) => unknown }).Unary(request, new grpc.Metadata(), callOptions, (e: grpc.ServiceError | null, r: EchoReply) =>
      e ? reject(e) : resolve(r),
    );
  });
}

describe('leases follow calls, not picks', () => {
  it('holds the backend for a call that starts late (slow call credentials) and releases it once', async () => {
    const bs = await backends(1);
    const t = testTarget([bs[0]!.address]);
    const c = await connect(t.target, { algorithm: 'round-robin', name: uniquePolicyName('late') });
    cleanup.push(() => c.close());
    const backend = c.lb().backends[0]!;
    const slow = slowCredentials();
    const reply = unaryWith(c.client, { hold: true }, { credentials: slow.credentials });
    await slow.requested.promise;
    // The pick is made; while the credentials are pending the call has not started.
    await waitFor(() => backend.inflight === 0, { what: 'the unstarted pick to be let go' });
    slow.release.resolve();
    await bs[0]!.held.promise;
    // Started after all: the backend is leased again for the call's lifetime.
    expect(backend.inflight).toBe(1);
    bs[0]!.release();
    expect((await reply).backend).toBe('b0');
    await waitFor(() => backend.inflight === 0, { what: 'the call to release its lease' });
    expect(backend.failures).toBe(0);
  });

  it('leaks no lease when a thousand calls are cancelled as they start', async () => {
    const bs = await backends(3);
    const t = testTarget(bs.map((b) => b.address));
    const c = await connect(t.target, { algorithm: 'least-connections', name: uniquePolicyName('cancel') });
    cleanup.push(() => c.close());
    const lb = c.lb();
    const ended: Promise<void>[] = [];
    for (let i = 0; i < 1000; i++) {
      const call = (c.client as unknown as { Unary: (...args: unknown[]) => unknown }).Unary(
        { hold: true },
        new grpc.Metadata(),
        {},
        () => {},
      ) as grpc.ClientUnaryCall;
      ended.push(new Promise((resolve) => call.on('status', () => resolve())));
      // Not synchronously: grpc-js 1.14 still opens the stream of a call cancelled before the
      // channel had its config (the stream then lives until the backend ends it).
      if (i % 2 === 0) setImmediate(() => call.cancel());
      else setImmediate(() => setImmediate(() => call.cancel()));
    }
    await Promise.all(ended);
    await waitFor(() => lb.snapshot().backends.every((b) => b.inflight === 0), { what: 'every lease to be released' });
    expect(lb.snapshot().backends.reduce((n, b) => n + b.failures, 0)).toBe(0);
  });
});
