/**
 * One client request through the raw engine: its attempts, retries and response — the raw-socket
 * counterpart of `createProxy`'s `ProxiedRequest`, taking every decision through the same code
 * (routing, admission, affinity and hash keys on the request view; `mayRetry` and the retry budget;
 * the wait queue; `Lease.release`), so the two engines behave alike.
 *
 * The request body is held for replay when it fits `maxReplayBytes` (and then sent upstream with a
 * Content-Length, as `createProxy` does), else streamed to the first backend as it arrives with
 * backpressure both ways (the client socket is paused while the backend's is full). The response
 * head is parsed strictly, 1xx answers are relayed (100 is dropped: the proxy answered the client's
 * `Expect` itself), and the body is relayed with its framing: Content-Length as is, chunked and
 * close-delimited re-framed as chunked for HTTP/1.1 clients (close-delimited for HTTP/1.0 ones).
 * Upgrades are tunnelled only after the backend's `101`; any other answer is relayed as an ordinary
 * response and the client connection goes on being parsed.
 */
import type { Backend, Lease, LoadBalancer } from '@fulcrum/core';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
// Imported, not the global: `globalThis.performance` is an accessor Node defines lazily, so each
// `performance.now()` through the global calls a getter first (LoadGlobalIC in the profile).
import { performance } from 'node:perf_hooks';
import { classifyError } from '../proxy/errors';
import { requestHeadLines, type ForwardingBytes, type ForwardingContext, type ForwardingLines } from '../proxy/headers';
import type { RouteDecision, Termination } from '../proxy/options';
import { AttemptSource } from '../proxy/attempt-source';
import type { ProxyEngine } from '../proxy/proxy';
import { PASS_THROUGH, accessLogEntry } from '../proxy/proxy';
import type { AttemptFailure } from '../retry/policy';
import { clientAddress, isSecureRequest } from '../affinity';
import type { StickyVerification } from '../affinity/stickiness';
import type { BackendConnection, BackendPool, ConnectionOwner, PoolWaiter } from './backend-pool';
import { ChunkedDecoder, Framing, HeadError, parseResponseHead, type RequestHead, type ResponseHead } from './parser';
import { requestHeadBytes } from './request-head';
import type { RequestView } from './request-view';
import { FieldRelay, LineBytes, errorResponse, recordFields, relayedFields, relayedRecord, statusLine, statusLineBytes } from './response';

/** What an exchange needs from the listener. */
export interface ExchangeContext {
  readonly engine: ProxyEngine;
  readonly maxHeadBytes: number;
  readonly maxHeaders: number;
  pool(backend: Backend): BackendPool;
}

/** What an exchange needs from its client connection. */
export interface ClientSide {
  readonly socket: import('node:net').Socket;
  /** The socket's remote address as Node reports it (read once per connection). */
  readonly remoteAddress: string;
  /** `remoteAddress` without an IPv4-mapped IPv6 prefix. */
  readonly normalizedAddress: string;
  /** The connection is TLS. */
  readonly encrypted: boolean;
  /** The listener is closing: answer with `Connection: close`. */
  readonly closing: boolean;
  /** The sticky-cookie verification of the request in progress, from lookup to commit (one per connection). */
  readonly sticky: StickyVerification;
  /** The forwarding lines of this connection's requests, built once (`requestHeadLines`). */
  readonly forwarding: ForwardingLines;
  /** The same as bytes (`requestHeadRanges`). */
  readonly forwardingBytes: ForwardingBytes;
  write(data: string | Buffer): boolean;
  cork(): void;
  uncork(): void;
  /** The response is complete; `keepAlive` says whether the connection may carry another request. */
  responseDone(keepAlive: boolean): void;
  /** Read the request body again (the backend took what was written). */
  resumeBody(): void;
  /** Switch the connection to a tunnel relayed through this exchange. */
  startTunnel(exchange: Exchange): void;
  /** Traffic on a tunnel: push its idle deadline. */
  touch(): void;
}

const enum BodyMode {
  None = 0,
  Buffer = 1,
  Stream = 2,
}

const CONTINUE = 'HTTP/1.1 100 Continue\r\n\r\n';
const LAST_CHUNK = '0\r\n\r\n';
const CRLF = '\r\n';
/**
 * A response whose body arrived with its head and is at most this long is copied behind the head
 * and written once; a longer one is written under cork (two buffers, no copy).
 */
const COALESCE_BYTES = 16_384;

/** A request head to the backend: bytes as they are, text as latin1 (one byte per character). */
function writeHead(socket: Socket, head: Buffer | string): void {
  if (typeof head === 'string') socket.write(head, 'latin1');
  else socket.write(head);
}
/** The empty body list every exchange starts with (most requests have no body): never pushed to. */
const NO_CHUNKS: Buffer[] = [];
/** The response-field relay, shared: each use is synchronous, between a parse and its write. */
const RELAY = new FieldRelay();
/** `Set-Cookie` lines of the sticky cookies (one per backend and second) and route cookies, as bytes. */
const SET_COOKIE_LINES = new LineBytes(16, 'set-cookie: ', CRLF);
/**
 * The proxy's last lines of a relayed head and its empty line, by `tailIndex`: `transfer-encoding:
 * chunked` or not, then no `connection` field, `connection: close` or `connection: keep-alive`.
 */
const TAILS: readonly Buffer[] = ['', 'transfer-encoding: chunked\r\n'].flatMap((framing) =>
  ['', 'connection: close\r\n', 'connection: keep-alive\r\n'].map((connection) => Buffer.from(`${framing}${connection}\r\n`, 'latin1')),
);
const enum Tail {
  Chunked = 3,
  Close = 1,
  KeepAlive = 2,
}

export class Exchange extends AttemptSource implements ConnectionOwner, PoolWaiter {
  readonly #ctx: ExchangeContext;
  readonly #engine: ProxyEngine;
  readonly #client: ClientSide;
  readonly #head: RequestHead;
  readonly #view: RequestView;
  readonly #route: RouteDecision | undefined;
  readonly #lb: LoadBalancer | undefined;
  readonly #clientIp: string;
  readonly #peerTrusted: boolean;
  readonly #secure: boolean;
  readonly #isUpgrade: boolean;
  #hashKey: string | undefined;
  #stickyId: string | undefined;

  #bodyMode = BodyMode.None;
  /** Body bytes held (replay, or waiting for the backend connection); allocated on first use. */
  #bodyChunks: Buffer[] = NO_CHUNKS;
  #bodySize = 0;
  /** Client bytes relayed through a tunnel: the stats count them as request bytes, as HAProxy does. */
  #tunnelBytesIn = 0;
  #bodyComplete = false;
  /** Stream mode: some body bytes went to a backend, so the body cannot be sent again. */
  #bodyUsed = false;
  /** Stream mode: the client socket is paused until the backend takes more. */
  #bodyPaused = false;
  #requestSent = false;
  /** The response is complete but the upload is not: its rest still goes to the backend. */
  #drainingBody = false;

  #tried: Backend[] | undefined;
  #attempts = 0;
  #lease: Lease | undefined;
  #current: Backend | undefined;
  #upstream: BackendConnection | undefined;
  #pool: BackendPool | undefined;
  #cancelWait: (() => void) | undefined;
  #waitTimer: NodeJS.Timeout | undefined;
  /** The head to write to the backend: bytes, or text when it was written anew; empty once written. */
  #requestHead: Buffer | string = '';
  #attemptStart = 0;
  #headLatency: number | undefined;

  #resBuf: Buffer | undefined;
  /**
   * The response head between `#onResponseHead` and `#writeHead`: before the copied fields (the
   * status line, as bytes when it is a standard one), after them (a `Set-Cookie` line) and its end.
   */
  #headPrefix = '';
  #headPrefixBytes: Buffer | undefined;
  #headCookie: Buffer | undefined;
  #headTail: Buffer = TAILS[0]!;
  #resHead: ResponseHead | undefined;
  #resRemaining = 0;
  #resDecoder: ChunkedDecoder | undefined;
  #clientChunked = false;
  #clientKeepAlive = false;
  #upstreamReusable = false;
  #status = 0;
  #responseStarted = false;
  #tunnel = false;

  #finished = false;
  #clientGone = false;
  #deadline: NodeJS.Timeout | undefined;
  #budgetTaken = false;
  #admissionDone: (() => void) | undefined;
  readonly #arrivedAt = performance.now();
  /** For the access log only (0 without one): `Date.now()` is a call into C++. */
  readonly #arrivedWall: number;
  #bytesOut = 0;
  #lastBackendId: string | undefined;
  #lastReason: string | undefined;

  readonly #onEnd: (() => void) | undefined;

  constructor(ctx: ExchangeContext, client: ClientSide, head: RequestHead, view: RequestView, route: RouteDecision | undefined, onEnd?: () => void) {
    super();
    this.#ctx = ctx;
    this.#onEnd = onEnd;
    this.#engine = ctx.engine;
    this.#arrivedWall = ctx.engine.config.accessLog === undefined ? 0 : Date.now();
    this.#client = client;
    this.#head = head;
    this.#view = view;
    this.#route = route;
    this.#lb = route?.lb;
    const engine = ctx.engine;
    const trusted = engine.trusted;
    if (trusted === undefined) {
      this.#peerTrusted = false;
      this.#clientIp = client.normalizedAddress;
    } else {
      this.#peerTrusted = trusted.contains(client.remoteAddress);
      this.#clientIp = clientAddress(view as unknown as IncomingMessage, trusted);
    }
    this.#secure = client.encrypted;
    this.#isUpgrade = head.upgrade !== undefined;
  }

  get finished(): boolean {
    return this.#finished;
  }

  get responseStarted(): boolean {
    return this.#responseStarted;
  }

  // ---- start ----------------------------------------------------------------------------------

  start(): void {
    const engine = this.#engine;
    if (engine.closed) return this.#fail(503, 'Service Unavailable', 'closed');
    if (this.#route === undefined) return this.#fail(404, 'Not Found', 'not-found');
    this.#budgetTaken = true;
    engine.requestStarted(this.#lb!);
    try {
      this.#begin();
    } catch (error) {
      // A bug must cost one request, never the process or the retry budget's count.
      engine.report(error, 'client');
      this.#fail(500, 'Internal Server Error', 'internal-error');
    }
  }

  #begin(): void {
    const engine = this.#engine;
    const route = this.#route!;
    const req = this.#view as unknown as IncomingMessage;
    this.#hashKey = engine.hashKey?.(req, this.#clientIp);
    this.#stickyId = engine.stickiness?.lookup(req, this.#clientIp, route.lb.clock.now(), this.#client.sticky);
    if (engine.config.admission !== undefined) {
      const verdict = engine.admit(req, this.#clientIp, route, 'client');
      if (!verdict.admit) return this.#fail(verdict.status, verdict.message, 'denied', verdict.headers);
      this.#admissionDone = verdict.done;
    }
    if (engine.config.totalMs > 0) {
      this.#deadline = setTimeout(() => this.#fail(504, 'Gateway Timeout', 'timeout'), engine.config.totalMs);
    }
    const head = this.#head;
    if (head.framing === Framing.None) {
      this.#bodyComplete = true;
      return this.#next();
    }
    // Node's server answers `Expect: 100-continue` before its handler runs; so does this engine, once
    // the request is admitted (a refused one gets its refusal instead, RFC 9110 §10.1.1).
    if (head.expectContinue && head.version === 11) this.#client.write(CONTINUE);
    if (head.framing === Framing.Length && head.contentLength > engine.config.maxReplayBytes) {
      this.#bodyMode = BodyMode.Stream;
      return this.#next();
    }
    this.#bodyMode = BodyMode.Buffer;
  }

  // ---- the request body, fed by the client connection ----------------------------------------

  /** Body bytes from the client; false asks the connection to stop reading until `resumeBody`. */
  onBody(chunk: Buffer): boolean {
    if (this.#drainingBody) return this.#upstream === undefined || this.#writeBodyChunk(chunk) || this.#pauseDraining();
    if (this.#finished || this.#clientGone) return true;
    if (this.#bodyMode === BodyMode.Buffer) {
      this.#holdBody(chunk);
      if (this.#bodySize <= this.#engine.config.maxReplayBytes) return true;
      // Too big to hold: what was read goes first, the rest streams behind it.
      this.#bodyMode = BodyMode.Stream;
      this.#next();
      if (this.#upstreamReady()) return !this.#bodyPaused;
      this.#bodyPaused = true;
      return false;
    }
    if (this.#bodyMode !== BodyMode.Stream) return true;
    if (!this.#upstreamReady()) {
      this.#holdBody(chunk);
      this.#bodyPaused = true;
      return false;
    }
    if (!this.#writeBodyChunk(chunk)) {
      this.#bodyPaused = true;
      return false;
    }
    return true;
  }

  onBodyEnd(): void {
    this.#bodyComplete = true;
    if (this.#drainingBody) return this.#bodyDrained();
    if (this.#finished || this.#clientGone) return;
    if (this.#bodyMode === BodyMode.Buffer) return this.#next();
    if (this.#bodyMode === BodyMode.Stream && this.#upstreamReady() && this.#bodyChunks.length === 0) this.#endStreamedBody();
  }

  /** A malformed chunked body: 400 when nothing was answered yet, else the connection is cut. */
  onBodyError(): void {
    this.#bodyComplete = true;
    if (this.#finished) return;
    if (this.#responseStarted) {
      this.#abortAttempt();
      this.#releaseLease({ ok: true, error: 'aborted' });
      this.#client.socket.destroy();
      return this.#end('client-aborted');
    }
    this.#fail(400, 'Bad Request', 'bad-request');
  }

  #holdBody(chunk: Buffer): void {
    if (this.#bodyChunks === NO_CHUNKS) this.#bodyChunks = [];
    this.#bodyChunks.push(chunk);
    this.#bodySize += chunk.length;
  }

  #upstreamReady(): boolean {
    const upstream = this.#upstream;
    return upstream !== undefined && upstream.connected && this.#requestHead.length === 0;
  }

  /** Stream mode: one piece of the body to the backend, framed as the client framed it. */
  #writeBodyChunk(chunk: Buffer): boolean {
    const socket = this.#upstream!.socket;
    this.#bodyUsed = true;
    if (this.#head.framing !== Framing.Chunked) return socket.write(chunk);
    socket.cork();
    socket.write(`${chunk.length.toString(16)}\r\n`, 'latin1');
    socket.write(chunk);
    const ok = socket.write(CRLF, 'latin1');
    socket.uncork();
    return ok;
  }

  #endStreamedBody(): void {
    if (this.#requestSent) return;
    this.#requestSent = true;
    if (this.#head.framing === Framing.Chunked) this.#upstream!.socket.write(LAST_CHUNK, 'latin1');
  }

  // ---- attempts -------------------------------------------------------------------------------

  /** Acquire a backend (or wait for one) and send the next attempt: the decision `createProxy` takes. */
  #next(): void {
    this.#engine.acquireOrQueue(this.#lb!, this);
  }

  // ---- AttemptSource (ProxyEngine.acquireOrQueue) ----
  get settled(): boolean {
    return this.#finished || this.#clientGone;
  }

  refuse(status: number, message: string, termination: Termination): void {
    this.#fail(status, message, termination);
  }

  acquireLease(): Lease | undefined {
    return this.#lb!.acquire({ key: this.#hashKey, stickyBackendId: this.#stickyId, exclude: this.#tried, attempt: this.#attempts, skipFull: true });
  }

  startAttempt(lease: Lease): void {
    const engine = this.#engine;
    this.#lease = lease;
    this.#attempts++;
    this.#status = 0;
    this.#headLatency = undefined;
    this.#resHead = undefined;
    this.#resBuf = undefined;
    const backend = lease.backend;
    this.#current = backend;
    this.#lastBackendId = backend.id;
    if (engine.config.accessLog !== undefined) this.#lastReason = lease.decision.reason;
    const pool = this.#ctx.pool(backend);
    this.#pool = pool;
    const forwarding: ForwardingContext = {
      remoteAddress: this.#client.normalizedAddress,
      encrypted: this.#secure,
      peerTrusted: this.#peerTrusted,
      preserveHost: engine.config.preserveHost,
      addForwarded: engine.config.forwardedHeaders,
      upgrade: this.#isUpgrade,
    };
    const framing = this.#framingLine();
    // The usual head: the client's lines copied as bytes, with the proxy's (built once per
    // connection) behind them — no text built, flattened and encoded per request. Else as text.
    const head =
      (engine.config.hooks?.proxyReq === undefined
        ? requestHeadBytes(this.#head, this.#route!.path, framing, forwarding, pool.target.authority, this.#client.forwardingBytes)
        : undefined) ?? this.#headText(forwarding, pool, backend, framing);
    if (head === undefined) return;
    this.#requestHead = head;
    this.#requestSent = false;
    this.#attemptStart = performance.now();
    this.#connect(pool);
  }

  /** The request head as text (a hook's list, or lines the bytes path cannot copy); `undefined` when refused (answered here). */
  #headText(forwarding: ForwardingContext, pool: BackendPool, backend: Backend, framing: string): string | undefined {
    const engine = this.#engine;
    let lines: string | undefined;
    if (engine.config.hooks?.proxyReq === undefined) {
      // No hook to hand a list to: the lines are written as text, the forwarding ones built once per
      // connection (`requestHeaders`' decisions, property-tested equal).
      lines = requestHeadLines(this.#view.rawHeaders, forwarding, pool.target.authority, this.#client.forwarding);
      if (lines === undefined) {
        this.#releaseLease({ ok: true });
        this.#fail(400, 'Bad Request', 'bad-request');
        return undefined;
      }
    } else {
      const headers = engine.upstreamHeaders(
        this.#view as unknown as IncomingMessage,
        this.#view.rawHeaders,
        forwarding,
        pool.target.authority,
        this.#route!.path,
        backend,
        this.#attempts,
      );
      if (typeof headers === 'number') {
        this.#releaseLease({ ok: true });
        if (headers === 400) this.#fail(400, 'Bad Request', 'bad-request');
        else this.#fail(500, 'Internal Server Error', 'internal-error');
        return undefined;
      }
      lines = '';
      for (let i = 0; i < headers.length; i += 2) lines += `${headers[i]}: ${headers[i + 1]}\r\n`;
    }
    return `${this.#head.method} ${this.#route!.path} HTTP/1.1\r\n${lines}${framing}\r\n`;
  }

  /** The framing line the proxy writes for a chunked request: its length once buffered, else chunked again. */
  #framingLine(): string {
    if (this.#head.framing !== Framing.Chunked) return '';
    return this.#bodyMode === BodyMode.Buffer ? `content-length: ${this.#bodySize}\r\n` : 'transfer-encoding: chunked\r\n';
  }

  #connect(pool: BackendPool): void {
    const got = pool.acquire(this, this);
    if (typeof got === 'function') {
      // The pool is at its size: wait for a connection, no longer than a connect may take.
      this.#cancelWait = got;
      this.#waitTimer ??= setTimeout(() => {
        this.#waitTimer = undefined;
        this.#cancelWait?.();
        this.#cancelWait = undefined;
        this.#attemptFailed({ kind: 'timeout', notSent: true }, undefined);
      }, this.#engine.config.connectMs);
      return;
    }
    this.#upstream = got;
    if (got.connected) this.#writeRequest(got);
  }

  /** A slot of the full pool freed up (`PoolWaiter`). */
  onPoolFree(): void {
    this.#cancelWait = undefined;
    if (this.#finished || this.#clientGone || this.#pool === undefined || this.#lease === undefined) return;
    if (this.#waitTimer !== undefined) clearTimeout(this.#waitTimer);
    this.#waitTimer = undefined;
    this.#connect(this.#pool);
  }

  #writeRequest(upstream: BackendConnection): void {
    upstream.requests++;
    const socket = upstream.socket;
    upstream.timeoutMs = this.#engine.config.headersMs;
    const head = this.#requestHead;
    this.#requestHead = '';
    if (this.#bodyMode !== BodyMode.Stream) {
      const body = this.#bodySize === 0 ? undefined : this.#bodyChunks.length === 1 ? this.#bodyChunks[0]! : Buffer.concat(this.#bodyChunks, this.#bodySize);
      if (body !== undefined && this.#bodyChunks.length > 1) this.#bodyChunks = [body];
      this.#requestSent = true;
      // One write: the head alone, or head and a small body copied behind it (a bigger one goes
      // under cork, two buffers and no copy).
      if (body === undefined) {
        writeHead(socket, head);
      } else if (body.length <= COALESCE_BYTES) {
        const out = Buffer.allocUnsafe(head.length + body.length);
        if (typeof head === 'string') out.write(head, 0, 'latin1');
        else out.set(head, 0);
        body.copy(out, head.length);
        socket.write(out);
      } else {
        socket.cork();
        writeHead(socket, head);
        socket.write(body);
        socket.uncork();
      }
      return;
    }
    socket.cork();
    writeHead(socket, head);
    const pending = this.#bodyChunks;
    this.#bodyChunks = NO_CHUNKS;
    this.#bodySize = 0;
    let ok = true;
    for (const chunk of pending) ok = this.#writeBodyChunk(chunk);
    if (this.#bodyComplete) this.#endStreamedBody();
    socket.uncork();
    if (ok && this.#bodyPaused && !this.#bodyComplete) {
      this.#bodyPaused = false;
      this.#client.resumeBody();
    }
  }

  // ---- upstream events ------------------------------------------------------------------------

  onUpstreamConnect(connection: BackendConnection): void {
    if (connection !== this.#upstream) return;
    this.#writeRequest(connection);
  }

  onUpstreamDrain(connection: BackendConnection): void {
    if (connection !== this.#upstream) return;
    if (this.#tunnel || this.#bodyPaused) {
      this.#bodyPaused = false;
      this.#client.resumeBody();
    }
  }

  onUpstreamTimeout(connection: BackendConnection): void {
    if (connection !== this.#upstream) return;
    if (this.#drainingBody) {
      this.#upstream = undefined;
      connection.owner = undefined;
      return connection.destroy();
    }
    const failure: AttemptFailure = { kind: 'timeout', notSent: !connection.connected };
    this.#detachUpstream(false);
    this.#attemptFailed(failure, Object.assign(new Error(connection.connected ? 'backend timed out' : 'connect timed out'), { code: 'ETIMEDOUT' }));
  }

  onUpstreamClose(connection: BackendConnection, error: Error | undefined): void {
    if (connection !== this.#upstream) return;
    this.#upstream = undefined;
    // Closed while the rest of an answered upload was going to it: what is left is read and dropped.
    if (this.#drainingBody) return;
    if (this.#tunnel) return this.#tunnelEnded();
    if (!connection.connected) {
      const failure = error === undefined ? { kind: 'connect' as const, notSent: true } : { ...classifyError(error), notSent: true };
      if (failure.kind !== 'timeout') failure.kind = 'connect';
      return this.#attemptFailed(failure, error ?? new Error('connection closed while connecting'));
    }
    const head = this.#resHead;
    if (head !== undefined && head.framing === Framing.Close && error === undefined) {
      this.#upstreamReusable = false;
      return this.#finishResponse(connection);
    }
    const failure = error === undefined ? { kind: 'reset' as const, notSent: false } : classifyError(error);
    failure.notSent = false;
    this.#attemptFailed(failure, error ?? new Error('backend closed the connection'));
  }

  onUpstreamData(connection: BackendConnection, chunk: Buffer): void {
    if (connection !== this.#upstream) return;
    if (this.#drainingBody) {
      // Bytes after a complete response: the backend is broken; the connection is not reused.
      this.#upstream = undefined;
      connection.owner = undefined;
      return connection.destroy();
    }
    if (this.#tunnel) {
      this.#client.touch();
      this.#bytesOut += chunk.length;
      if (!this.#client.write(chunk)) connection.socket.pause();
      return;
    }
    if (this.#resHead !== undefined) return this.#onResponseBody(connection, chunk, 0);
    // The head and whatever body came with it leave in one write to the client: one Buffer when the
    // whole (small) body is here, else under cork.
    this.#onResponseBytes(connection, chunk);
  }

  #onResponseBytes(connection: BackendConnection, chunk: Buffer): void {
    let buf = chunk;
    if (this.#resBuf !== undefined) {
      buf = Buffer.concat([this.#resBuf, chunk]);
      this.#resBuf = undefined;
    }
    let offset = 0;
    for (;;) {
      const head = parseResponseHead(buf, offset, buf.length, this.#head.method, this.#ctx);
      if (head === null) {
        // A copy: `buf` may be the connection's reused read buffer.
        this.#resBuf = Buffer.from(buf.subarray(offset));
        return;
      }
      if (head instanceof HeadError) {
        this.#detachUpstream(false);
        return this.#attemptFailed({ kind: 'reset', notSent: false }, new Error(`invalid response from backend: ${head.reason}`));
      }
      offset += head.headLength;
      if (head.status >= 200 || head.status === 101) {
        if (head.status === 101) {
          if (!this.#isUpgrade) {
            this.#detachUpstream(false);
            return this.#attemptFailed({ kind: 'reset', notSent: false }, new Error('101 from backend to a request that asked for no upgrade'));
          }
          return this.#startTunnel(connection, head, buf, offset);
        }
        const headBytes = this.#onResponseHead(connection, head);
        if (headBytes === undefined) return;
        const client = this.#client;
        const length = head.framing === Framing.Length ? head.contentLength : 0;
        if (head.framing === Framing.None || (head.framing === Framing.Length && length <= buf.length - offset && length <= COALESCE_BYTES)) {
          // The whole response is here: head and body in one Buffer, one write, no cork (the common
          // case of small responses; the copy also frees the connection's reused read buffer).
          const out = Buffer.allocUnsafe(headBytes + length);
          const at = this.#writeHead(out);
          if (length > 0) buf.copy(out, at, offset, offset + length);
          client.write(out);
          this.#resRemaining = 0;
          this.#bytesOut += length;
          // Bytes after the announced body: the backend is broken; the connection is not reused.
          if (offset + length < buf.length) this.#upstreamReusable = false;
          this.#finishResponse(connection);
          return;
        }
        const out = Buffer.allocUnsafe(headBytes);
        this.#writeHead(out);
        client.cork();
        client.write(out);
        if (offset < buf.length) this.#onResponseBody(connection, buf, offset);
        client.uncork();
        return;
      }
      // 1xx: relayed to HTTP/1.1 clients (103 Early Hints, 102 Processing), never fatal. 100 is
      // dropped: the proxy does not forward `Expect` and has answered the client's itself.
      if (head.status !== 100 && this.#head.version === 11 && !this.#clientGone) {
        this.#client.write(`${statusLine(head.status, head.statusMessage)}${relayedFields(head.rawHeaders, false).lines}\r\n`);
      }
      if (offset >= buf.length) return;
    }
  }

  /** The head to relay, in three parts: status line (and string-built fields), copied fields, the proxy's lines. */
  #writeHead(out: Buffer): number {
    const prefixBytes = this.#headPrefixBytes;
    let at: number;
    if (prefixBytes !== undefined) {
      out.set(prefixBytes, 0);
      at = prefixBytes.length;
    } else {
      at = out.write(this.#headPrefix, 0, 'latin1');
    }
    at = RELAY.writeTo(out, at);
    const cookie = this.#headCookie;
    if (cookie !== undefined) {
      out.set(cookie, at);
      at += cookie.length;
    }
    const tail = this.#headTail;
    out.set(tail, at);
    this.#headPrefix = '';
    this.#headPrefixBytes = undefined;
    this.#headCookie = undefined;
    return at + tail.length;
  }

  /**
   * A final response head: relay it, or retry (502–504 the policy allows). Returns the length of the
   * head to write to the client (`#writeHead` writes it, synchronously after this), or `undefined`
   * when the response is not relayed.
   */
  #onResponseHead(connection: BackendConnection, head: ResponseHead): number | undefined {
    if (this.#clientGone || this.#finished) {
      this.#detachUpstream(false);
      return undefined;
    }
    const status = head.status;
    this.#status = status;
    this.#headLatency = performance.now() - this.#attemptStart;
    if (status >= 502 && status <= 504) {
      const failure: AttemptFailure = { kind: 'status', status, notSent: false };
      const wait = this.#retryAfterWait(head.rawHeaders);
      if (wait !== PASS_THROUGH && this.#shouldRetry(failure)) {
        this.retryDelayMs = wait;
        this.#detachUpstream(false);
        this.#releaseLease({ ok: false, status, error: 'status', durationMs: this.#headLatency });
        this.#retry();
        return undefined;
      }
    }
    this.#resHead = head;
    const request = this.#head;
    const backend = this.#lease!.backend;
    let prefix = statusLine(status, head.statusMessage);
    let prefixBytes = statusLineBytes(status, head.statusMessage);
    let setCookie: string[] | undefined;
    // Not for the answer to an upgrade request: createProxy relays those without it too.
    if (this.#engine.config.hooks?.proxyRes !== undefined && !this.#isUpgrade) {
      const edited = this.#engine.responseHook(relayedRecord(head.rawHeaders), this.#view as unknown as IncomingMessage, status, backend);
      if (edited === undefined) {
        // The backend answered well; the hook failed. Drop the answer without blaming the backend.
        this.#detachUpstream(false);
        this.#releaseLease({ ok: true, status, durationMs: this.#headLatency });
        this.#fail(500, 'Internal Server Error', 'internal-error');
        return undefined;
      }
      const fields = recordFields(edited);
      prefix += fields.lines;
      prefixBytes = undefined;
      setCookie = fields.setCookie;
      RELAY.clear();
    } else if (head.connectionListsFields) {
      // Fields named in `Connection` are dropped too: the string path decides them.
      const relayed = relayedFields(head.rawHeaders, false);
      prefix += relayed.lines;
      prefixBytes = undefined;
      setCookie = relayed.setCookie;
      RELAY.clear();
    } else {
      RELAY.scan(head);
      setCookie = RELAY.setCookie;
    }
    const cookie = this.#engine.stickiness?.commit(
      this.#view as unknown as IncomingMessage,
      this.#clientIp,
      backend.id,
      setCookie,
      // HTTPS to us, or to a trusted TLS-terminating proxy in front (as createProxy decides it).
      this.#secure || isSecureRequest(this.#view, this.#peerTrusted),
      this.#lb!.clock.now(),
      this.#client.sticky,
    );
    const setCookieValue = cookie ?? this.#route!.setCookie;
    const cookieLine = setCookieValue === undefined ? undefined : SET_COOKIE_LINES.get(setCookieValue);
    let tail = 0;
    let keepAlive = request.keepAlive && !this.#client.closing;
    this.#clientChunked = false;
    if (head.framing === Framing.Chunked || head.framing === Framing.Close) {
      if (request.version === 11) {
        tail = Tail.Chunked;
        this.#clientChunked = true;
      } else {
        // An HTTP/1.0 client knows no chunked coding: the end of the body is the end of the connection.
        keepAlive = false;
      }
    }
    this.#clientKeepAlive = keepAlive;
    if (!keepAlive) tail += Tail.Close;
    else if (request.version === 10) tail += Tail.KeepAlive;
    this.#upstreamReusable = head.keepAlive && head.framing !== Framing.Close;
    this.#resRemaining = head.framing === Framing.Length ? head.contentLength : 0;
    if (head.framing === Framing.Chunked) {
      this.#resDecoder ??= new ChunkedDecoder();
      this.#resDecoder.reset();
    }
    this.#responseStarted = true;
    this.#clearTimers();
    connection.timeoutMs = this.#engine.config.idleMs;
    this.#headPrefix = prefix;
    this.#headPrefixBytes = prefixBytes;
    this.#headCookie = cookieLine;
    this.#headTail = TAILS[tail]!;
    return prefix.length + RELAY.bytes + (cookieLine?.length ?? 0) + this.#headTail.length;
  }

  #onResponseBody(connection: BackendConnection, buf: Buffer, offset: number): void {
    const head = this.#resHead!;
    const client = this.#client;
    let ok = true;
    if (head.framing === Framing.Length) {
      const take = Math.min(this.#resRemaining, buf.length - offset);
      const data = offset === 0 && take === buf.length ? buf : buf.subarray(offset, offset + take);
      this.#resRemaining -= take;
      this.#bytesOut += take;
      if (this.#resRemaining === 0) {
        // Bytes after the announced body: the backend is broken; the connection is not reused.
        if (offset + take < buf.length) this.#upstreamReusable = false;
        client.cork();
        client.write(data);
        this.#finishResponse(connection);
        client.uncork();
        return;
      }
      ok = client.write(data);
    } else if (head.framing === Framing.Chunked) {
      client.cork();
      const chunked = this.#clientChunked;
      const used = this.#resDecoder!.push(buf, offset, buf.length, (data) => {
        this.#bytesOut += data.length;
        if (!chunked) {
          ok = client.write(data);
          return;
        }
        client.write(`${data.length.toString(16)}\r\n`);
        client.write(data);
        ok = client.write(CRLF);
      });
      if (used instanceof HeadError) {
        client.uncork();
        return this.#truncated(new Error(`invalid chunked body from backend: ${used.reason}`));
      }
      if (this.#resDecoder!.done) {
        if (used < buf.length) this.#upstreamReusable = false;
        this.#finishResponse(connection);
        client.uncork();
        return;
      }
      client.uncork();
    } else {
      const data = offset === 0 ? buf : buf.subarray(offset);
      this.#bytesOut += data.length;
      ok = this.#clientChunked ? this.#writeChunk(data) : client.write(data);
    }
    if (!ok) connection.socket.pause();
  }

  #writeChunk(data: Buffer): boolean {
    const client = this.#client;
    client.cork();
    client.write(`${data.length.toString(16)}\r\n`);
    client.write(data);
    const ok = client.write(CRLF);
    client.uncork();
    return ok;
  }

  holdsUpstreamBytes(): boolean {
    return this.#client.socket.writableLength > 0;
  }

  /** The client's socket drained: let the backend's bytes flow again. */
  onClientDrain(): void {
    const upstream = this.#upstream;
    if (upstream !== undefined && upstream.socket.isPaused()) upstream.socket.resume();
  }

  #finishResponse(connection: BackendConnection): void {
    if (this.#clientChunked) this.#client.write(LAST_CHUNK);
    const status = this.#status;
    this.#releaseLease({ ok: status < 500, status, durationMs: this.#headLatency ?? performance.now() - this.#attemptStart });
    connection.socket.resume();
    if (this.#bodyMode === BodyMode.Stream && !this.#requestSent && this.#upstreamReusable && !connection.closed && this.#bodyUsed) {
      // The backend answered before the upload ended (it may not read it at all): the rest of the
      // body still goes to it, as HAProxy and Node do, so both connections stay usable.
      this.#drainingBody = true;
      this.#end('ok');
      this.#client.responseDone(this.#clientKeepAlive);
      return;
    }
    this.#upstream = undefined;
    if (this.#upstreamReusable && this.#requestSent && !connection.closed) this.#pool!.release(connection);
    else {
      connection.owner = undefined;
      connection.destroy();
    }
    this.#end('ok');
    this.#client.responseDone(this.#clientKeepAlive && (this.#bodyComplete || this.#bodyMode !== BodyMode.Stream));
  }

  #pauseDraining(): boolean {
    this.#bodyPaused = true;
    return false;
  }

  /** The rest of an upload answered early has gone to the backend: its connection is free again. */
  #bodyDrained(): void {
    this.#drainingBody = false;
    const upstream = this.#upstream;
    if (upstream === undefined) return;
    this.#endStreamedBody();
    this.#upstream = undefined;
    if (!upstream.closed) this.#pool!.release(upstream);
  }

  // ---- upgrades -------------------------------------------------------------------------------

  #startTunnel(connection: BackendConnection, head: ResponseHead, buf: Buffer, offset: number): void {
    if (this.#clientGone || this.#finished) return this.#detachUpstream(false);
    this.#status = 101;
    this.#headLatency = performance.now() - this.#attemptStart;
    this.#responseStarted = true;
    this.#tunnel = true;
    this.#clearTimers();
    connection.timeoutMs = 0;
    const { lines } = relayedFields(head.rawHeaders, true);
    this.#client.write(`${statusLine(101, head.statusMessage)}${lines}connection: upgrade\r\n\r\n`);
    if (offset < buf.length) this.#client.write(buf.subarray(offset));
    this.#client.startTunnel(this);
  }

  /** Client bytes on a tunnel; false asks the connection to pause until the backend drains. */
  onTunnelData(chunk: Buffer): boolean {
    const upstream = this.#upstream;
    if (upstream === undefined) return true;
    this.#tunnelBytesIn += chunk.length;
    return upstream.socket.write(chunk);
  }

  #tunnelEnded(): void {
    if (this.#finished) return;
    this.#releaseLease({ ok: true, status: 101, durationMs: performance.now() - this.#attemptStart });
    this.#client.socket.destroy();
    this.#end('ok', 101);
  }

  // ---- failures and retries -------------------------------------------------------------------

  #attemptFailed(failure: AttemptFailure, error: Error | undefined): void {
    if (this.#finished) return;
    const backendId = this.#lease?.backend.id;
    if (error !== undefined) this.#engine.report(error, 'upstream', backendId);
    this.#releaseLease({ ok: false, error: failure.kind, durationMs: performance.now() - this.#attemptStart });
    if (this.#tunnel) return this.#tunnelEnded();
    if (this.#responseStarted) return this.#truncated(undefined);
    if (this.#bodyMode === BodyMode.Stream && this.#bodyUsed) failure.notSent = false;
    if (this.#shouldRetry(failure)) return this.#retry();
    if (failure.kind === 'timeout') return this.#fail(504, 'Gateway Timeout', 'timeout');
    this.#fail(502, 'Bad Gateway', 'upstream-failed');
  }

  /** Part of the response is out: the only honest thing left is to cut the connection. */
  #truncated(error: Error | undefined): void {
    if (error !== undefined) this.#engine.report(error, 'upstream', this.#lease?.backend.id);
    this.#detachUpstream(false);
    this.#releaseLease({ ok: false, error: 'reset', durationMs: performance.now() - this.#attemptStart });
    this.#client.socket.destroy();
    this.#end('upstream-truncated');
  }

  #retryAfterWait(raw: readonly string[]): number {
    let header: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.length === 11 && raw[i]!.toLowerCase() === 'retry-after') {
        header = raw[i + 1];
        break;
      }
    }
    return this.#engine.retryAfterWait(header, this.#lb!, (this.#tried?.length ?? 0) + 1, this.#arrivedAt);
  }

  #shouldRetry(failure: AttemptFailure): boolean {
    const replayable = this.#bodyMode !== BodyMode.Stream || (!this.#bodyUsed && failure.notSent);
    return this.retryAllowed(
      this.#engine,
      failure,
      this.#head.method,
      this.#attempts,
      this.#responseStarted,
      this.#clientGone,
      replayable,
      this.#lb!,
      this.#current,
    );
  }

  #retry(): void {
    if (this.#current !== undefined) (this.#tried ??= []).push(this.#current);
    this.#current = undefined;
    this.#releaseLease({ ok: false });
    this.attemptAgain(this.#engine, this.#lb!);
  }

  /** Let go of the attempt's backend connection: it is closed, never reused mid-exchange. */
  #detachUpstream(reusable: boolean): void {
    if (this.#cancelWait !== undefined) {
      this.#cancelWait();
      this.#cancelWait = undefined;
    }
    if (this.#waitTimer !== undefined) clearTimeout(this.#waitTimer);
    this.#waitTimer = undefined;
    const upstream = this.#upstream;
    this.#upstream = undefined;
    if (upstream === undefined) return;
    upstream.owner = undefined;
    if (reusable) this.#pool!.release(upstream);
    else upstream.destroy();
  }

  #abortAttempt(): void {
    this.leaveQueue();
    this.#detachUpstream(false);
  }

  #releaseLease(outcome: { ok: boolean; status?: number; error?: AttemptFailure['kind']; durationMs?: number }): void {
    const lease = this.#lease;
    if (lease === undefined) return;
    this.#lease = undefined;
    lease.release(outcome);
    this.#engine.attemptEnded(this.#lb!, lease, outcome, this.#tried);
  }

  /** The client went away before the exchange ended: stop the attempt, start no new one. */
  onClientGone(): void {
    if (this.#drainingBody) {
      this.#drainingBody = false;
      this.#detachUpstream(false);
      return;
    }
    if (this.#finished) return;
    this.#clientGone = true;
    this.#abortAttempt();
    // A client closing its tunnel is how a tunnel ends: its attempt was answered (101), not aborted.
    this.#releaseLease(this.#tunnel ? { ok: true, status: 101 } : { ok: true, error: 'aborted' });
    this.#end(this.#tunnel ? 'ok' : 'client-aborted', this.#tunnel ? 101 : this.#status);
  }

  #fail(status: number, message: string, termination: Termination, headers?: Readonly<Record<string, string>>): void {
    if (this.#finished) return;
    this.#abortAttempt();
    if (this.#lease !== undefined) this.#releaseLease({ ok: false, error: status === 504 ? 'timeout' : 'reset' });
    if (this.#clientGone) return this.#end(termination, status);
    if (this.#responseStarted) {
      this.#client.socket.destroy();
      return this.#end(termination, status);
    }
    // Keep the connection when the rest of the body can still be read and thrown away.
    const keepAlive = this.#head.keepAlive && !this.#client.closing && (this.#bodyComplete || this.#bodyMode !== BodyMode.Stream || !this.#bodyUsed);
    this.#status = status;
    this.#client.write(errorResponse(status, message, headers, !keepAlive));
    this.#end(termination, status);
    this.#client.responseDone(keepAlive);
  }

  #clearTimers(): void {
    if (this.#deadline !== undefined) clearTimeout(this.#deadline);
    this.#deadline = undefined;
    this.cancelRetry();
  }

  #end(termination: Termination, status = this.#status): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#clearTimers();
    if (this.#waitTimer !== undefined) clearTimeout(this.#waitTimer);
    this.#waitTimer = undefined;
    this.#bodyChunks = NO_CHUNKS;
    const engine = this.#engine;
    if (this.#budgetTaken) {
      const head = this.#head;
      const bytesIn = (head.framing === Framing.Length ? head.contentLength : this.#bodySize) + this.#tunnelBytesIn;
      this.countEnd(engine, this.#lb!, this.#current, termination, status, bytesIn, this.#bytesOut, performance.now() - this.#arrivedAt);
    }
    const done = this.#admissionDone;
    this.#admissionDone = undefined;
    engine.requestClosed(this.#onEnd, done);
    if (engine.config.accessLog === undefined) return;
    const entry = accessLogEntry({
      arrivedWall: this.#arrivedWall,
      arrivedAt: this.#arrivedAt,
      method: this.#head.method,
      path: this.#view.url,
      status,
      termination,
      pool: this.#budgetTaken ? this.#route!.pool : '',
      attempts: this.#attempts,
      clientIp: this.#clientIp,
      bytesOut: this.#bytesOut,
      queueMs: this.queueMs,
      headMs: this.#headLatency,
      backendId: this.#lastBackendId,
      reason: this.#lastReason,
    });
    engine.log(entry);
  }
}
