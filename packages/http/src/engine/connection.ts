/**
 * One client connection of the raw engine: bytes in, request heads parsed, one exchange at a time.
 *
 * Pipelined requests are answered in order by construction: the next head is parsed only once the
 * current response is complete (its bytes wait in the buffer, which is bounded: reading pauses when
 * more than a head's worth is waiting). A request body is fed to its exchange as it arrives; the
 * exchange may pause the socket (backpressure towards a slow backend). A body the exchange no longer
 * wants (an error answered early) is read and thrown away, so the connection can carry the next
 * request, as Node's server does.
 *
 * Deadlines are plain numbers checked by the listener's sweep (every 500 ms), not a timer per
 * socket: a head must complete within `headersTimeoutMs` of its first byte (of the accept, for the
 * first request) or the client gets 408 and the socket is destroyed; an idle keep-alive connection
 * is destroyed after `keepAliveTimeoutMs`; a request body that stalls for the proxy's `idleMs` gets
 * 408; a tunnel idle for `tunnelIdleMs` is closed; a connection being closed gets one second to
 * flush its last response, then it is destroyed — never left half-open waiting for the client.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { StickyVerification } from '../affinity/stickiness';
import { ForwardingBytes, ForwardingLines } from '../proxy/headers';
import type { RouteDecision } from '../proxy/options';
import { normalizeAddress } from '../proxy/proxy';
import type { ClientSide, ExchangeContext } from './exchange';
import { Exchange } from './exchange';
import type { NormalizedListenerOptions } from './options';
import { ChunkedDecoder, Framing, HeadError, parseRequestHead, type RequestHead } from './parser';
import { RequestView } from './request-view';
import { errorResponse } from './response';

const enum State {
  Head = 0,
  Body = 1,
  Waiting = 2,
  Tunnel = 3,
  Closing = 4,
}

const enum Deadline {
  None = 0,
  Head = 1,
  Idle = 2,
  Body = 3,
  Tunnel = 4,
  Linger = 5,
}

/** How long a connection being closed may take to flush its last bytes, ms. */
const LINGER_MS = 1000;

/** Where a request goes: an engine's exchange (with its route; none → 404), or `'hand-off'`. */
export type Dispatch = { readonly ctx: ExchangeContext; readonly route: RouteDecision | undefined; readonly onEnd: (() => void) | undefined } | 'hand-off';

/** What a connection needs from its listener. */
export interface ListenerContext {
  readonly listener: NormalizedListenerOptions;
  /** The listener is shutting down. */
  readonly closing: boolean;
  /** Where the request goes. The answer is read at once: the next call may reuse the object. */
  dispatch(view: RequestView): Dispatch;
  /**
   * Give the connection, with the bytes already read pushed back, to a `node:http` server (the
   * CLI's stats, metrics and admin pages): it is that server's from then on.
   */
  handOff(socket: Socket): void;
  forget(connection: ClientConnection): void;
}

export class ClientConnection implements ClientSide {
  readonly socket: Socket;
  readonly remoteAddress: string;
  readonly normalizedAddress: string;
  readonly encrypted: boolean;
  readonly sticky: StickyVerification = { verified: undefined };
  readonly forwarding = new ForwardingLines();
  readonly forwardingBytes = new ForwardingBytes();
  readonly #ctx: ListenerContext;
  #buf: Buffer | undefined;
  #state = State.Head;
  #exchange: Exchange | undefined;
  /** The proxy options of the current request's engine (its `idleMs` bounds body pauses). */
  #idleMs = 60_000;
  #head: RequestHead | undefined;
  /** The previous request's fields: the next head reuses their strings where the bytes are the same. */
  #previousFields: readonly string[] | undefined;
  #bodyRemaining = 0;
  readonly #decoder = new ChunkedDecoder();
  #bodyDone = false;
  #responseDone = false;
  #keepAlive = false;
  #bodyPaused = false;
  #processing = false;
  /** Read side paused because pipelined bytes piled up behind a response in progress. */
  #backlogPaused = false;
  /** The client half-closed: once what it sent is answered, the connection closes. */
  #clientEnded = false;
  /**
   * A request head has arrived on this connection. Until then the client is about to send its first
   * request — it connected for that — so a shutdown answers it (with `Connection: close`) rather
   * than resetting it: a listener handed to a successor must not cost the requests already queued.
   */
  #started = false;
  deadline = 0;
  #deadlineKind = Deadline.Head;

  constructor(ctx: ListenerContext, socket: Socket) {
    this.#ctx = ctx;
    this.socket = socket;
    // Read once: every request of the connection needs them (client IP, forwarding headers).
    const remote = socket.remoteAddress ?? '';
    this.remoteAddress = remote;
    this.normalizedAddress = normalizeAddress(remote);
    this.encrypted = (socket as TLSSocket).encrypted === true;
    this.deadline = Date.now() + ctx.listener.headersTimeoutMs;
    socket.setNoDelay(true);
    socket.on('data', this.#onData);
    socket.on('drain', this.#onDrain);
    socket.on('error', this.#onError);
    socket.on('end', this.#onEnd);
    socket.on('close', () => {
      this.#state = State.Closing;
      this.deadline = 0;
      const exchange = this.#exchange;
      this.#exchange = undefined;
      // Also a finished exchange: it may still be sending the rest of an upload to its backend.
      if (exchange !== undefined) exchange.onClientGone();
      ctx.forget(this);
    });
  }

  #onDrain = (): void => this.#exchange?.onClientDrain();

  #onError = (): void => {
    this.socket.destroy();
  };

  #onEnd = (): void => {
    const socket = this.socket;
    {
      // The client half-closed. As Node's server does (`httpAllowHalfOpen` false), a request in
      // progress is treated as abandoned: its attempt stops and nothing more is started for it.
      this.#clientEnded = true;
      if (this.#state === State.Closing) return;
      socket.destroy();
    }
  };

  get closing(): boolean {
    return this.#ctx.closing;
  }

  /**
   * Idle between requests (nothing received of the next one since a response): a shutdown may close
   * it now, and a client reusing it retries (RFC 9112 §9.3.1). A fresh connection is not idle.
   */
  get idle(): boolean {
    return this.#started && this.#state === State.Head && this.#buf === undefined;
  }

  write(data: string | Buffer): boolean {
    if (this.socket.destroyed) return true;
    return typeof data === 'string' ? this.socket.write(data, 'latin1') : this.socket.write(data);
  }

  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  touch(): void {
    this.deadline = Date.now() + this.#ctx.listener.tunnelIdleMs;
  }

  #onData = (chunk: Buffer): void => {
    if (this.#state === State.Tunnel) {
      this.touch();
      if (this.#exchange?.onTunnelData(chunk) === false) this.socket.pause();
      return;
    }
    if (this.#state === State.Closing) return;
    this.#buf = this.#buf === undefined ? chunk : Buffer.concat([this.#buf, chunk]);
    if (this.#state === State.Body) this.deadline = Date.now() + this.#idleMs;
    this.#process();
  };

  #process(): void {
    if (this.#processing) return;
    this.#processing = true;
    try {
      this.#loop();
    } finally {
      this.#processing = false;
    }
  }

  #loop(): void {
    for (;;) {
      const buf = this.#buf;
      switch (this.#state) {
        case State.Head: {
          if (buf === undefined) return;
          const listener = this.#ctx.listener;
          const head = parseRequestHead(buf, 0, buf.length, listener, this.#previousFields);
          if (head === null) {
            // The head's clock starts at its first byte: here, unless it had started already. (A
            // head that arrives whole, the usual case, needs no deadline: `#begin` sets the next.)
            if (this.#deadlineKind !== Deadline.Head) {
              this.#deadlineKind = Deadline.Head;
              this.deadline = Date.now() + listener.headersTimeoutMs;
            }
            return;
          }
          if (head instanceof HeadError) return this.#refuse(head.status, head.reason);
          this.#buf = head.headLength < buf.length ? buf.subarray(head.headLength) : undefined;
          if (!this.#begin(head)) {
            // Handed off: the bytes go back to the socket for the server that takes it over.
            this.#handOff(buf);
            return;
          }
          break;
        }
        case State.Body: {
          if (buf === undefined || this.#bodyPaused) return;
          const exchange = this.#exchange!;
          let wanted = true;
          if (this.#head!.framing === Framing.Length) {
            const take = Math.min(this.#bodyRemaining, buf.length);
            this.#buf = take < buf.length ? buf.subarray(take) : undefined;
            this.#bodyRemaining -= take;
            wanted = exchange.onBody(take === buf.length ? buf : buf.subarray(0, take));
            if (this.#bodyRemaining === 0) this.#bodyEnded();
          } else {
            const used = this.#decoder.push(buf, 0, buf.length, (data) => {
              if (!exchange.onBody(data)) wanted = false;
            });
            if (used instanceof HeadError) {
              this.#buf = undefined;
              this.#bodyDone = true;
              this.#keepAlive = false;
              exchange.onBodyError();
              if (!this.socket.destroyed) this.#closeSoon();
              return;
            }
            this.#buf = used < buf.length ? buf.subarray(used) : undefined;
            if (this.#decoder.done) this.#bodyEnded();
          }
          if (!wanted && this.#state === State.Body) this.#pauseBody();
          break;
        }
        case State.Waiting:
          if (buf !== undefined && buf.length > this.#ctx.listener.maxHeadBytes && !this.#backlogPaused) {
            this.#backlogPaused = true;
            this.socket.pause();
          }
          return;
        default:
          return;
      }
    }
  }

  /** Start the request's exchange; false when the dispatcher hands the connection off instead. */
  #begin(head: RequestHead): boolean {
    const ctx = this.#ctx;
    let target = head.target;
    if (target.charCodeAt(0) !== 47 && target !== '*') {
      // Absolute-form (allowed by the listener): route and forward the path, as RFC 9112 §3.2.2 says.
      const slash = target.indexOf('/', target.indexOf('//') + 2);
      target = slash === -1 ? '/' : target.slice(slash);
    }
    const view = new RequestView(head.method, target, head.version, head.rawHeaders, this.socket);
    const dispatch = ctx.dispatch(view);
    if (dispatch === 'hand-off') return false;
    const engine = dispatch.ctx.engine;
    this.#idleMs = engine.config.idleMs;
    this.#head = head;
    this.#previousFields = head.rawHeaders;
    this.#started = true;
    this.#responseDone = false;
    this.#bodyDone = head.framing === Framing.None;
    this.#bodyRemaining = head.framing === Framing.Length ? head.contentLength : 0;
    if (head.framing === Framing.Chunked) this.#decoder.reset();
    this.#state = this.#bodyDone ? State.Waiting : State.Body;
    this.#deadlineKind = this.#bodyDone ? Deadline.None : Deadline.Body;
    this.deadline = this.#bodyDone ? 0 : Date.now() + this.#idleMs;
    const exchange = new Exchange(dispatch.ctx, this, head, view, target === '*' ? undefined : dispatch.route, dispatch.onEnd);
    this.#exchange = exchange;
    exchange.start();
    return true;
  }

  #handOff(bytes: Buffer): void {
    const socket = this.socket;
    this.#state = State.Closing;
    this.deadline = 0;
    this.#buf = undefined;
    socket.off('data', this.#onData);
    socket.off('drain', this.#onDrain);
    socket.off('error', this.#onError);
    socket.off('end', this.#onEnd);
    this.#ctx.forget(this);
    socket.pause();
    socket.unshift(bytes);
    this.#ctx.handOff(socket);
  }

  #bodyEnded(): void {
    this.#bodyDone = true;
    const exchange = this.#exchange!;
    if (this.#responseDone) {
      // Answered already; the exchange may still have been passing the body on to its backend.
      exchange.onBodyEnd();
      this.#next();
      return;
    }
    this.#state = State.Waiting;
    this.#deadlineKind = Deadline.None;
    this.deadline = 0;
    exchange.onBodyEnd();
  }

  #pauseBody(): void {
    if (this.#bodyPaused) return;
    this.#bodyPaused = true;
    this.socket.pause();
  }

  resumeBody(): void {
    if (this.#state === State.Tunnel) {
      this.socket.resume();
      return;
    }
    if (!this.#bodyPaused) return;
    this.#bodyPaused = false;
    this.socket.resume();
    this.#process();
  }

  responseDone(keepAlive: boolean): void {
    this.#responseDone = true;
    this.#keepAlive = keepAlive && !this.#ctx.closing;
    if (!this.#keepAlive) return this.#closeSoon();
    if (this.#bodyDone) return this.#next();
    // The exchange ended before the body did (an early answer): read the rest and drop it.
    if (this.#bodyPaused) {
      this.#bodyPaused = false;
      this.socket.resume();
    }
    this.#process();
  }

  /** The exchange and its body are both complete: on to the next request. */
  #next(): void {
    if (!this.#keepAlive) return this.#closeSoon();
    this.#exchange = undefined;
    this.#head = undefined;
    this.#state = State.Head;
    this.#bodyPaused = false;
    if (this.#clientEnded && this.#buf === undefined) {
      this.socket.destroy();
      return;
    }
    if (this.#buf === undefined) {
      this.#deadlineKind = Deadline.Idle;
      this.deadline = Date.now() + this.#ctx.listener.keepAliveTimeoutMs;
    } else {
      this.#deadlineKind = Deadline.Head;
      this.deadline = Date.now() + this.#ctx.listener.headersTimeoutMs;
    }
    if (this.#backlogPaused || this.socket.isPaused()) {
      this.#backlogPaused = false;
      this.socket.resume();
    }
    this.#process();
  }

  startTunnel(exchange: Exchange): void {
    this.#state = State.Tunnel;
    this.#deadlineKind = Deadline.Tunnel;
    this.touch();
    this.#bodyPaused = false;
    const rest = this.#buf;
    this.#buf = undefined;
    if (rest !== undefined && !exchange.onTunnelData(rest)) this.socket.pause();
    else if (this.socket.isPaused()) this.socket.resume();
    void exchange;
  }

  /** Answer a head that could not be accepted, and close. */
  #refuse(status: number, reason: string): void {
    this.#buf = undefined;
    this.write(
      errorResponse(
        status,
        status === 431 ? 'Request Header Fields Too Large' : status === 408 ? 'Request Timeout' : status === 422 ? 'Unprocessable Content' : 'Bad Request',
        undefined,
        true,
      ),
    );
    void reason;
    this.#closeSoon();
  }

  /** End the connection after what was written, and destroy it at the latest a second later. */
  #closeSoon(): void {
    if (this.#state === State.Closing) return;
    this.#state = State.Closing;
    this.#buf = undefined;
    this.#deadlineKind = Deadline.Linger;
    this.deadline = Date.now() + LINGER_MS;
    // Destroyed once the answer is flushed, never left half-closed for a peer that keeps its side
    // open (it would hold a connection slot and a descriptor); the linger deadline covers a peer
    // that does not read.
    const socket = this.socket;
    socket.end(() => socket.destroy());
  }

  /** Called by the listener's sweep when `deadline` passed. */
  expire(): void {
    switch (this.#deadlineKind) {
      case Deadline.Head:
        // Nothing of a request yet: a silent close (as for an idle keep-alive); a partial head: 408.
        if (this.#buf === undefined) this.socket.destroy();
        else this.#refuse(408, 'head timeout');
        return;
      case Deadline.Body: {
        const exchange = this.#exchange;
        const answered = exchange?.responseStarted ?? true;
        exchange?.onClientGone();
        if (!answered) {
          this.#refuse(408, 'body timeout');
          return;
        }
        this.socket.destroy();
        return;
      }
      default:
        this.socket.destroy();
    }
  }

  /** A shutdown: close now when idle, else after the response in progress. */
  shutdown(): void {
    if (this.idle) this.socket.destroy();
    else if (this.#state === State.Tunnel) this.socket.destroy();
  }
}
