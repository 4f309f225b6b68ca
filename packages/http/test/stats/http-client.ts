// A tiny HTTP client for the stats tests: one connection per request (agent: false), so nothing
// stays open after a test, and a server helper that closes everything it accepted.
import http from 'node:http';
import type { IncomingHttpHeaders, RequestListener } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

export function request(url: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export interface TestServer {
  url: string;
  close(): Promise<void>;
}

export async function serve(handler: RequestListener): Promise<TestServer> {
  const sockets = new Set<Socket>();
  const server = http.createServer(handler);
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A GET whose reading is paused after the first chunk: the server's render cannot run ahead of it. */
export interface HeldResponse {
  status: number;
  headers: IncomingHttpHeaders;
  /** Read the rest; resolves with the whole body. */
  resume(): Promise<string>;
  /** Drop the connection without reading the rest. */
  abort(): void;
}

export function heldRequest(url: string, headers: Record<string, string> = {}): Promise<HeldResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { agent: false, headers }, (res) => {
      const chunks: Buffer[] = [];
      let ended = false;
      let onEnd: (() => void) | undefined;
      // A response the server cut is incomplete (`res.complete` false): it must never pass for a body.
      const settle = (): void => {
        if (ended) return;
        ended = true;
        onEnd?.();
      };
      res.on('end', settle);
      res.on('close', settle);
      res.on('error', () => undefined);
      res.once('data', (first: Buffer) => {
        chunks.push(first);
        res.pause();
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          resume: () =>
            new Promise<string>((done, fail) => {
              res.on('data', (chunk: Buffer) => chunks.push(chunk));
              const finish = (): void =>
                res.complete ? done(Buffer.concat(chunks).toString('utf8')) : fail(new Error('aborted: the server cut the response'));
              if (ended) finish();
              else onEnd = finish;
              res.resume();
            }),
          abort: () => req.destroy(),
        });
      });
    });
    req.on('error', reject);
    req.end();
  });
}
