/**
 * The HTTP/2 side of a listener: `node:http2` does the framing, HPACK and flow control (nghttp2,
 * with its HTTP messaging checks on: a request with connection-specific fields, a `te` other than
 * `trailers`, upper-case names, missing or repeated or misplaced pseudo-headers, or a body that
 * disagrees with its content-length is a stream error before the proxy sees it), and this file
 * sets the limits of `./options.ts` on every session:
 * - SETTINGS_MAX_CONCURRENT_STREAMS and SETTINGS_MAX_HEADER_LIST_SIZE are advertised and enforced
 *   (a stream past the first is refused; a header list past the second — HPACK bomb or not — is
 *   reset with ENHANCE_YOUR_CALM); header fields past `maxHeaderListPairs` likewise;
 * - streams the client resets are counted per second; past `maxResetsPerSecond` the connection
 *   gets GOAWAY ENHANCE_YOUR_CALM and is closed (rapid reset, CVE-2023-44487);
 * - a connection with no open stream for `idleTimeoutMs` is closed with GOAWAY.
 *
 * Connections come in three ways: a TLS socket whose ALPN chose `h2`, a plain socket that opened
 * with the HTTP/2 client preface (h2c with prior knowledge, `sniffH2c`), and — for `createProxy`
 * on the user's own `node:http2` server — not through here at all (`createProxy` takes its
 * Http2ServerRequest's stream).
 */
import http2, { type Http2Server, type Http2Session, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { NormalizedHttp2Options } from './options';
import type { FrontendProtocolStats } from './stats';

const { NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_NO_ERROR } = http2.constants;

/** The HTTP/2 client connection preface (RFC 9113 §3.4). */
export const CLIENT_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** `node:http2` server options that carry `limits` (for `createProxy` on a user's own server, too). */
export function http2ServerOptions(limits: NormalizedHttp2Options): http2.ServerOptions {
  return {
    settings: {
      maxConcurrentStreams: limits.maxConcurrentStreams,
      maxHeaderListSize: limits.maxHeaderListSize,
      enablePush: false,
    },
    maxHeaderListPairs: limits.maxHeaderListPairs,
    maxSessionMemory: limits.maxSessionMemoryMb,
  };
}

/** A stream's errors end it (its exchange sees the close); one shared listener, no closure per stream. */
export function ignoreError(): void {}

/** Per-session state: open streams, and client resets in the current one-second window. */
interface SessionState {
  open: number;
  resets: number;
  windowStart: number;
}

export class Http2Frontend {
  readonly server: Http2Server;
  readonly #limits: NormalizedHttp2Options;
  readonly #sessions = new Set<ServerHttp2Session>();
  readonly #stats: FrontendProtocolStats | undefined;
  readonly #onStream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => void;
  readonly #onError: (error: unknown) => void;
  /** Streams received in this read, four entries each (stream, headers, flags, raw headers), forwarded together. */
  #arrived: unknown[] = [];
  #closing = false;

  constructor(
    limits: NormalizedHttp2Options,
    onStream: (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => void,
    onError: (error: unknown) => void,
    stats?: FrontendProtocolStats,
  ) {
    this.#limits = limits;
    this.#stats = stats;
    this.#onStream = onStream;
    this.#onError = onError;
    const server = http2.createServer(http2ServerOptions(limits));
    server.on('session', (session: ServerHttp2Session) => this.#onSession(session));
    server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, flags: number, rawHeaders: string[]) => {
      if (this.#closing) {
        if (this.#stats !== undefined) this.#stats.streamsRefused++;
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      // None of a stream's errors may go unhandled, even before its exchange exists.
      stream.on('error', ignoreError);
      // Forwarded once the frames read with it are processed: a stream the client reset in the
      // same read (rapid reset sends HEADERS and RST_STREAM back to back) never costs a backend
      // request. One immediate per read, not per stream.
      if (this.#arrived.length === 0) setImmediate(this.#forwardArrived);
      this.#arrived.push(stream, headers, flags, rawHeaders);
    });
    server.on('sessionError', () => undefined);
    this.server = server;
  }

  #forwardArrived = (): void => {
    const arrived = this.#arrived;
    this.#arrived = [];
    for (let i = 0; i < arrived.length; i += 4) {
      const stream = arrived[i] as ServerHttp2Stream;
      if (stream.destroyed || stream.closed) continue;
      try {
        this.#onStream(stream, arrived[i + 1] as IncomingHttpHeaders, arrived[i + 2] as number, arrived[i + 3] as string[]);
      } catch (error) {
        this.#onError(error);
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      }
    }
  };

  get sessions(): number {
    return this.#sessions.size;
  }

  /** Serve a connection (TLS with ALPN `h2`, or plain with the preface) as HTTP/2. */
  accept(socket: Socket): void {
    // Frames are written whole: Nagle would hold a response's last frame for the client's delayed ACK.
    socket.setNoDelay(true);
    this.server.emit('connection', socket);
  }

  #onSession(session: ServerHttp2Session): void {
    this.#sessions.add(session);
    const limits = this.#limits;
    const stats = this.#stats;
    const state: SessionState = { open: 0, resets: 0, windowStart: 0 };
    session.on('error', () => undefined);
    if (stats !== undefined) {
      stats.sessions++;
      stats.sessionsTotal++;
    }
    session.once('close', () => {
      this.#sessions.delete(session);
      if (stats !== undefined) stats.sessions--;
    });
    session.setTimeout(limits.idleTimeoutMs, () => {
      if (state.open === 0) closeSession(session, NGHTTP2_NO_ERROR);
    });
    session.on('stream', (stream: ServerHttp2Stream) => {
      state.open++;
      if (stats !== undefined) {
        stats.streams++;
        stats.streamsTotal++;
      }
      // One listener per stream: `aborted` is set (and 'aborted' emitted) before 'close', which is
      // emitted once (`on`: no `once` wrapper).
      stream.on('close', () => {
        state.open--;
        if (stats !== undefined) stats.streams--;
        // A stream the client reset before its response was complete.
        if (!stream.aborted) return;
        if (stats !== undefined) stats.streamsReset++;
        const now = Date.now();
        if (now - state.windowStart >= 1000) {
          state.windowStart = now;
          state.resets = 0;
        }
        if (++state.resets > limits.maxResetsPerSecond) {
          if (stats !== undefined && !session.closed && !session.destroyed) stats.sessionsClosedForResets++;
          closeSession(session, NGHTTP2_ENHANCE_YOUR_CALM);
        }
      });
    });
  }

  /** Stop taking streams: GOAWAY to every session; streams in flight run to their end. */
  close(): void {
    this.#closing = true;
    for (const session of this.#sessions) closeSession(session, NGHTTP2_NO_ERROR, true);
  }

  /** Close sessions with no open stream now (`closeIdleConnections`). */
  destroyAll(): void {
    for (const session of this.#sessions) session.destroy();
  }
}

function closeSession(session: Http2Session, code: number, graceful = false): void {
  if (session.destroyed || session.closed) return;
  try {
    session.goaway(code);
  } catch {
    // Already going away.
  }
  if (graceful) session.close();
  else session.destroy();
}

/**
 * Wait for a plain connection's first bytes and tell whether they are the HTTP/2 preface. The bytes
 * read are pushed back onto the socket, so whoever takes it next reads them again. Gives up (and
 * destroys the socket) after `timeoutMs` with no decision.
 */
export function sniffH2c(socket: Socket, timeoutMs: number, decide: (h2: boolean) => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  const finish = (h2: boolean): void => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('close', onClose);
    socket.pause();
    socket.unshift(seen);
    decide(h2);
  };
  const onClose = (): void => clearTimeout(timer);
  const onData = (chunk: Buffer): void => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, CLIENT_PREFACE.length);
    if (seen.compare(CLIENT_PREFACE, 0, n, 0, n) !== 0) return finish(false);
    if (n === CLIENT_PREFACE.length) finish(true);
  };
  socket.on('data', onData);
  socket.once('close', onClose);
}
