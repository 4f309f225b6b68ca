/**
 * Real grpc-js servers and clients for the policy's tests: an Echo service with the four call
 * kinds (JSON messages, so no protobuf runtime is needed), backends that count what they receive,
 * and a resolver whose address list a test changes (scheme `fulcrum-test:`).
 */
import * as grpc from '@grpc/grpc-js';
import type { LoadBalancer } from '@fulcrum/core';
import { createHealthService, fulcrumServiceConfig, onLoadBalancer, registerFulcrumPolicy } from '@fulcrum/grpc';
import type { FulcrumPolicyOptions, HealthService } from '@fulcrum/grpc';
import { deferred, waitFor } from '../../../test-support/wait-for';
import type { Deferred } from '../../../test-support/wait-for';

export interface EchoRequest {
  text?: string;
  /** The backend holds the call until the test releases it (`backend.release()`), or forever. */
  hold?: boolean;
  /** The backend answers with this gRPC status. */
  fail?: number;
  /** The backend waits this long before answering (a slow backend; not used for synchronisation). */
  delayMs?: number;
  /** Server streaming: how many messages. */
  count?: number;
}
export interface EchoReply {
  backend: string;
  text?: string;
  seq?: number;
  total?: number;
}

const json = {
  serialize: (value: unknown) => Buffer.from(JSON.stringify(value)),
  deserialize: (buf: Buffer) => JSON.parse(buf.toString('utf8')) as never,
};
const method = (name: string, requestStream: boolean, responseStream: boolean) => ({
  path: `/fulcrum.test.Echo/${name}`,
  requestStream,
  responseStream,
  requestSerialize: json.serialize,
  requestDeserialize: json.deserialize,
  responseSerialize: json.serialize,
  responseDeserialize: json.deserialize,
});

export const echoDefinition: grpc.ServiceDefinition = {
  Unary: method('Unary', false, false),
  ServerStream: method('ServerStream', false, true),
  ClientStream: method('ClientStream', true, false),
  Bidi: method('Bidi', true, true),
};

export const EchoClient = grpc.makeGenericClientConstructor(echoDefinition, 'Echo');
export type EchoClient = InstanceType<typeof EchoClient> & Record<string, (...args: unknown[]) => unknown>;

export interface Backend {
  readonly name: string;
  readonly port: number;
  readonly address: string;
  /** Calls received, per method. */
  readonly calls: Record<string, number>;
  readonly total: () => number;
  /** Fires each time a call with `hold` arrives. */
  held: Deferred<void>;
  /** Answer every held call. */
  release(): void;
  readonly health: HealthService;
  /** Stop at once: open calls are cut (the backend "dies"). */
  kill(): void;
  close(): Promise<void>;
}

export async function startBackend(name: string, options: { health?: boolean; port?: number } = {}): Promise<Backend> {
  const server = new grpc.Server();
  const calls: Record<string, number> = { Unary: 0, ServerStream: 0, ClientStream: 0, Bidi: 0 };
  const waiting: (() => void)[] = [];
  const health = createHealthService();
  const answer = (request: EchoRequest, reply: (error: grpc.ServiceError | null, value?: EchoReply) => void) => {
    const send = () => {
      if (request.fail !== undefined) reply({ code: request.fail, details: `${name} fails`, name: 'Error', message: 'fails', metadata: new grpc.Metadata() });
      else reply(null, { backend: name, text: request.text });
    };
    if (request.hold) {
      waiting.push(send);
      backend.held.resolve();
    } else if (request.delayMs) setTimeout(send, request.delayMs);
    else send();
  };
  server.addService(echoDefinition, {
    Unary(call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, callback: grpc.sendUnaryData<EchoReply>) {
      calls.Unary!++;
      answer(call.request, (error, value) => callback(error, value));
    },
    ServerStream(call: grpc.ServerWritableStream<EchoRequest, EchoReply>) {
      calls.ServerStream!++;
      const total = call.request.count ?? 3;
      const finish = () => {
        for (let seq = 0; seq < total; seq++) call.write({ backend: name, seq, total });
        call.end();
      };
      if (call.request.hold) {
        call.write({ backend: name, seq: -1 });
        waiting.push(finish);
        backend.held.resolve();
      } else finish();
    },
    ClientStream(call: grpc.ServerReadableStream<EchoRequest, EchoReply>, callback: grpc.sendUnaryData<EchoReply>) {
      calls.ClientStream!++;
      const texts: string[] = [];
      call.on('data', (m: EchoRequest) => texts.push(m.text ?? ''));
      call.on('end', () => callback(null, { backend: name, text: texts.join(','), total: texts.length }));
    },
    Bidi(call: grpc.ServerDuplexStream<EchoRequest, EchoReply>) {
      calls.Bidi!++;
      call.on('data', (m: EchoRequest) => call.write({ backend: name, text: m.text }));
      call.on('end', () => call.end());
    },
  });
  if (options.health) server.addService(health.definition, health.implementation);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${options.port ?? 0}`, grpc.ServerCredentials.createInsecure(), (error, p) => (error ? reject(error) : resolve(p))),
  );
  const backend: Backend = {
    name,
    port,
    address: `127.0.0.1:${port}`,
    calls,
    total: () => Object.values(calls).reduce((a, b) => a + b, 0),
    held: deferred<void>(),
    release() {
      for (const send of waiting.splice(0)) send();
    },
    health,
    kill() {
      server.forceShutdown();
    },
    close() {
      health.close();
      return new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        // Held calls would keep tryShutdown waiting.
        backend.release();
      });
    },
  };
  return backend;
}

// ─── a resolver the test drives ──────────────────────────────────────────────────────────────

type Listener = grpc.experimental.ResolverListener;
const targets = new Map<string, { addresses: string[]; listeners: Set<() => void> }>();

class TestResolver implements grpc.experimental.Resolver {
  readonly #name: string;
  readonly #listener: Listener;
  readonly #notify = () => this.updateResolution();
  constructor(target: grpc.experimental.GrpcUri, listener: Listener) {
    this.#name = target.path;
    this.#listener = listener;
    targets.get(this.#name)?.listeners.add(this.#notify);
  }
  updateResolution(): void {
    const entry = targets.get(this.#name);
    const endpoints = (entry?.addresses ?? []).map((address) => {
      const [host, port] = address.split(':');
      return { addresses: [{ host: host!, port: Number(port) }] };
    });
    process.nextTick(() => this.#listener({ ok: true, value: endpoints }, {}, null, 'test resolver'));
  }
  destroy(): void {
    targets.get(this.#name)?.listeners.delete(this.#notify);
  }
  static getDefaultAuthority(target: grpc.experimental.GrpcUri): string {
    return target.path;
  }
}
grpc.experimental.registerResolver('fulcrum-test', TestResolver as unknown as Parameters<typeof grpc.experimental.registerResolver>[1]);

let nextTarget = 0;
/** A target name whose address list `setAddresses` changes; resolved by `fulcrum-test:`. */
export function testTarget(addresses: string[]): { target: string; setAddresses(addresses: string[]): void } {
  const name = `t${nextTarget++}`;
  const entry = { addresses, listeners: new Set<() => void>() };
  targets.set(name, entry);
  return {
    target: `fulcrum-test:${name}`,
    setAddresses(next) {
      entry.addresses = next;
      for (const notify of entry.listeners) notify();
    },
  };
}

registerFulcrumPolicy();

/** A client over `backends` with the fulcrum policy, and the core load balancer it created. */
export async function connect(
  target: string,
  policy: FulcrumPolicyOptions,
  channelOptions: grpc.ChannelOptions = {},
): Promise<{ client: EchoClient; lb: () => LoadBalancer; close(): void }> {
  let created: LoadBalancer | undefined;
  const name = `${policy.name ?? 'grpc'}`;
  const off = onLoadBalancer((lb, info) => {
    if (info.name === name) created = lb;
  });
  const client = new EchoClient(target, grpc.credentials.createInsecure(), {
    'grpc.service_config': JSON.stringify(fulcrumServiceConfig(policy)),
    ...channelOptions,
  }) as EchoClient;
  await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 10_000, (error?: Error) => (error ? reject(error) : resolve())));
  off();
  // Ready means one backend is; the tests start once every address is connected and balanced over.
  const expected = target.startsWith('fulcrum-test:') ? (targets.get(target.slice('fulcrum-test:'.length))?.addresses.length ?? 0) : 0;
  await waitFor(() => created !== undefined && created.eligibleCount >= expected, { what: `${expected} backends in the load balancer` });
  return {
    client,
    lb: () => {
      if (created === undefined) throw new Error(`no load balancer named ${name} was created`);
      return created;
    },
    close: () => client.close(),
  };
}

export function unary(client: EchoClient, request: EchoRequest, options: { metadata?: grpc.Metadata; deadlineMs?: number } = {}): Promise<EchoReply> {
  return new Promise((resolve, reject) => {
    const callOptions: grpc.CallOptions = options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs };
    (client as unknown as grpc.Client & { Unary: (...args: unknown[]) => unknown }).Unary(
      request,
      options.metadata ?? new grpc.Metadata(),
      callOptions,
      (error: grpc.ServiceError | null, reply: EchoReply) => (error ? reject(error) : resolve(reply)),
    );
  });
}

let uniqueName = 0;
/** A policy name unique to this test file's run, so `connect` finds the load balancer it made. */
export function uniquePolicyName(prefix: string): string {
  return `${prefix}-${process.pid}-${uniqueName++}`;
}

// ─── a backend in a child process, to be killed ───────────────────────────────────────────────

export interface ProcessBackend {
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** Calls received, per method. */
  readonly calls: Record<string, number>;
  /** Fires when the next held call (or streamed message) arrives. */
  nextHeld(): Promise<void>;
  /** SIGKILL, and wait for the process to be gone. */
  kill(): Promise<void>;
}

export async function startProcessBackend(name: string): Promise<ProcessBackend> {
  const { spawn } = await import('node:child_process');
  const { fileURLToPath } = await import('node:url');
  const script = fileURLToPath(new URL('./backend-process.mjs', import.meta.url));
  const child = spawn(process.execPath, [script, name], { stdio: ['ignore', 'pipe', 'inherit'], cwd: fileURLToPath(new URL('.', import.meta.url)) });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const calls: Record<string, number> = {};
  const port = deferred<number>();
  let held = deferred<void>();
  let buffered = '';
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.startsWith('port ')) port.resolve(Number(line.slice(5)));
      else if (line.startsWith('call ')) calls[line.slice(5)] = (calls[line.slice(5)] ?? 0) + 1;
      else if (line === 'held') held.resolve();
    }
  });
  child.once('exit', () => port.settled || port.reject(new Error(`backend process ${name} exited before binding`)));
  const p = await port.promise;
  return {
    name,
    port: p,
    address: `127.0.0.1:${p}`,
    calls,
    nextHeld: () =>
      held.promise.then(() => {
        held = deferred<void>();
      }),
    async kill() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
