/**
 * Real `@grpc/grpc-js` servers and clients for the HTTP/2 proxy tests. Messages are JSON (the
 * service is defined with grpc-js's own definition objects, no .proto needed); each backend says
 * who it is in every answer, so a test sees where each call went.
 */
import * as grpc from '@grpc/grpc-js';

export interface Message {
  backend?: string;
  text?: string;
  n?: number;
  /** Unary: answer with this gRPC status instead of OK. */
  fail?: number;
  /** Unary: wait this long before answering (ms), or until the call is cancelled. */
  delayMs?: number;
  /** Unary: do not answer until released (`backend.release()`). */
  hold?: boolean;
}

const serialize = (message: Message): Buffer => Buffer.from(JSON.stringify(message));
const deserialize = (bytes: Buffer): Message => JSON.parse(bytes.toString('utf8')) as Message;

function method(name: string, requestStream: boolean, responseStream: boolean): grpc.MethodDefinition<Message, Message> {
  return {
    path: `/fulcrum.test.Echo/${name}`,
    requestStream,
    responseStream,
    requestSerialize: serialize,
    requestDeserialize: deserialize,
    responseSerialize: serialize,
    responseDeserialize: deserialize,
  };
}

export const EchoService = {
  unary: method('Unary', false, false),
  serverStream: method('ServerStream', false, true),
  clientStream: method('ClientStream', true, false),
  bidi: method('Bidi', true, true),
} satisfies grpc.ServiceDefinition;

export interface EchoClient extends grpc.Client {
  unary(message: Message, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<Message>): grpc.ClientUnaryCall;
  serverStream(message: Message, metadata?: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientReadableStream<Message>;
  clientStream(metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<Message>): grpc.ClientWritableStream<Message>;
  bidi(metadata?: grpc.Metadata, options?: grpc.CallOptions): grpc.ClientDuplexStream<Message, Message>;
}

const EchoClientConstructor = grpc.makeGenericClientConstructor(EchoService, 'Echo') as unknown as new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ClientOptions,
) => EchoClient;

export interface EchoBackend {
  readonly id: string;
  readonly port: number;
  readonly address: string;
  /** Calls received, per method name. */
  readonly calls: Record<string, number>;
  /** Trailing metadata each unary answer carries (`x-backend`). */
  release(): void;
  /** Unary calls currently held (`hold: true`). */
  readonly held: number;
  /** Called when a unary call arrives (before it is answered). */
  onCall?: (message: Message) => void;
  close(): Promise<void>;
  /** Kill: every connection is cut now (calls in flight fail). */
  kill(): void;
}

export async function startEchoBackend(id: string, extra?: (server: grpc.Server) => void): Promise<EchoBackend> {
  const server = new grpc.Server();
  const calls: Record<string, number> = {};
  const count = (name: string): void => {
    calls[name] = (calls[name] ?? 0) + 1;
  };
  const holds: (() => void)[] = [];
  const backend: EchoBackend = {
    id,
    port: 0,
    address: '',
    calls,
    release: () => {
      for (const answer of holds.splice(0)) answer();
    },
    get held() {
      return holds.length;
    },
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
    kill: () => server.forceShutdown(),
  };
  server.addService(EchoService, {
    unary: (call: grpc.ServerUnaryCall<Message, Message>, callback: grpc.sendUnaryData<Message>) => {
      count('unary');
      const request = call.request;
      backend.onCall?.(request);
      const trailer = new grpc.Metadata();
      trailer.set('x-backend', id);
      const answer = (): void => {
        if (request.fail !== undefined) callback({ code: request.fail, details: `failed by ${id}`, metadata: trailer });
        else callback(null, { backend: id, text: request.text }, trailer);
      };
      if (request.hold === true) holds.push(answer);
      else if (request.delayMs !== undefined) {
        const timer = setTimeout(answer, request.delayMs);
        call.on('cancelled', () => clearTimeout(timer));
      } else answer();
    },
    serverStream: (call: grpc.ServerWritableStream<Message, Message>) => {
      count('serverStream');
      for (let i = 0; i < (call.request.n ?? 1); i++) call.write({ backend: id, n: i });
      call.end();
    },
    clientStream: (call: grpc.ServerReadableStream<Message, Message>, callback: grpc.sendUnaryData<Message>) => {
      count('clientStream');
      let sum = 0;
      call.on('data', (message: Message) => {
        sum += message.n ?? 0;
      });
      call.on('end', () => callback(null, { backend: id, n: sum }));
    },
    bidi: (call: grpc.ServerDuplexStream<Message, Message>) => {
      count('bidi');
      call.on('data', (message: Message) => call.write({ backend: id, text: message.text, n: message.n }));
      call.on('end', () => call.end());
    },
  });
  extra?.(server);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound)));
  });
  Object.assign(backend, { port, address: `http://127.0.0.1:${port}` });
  return backend;
}

/** A grpc-js client on one channel (one HTTP/2 connection) to `target` (host:port). */
export function echoClient(target: string, credentials = grpc.credentials.createInsecure(), options?: grpc.ClientOptions): EchoClient {
  return new EchoClientConstructor(target, credentials, { 'grpc.enable_retries': 0, ...options });
}

export function unary(client: EchoClient, message: Message, options: grpc.CallOptions = {}): Promise<{ message: Message; trailers: grpc.Metadata }> {
  return new Promise((resolve, reject) => {
    let outcome: { error: grpc.ServiceError | null; response: Message | undefined } | undefined;
    let trailers: grpc.Metadata | undefined;
    const settle = (): void => {
      if (outcome === undefined || trailers === undefined) return;
      if (outcome.error) reject(outcome.error);
      else resolve({ message: outcome.response!, trailers });
    };
    const call = client.unary(message, new grpc.Metadata(), options, (error, response) => {
      outcome = { error, response };
      settle();
    });
    call.on('status', (status: grpc.StatusObject) => {
      trailers = status.metadata;
      settle();
    });
  });
}

/** The status of a call that must fail: its code and details. */
export async function failure(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (error) {
    return error as grpc.ServiceError;
  }
  throw new Error('the call succeeded');
}

export { grpc };
