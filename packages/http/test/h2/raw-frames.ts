/**
 * A raw HTTP/2 client for attack tests: frames written byte by byte and HPACK encoded by hand
 * (RFC 9113, RFC 7541), so a test can send what no well-behaved client library would — connection
 * headers, bad pseudo-headers, header lists that decode to megabytes, resets by the hundred.
 */
import { connect, type Socket } from 'node:net';
import { deferred, type Deferred } from '../../../../test-support/wait-for';

export const FrameType = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const Flags = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const ErrorCode = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, REFUSED_STREAM: 7, CANCEL: 8, ENHANCE_YOUR_CALM: 11 } as const;

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

export function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(stream & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** An HPACK integer with an N-bit prefix (RFC 7541 §5.1); `first` holds the pattern bits above it. */
function integer(value: number, prefixBits: number, first: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [first | value];
  const out = [first | max];
  let rest = value - max;
  while (rest >= 128) {
    out.push((rest % 128) + 128);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return out;
}

function text(value: string): Buffer {
  const bytes = Buffer.from(value, 'latin1');
  return Buffer.concat([Buffer.from(integer(bytes.length, 7, 0)), bytes]);
}

/** A literal field without indexing, new name (RFC 7541 §6.2.2). */
export function literal(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x00]), text(name), text(value)]);
}

/** A literal field with incremental indexing, new name: it enters the dynamic table (§6.2.1). */
export function indexedLiteral(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x40]), text(name), text(value)]);
}

/** An indexed field (§6.1): `index` 62 is the newest dynamic-table entry. */
export function indexed(index: number): Buffer {
  return Buffer.from(integer(index, 7, 0x80));
}

/** A header block of literal fields, in order. */
export function block(fields: readonly (readonly [string, string])[]): Buffer {
  return Buffer.concat(fields.map(([name, value]) => literal(name, value)));
}

export function request(path: string, extra: readonly (readonly [string, string])[] = [], method = 'GET'): Buffer {
  return block([[':method', method], [':scheme', 'http'], [':path', path], [':authority', 'localhost'], ...extra]);
}

/** A connection to an h2c listener: the preface and empty SETTINGS sent, every frame received recorded. */
export class RawH2 {
  readonly socket: Socket;
  readonly frames: Frame[] = [];
  readonly closed: Deferred<void> = deferred();
  #buf = Buffer.alloc(0);
  #waiters: { test: (f: Frame) => boolean; done: Deferred<Frame> }[] = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.closed.resolve();
      for (const waiter of this.#waiters.splice(0)) waiter.done.reject(new Error('connection closed before the frame came'));
    });
  }

  static async open(port: number): Promise<RawH2> {
    const socket = connect(port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    const conn = new RawH2(socket);
    socket.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), frame(FrameType.SETTINGS, 0, 0)]));
    return conn;
  }

  send(data: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  headers(stream: number, headerBlock: Buffer, endStream = true): void {
    this.send(frame(FrameType.HEADERS, Flags.END_HEADERS | (endStream ? Flags.END_STREAM : 0), stream, headerBlock));
  }

  reset(stream: number, code: number = ErrorCode.CANCEL): void {
    const payload = Buffer.alloc(4);
    payload.writeUInt32BE(code);
    this.send(frame(FrameType.RST_STREAM, 0, stream, payload));
  }

  /** The first frame (already received or coming) that passes `test`. */
  waitFor(test: (f: Frame) => boolean): Promise<Frame> {
    const seen = this.frames.find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    const done = deferred<Frame>();
    this.#waiters.push({ test, done });
    return done.promise;
  }

  /** The stream's end: its response HEADERS/DATA with END_STREAM, or its RST_STREAM, or a GOAWAY. */
  streamEnd(stream: number): Promise<Frame> {
    return this.waitFor(
      (f) =>
        (f.stream === stream &&
          (f.type === FrameType.RST_STREAM || ((f.type === FrameType.HEADERS || f.type === FrameType.DATA) && (f.flags & Flags.END_STREAM) !== 0))) ||
        f.type === FrameType.GOAWAY,
    );
  }

  close(): void {
    this.socket.destroy();
  }

  #onData(chunk: Buffer): void {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    while (this.#buf.length >= 9) {
      const length = this.#buf.readUIntBE(0, 3);
      if (this.#buf.length < 9 + length) break;
      const f: Frame = {
        type: this.#buf[3]!,
        flags: this.#buf[4]!,
        stream: this.#buf.readUInt32BE(5) & 0x7fffffff,
        payload: this.#buf.subarray(9, 9 + length),
      };
      this.#buf = this.#buf.subarray(9 + length);
      this.frames.push(f);
      if (f.type === FrameType.SETTINGS && (f.flags & Flags.ACK) === 0) this.send(frame(FrameType.SETTINGS, Flags.ACK, 0));
      for (const waiter of [...this.#waiters]) {
        if (waiter.test(f)) {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
          waiter.done.resolve(f);
        }
      }
    }
  }
}

/** The value of a setting in a SETTINGS frame's payload, or undefined. */
export function setting(f: Frame, id: number): number | undefined {
  for (let i = 0; i + 6 <= f.payload.length; i += 6) if (f.payload.readUInt16BE(i) === id) return f.payload.readUInt32BE(i + 2);
  return undefined;
}

/** The error code of an RST_STREAM or GOAWAY frame. */
export function errorCode(f: Frame): number {
  return f.type === FrameType.GOAWAY ? f.payload.readUInt32BE(4) : f.payload.readUInt32BE(0);
}
