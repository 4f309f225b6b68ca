// Real loopback servers for the probe tests, which record every connection so a test can assert
// that the probe closed its socket (the server sees it close) and that nothing is left open.
import http from 'node:http';
import type { IncomingMessage, RequestListener, Server } from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';

export interface TrackedServer {
  readonly server: Server | net.Server;
  readonly port: number;
  /** Requests the server received (HTTP servers only). */
  readonly requests: IncomingMessage[];
  /** Connections accepted so far. */
  connections: number;
  /** Sockets not yet closed. */
  readonly open: Set<Socket>;
  /** Resolves once every accepted socket has closed; rejects after `boundMs` (a hang, not a speed check). */
  allClosed(boundMs?: number): Promise<void>;
  /** Resolves when the `n`-th request has arrived. */
  requestArrived(n?: number): Promise<IncomingMessage>;
  close(): Promise<void>;
}

function track(server: Server | net.Server, requests: IncomingMessage[]): Omit<TrackedServer, 'port'> {
  const open = new Set<Socket>();
  const closedWaiters: (() => void)[] = [];
  const requestWaiters: { n: number; resolve: (r: IncomingMessage) => void }[] = [];
  const state = {
    server,
    requests,
    connections: 0,
    open,
    allClosed(boundMs = 5000): Promise<void> {
      if (open.size === 0) return Promise.resolve();
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${open.size} connection(s) still open after ${boundMs} ms`)), boundMs);
        closedWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
    requestArrived(n = 1): Promise<IncomingMessage> {
      const existing = requests[n - 1];
      if (existing !== undefined) return Promise.resolve(existing);
      return new Promise((resolve) => requestWaiters.push({ n, resolve }));
    },
    close(): Promise<void> {
      for (const socket of open) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  const onConnection = (socket: Socket): void => {
    state.connections += 1;
    open.add(socket);
    socket.on('close', () => {
      open.delete(socket);
      if (open.size === 0) for (const waiter of closedWaiters.splice(0)) waiter();
    });
  };
  // The raw TCP connection, also for HTTPS: a failed handshake never becomes a 'secureConnection'.
  server.on('connection', onConnection);
  server.on('request', (req: IncomingMessage) => {
    requests.push(req);
    for (const waiter of [...requestWaiters]) {
      if (requests.length >= waiter.n) {
        requestWaiters.splice(requestWaiters.indexOf(waiter), 1);
        waiter.resolve(requests[waiter.n - 1] as IncomingMessage);
      }
    }
  });
  return state;
}

async function listen(server: Server | net.Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** An HTTP server on 127.0.0.1:0 answering with `handler`. */
export async function startHttpServer(handler: RequestListener): Promise<TrackedServer> {
  const server = http.createServer(handler);
  const state = track(server, []);
  return Object.assign(state, { port: await listen(server) });
}

/** An HTTPS server on 127.0.0.1:0 with the given key and certificate. */
export async function startHttpsServer(tls: { key: string; cert: string }, handler: RequestListener): Promise<TrackedServer> {
  const server = https.createServer(tls, handler);
  const state = track(server, []);
  return Object.assign(state, { port: await listen(server) });
}

/** A plain TCP server on 127.0.0.1:0 that accepts and holds connections. */
export async function startTcpServer(): Promise<TrackedServer> {
  const server = net.createServer((socket) => socket.on('error', () => undefined));
  const state = track(server, []);
  return Object.assign(state, { port: await listen(server) });
}

/** A port nothing listens on: bound, then closed. */
export async function closedPort(): Promise<number> {
  const server = net.createServer();
  const port = await listen(server);
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
