/**
 * The client half of a stream exchange: an HTTP/2 stream (`ServerHttp2Stream`, from the raw
 * engine's HTTP/2 listener or `createProxy` mounted on a `node:http2` server), or an HTTP/1.1
 * request/response pair whose pool speaks HTTP/2 upstream. The exchange talks to both through this
 * one shape; each side maps it to its own framing (trailers are HEADERS frames on HTTP/2 and
 * chunked trailer fields on HTTP/1.1).
 */
import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import http2, { type Http2ServerResponse, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { ForwardingCache } from '../proxy/headers';

const { NGHTTP2_CANCEL, NGHTTP2_INTERNAL_ERROR } = http2.constants;

/**
 * `respond` options, shared, and holding every property Node sets on its copy (`endStream`): on Node
 * 20, adding a property to an object spread from a non-empty literal takes ~0.9 µs (a new hidden
 * class each time), so `respond` given `{ waitForTrailers: true }` paid that once per response.
 */
const END_STREAM = { endStream: true } as const;
const WAIT_FOR_TRAILERS = { endStream: false, waitForTrailers: true } as const;

function ignoreError(): void {}

/** The client stream a `ServerHttp2Stream` answers for, set when it asks for trailers (this module's own symbol). */
const CLIENT = Symbol('fulcrum.h2.client');
type TaggedStream = ServerHttp2Stream & { [CLIENT]: Http2ClientStream };

/** 'wantTrailers' of every response that waits for trailers: one function, no closure per stream. */
function sendTrailers(this: ServerHttp2Stream): void {
  if (this.destroyed) return;
  // Empty trailers go out as an empty DATA frame with END_STREAM (Node does it that way).
  this.sendTrailers((this as TaggedStream)[CLIENT].trailers ?? {});
}

export interface ClientStream {
  readonly version: 1 | 2;
  readonly method: string;
  /** The request target: `:path`, or the HTTP/1.1 request target. */
  readonly path: string;
  /** The request's header fields without pseudo-headers, `host` from `:authority` when it had none. */
  readonly rawHeaders: string[];
  readonly headers: IncomingHttpHeaders;
  readonly body: Readable;
  /** No body follows the head (END_STREAM on HEADERS, or no HTTP/1.1 framing). */
  readonly bodyless: boolean;
  readonly remoteAddress: string;
  readonly encrypted: boolean;
  /**
   * The client connection's forwarding fields, built once per connection (`h2RequestHeaders`): set
   * when `headers` are the fields as `node:http2` handed them over (lower-case names nghttp2 has
   * checked), `undefined` when they are not (HTTP/1.1, or a compatibility request whose headers
   * the application may have changed).
   */
  readonly forwarding: ForwardingCache<readonly string[]> | undefined;
  /** Send the response head; `endStream` when no body or trailers follow. `headers` is the callee's from then on (`:status` may be added to it). */
  respond(status: number, headers: OutgoingHttpHeaders, endStream: boolean): void;
  write(chunk: Buffer): boolean;
  onDrain(callback: () => void): void;
  /** End the response, with trailers when there are any. */
  end(trailers: OutgoingHttpHeaders | undefined): void;
  /** Abort the response (truncated: the client must not take it as complete). */
  reset(): void;
  /** The client went away (or the stream closed): called once. */
  onClose(callback: () => void): void;
}

/** Header fields of an HTTP/2 request as a raw list, pseudo-headers left out and `:authority` as `host`. */
export function rawFromHeaders(headers: IncomingHttpHeaders): string[] {
  const raw: string[] = [];
  let host = false;
  for (const name in headers) {
    if (name.charCodeAt(0) === 0x3a /* : */) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (name === 'host') host = true;
    if (typeof value === 'string') raw.push(name, value);
    else for (const item of value) raw.push(name, item);
  }
  const authority = headers[':authority'];
  if (!host && typeof authority === 'string') raw.push('host', authority);
  return raw;
}

/** What the streams of one client connection share: its peer, read once, and its forwarding fields. */
class ClientPeer {
  readonly remoteAddress: string;
  readonly encrypted: boolean;
  readonly forwarding = new ForwardingCache<readonly string[]>();

  constructor(session: ServerHttp2Session | undefined) {
    // `session.socket` is a proxy object: read through it once per connection, not per stream.
    const socket = session?.socket;
    this.remoteAddress = socket?.remoteAddress ?? '';
    this.encrypted = (socket as TLSSocket | undefined)?.encrypted === true;
  }
}

/** A client session's `ClientPeer`, set by its first stream (this module's own symbol). */
const PEER = Symbol('fulcrum.h2.peer');
type TaggedSession = ServerHttp2Session & { [PEER]?: ClientPeer };

function peerOf(stream: ServerHttp2Stream): ClientPeer {
  const session = stream.session as TaggedSession | undefined;
  let peer = session?.[PEER];
  if (peer === undefined) {
    peer = new ClientPeer(session);
    if (session !== undefined) session[PEER] = peer;
  }
  return peer;
}

export class Http2ClientStream implements ClientStream {
  readonly version = 2;
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Readable;
  readonly bodyless: boolean;
  readonly remoteAddress: string;
  readonly encrypted: boolean;
  readonly forwarding: ForwardingCache<readonly string[]> | undefined;
  readonly #stream: ServerHttp2Stream;
  readonly #compat: Http2ServerResponse | undefined;
  #rawHeaders: string[] | undefined = undefined;
  /** The trailers to send when the stream asks for them (`end`). */
  trailers: OutgoingHttpHeaders | undefined;

  /**
   * `body`: where the request body is read — the stream, or a compatibility-API request that
   * already reads it; `compat`: that request's response, which sends the trailers it is given.
   */
  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, body: Readable = stream, compat?: Http2ServerResponse) {
    this.#stream = stream;
    this.#compat = compat;
    this.headers = headers;
    this.method = (headers[':method'] as string | undefined) ?? '';
    this.path = (headers[':path'] as string | undefined) ?? '';
    this.body = body;
    this.bodyless = stream.endAfterHeaders || (body !== stream && body.readableEnded);
    const peer = peerOf(stream);
    this.remoteAddress = peer.remoteAddress;
    this.encrypted = peer.encrypted;
    this.forwarding = compat === undefined ? peer.forwarding : undefined;
    // A compatibility request's fields as they are now: the application may change them later.
    if (compat !== undefined) this.#rawHeaders = rawFromHeaders(headers);
    // The listener's frontend has one on it already; `createProxy`'s server may not.
    if (stream.listenerCount('error') === 0) stream.on('error', ignoreError);
  }

  /** Built on first read: a stream whose fields go to an HTTP/2 backend as they are needs no list. */
  get rawHeaders(): string[] {
    return (this.#rawHeaders ??= rawFromHeaders(this.headers));
  }

  respond(status: number, headers: OutgoingHttpHeaders, endStream: boolean): void {
    const stream = this.#stream;
    if (stream.destroyed || stream.headersSent) return;
    headers[':status'] = status;
    stream.respond(headers, endStream ? END_STREAM : WAIT_FOR_TRAILERS);
    if (!endStream && this.#compat === undefined) {
      // Emitted once per stream: `on`, not `once` (no wrapper to allocate).
      (stream as TaggedStream)[CLIENT] = this;
      stream.on('wantTrailers', sendTrailers);
    }
  }

  write(chunk: Buffer): boolean {
    if (this.#stream.destroyed) return true;
    return this.#stream.write(chunk);
  }

  onDrain(callback: () => void): void {
    this.#stream.once('drain', callback);
  }

  end(trailers: OutgoingHttpHeaders | undefined): void {
    this.trailers = trailers;
    // The compatibility response answers 'wantTrailers' itself, with the trailers added to it.
    if (this.#compat !== undefined && trailers !== undefined) this.#compat.addTrailers(trailers as Record<string, string>);
    if (!this.#stream.destroyed && !this.#stream.writableEnded) this.#stream.end();
  }

  reset(): void {
    if (!this.#stream.destroyed) this.#stream.close(NGHTTP2_INTERNAL_ERROR);
  }

  /** Refuse the stream without an answer (the client may retry it elsewhere). */
  cancel(): void {
    if (!this.#stream.destroyed) this.#stream.close(NGHTTP2_CANCEL);
  }

  onClose(callback: () => void): void {
    // 'close' is emitted once: `on` allocates no `once` wrapper.
    this.#stream.on('close', callback);
  }
}

export class Http1ClientStream implements ClientStream {
  readonly version = 1;
  readonly method: string;
  readonly path: string;
  readonly rawHeaders: string[];
  readonly headers: IncomingHttpHeaders;
  readonly body: Readable;
  readonly bodyless: boolean;
  readonly remoteAddress: string;
  readonly encrypted: boolean;
  readonly forwarding = undefined;
  readonly #res: ServerResponse;

  constructor(req: IncomingMessage, res: ServerResponse) {
    this.#res = res;
    this.method = req.method ?? 'GET';
    this.path = req.url ?? '/';
    this.rawHeaders = req.rawHeaders;
    this.headers = req.headers;
    this.body = req;
    this.bodyless = req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined;
    this.remoteAddress = req.socket.remoteAddress ?? '';
    this.encrypted = (req.socket as TLSSocket).encrypted === true;
  }

  respond(status: number, headers: OutgoingHttpHeaders, endStream: boolean): void {
    const res = this.#res;
    if (res.headersSent || res.destroyed) return;
    res.writeHead(status, headers);
    if (endStream) res.end();
  }

  write(chunk: Buffer): boolean {
    if (this.#res.destroyed) return true;
    return this.#res.write(chunk);
  }

  onDrain(callback: () => void): void {
    this.#res.once('drain', callback);
  }

  end(trailers: OutgoingHttpHeaders | undefined): void {
    const res = this.#res;
    if (res.writableEnded || res.destroyed) return;
    // Trailer fields need the chunked coding; a response with a Content-Length drops them.
    if (trailers !== undefined && Object.keys(trailers).length > 0 && res.getHeader('content-length') === undefined)
      res.addTrailers(trailers as Record<string, string>);
    res.end();
  }

  reset(): void {
    this.#res.destroy();
  }

  onClose(callback: () => void): void {
    this.#res.once('close', callback);
  }
}
