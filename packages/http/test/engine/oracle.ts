/**
 * Node's own HTTP/1.1 parser (llhttp, strict mode) as a test oracle: the bytes go over a loopback
 * socket to a real `http.createServer({ insecureHTTPParser: false })`, and what it did with them —
 * the request it saw (method, target, raw headers, body) or the error it refused them with — is
 * recorded. Public APIs only.
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';

export type OracleVerdict =
  { accepted: true; method: string; url: string; rawHeaders: string[]; body: Buffer; bodyComplete: boolean } | { accepted: false; code: string };

export class LlhttpOracle {
  readonly #server: Server;
  readonly #pending = new Map<number, (verdict: OracleVerdict) => void>();
  #port = 0;

  constructor() {
    this.#server = createServer({ insecureHTTPParser: false, maxHeaderSize: 16_384 });
    const record = (req: IncomingMessage, bodyAllowed: boolean): void => {
      const resolve = this.#take(req.socket);
      const chunks: Buffer[] = [];
      const done = (complete: boolean): void =>
        resolve?.({
          accepted: true,
          method: req.method ?? '',
          url: req.url ?? '',
          rawHeaders: req.rawHeaders,
          body: Buffer.concat(chunks),
          bodyComplete: complete,
        });
      // After an upgrade head, llhttp hands the rest over unparsed: there is no body to compare.
      if (!bodyAllowed) return done(false);
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => done(true));
      req.on('error', () => done(false));
      req.on('aborted', () => done(false));
      req.on('close', () => done(req.complete));
    };
    this.#server.on('request', (req, res) => {
      record(req, true);
      req.on('end', () => res.end());
    });
    this.#server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
      record(req, false);
      socket.destroy();
    });
    this.#server.on('checkExpectation', (req, res) => {
      this.#take(req.socket)?.({ accepted: false, code: 'expectation' });
      res.writeHead(417).end();
    });
    this.#server.on('clientError', (error: Error & { code?: string }, socket) => {
      this.#take(socket as Socket)?.({ accepted: false, code: error.code ?? 'error' });
      socket.destroy();
    });
  }

  #take(socket: Socket): ((verdict: OracleVerdict) => void) | undefined {
    const resolve = this.#pending.get(socket.remotePort ?? -1);
    if (resolve !== undefined) this.#pending.delete(socket.remotePort ?? -1);
    return resolve;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.#port = (this.#server.address() as AddressInfo).port;
  }

  /** What llhttp makes of `bytes` (the first message only). */
  judge(bytes: Buffer): Promise<OracleVerdict> {
    return new Promise((resolve) => {
      const socket = connect({ host: '127.0.0.1', port: this.#port });
      let settled = false;
      const finish = (verdict: OracleVerdict): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        resolve(verdict);
      };
      const timer = setTimeout(() => finish({ accepted: false, code: 'no-verdict' }), 3000);
      socket.on('connect', () => {
        this.#pending.set(socket.localPort!, finish);
        socket.end(bytes);
      });
      socket.on('error', () => undefined);
      socket.on('close', () => setImmediate(() => finish({ accepted: false, code: 'closed' })));
      socket.resume();
    });
  }

  close(): Promise<void> {
    this.#server.closeAllConnections();
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }
}
