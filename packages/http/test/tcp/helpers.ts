// Test support for the TCP proxy: real net servers on 127.0.0.1 (echo services that say who they
// are), a proxy server in front, clients that collect what they receive, and cleanup of everything.
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { createTcpProxy, type TcpProxyHandler, type TcpProxyOptions } from '../../src/tcp';

export interface TestService {
  id: string;
  port: number;
  address: string;
  /** Every connection's received bytes, in order of arrival. */
  received: Buffer[][];
  close(): Promise<void>;
}

/** A server that tracks its sockets so close() never waits on a lingering client. */
export async function listen(onSocket: (socket: Socket) => void): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/**
 * A fake "database": greets with `<id>\n`, then echoes every byte; on the client's FIN it writes
 * `bye <bytes received>\n` and closes its side.
 */
export async function startService(id: string): Promise<TestService> {
  const received: Buffer[][] = [];
  const { port, close } = await listen((socket) => {
    const chunks: Buffer[] = [];
    received.push(chunks);
    let total = 0;
    socket.write(`${id}\n`);
    socket.on('data', (chunk: Buffer) => {
      chunks.push(chunk);
      total += chunk.length;
      socket.write(chunk);
    });
    socket.on('end', () => socket.end(`bye ${total}\n`));
  });
  return { id, port, address: `127.0.0.1:${port}`, received, close };
}

/** A port with nothing listening. */
export async function closedPort(): Promise<number> {
  const { port, close } = await listen(() => undefined);
  await close();
  return port;
}

export interface TestProxy {
  proxy: TcpProxyHandler;
  port: number;
  close(): Promise<void>;
}

export async function startTcpProxy(options: TcpProxyOptions): Promise<TestProxy> {
  const proxy = createTcpProxy(options);
  const server = createServer({ allowHalfOpen: true }, proxy);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    proxy,
    port: (server.address() as AddressInfo).port,
    close: async () => {
      await proxy.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A client connection that accumulates what it receives. */
export interface TestClient {
  socket: Socket;
  /** Resolves when the received text contains `text`. */
  waitFor(text: string): Promise<string>;
  /** Resolves with everything received once the connection has closed. */
  closed: Promise<string>;
  text(): string;
}

export function connectClient(port: number): Promise<TestClient> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port, allowHalfOpen: true });
    let text = '';
    const waiters: { text: string; resolve: (t: string) => void }[] = [];
    socket.on('data', (chunk: Buffer) => {
      text += chunk.toString('latin1');
      for (const waiter of [...waiters]) {
        if (text.includes(waiter.text)) {
          waiters.splice(waiters.indexOf(waiter), 1);
          waiter.resolve(text);
        }
      }
    });
    socket.on('error', () => undefined);
    // Half-open so a test can half-close first; once the other side finishes, finish too.
    socket.on('end', () => socket.end());
    const closed = new Promise<string>((r) => socket.once('close', () => r(text)));
    socket.once('connect', () =>
      resolve({
        socket,
        closed,
        text: () => text,
        waitFor: (wanted) => (text.includes(wanted) ? Promise.resolve(text) : new Promise((r) => waiters.push({ text: wanted, resolve: r }))),
      }),
    );
    socket.once('error', reject);
  });
}
