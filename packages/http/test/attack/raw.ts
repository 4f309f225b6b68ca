/**
 * Raw-socket clients for the attack suites: bytes go out exactly as written, nothing is validated
 * or framed client-side, and what comes back is read as the bytes the server sent.
 */
import { connect, type Socket } from 'node:net';

export interface RawReply {
  /** Everything the server sent, as latin1 text. */
  text: string;
  /** The status code of the first response line, 0 when there was none. */
  status: number;
  /** The server closed the connection (rather than the client giving up after `waitMs`). */
  closedByServer: boolean;
}

/**
 * Send `bytes` and collect the answer until the server closes, or until `waitMs` passes (a
 * keep-alive connection the server leaves open is then closed by the client).
 */
export function rawExchange(port: number, bytes: string | Buffer, waitMs = 1500): Promise<RawReply> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const chunks: Buffer[] = [];
    let closedByServer = true;
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      resolve({ text, status: statusOf(text), closedByServer });
    });
    socket.setTimeout(waitMs, () => {
      closedByServer = false;
      socket.destroy();
    });
    socket.write(bytes);
  });
}

/** The status code of the first response line in `text`, 0 when there is none. */
export function statusOf(text: string): number {
  const match = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  return match === null ? 0 : Number(match[1]);
}

/**
 * A connection whose replies are read one at a time: `next(predicate)` resolves with the text
 * received so far once the predicate holds for it (no sleeps: it waits on data).
 */
export class RawConnection {
  readonly socket: Socket;
  #text = '';
  #waiters: { test: (text: string) => boolean; resolve: (text: string) => void; reject: (e: Error) => void }[] = [];
  closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (c: Buffer) => {
      this.#text += c.toString('latin1');
      this.#check();
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed = true;
      this.#check();
      for (const w of this.#waiters.splice(0)) w.reject(new Error(`connection closed; received: ${JSON.stringify(this.#text)}`));
    });
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: '127.0.0.1', port }, () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  get text(): string {
    return this.#text;
  }

  write(bytes: string | Buffer): void {
    this.socket.write(bytes);
  }

  /** Resolve once `test(received)` is true; reject when the connection closes first. */
  until(test: (text: string) => boolean): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#waiters.push({ test, resolve, reject });
      this.#check();
    });
  }

  /** Resolve when the server has closed the connection. */
  closedPromise(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => this.socket.once('close', () => resolve()));
  }

  destroy(): void {
    this.socket.destroy();
  }

  #check(): void {
    const text = this.#text;
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.test(text)) return true;
      w.resolve(text);
      return false;
    });
  }
}

/** Occurrences of `needle` in `text`. */
export function count(text: string, needle: string): number {
  let n = 0;
  for (let i = text.indexOf(needle); i !== -1; i = text.indexOf(needle, i + needle.length)) n++;
  return n;
}
