/**
 * One request stream through the proxy when HTTP/2 is on either side: an HTTP/2 client stream to
 * any pool, or an HTTP/1.1 request to a pool whose backends speak HTTP/2. Each stream is balanced,
 * retried and accounted on its own — one `Lease` per stream, never per connection — so one gRPC
 * channel's calls spread over every backend, which a layer-4 balancer cannot do.
 *
 * Every decision goes through the same code as the HTTP/1.1 engines (`ProxyEngine`: routing,
 * admission, affinity, hash keys, `retryVerdict` and its budget, the wait queue, `Lease.release`,
 * the access log). What is particular to streams:
 * - The request body is forwarded as it arrives, with backpressure both ways, and held for replay
 *   while it fits `maxReplayBytes` and no response head has come back.
 * - A retry happens only while nothing was committed: no response head reached the client, and the
 *   backend refused the stream (RST_STREAM REFUSED_STREAM, or above a GOAWAY's last stream id) or
 *   was never reached (connect failure) — gRPC's transparent-retry rule, and the HTTP rule for
 *   non-idempotent methods. Idempotent methods (and gRPC methods listed in
 *   `grpc.idempotentMethods`) are also retried on `retryOn` failures before the response head.
 * - gRPC calls: `grpc-timeout` becomes the deadline; errors the proxy makes are trailers-only
 *   responses with a gRPC status (`./grpc.ts`); the call's `grpc-status` is its outcome.
 * - Upstream HTTP/2: `node:http2` sessions per backend (`./backend-sessions.ts`). Upstream HTTP/1.1:
 *   the undici pool `createProxy` uses, with HTTP/2 → HTTP/1.1 translation (pseudo-headers to a
 *   request line and Host; trailers relayed when the backend sends chunked trailer fields).
 */
import type { IncomingMessage, OutgoingHttpHeaders } from 'node:http';
import http2, { type ClientHttp2Stream, type IncomingHttpHeaders, type IncomingHttpStatusHeader } from 'node:http2';
import { PassThrough } from 'node:stream';
import type { Backend, Lease, LoadBalancer } from '@fulcrum/core';
import type { Dispatcher } from 'undici';
import { clientAddress, isSecureRequest } from '../affinity';
import { classifyError, isLocalExhaustion } from '../proxy/errors';
import { H2_FORBIDDEN, HOP_BY_HOP, h2HeadersFromList, h2RequestHeaders, responseHeaders, type ForwardingContext } from '../proxy/headers';
import type { RouteDecision, Termination } from '../proxy/options';
import { AttemptSource } from '../proxy/attempt-source';
import type { ProxyEngine } from '../proxy/proxy';
import { PASS_THROUGH, accessLogEntry, normalizeAddress } from '../proxy/proxy';
import type { AttemptFailure } from '../retry/policy';
import { H2BackendPool, type H2Slot } from './backend-sessions';
import { IdleSweep, type IdleWatched } from './idle-sweep';
import type { ClientStream } from './client-side';
import { GrpcStatus, grpcStatusFor, isGrpcContentType, isIdempotentCall, parseGrpcTimeout, readGrpcStatus, trailersOnly } from './grpc';
import { countGrpcStatus, countStream } from './stats';

const { NGHTTP2_REFUSED_STREAM, NGHTTP2_CANCEL, NGHTTP2_FLAG_END_STREAM } = http2.constants;
/** The methods `ClientHttp2Session.request` ends the stream for when not told (Node's documented default). */
const NO_PAYLOAD_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD', 'DELETE']);

/** Fields an HTTP/2 backend's response head loses on its way to the client: hop-by-hop and connection-specific. */
const NOT_RELAYED: ReadonlySet<string> = new Set([...HOP_BY_HOP, ...H2_FORBIDDEN]);

/** Bytes of request body queued for a backend before the client is paused. */
const QUEUE_HIGH_WATER = 256 * 1024;

/** The HTTP/2 side of one engine: its backend sessions. */
export class H2Upstreams {
  readonly engine: ProxyEngine;
  /** The body idle timeout of the engine's streams, whatever their backends speak. */
  readonly idle: IdleSweep;
  readonly #pools = new Map<Backend, H2BackendPool>();
  readonly #idleMs: number;
  readonly #onRemoved = (backend: Backend): void => {
    const pool = this.#pools.get(backend);
    if (pool === undefined) return;
    this.#pools.delete(backend);
    pool.close();
  };

  constructor(engine: ProxyEngine, idleMs = 4000) {
    this.engine = engine;
    this.#idleMs = idleMs;
    this.idle = new IdleSweep(engine.config.idleMs);
    for (const lb of engine.pools.values()) lb.on('removed', this.#onRemoved);
  }

  pool(backend: Backend): H2BackendPool {
    let pool = this.#pools.get(backend);
    if (pool === undefined) {
      const config = this.engine.config;
      pool = new H2BackendPool(backend, {
        connectMs: config.connectMs,
        idleMs: this.#idleMs,
        maxSessions: backend.maxConnections ?? config.connectionsPerBackend,
        tls: config.backendTls,
      });
      this.#pools.set(backend, pool);
    }
    return pool;
  }

  close(): void {
    for (const lb of this.engine.pools.values()) lb.off('removed', this.#onRemoved);
    for (const pool of this.#pools.values()) pool.close();
    this.#pools.clear();
    this.idle.close();
  }
}

const upstreamsByEngine = new WeakMap<ProxyEngine, H2Upstreams>();

/** The HTTP/2 backend sessions of an engine, created on first use and closed with the engine. */
export function upstreamsOf(engine: ProxyEngine): H2Upstreams {
  let upstreams = upstreamsByEngine.get(engine);
  if (upstreams === undefined) {
    const created = new H2Upstreams(engine);
    upstreams = created;
    upstreamsByEngine.set(engine, created);
    engine.onClose(() => created.close());
  }
  return upstreams;
}

/** The request as routing, affinity and admission read it (`IncomingMessage`'s head fields). */
class StreamView {
  readonly method: string;
  readonly url: string;
  readonly httpVersion: string;
  readonly httpVersionMajor: number;
  readonly #client: ClientStream;
  #headers: IncomingHttpHeaders | undefined;

  constructor(client: ClientStream) {
    this.#client = client;
    this.method = client.method;
    this.url = client.path;
    this.httpVersion = client.version === 2 ? '2.0' : '1.1';
    this.httpVersionMajor = client.version;
  }

  get rawHeaders(): string[] {
    return this.#client.rawHeaders;
  }

  /** The peer's address and whether its connection is TLS (the client stream has both). */
  get socket(): { readonly remoteAddress: string; readonly encrypted: boolean } {
    return this.#client;
  }

  /** The client's headers with `host` from `:authority` (HTTP/2 has none); built on first read. */
  get headers(): IncomingHttpHeaders {
    if (this.#headers !== undefined) return this.#headers;
    const given = this.#client.headers;
    let headers = given;
    if (given.host === undefined && typeof given[':authority'] === 'string') {
      // Not `{ ...given, host }`: on Node 20 a new property on a spread copy costs a hidden class each time.
      headers = Object.assign({ __proto__: null }, given) as IncomingHttpHeaders;
      headers.host = given[':authority'];
    }
    this.#headers = headers;
    return headers;
  }
}

/** An attempt's upstream request: a stream on an HTTP/2 session, or an undici HTTP/1.1 request. */
interface Upstream {
  write(chunk: Buffer): boolean;
  onDrain(callback: () => void): void;
  end(): void;
  abort(): void;
}

/** The attempt a backend stream belongs to, set on the stream when it opens (this module's own symbol). */
const ATTEMPT = Symbol('fulcrum.h2.attempt');
type TaggedStream = ClientHttp2Stream & { [ATTEMPT]: H2Upstream };

/**
 * An attempt's HTTP/2 backend stream: what the exchange writes to, and the attempt's state that the
 * stream's listeners read. One object per attempt; the listeners are `StreamExchange`'s static
 * functions, registered as they are (no closures per attempt), which find this object on the stream.
 */
class H2Upstream implements Upstream {
  readonly stream: ClientHttp2Stream;
  readonly exchange: StreamExchange;
  readonly slot: H2Slot;
  readonly attemptId: number;
  gotHead = false;
  ended = false;
  error: Error | undefined = undefined;

  constructor(stream: ClientHttp2Stream, exchange: StreamExchange, slot: H2Slot, attemptId: number) {
    this.stream = stream;
    this.exchange = exchange;
    this.slot = slot;
    this.attemptId = attemptId;
  }

  write(chunk: Buffer): boolean {
    return this.stream.write(chunk);
  }

  onDrain(callback: () => void): void {
    this.stream.once('drain', callback);
  }

  end(): void {
    this.stream.end();
  }

  abort(): void {
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL);
  }
}

/**
 * Route a client stream and forward it. `route` is the router's decision (computed by the caller
 * when given), and `routed` the view of `client` it was computed on (`streamView`).
 */
export function forwardStream(engine: ProxyEngine, client: ClientStream, route?: RouteDecision | null, onEnd?: () => void, routed?: IncomingMessage): void {
  const view = routed === undefined ? new StreamView(client) : (routed as unknown as StreamView);
  let decided = route;
  if (decided === undefined && !engine.closed) {
    try {
      decided = engine.route(view as unknown as IncomingMessage);
    } catch (error) {
      engine.report(error, 'client');
    }
  }
  new StreamExchange(engine, client, view, decided ?? undefined, onEnd).start();
}

/** A client stream to an engine's route: the view the router should see, for callers that route first. */
export function streamView(client: ClientStream): IncomingMessage {
  return new StreamView(client) as unknown as IncomingMessage;
}

class StreamExchange extends AttemptSource implements IdleWatched {
  readonly #engine: ProxyEngine;
  readonly #client: ClientStream;
  readonly #view: StreamView;
  readonly #route: RouteDecision | undefined;
  readonly #lb: LoadBalancer | undefined;
  readonly #grpc: boolean;
  readonly #clientIp: string;
  readonly #peerTrusted: boolean;
  readonly #onFinished: (() => void) | undefined;
  #hashKey: string | undefined;
  #stickyId: string | undefined;
  #retryMethod: string;

  // request body
  #queue: Buffer[] = [];
  #queuedBytes = 0;
  #held: Buffer[] = [];
  #heldBytes = 0;
  /** Request body bytes received, for the stats. */
  #bytesIn = 0;
  #replayable = true;
  #bodyUsed = false;
  #bodyEnded = false;
  #clientPaused = false;
  #upstreamEnded = false;

  // attempts
  #tried: Backend[] | undefined;
  #attempts = 0;
  #lease: Lease | undefined;
  #current: Backend | undefined;
  #upstream: Upstream | undefined;
  #slot: H2Slot | undefined;
  #cancelWait: (() => void) | undefined;
  #attemptStart = 0;
  #headLatency: number | undefined;
  #headTimer: NodeJS.Timeout | undefined;
  #waitTimer: NodeJS.Timeout | undefined;
  /** Longest pause in the response body (`timeouts.idleMs`), from the head on: the sweep watching it, and its silent ticks (`IdleWatched`). */
  #idleSweep: IdleSweep | undefined;
  idleTicks = 0;
  #attemptId = 0;

  // response
  #status = 0;
  #grpcStatus: number | undefined;
  #responseStarted = false;
  #finished = false;
  #clientGone = false;
  #deadline: NodeJS.Timeout | undefined;
  #budgetTaken = false;
  #admissionDone: (() => void) | undefined;
  readonly #arrivedAt = performance.now();
  /** For the access log only. */
  readonly #arrivedWall: number;
  #bytesOut = 0;
  #lastBackendId: string | undefined;
  #lastReason: string | undefined;

  constructor(engine: ProxyEngine, client: ClientStream, view: StreamView, route: RouteDecision | undefined, onEnd: (() => void) | undefined) {
    super();
    this.#engine = engine;
    this.#client = client;
    this.#view = view;
    this.#route = route;
    this.#lb = route?.lb;
    this.#onFinished = onEnd;
    this.#arrivedWall = engine.config.accessLog === undefined ? 0 : Date.now();
    const contentType = client.headers['content-type'];
    this.#grpc = isGrpcContentType(typeof contentType === 'string' ? contentType : undefined);
    const remote = client.remoteAddress;
    this.#peerTrusted = engine.trusted?.contains(remote) ?? false;
    this.#clientIp = engine.trusted === undefined ? normalizeAddress(remote) : clientAddress(view as unknown as IncomingMessage, engine.trusted);
    // A gRPC call a route marks idempotent is retried as an idempotent method would be.
    this.#retryMethod = this.#grpc && isIdempotentCall(engine.config.grpc, client.path) ? 'PUT' : client.method;
  }

  start(): void {
    const engine = this.#engine;
    countStream(engine, this.#client.version, this.#lb);
    this.#client.onClose(this.#onClientClose);
    if (engine.closed) return this.#fail(503, 'Service Unavailable', 'closed');
    if (this.#route === undefined) return this.#fail(404, 'Not Found', 'not-found');
    const path = this.#client.path;
    if (path.charCodeAt(0) !== 0x2f /* / */ || path.includes('#') || this.#client.method === 'CONNECT') return this.#fail(400, 'Bad Request', 'bad-request');
    this.#budgetTaken = true;
    engine.requestStarted(this.#lb!);
    try {
      this.#begin();
    } catch (error) {
      engine.report(error, 'client');
      this.#fail(500, 'Internal Server Error', 'internal-error');
    }
  }

  #begin(): void {
    const engine = this.#engine;
    const route = this.#route!;
    const req = this.#view as unknown as IncomingMessage;
    this.#hashKey = engine.hashKey?.(req, this.#clientIp);
    this.#stickyId = engine.stickiness?.lookup(req, this.#clientIp, route.lb.clock.now());
    if (engine.config.admission !== undefined) {
      const verdict = engine.admit(req, this.#clientIp, route, 'client');
      if (!verdict.admit) return this.#fail(verdict.status, verdict.message, 'denied', verdict.headers);
      this.#admissionDone = verdict.done;
    }
    let deadlineMs = engine.config.totalMs > 0 ? engine.config.totalMs : Number.POSITIVE_INFINITY;
    if (this.#grpc) {
      const timeout = this.#client.headers['grpc-timeout'];
      const grpcMs = parseGrpcTimeout(typeof timeout === 'string' ? timeout : undefined);
      if (grpcMs !== undefined) deadlineMs = Math.min(deadlineMs, grpcMs);
    }
    if (Number.isFinite(deadlineMs)) this.#deadline = setTimeout(this.#onDeadline, Math.max(1, Math.ceil(deadlineMs)));
    const body = this.#client.body;
    if (this.#client.bodyless) this.#bodyEnded = true;
    else {
      body.on('data', this.#onBodyData);
      body.once('end', this.#onBodyEnd);
      body.on('error', () => undefined);
    }
    this.#next();
  }

  // ---- request body ---------------------------------------------------------------------------

  #onBodyData = (chunk: Buffer): void => {
    if (this.#finished) return;
    this.#bytesIn += chunk.length;
    if (this.#replayable) {
      this.#held.push(chunk);
      this.#heldBytes += chunk.length;
      if (this.#heldBytes > this.#engine.config.maxReplayBytes) {
        this.#replayable = false;
        this.#held = [];
      }
    }
    this.#queue.push(chunk);
    this.#queuedBytes += chunk.length;
    this.#flush();
    if (this.#queuedBytes > QUEUE_HIGH_WATER && !this.#clientPaused) {
      this.#clientPaused = true;
      this.#client.body.pause();
    }
  };

  #onBodyEnd = (): void => {
    this.#bodyEnded = true;
    this.#flush();
  };

  #flush = (): void => {
    const upstream = this.#upstream;
    if (upstream === undefined || this.#upstreamEnded) return;
    while (this.#queue.length > 0) {
      const chunk = this.#queue.shift()!;
      this.#queuedBytes -= chunk.length;
      this.#bodyUsed = true;
      if (!upstream.write(chunk)) {
        upstream.onDrain(this.#flush);
        return;
      }
    }
    if (this.#clientPaused) {
      this.#clientPaused = false;
      this.#client.body.resume();
    }
    if (this.#bodyEnded) {
      this.#upstreamEnded = true;
      upstream.end();
    }
  };

  // ---- attempts -------------------------------------------------------------------------------

  /** Acquire a backend (or wait for one) and send the next attempt: the engine's one way to do it. */
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
    const attemptId = ++this.#attemptId;
    this.#status = 0;
    this.#grpcStatus = undefined;
    this.#headLatency = undefined;
    this.#upstreamEnded = false;
    const backend = lease.backend;
    this.#current = backend;
    this.#lastBackendId = backend.id;
    if (engine.config.accessLog !== undefined) this.#lastReason = lease.decision.reason;
    if (this.#attempts > 1 && this.#replayable) {
      // A retry sends the body from its start.
      this.#queue = this.#held.slice();
      this.#queuedBytes = this.#heldBytes;
    }
    const client = this.#client;
    const ctx: ForwardingContext = {
      remoteAddress: normalizeAddress(client.remoteAddress),
      encrypted: client.encrypted,
      peerTrusted: this.#peerTrusted,
      preserveHost: engine.config.preserveHost,
      addForwarded: engine.config.forwardedHeaders,
    };
    const path = this.#route!.path;
    let h2: H2BackendPool | undefined;
    let headers: string[] | OutgoingHttpHeaders | 400 | 500;
    if (engine.config.upstreamProtocol(this.#route!.pool) !== 'h2')
      headers = engine.upstreamHeaders(
        this.#view as unknown as IncomingMessage,
        client.rawHeaders,
        ctx,
        engine.hostFor(backend),
        path,
        backend,
        this.#attempts,
      );
    else {
      h2 = upstreamsOf(engine).pool(backend);
      const outgoing: OutgoingHttpHeaders = { ':method': client.method, ':scheme': h2.scheme, ':path': path };
      if (client.forwarding !== undefined && engine.config.hooks?.proxyReq === undefined && client.headers.connection === undefined) {
        // No hook to hand a list to: the object straight from the client's (`requestHeaders`' decisions, property-tested equal).
        headers = h2RequestHeaders(outgoing as Record<string, string | string[]>, client.headers, ctx, h2.authority, client.forwarding) ? outgoing : 400;
      } else {
        const list = engine.upstreamHeaders(this.#view as unknown as IncomingMessage, client.rawHeaders, ctx, h2.authority, path, backend, this.#attempts);
        headers = typeof list === 'number' ? list : h2HeadersFromList(outgoing as Record<string, string | string[]>, list);
      }
      // `te: trailers` is the one TE HTTP/2 allows, and gRPC servers require it.
      const te = client.headers.te;
      if (typeof headers !== 'number' && (te === 'trailers' || (typeof te === 'string' && /(^|,)\s*trailers\s*(;|,|$)/i.test(te)))) headers.te = 'trailers';
    }
    if (typeof headers === 'number') {
      this.#releaseLease({ ok: true });
      return headers === 400 ? this.#fail(400, 'Bad Request', 'bad-request') : this.#fail(500, 'Internal Server Error', 'internal-error');
    }
    this.#attemptStart = performance.now();
    if (!this.#grpc) {
      // A gRPC server sends its head with its first message, which may come much later (streaming
      // calls): gRPC calls are bounded by their deadline instead.
      this.#headTimer = setTimeout(() => {
        this.#headTimer = undefined;
        if (attemptId === this.#attemptId) this.#attemptFailed({ kind: 'timeout', notSent: false }, undefined);
      }, engine.config.headersMs);
    }
    if (h2 !== undefined) this.#sendH2(h2, headers as OutgoingHttpHeaders, attemptId);
    else this.#sendH1(backend, headers as string[], attemptId);
  }

  #sendH2(pool: H2BackendPool, headers: OutgoingHttpHeaders, attemptId: number): void {
    // The common case, a connection with room: no wait callback to build.
    const ready = pool.tryAcquire();
    if (ready !== undefined) return this.#openH2(ready, headers, attemptId);
    const got = pool.acquire((slot) => {
      this.#cancelWait = undefined;
      if (attemptId !== this.#attemptId || this.#finished || this.#clientGone) {
        if (!(slot instanceof Error)) slot.release();
        return;
      }
      if (slot instanceof Error) return this.#attemptFailed(classifyError(slot), slot);
      this.#openH2(slot, headers, attemptId);
    });
    if (typeof got === 'function') {
      this.#cancelWait = got;
      // Every connection to it is full (or still opening): wait no longer than a connect may take.
      this.#waitTimer = setTimeout(() => {
        this.#waitTimer = undefined;
        if (attemptId !== this.#attemptId || this.#slot !== undefined) return;
        this.#cancelWait?.();
        this.#cancelWait = undefined;
        this.#attemptFailed({ kind: 'timeout', notSent: true }, undefined);
      }, this.#engine.config.connectMs);
      return;
    }
    this.#openH2(got, headers, attemptId);
  }

  #openH2(slot: H2Slot, outgoing: OutgoingHttpHeaders, attemptId: number): void {
    this.#clearWaitTimer();
    this.#slot = slot;
    let stream: ClientHttp2Stream;
    try {
      const endStream = this.#bodyEnded && this.#queue.length === 0;
      // No options where Node's default (end for GET, HEAD and DELETE) is what we want: Node copies the
      // options and adds the priority fields to the copy, which on Node 20 costs ~4 µs when the copy
      // came from a non-empty object (a new hidden class per property) and nothing from `undefined`.
      stream = slot.session.request(outgoing, endStream === NO_PAYLOAD_METHODS.has(this.#client.method) ? undefined : { endStream });
    } catch (error) {
      slot.release();
      this.#slot = undefined;
      return this.#attemptFailed({ kind: 'connect', notSent: true }, error as Error);
    }
    if (this.#bodyEnded && this.#queue.length === 0) this.#upstreamEnded = true;
    const upstream = new H2Upstream(stream, this, slot, attemptId);
    (stream as TaggedStream)[ATTEMPT] = upstream;
    stream.on('response', StreamExchange.#onH2Response);
    stream.on('data', StreamExchange.#onH2Data);
    stream.on('trailers', StreamExchange.#onH2Trailers);
    stream.on('end', StreamExchange.#onH2End);
    stream.on('error', StreamExchange.#onH2Error);
    stream.on('close', StreamExchange.#onH2Close);
    this.#upstream = upstream;
    this.#flush();
  }

  // The listeners of every HTTP/2 backend stream (`this` is the stream): shared by all attempts.

  /** Whether the attempt is still the exchange's current one. */
  #isCurrent(attempt: H2Upstream): boolean {
    return attempt.attemptId === this.#attemptId && !this.#finished;
  }

  static #onH2Response(this: ClientHttp2Stream, headers: IncomingHttpHeaders & IncomingHttpStatusHeader, flags: number): void {
    const attempt = (this as TaggedStream)[ATTEMPT];
    const exchange = attempt.exchange;
    if (!exchange.#isCurrent(attempt)) return;
    attempt.gotHead = true;
    const endStream = (flags & NGHTTP2_FLAG_END_STREAM) !== 0;
    // Not relayed: retried on another backend (a 502–504 the rules allow), or failed.
    if (!exchange.#onHead(headers[':status'] ?? 502, headers, endStream, true) || !exchange.#isCurrent(attempt)) return;
    if (endStream) {
      attempt.ended = true;
      exchange.#onResponseEnd(undefined);
    }
  }

  static #onH2Data(this: ClientHttp2Stream, chunk: Buffer): void {
    const attempt = (this as TaggedStream)[ATTEMPT];
    if (attempt.exchange.#isCurrent(attempt)) attempt.exchange.#onData(chunk, this);
  }

  static #onH2Trailers(this: ClientHttp2Stream, trailers: IncomingHttpHeaders): void {
    const attempt = (this as TaggedStream)[ATTEMPT];
    if (attempt.exchange.#isCurrent(attempt)) attempt.exchange.#pendingTrailers = trailers;
  }

  static #onH2End(this: ClientHttp2Stream): void {
    const attempt = (this as TaggedStream)[ATTEMPT];
    const exchange = attempt.exchange;
    if (!exchange.#isCurrent(attempt) || attempt.ended || !attempt.gotHead) return;
    attempt.ended = true;
    exchange.#onResponseEnd(exchange.#pendingTrailers);
  }

  static #onH2Error(this: ClientHttp2Stream, error: Error): void {
    (this as TaggedStream)[ATTEMPT].error = error;
  }

  static #onH2Close(this: ClientHttp2Stream): void {
    const attempt = (this as TaggedStream)[ATTEMPT];
    const exchange = attempt.exchange;
    const slot = attempt.slot;
    slot.release();
    if (exchange.#slot === slot) exchange.#slot = undefined;
    if (!exchange.#isCurrent(attempt) || attempt.ended) return;
    const code = this.rstCode;
    const gotHead = attempt.gotHead;
    const streamError = attempt.error;
    let failure: AttemptFailure;
    if (!gotHead && (code === NGHTTP2_REFUSED_STREAM || !slot.connected)) {
      // Refused (or above a GOAWAY's last stream id), or the connection never came up: the
      // backend never processed it.
      failure = streamError === undefined ? { kind: 'reset', notSent: true } : { ...classifyError(streamError), notSent: true };
    } else failure = streamError === undefined ? { kind: 'reset', notSent: false } : classifyError(streamError);
    const error = streamError ?? new Error(`backend stream closed${gotHead ? ' mid-response' : ''} (HTTP/2 error code ${code ?? 'none'})`);
    exchange.#attemptFailed(failure, error);
  }

  #pendingTrailers: IncomingHttpHeaders | undefined;
  #controller: Dispatcher.DispatchController | undefined;

  #sendH1(backend: Backend, headers: string[], attemptId: number): void {
    const pool = this.#engine.pool(backend);
    let body: Dispatcher.DispatchOptions['body'] = null;
    let pipe: PassThrough | undefined;
    if (this.#bodyEnded && this.#queue.length === 0) this.#upstreamEnded = true;
    else if (this.#bodyEnded) {
      body = Buffer.concat(this.#queue);
      this.#queue = [];
      this.#queuedBytes = 0;
      this.#bodyUsed = true;
      this.#upstreamEnded = true;
    } else {
      pipe = new PassThrough();
      body = pipe;
    }
    const current = (): boolean => attemptId === this.#attemptId && !this.#finished;
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart: (controller) => {
        this.#controller = controller;
      },
      onResponseStart: (controller, statusCode, headers) => {
        if (!current()) return controller.abort(new Error('stale attempt'));
        if (statusCode < 200) return;
        this.#h1Paused = controller;
        this.#onHead(statusCode, headers as IncomingHttpHeaders, false, false);
      },
      onResponseData: (_controller, chunk) => {
        if (current()) this.#onData(chunk, undefined);
      },
      onResponseEnd: (_controller, trailers) => {
        if (current()) this.#onResponseEnd(trailers as IncomingHttpHeaders);
      },
      onResponseError: (_controller, error) => {
        if (!current()) return;
        if (isLocalExhaustion(error)) return this.#fail(503, 'Service Unavailable', 'proxy-exhausted');
        this.#attemptFailed(classifyError(error), error);
      },
    };
    if (pipe !== undefined) {
      const stream = pipe;
      this.#upstream = {
        write: (chunk) => stream.write(chunk),
        onDrain: (callback) => stream.once('drain', callback),
        end: () => stream.end(),
        abort: () => this.#controller?.abort(new Error('aborted')),
      };
    } else {
      this.#upstream = { write: () => true, onDrain: () => undefined, end: () => undefined, abort: () => this.#controller?.abort(new Error('aborted')) };
    }
    try {
      const method = this.#client.method;
      pool.dispatch({ path: this.#route!.path, method, headers, body }, handler);
    } catch (error) {
      return this.#attemptFailed(classifyError(error), error as Error);
    }
    this.#flush();
  }

  #h1Paused: Dispatcher.DispatchController | undefined;

  // ---- the response ---------------------------------------------------------------------------

  /**
   * A final response head: relay it, or retry (a 502–504 the retry rules allow, as the HTTP/1.1
   * engines decide it). Returns whether it was relayed.
   */
  #onHead(status: number, headers: IncomingHttpHeaders, endStream: boolean, fromH2: boolean): boolean {
    if (this.#clientGone) return false;
    this.#clearHeadTimer();
    this.#status = status;
    this.#headLatency = performance.now() - this.#attemptStart;
    if (status >= 502 && status <= 504 && this.#retryOnStatus(status, headers['retry-after'])) return false;
    const backend = this.#lease!.backend;
    let outgoing: OutgoingHttpHeaders;
    if (fromH2) {
      // nghttp2 has already checked an HTTP/2 head (lower-case names, no CR/LF/NUL in values, no
      // connection-specific fields): one copy without the pseudo-headers and hop-by-hop fields.
      outgoing = {};
      for (const name in headers) {
        if (name.charCodeAt(0) !== 0x3a /* : */ && !NOT_RELAYED.has(name)) outgoing[name] = headers[name];
      }
    } else {
      const fields: Record<string, string | string[] | undefined> = {};
      for (const name in headers) {
        if (name.charCodeAt(0) !== 0x3a /* : */ && !H2_FORBIDDEN.has(name)) fields[name] = headers[name] as string | string[] | undefined;
      }
      outgoing = responseHeaders(fields);
    }
    if (this.#engine.config.hooks?.proxyRes !== undefined) {
      const edited = this.#engine.responseHook(outgoing as Record<string, string | string[]>, this.#view as unknown as IncomingMessage, status, backend);
      if (edited === undefined) {
        // The backend answered well; the hook failed. Drop the answer without blaming the backend.
        this.#releaseLease({ ok: true, status, durationMs: this.#headLatency });
        this.#fail(500, 'Internal Server Error', 'internal-error');
        return false;
      }
      outgoing = edited;
    }
    if (this.#grpc && endStream) this.#grpcStatus = readGrpcStatus(headers['grpc-status']);
    const setCookie = headers['set-cookie'];
    const cookie = this.#engine.stickiness?.commit(
      this.#view as unknown as IncomingMessage,
      this.#clientIp,
      backend.id,
      setCookie === undefined ? [] : Array.isArray(setCookie) ? setCookie : [setCookie],
      this.#client.encrypted || isSecureRequest(this.#view as unknown as IncomingMessage, this.#peerTrusted),
      this.#lb!.clock.now(),
    );
    // The stickiness cookie, else the route's (split stickiness); nothing to build when neither.
    const mine = cookie ?? this.#route!.setCookie;
    if (mine !== undefined) {
      const existing = outgoing['set-cookie'];
      outgoing['set-cookie'] = existing === undefined ? [mine] : Array.isArray(existing) ? [...existing, mine] : [String(existing), mine];
    }
    this.#responseStarted = true;
    if (this.#grpc && !endStream) {
      // The deadline still bounds a gRPC call after its head; the trailers say how it ended.
    } else this.#clearDeadline();
    try {
      this.#client.respond(status, outgoing, endStream);
    } catch (error) {
      this.#engine.report(error, 'client', backend.id);
      this.#abortUpstream();
      this.#releaseLease({ ok: true, error: 'aborted' });
      this.#client.reset();
      this.#end('internal-error', 500);
      return false;
    }
    // From the head on, the body may pause no longer than `idleMs` (the HTTP/1.1 engines' socket
    // timeout, undici's bodyTimeout): a backend that stalls mid-response is cut, not waited for.
    if (!endStream) {
      this.#idleSweep = upstreamsOf(this.#engine).idle;
      this.#idleSweep.watch(this);
    }
    return true;
  }

  /** A 502–504 from the backend: retry when the rules and the budget allow (after its Retry-After, when it asks). */
  #retryOnStatus(status: number, retryAfter: string | string[] | undefined): boolean {
    const failure: AttemptFailure = { kind: 'status', status, notSent: false };
    const wait = this.#engine.retryAfterWait(
      typeof retryAfter === 'string' ? retryAfter : retryAfter?.[0],
      this.#lb!,
      (this.#tried?.length ?? 0) + 1,
      this.#arrivedAt,
    );
    if (wait === PASS_THROUGH || !this.#shouldRetry(failure)) return false;
    this.retryDelayMs = wait;
    this.#abortUpstream();
    this.#releaseLease({ ok: false, status, error: 'status', durationMs: this.#headLatency });
    this.#retry();
    return true;
  }

  /** The response body paused longer than `idleMs` (the sweep no longer watches it). */
  idleTimedOut(): void {
    this.#idleSweep = undefined;
    if (this.#finished || this.#upstream === undefined) return;
    const error = new Error(`backend sent no response data for ${this.#engine.config.idleMs} ms`);
    this.#abortUpstream();
    this.#attemptFailed({ kind: 'timeout', notSent: false }, error);
  }

  #stopIdle(): void {
    this.#idleSweep?.unwatch(this);
    this.#idleSweep = undefined;
  }

  #onData(chunk: Buffer, stream: ClientHttp2Stream | undefined): void {
    this.#bytesOut += chunk.length;
    this.idleTicks = 0;
    if (!this.#client.write(chunk)) {
      if (stream !== undefined) {
        stream.pause();
        this.#client.onDrain(() => stream.resume());
      } else {
        const controller = this.#h1Paused;
        controller?.pause();
        this.#client.onDrain(() => controller?.resume());
      }
    }
  }

  #onResponseEnd(trailers: IncomingHttpHeaders | undefined): void {
    if (this.#finished) return;
    let relayed: OutgoingHttpHeaders | undefined;
    if (trailers !== undefined) {
      relayed = {};
      for (const name in trailers) {
        if (name.charCodeAt(0) === 0x3a || H2_FORBIDDEN.has(name)) continue;
        const value = trailers[name];
        if (value === undefined) continue;
        relayed[name] = value;
      }
      if (this.#grpc) this.#grpcStatus = readGrpcStatus(trailers['grpc-status']) ?? this.#grpcStatus;
    }
    const status = this.#status;
    let ok = status < 500;
    if (this.#grpc) {
      // A gRPC call's outcome is its status; none at all is UNKNOWN (as a client reads it).
      const code = this.#grpcStatus ?? GrpcStatus.UNKNOWN;
      countGrpcStatus(this.#engine, code, this.#lb);
      ok = !this.#engine.config.grpc.failureStatuses.has(code);
    }
    this.#releaseLease(
      ok
        ? { ok, status, durationMs: this.#headLatency ?? performance.now() - this.#attemptStart }
        : { ok, status, error: 'status', durationMs: this.#headLatency ?? performance.now() - this.#attemptStart },
    );
    this.#detachUpstream(false);
    this.#client.end(relayed);
    this.#end('ok');
  }

  // ---- failures, retries, endings -------------------------------------------------------------

  #attemptFailed(failure: AttemptFailure, error: Error | undefined): void {
    if (this.#finished) return;
    this.#clearHeadTimer();
    if (error !== undefined) this.#engine.report(error, 'upstream', this.#lease?.backend.id);
    this.#releaseLease({ ok: false, error: failure.kind, durationMs: performance.now() - this.#attemptStart });
    this.#detachUpstream(true);
    if (this.#responseStarted) {
      if (this.#grpc) {
        // The head is out: the call ends with UNAVAILABLE in its trailers, as a client sees a lost backend.
        countGrpcStatus(this.#engine, GrpcStatus.UNAVAILABLE, this.#lb);
        this.#client.end({ 'grpc-status': String(GrpcStatus.UNAVAILABLE), 'grpc-message': 'upstream connection lost' });
        return this.#end('upstream-truncated');
      }
      this.#client.reset();
      return this.#end('upstream-truncated');
    }
    if (this.#bodyUsed && !this.#replayable) failure.notSent = false;
    if (this.#shouldRetry(failure)) return this.#retry();
    if (failure.kind === 'timeout') return this.#fail(504, 'Gateway Timeout', 'timeout');
    this.#fail(502, 'Bad Gateway', 'upstream-failed');
  }

  #shouldRetry(failure: AttemptFailure): boolean {
    const engine = this.#engine;
    // A gRPC call is retried only while uncommitted (refused, or never reached a backend), or when
    // a route marks its method idempotent — `retryNonIdempotent` does not reach gRPC calls.
    if (this.#grpc && !failure.notSent && this.#retryMethod !== 'PUT') return false;
    const replayable = this.#replayable || !this.#bodyUsed;
    return this.retryAllowed(engine, failure, this.#retryMethod, this.#attempts, this.#responseStarted, this.#clientGone, replayable, this.#lb!, this.#current);
  }

  /** The failed attempt's lease is already released (`#attemptFailed`, `#retryOnStatus`). */
  #retry(): void {
    if (this.#current !== undefined) (this.#tried ??= []).push(this.#current);
    this.#current = undefined;
    this.attemptAgain(this.#engine, this.#lb!);
  }

  #onDeadline = (): void => {
    this.#deadline = undefined;
    if (this.#finished) return;
    if (!this.#responseStarted) return this.#fail(504, 'Gateway Timeout', 'timeout');
    this.#abortUpstream();
    this.#releaseLease({ ok: false, error: 'timeout', durationMs: performance.now() - this.#attemptStart });
    if (this.#grpc) {
      countGrpcStatus(this.#engine, GrpcStatus.DEADLINE_EXCEEDED, this.#lb);
      this.#client.end({ 'grpc-status': String(GrpcStatus.DEADLINE_EXCEEDED), 'grpc-message': 'Deadline exceeded' });
    } else this.#client.reset();
    this.#end('timeout', this.#status);
  };

  #onClientClose = (): void => {
    if (this.#finished) return;
    this.#clientGone = true;
    this.leaveQueue();
    this.#abortUpstream();
    this.#releaseLease({ ok: true, error: 'aborted' });
    this.#end('client-aborted');
  };

  #abortUpstream(): void {
    this.#attemptId++;
    this.#detachUpstream(true);
  }

  #detachUpstream(abort: boolean): void {
    this.#clearHeadTimer();
    this.#stopIdle();
    this.#clearWaitTimer();
    this.#cancelWait?.();
    this.#cancelWait = undefined;
    const upstream = this.#upstream;
    this.#upstream = undefined;
    // Before the controller is let go: an HTTP/1.1 attempt's abort goes through it.
    if (abort) upstream?.abort();
    this.#controller = undefined;
    this.#h1Paused = undefined;
    this.#pendingTrailers = undefined;
  }

  #releaseLease(outcome: { ok: boolean; status?: number; error?: AttemptFailure['kind']; durationMs?: number }): void {
    const lease = this.#lease;
    if (lease === undefined) return;
    this.#lease = undefined;
    lease.release(outcome);
    this.#engine.attemptEnded(this.#lb!, lease, outcome, this.#tried);
  }

  #fail(status: number, message: string, termination: Termination, headers?: Readonly<Record<string, string>>): void {
    if (this.#finished) return;
    this.leaveQueue();
    this.#abortUpstream();
    if (this.#lease !== undefined) this.#releaseLease({ ok: false, error: status === 504 ? 'timeout' : 'reset' });
    this.#status = status;
    if (!this.#clientGone) {
      if (this.#responseStarted) this.#client.reset();
      else if (this.#grpc) {
        const code = grpcStatusFor(termination, status);
        countGrpcStatus(this.#engine, code, this.#lb);
        this.#client.respond(200, withoutStatus(trailersOnly(code, message)), true);
      } else {
        const body = Buffer.from(`${message}\n`);
        this.#client.respond(
          status,
          { ...headers, 'content-type': 'text/plain; charset=utf-8', 'content-length': body.length, 'cache-control': 'no-store' },
          false,
        );
        this.#client.write(body);
        this.#client.end(undefined);
      }
    }
    // The rest of the request body is read and dropped.
    if (!this.#bodyEnded) this.#client.body.resume();
    this.#end(termination, status);
  }

  #clearWaitTimer(): void {
    if (this.#waitTimer !== undefined) clearTimeout(this.#waitTimer);
    this.#waitTimer = undefined;
  }

  #clearHeadTimer(): void {
    if (this.#headTimer !== undefined) clearTimeout(this.#headTimer);
    this.#headTimer = undefined;
  }

  #clearDeadline(): void {
    if (this.#deadline !== undefined) clearTimeout(this.#deadline);
    this.#deadline = undefined;
  }

  #end(termination: Termination, status = this.#status): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#clearDeadline();
    this.#clearHeadTimer();
    this.#stopIdle();
    this.cancelRetry();
    // Emptied, not replaced: nothing is queued or held once it ended.
    this.#queue.length = 0;
    this.#held.length = 0;
    const body = this.#client.body;
    body.off('data', this.#onBodyData);
    body.off('end', this.#onBodyEnd);
    if (!this.#bodyEnded && !this.#clientGone) body.resume();
    const engine = this.#engine;
    if (this.#budgetTaken) {
      this.countEnd(engine, this.#lb!, this.#current, termination, status, this.#bytesIn, this.#bytesOut, performance.now() - this.#arrivedAt);
    }
    const done = this.#admissionDone;
    this.#admissionDone = undefined;
    engine.requestClosed(this.#onFinished, done);
    if (engine.config.accessLog === undefined) return;
    const entry = accessLogEntry({
      arrivedWall: this.#arrivedWall,
      arrivedAt: this.#arrivedAt,
      method: this.#client.method,
      path: this.#client.path,
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
    if (this.#grpcStatus !== undefined) entry.grpcStatus = this.#grpcStatus;
    engine.log(entry);
  }
}

function withoutStatus(headers: Record<string, string | number>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name of Object.keys(headers)) if (name !== ':status') out[name] = headers[name];
  return out;
}
