/**
 * Upgraded connections (WebSockets, `Upgrade: h2c`): HAProxy's rule — a connection becomes a tunnel
 * only once the backend has answered `101 Switching Protocols`. Until then it is an HTTP exchange
 * like any other:
 *
 * - the head is checked (`checkRequestHead`), routed, admitted (rate limits) and logged; the
 *   backend is chosen like any request (affinity included) and within its `maxConnections` — a
 *   full backend makes the request wait in the proxy's queue, as a request would;
 * - the handshake goes to the backend with the forwarded headers, through Node's HTTP client, which
 *   parses the answer for real;
 * - on `101` the answer goes to the client and bytes are relayed both ways until either side closes
 *   or nothing moves for `upgradeTimeouts.tunnelMs` (HAProxy's `timeout tunnel`); the lease is held
 *   for the life of the tunnel, since a WebSocket is load and least-connections should see it;
 * - on any other answer, it is relayed as an ordinary response (re-framed for the client) and the
 *   client connection goes back to the HTTP server, so the next request on it is parsed, routed,
 *   admitted and logged like the first — nothing after a refused upgrade is blind-piped;
 * - no answer within `upgradeTimeouts.handshakeMs` → 504, and both sockets are destroyed.
 *
 * An upgrade request with a body (`Content-Length` > 0 or `Transfer-Encoding`) is served as an
 * ordinary request without the upgrade (RFC 9110 §7.8 lets a server ignore `Upgrade`): its head
 * goes back to the HTTP server, which reads the body with its own parser.
 *
 * Handing a connection back uses Node's documented injection: `server.emit('connection', socket)`
 * (`'secureConnection'` for TLS sockets), with the bytes read past the upgrade head put back first.
 * The server is the one the `'upgrade'` listener was called on (`server.on('upgrade', proxy.upgrade)`);
 * without one, the connection is closed after a non-101 answer instead.
 */
import { request as httpRequest, type ClientRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Backend, Lease, Outcome } from '@fulcrum/core';
import { clientAddress } from '../affinity';
import type { AccessLogEntry, RouteDecision, Termination } from './options';
import type { ProxyEngine } from './proxy';
import { normalizeAddress } from './proxy';
import { classifyError, closeAfterAnswer, isLocalExhaustion } from './errors';
import { connectionListed, honouredRawHeaders } from './headers';
import { checkRequestHead } from './request-checks';

/** Response headers never relayed as received: they describe the backend's connection. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'http2-settings']);

const UNSAFE = /[\r\n\0]/;

export class UpgradeProxy {
  readonly #engine: ProxyEngine;
  readonly #open = new Set<Duplex>();

  constructor(engine: ProxyEngine) {
    this.#engine = engine;
  }

  /** Number of client connections in an upgrade (handshake or tunnel). */
  get size(): number {
    return this.#open.size;
  }

  handle(req: IncomingMessage, client: Duplex, head: Buffer, server?: NetServer): void {
    try {
      new UpgradeExchange(this.#engine, this.#open, req, client, head, server).start();
    } catch (error) {
      // A bug must cost one connection, never the process.
      this.#engine.report(error, 'upgrade');
      this.#open.delete(client);
      client.destroy();
    }
  }

  /** Close every upgraded connection. */
  close(): void {
    for (const socket of this.#open) socket.destroy();
    this.#open.clear();
  }
}

/** One upgrade request: its checks, its handshake, then its tunnel or its ordinary response. */
class UpgradeExchange {
  /** The proxy's engine, then (once routed) the engine of the pool the request goes to. */
  #engine: ProxyEngine;
  readonly #open: Set<Duplex>;
  readonly #req: IncomingMessage;
  readonly #client: Duplex;
  readonly #head: Buffer;
  readonly #server: NetServer | undefined;
  readonly #arrivedAt = performance.now();
  readonly #arrivedWall = Date.now();
  #clientIp: string;
  #route: RouteDecision | undefined;
  #lease: Lease | undefined;
  #upstreamReq: ClientRequest | undefined;
  #upstream: Socket | undefined;
  #timer: NodeJS.Timeout | undefined;
  #unqueue: (() => void) | undefined;
  #admissionDone: (() => void) | undefined;
  #finished = false;
  #attempts = 0;
  #status = 0;
  #bytesOut = 0;
  /** Client bytes relayed to the backend through the tunnel (the stats' request bytes). */
  #bytesIn = 0;
  /** Counted in the pool's traffic (`requestStarted`): a routed upgrade, tunnel or not, like HAProxy's sessions. */
  #counted = false;
  #backend: Backend | undefined;
  #headMs: number | undefined;
  #queueMs = 0;
  #backendId: string | undefined;
  /** Client bytes read while the handshake is pending (after `head`), and their size. */
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  constructor(engine: ProxyEngine, open: Set<Duplex>, req: IncomingMessage, client: Duplex, head: Buffer, server: NetServer | undefined) {
    this.#engine = engine;
    this.#open = open;
    this.#req = req;
    this.#client = client;
    this.#head = head;
    this.#server = server;
    const remote = req.socket.remoteAddress ?? '';
    this.#clientIp = normalizeAddress(remote);
  }

  start(): void {
    let engine = this.#engine;
    const client = this.#client;
    const req = this.#req;
    client.on('error', this.#onClientError);
    client.on('close', this.#onClientClose);
    this.#open.add(client);
    const refusal = checkRequestHead(req, engine.config.maxHeaderCount);
    if (refusal !== undefined) return this.#refuse(refusal.status, refusal.message, 'bad-request');
    if (hasBody(req)) return this.#declineUpgrade();
    if (engine.closed) return this.#refuse(503, 'Service Unavailable', 'closed');
    if (!req.url?.startsWith('/')) return this.#refuse(400, 'Bad Request', 'bad-request');
    try {
      if (engine.trusted !== undefined) this.#clientIp = clientAddress(req, engine.trusted);
      this.#route = engine.route(req);
    } catch (error) {
      engine.report(error, 'upgrade');
    }
    const route = this.#route;
    if (route === undefined) return this.#refuse(404, 'Not Found', 'not-found');
    // A pool with options of its own (createRouter's PoolSpec) is served by its own engine.
    engine = engine.engineFor(route.pool);
    this.#engine = engine;
    engine.requestStarted(route.lb);
    this.#counted = true;
    if (engine.config.admission !== undefined) {
      const verdict = engine.admit(req, this.#clientIp, route, 'upgrade');
      if (!verdict.admit) return this.#refuse(verdict.status, verdict.message, 'denied', verdict.headers);
      this.#admissionDone = verdict.done;
    }
    // Read while waiting, to notice a client that goes away; what it sends is kept for later
    // (the tunnel or the next request), up to maxReplayBytes, beyond which reading pauses.
    client.on('data', this.#onEarlyData);
    client.once('end', this.#onClientEnd);
    // The handshake deadline covers the wait for a slot, the connect and the backend's answer.
    this.#timer = setTimeout(this.#onHandshakeTimeout, engine.config.handshakeMs);
    const lease = this.#acquire();
    if (lease !== undefined) return this.#send(lease);
    if (route.lb.tier === 'none') return this.#refuse(503, 'Service Unavailable: no backend available', 'no-backend');
    const queuedAt = performance.now();
    const unqueue = engine.queue.add({
      tryStart: () => {
        if (this.#finished) return true;
        const queued = this.#acquire();
        if (queued === undefined) return false;
        this.#unqueue = undefined;
        this.#queueMs = performance.now() - queuedAt;
        this.#send(queued);
        return true;
      },
      expire: (reason) => {
        this.#unqueue = undefined;
        this.#queueMs = performance.now() - queuedAt;
        if (reason === 'timeout') this.#refuse(503, 'Service Unavailable: queue timeout', 'queue-timeout');
        else this.#refuse(503, 'Service Unavailable', 'closed');
      },
    });
    if (unqueue === undefined) return this.#refuse(503, 'Service Unavailable: queue full', 'queue-full');
    this.#unqueue = unqueue;
  }

  #acquire(): Lease | undefined {
    const engine = this.#engine;
    const route = this.#route!;
    const key = engine.hashKey?.(this.#req, this.#clientIp);
    const stickyId = engine.stickiness?.lookup(this.#req, this.#clientIp, route.lb.clock.now());
    return route.lb.acquire({
      ...(key === undefined ? {} : { key }),
      ...(stickyId === undefined ? {} : { stickyBackendId: stickyId }),
      skipFull: true,
    });
  }

  #send(lease: Lease): void {
    const engine = this.#engine;
    const req = this.#req;
    this.#lease = lease;
    this.#attempts = 1;
    const backend = lease.backend;
    this.#backendId = backend.id;
    this.#backend = backend;
    const url = new URL(backend.address.includes('://') ? backend.address : `http://${backend.address}`);
    const headers = engine.upstreamHeaders(
      req,
      honouredRawHeaders(req),
      {
        remoteAddress: normalizeAddress(req.socket.remoteAddress ?? ''),
        encrypted: (req.socket as TLSSocket).encrypted === true,
        peerTrusted: engine.trusted?.contains(req.socket.remoteAddress ?? '') ?? false,
        preserveHost: engine.config.preserveHost,
        addForwarded: engine.config.forwardedHeaders,
        upgrade: true,
      },
      url.host,
      this.#route!.path,
      backend,
      1,
    );
    if (typeof headers === 'number') {
      this.#releaseLease({ ok: true });
      return headers === 400 ? this.#refuse(400, 'Bad Request', 'bad-request') : this.#refuse(500, 'Internal Server Error', 'internal-error');
    }
    const tls = url.protocol === 'https:';
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const options: RequestOptions & Record<string, unknown> = {
      host,
      port: Number(url.port || (tls ? 443 : 80)),
      method: req.method ?? 'GET',
      path: this.#route!.path,
      headers,
      agent: false,
      setHost: false,
      timeout: engine.config.connectMs,
      ...(tls ? { servername: host, ...(engine.config.backendTls ?? {}) } : {}),
    };
    const started = performance.now();
    let upstreamReq: ClientRequest;
    try {
      upstreamReq = (tls ? httpsRequest : httpRequest)(options);
    } catch (error) {
      return this.#upstreamFailed(error);
    }
    this.#upstreamReq = upstreamReq;
    upstreamReq.on('socket', (socket: Socket) => {
      this.#upstream = socket;
      this.#open.add(socket);
      // `timeout` above bounds the connect; once connected, the handshake deadline rules.
      socket.once(tls ? 'secureConnect' : 'connect', () => socket.setTimeout(0));
    });
    upstreamReq.on('timeout', () => upstreamReq.destroy(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })));
    upstreamReq.on('error', (error) => this.#upstreamFailed(error));
    upstreamReq.on('upgrade', (res: IncomingMessage, socket: Socket, upstreamHead: Buffer) => {
      this.#headMs = performance.now() - started;
      this.#tunnel(res, socket, upstreamHead);
    });
    upstreamReq.on('response', (res: IncomingMessage) => {
      this.#headMs = performance.now() - started;
      this.#relay(res);
    });
    upstreamReq.end();
  }

  /** The backend switched protocols: answer 101 and relay bytes both ways. */
  #tunnel(res: IncomingMessage, upstream: Socket, upstreamHead: Buffer): void {
    const client = this.#client;
    if (this.#finished || client.destroyed) {
      upstream.destroy();
      return;
    }
    this.#clearTimer();
    this.#status = 101;
    this.#upstream = upstream;
    this.#open.add(upstream);
    let head = `HTTP/1.1 101 ${safeReason(res.statusMessage, 'Switching Protocols')}\r\n`;
    const raw = res.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      if (!UNSAFE.test(raw[i]!) && !UNSAFE.test(raw[i + 1]!)) head += `${raw[i]}: ${raw[i + 1]}\r\n`;
    }
    client.write(`${head}\r\n`);
    if (upstreamHead.length > 0) client.write(upstreamHead);
    const early = this.#takeEarlyBytes();
    if (early.length > 0) upstream.write(early);
    // What the client sent past its request head (the first bytes of the upgraded stream, and any read while waiting).
    this.#bytesIn += early.length;
    client.on('data', (chunk: Buffer) => {
      this.#bytesIn += chunk.length;
    });
    const tunnelMs = this.#engine.config.tunnelMs;
    const idle = (): void => {
      client.destroy();
      upstream.destroy();
    };
    // Socket timeouts count inactivity in both directions of each socket: either one firing means
    // nothing moved through the tunnel for tunnelMs.
    if (typeof (client as Socket).setTimeout === 'function') (client as Socket).setTimeout(tunnelMs, idle);
    upstream.setTimeout(tunnelMs, idle);
    upstream.on('error', (error) => this.#engine.report(error, 'upgrade', this.#lease?.backend.id));
    upstream.on('data', (chunk: Buffer) => {
      this.#bytesOut += chunk.length;
    });
    upstream.on('close', () => this.#finish('ok'));
    // A FIN from either side ends the tunnel once it is passed on: HTTP servers keep half-open
    // sockets, and a peer that never closes its half would otherwise hold both until tunnelMs.
    upstream.once('end', () => client.end(() => client.destroy()));
    client.once('end', () => upstream.end(() => upstream.destroy()));
    upstream.pipe(client, { end: false });
    client.pipe(upstream, { end: false });
  }

  /** The backend refused the upgrade: relay its answer as an ordinary response. */
  #relay(res: IncomingMessage): void {
    const client = this.#client;
    const req = this.#req;
    if (this.#finished || client.destroyed) {
      res.destroy();
      return;
    }
    this.#clearTimer();
    const status = res.statusCode ?? 502;
    this.#status = status;
    const noBody = req.method === 'HEAD' || status === 204 || status === 304;
    const length = res.headers['content-length'];
    const hasLength = typeof length === 'string' && /^\d{1,15}$/.test(length);
    const chunked = !noBody && !hasLength && req.httpVersion === '1.1';
    const keepAlive = this.#server !== undefined && !this.#engine.closed && req.httpVersion === '1.1' && (noBody || hasLength || chunked) && !wantsClose(req);
    const listed = connectionListed(res.headers.connection);
    let head = `HTTP/1.1 ${status} ${safeReason(res.statusMessage, '')}\r\n`;
    const raw = res.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      const value = raw[i + 1]!;
      const lower = name.toLowerCase();
      if (HOP_BY_HOP.has(lower) || listed?.has(lower) || UNSAFE.test(name) || UNSAFE.test(value)) continue;
      head += `${name}: ${value}\r\n`;
    }
    if (chunked) head += 'Transfer-Encoding: chunked\r\n';
    head += keepAlive ? 'Connection: keep-alive\r\n\r\n' : 'Connection: close\r\n\r\n';
    client.write(head);
    if (noBody) {
      res.resume();
      res.once('end', () => this.#afterResponse(keepAlive));
    } else {
      res.on('data', (chunk: Buffer) => {
        this.#bytesOut += chunk.length;
        const flowing = chunked ? client.write(`${chunk.length.toString(16)}\r\n`) && client.write(chunk) && client.write('\r\n') : client.write(chunk);
        if (!flowing) {
          res.pause();
          client.once('drain', () => res.resume());
        }
      });
      res.once('end', () => {
        if (chunked) client.write('0\r\n\r\n');
        this.#afterResponse(keepAlive);
      });
    }
    const cut = (error: Error): void => {
      if (this.#finished) return;
      // Part of the response is out: the only honest thing left is to cut the connection.
      this.#engine.report(error, 'upgrade', this.#lease?.backend.id);
      const failure = classifyError(error);
      this.#releaseLease({ ok: false, error: failure.kind });
      this.#finish('upstream-truncated');
    };
    res.once('error', cut);
    res.once('close', () => {
      if (!res.complete) cut(Object.assign(new Error('the backend closed the response early'), { code: 'ECONNRESET' }));
    });
    // A body that stalls costs timeouts.idleMs, as it does for any response.
    this.#upstream?.setTimeout(this.#engine.config.idleMs, () => cut(Object.assign(new Error('response body timeout'), { code: 'UND_ERR_BODY_TIMEOUT' })));
  }

  /** The ordinary response is out: end the exchange and give the connection back, or close it. */
  #afterResponse(keepAlive: boolean): void {
    const status = this.#status;
    this.#releaseLease({ ok: status < 500, status, durationMs: this.#headMs ?? 0 });
    this.#upstream?.destroy();
    if (!keepAlive || this.#finished) return this.#finish('ok', 'end');
    const client = this.#client;
    // Detach first, so that closing the upstream or the log's bookkeeping cannot touch the client.
    client.off('error', this.#onClientError);
    client.off('close', this.#onClientClose);
    this.#finish('ok', 'keep');
    this.#handBack();
  }

  /** Give the client connection back to the HTTP server, with the bytes read past the head. */
  #handBack(): void {
    const client = this.#client;
    const early = this.#takeEarlyBytes();
    if (client.destroyed) return;
    if (early.length > 0) client.unshift(early);
    const encrypted = (client as TLSSocket).encrypted === true;
    this.#server!.emit(encrypted ? 'secureConnection' : 'connection', client);
    // The server's parser reads with a 'data' listener, which does not restart a paused stream.
    client.resume();
  }

  /**
   * An upgrade request with a body: serve it as an ordinary request. Its head is written back in
   * front of the body and the connection handed to the HTTP server without `Upgrade`.
   */
  #declineUpgrade(): void {
    const req = this.#req;
    const client = this.#client;
    if (this.#server === undefined) return this.#refuse(400, 'Bad Request: an upgrade request with a body', 'bad-request');
    let head = `${req.method} ${req.url} HTTP/${req.httpVersion}\r\n`;
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const lower = raw[i]!.toLowerCase();
      if (lower === 'upgrade' || lower === 'http2-settings') continue;
      if (lower === 'connection') {
        const kept = raw[i + 1]!.split(',')
          .map((t) => t.trim())
          .filter((t) => t !== '' && !/^(upgrade|http2-settings)$/i.test(t));
        if (kept.length > 0) head += `Connection: ${kept.join(', ')}\r\n`;
        continue;
      }
      head += `${raw[i]}: ${raw[i + 1]}\r\n`;
    }
    client.off('error', this.#onClientError);
    client.off('close', this.#onClientClose);
    this.#open.delete(client);
    this.#finished = true;
    client.pause();
    if (this.#head.length > 0) client.unshift(this.#head);
    client.unshift(Buffer.from(`${head}\r\n`, 'latin1'));
    const encrypted = (client as TLSSocket).encrypted === true;
    this.#server.emit(encrypted ? 'secureConnection' : 'connection', client);
    client.resume();
  }

  #upstreamFailed(error: unknown): void {
    if (this.#finished) return;
    if (this.#status === 101 || this.#status >= 200) {
      // After the answer began: a broken tunnel or a cut response.
      this.#releaseLease({ ok: false, error: 'reset' });
      return this.#finish(this.#status === 101 ? 'ok' : 'upstream-truncated');
    }
    const failure = classifyError(error);
    this.#engine.report(error, 'upgrade', this.#lease?.backend.id);
    if (isLocalExhaustion(error)) {
      // The proxy is out of descriptors: not the backend's failure.
      this.#releaseLease({ ok: true, error: 'aborted' });
      return this.#refuse(503, 'Service Unavailable', 'proxy-exhausted');
    }
    this.#releaseLease({ ok: false, error: failure.kind, durationMs: performance.now() - this.#arrivedAt });
    if (failure.kind === 'timeout') this.#refuse(504, 'Gateway Timeout', 'timeout');
    else this.#refuse(502, 'Bad Gateway', 'upstream-failed');
  }

  #onHandshakeTimeout = (): void => {
    this.#timer = undefined;
    if (this.#finished) return;
    const hadLease = this.#lease !== undefined;
    this.#unqueue?.();
    this.#unqueue = undefined;
    this.#upstreamReq?.destroy();
    this.#upstream?.destroy();
    if (hadLease) this.#releaseLease({ ok: false, error: 'timeout', durationMs: performance.now() - this.#arrivedAt });
    this.#refuse(504, 'Gateway Timeout', 'timeout');
  };

  #onEarlyData = (chunk: Buffer): void => {
    this.#pending.push(chunk);
    this.#pendingBytes += chunk.length;
    if (this.#pendingBytes > this.#engine.config.maxReplayBytes) this.#client.pause();
  };

  #onClientEnd = (): void => {
    // A FIN before the backend answered: the client has gone (HAProxy's abortonclose).
    this.#client.destroy();
  };

  /** Stop reading for ourselves; the bytes read so far, `head` first. */
  #takeEarlyBytes(): Buffer {
    const client = this.#client;
    client.off('data', this.#onEarlyData);
    client.off('end', this.#onClientEnd);
    client.pause();
    const bytes = this.#pending.length === 0 ? this.#head : Buffer.concat([this.#head, ...this.#pending]);
    this.#pending = [];
    return bytes;
  }

  #onClientError = (error: Error): void => {
    this.#engine.report(error, 'client');
  };

  #onClientClose = (): void => {
    if (this.#finished) return;
    this.#unqueue?.();
    this.#unqueue = undefined;
    this.#upstreamReq?.destroy();
    this.#upstream?.destroy();
    if (this.#status === 101) {
      this.#releaseLease({ ok: true, durationMs: this.#headMs ?? 0 });
      return this.#finish('ok');
    }
    this.#releaseLease({ ok: true, error: 'aborted' });
    this.#finish('client-aborted');
  };

  /** Answer with a short error and close the connection (destroyed once the answer is out). */
  #refuse(status: number, message: string, termination: Termination, headers?: Readonly<Record<string, string>>): void {
    if (this.#finished) return;
    this.#status = status;
    const client = this.#client;
    if (!client.destroyed) {
      const body = `${message}\n`;
      let extra = '';
      for (const name in headers) extra += `${name}: ${headers[name]}\r\n`;
      closeAfterAnswer(
        client,
        `HTTP/1.1 ${status} ${message.split(':')[0]}\r\n${extra}Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    this.#finish(termination, 'keep');
  }

  #releaseLease(outcome: Parameters<Lease['release']>[0]): void {
    const lease = this.#lease;
    if (lease === undefined) return;
    this.#lease = undefined;
    lease.release(outcome);
    // The pool's and backend's counters (and the queue's next request); a tunnel's answer was its 101.
    const given: Outcome = outcome ?? { ok: true };
    const counted: Outcome = given.status === undefined && this.#status === 101 ? { ...given, status: 101 } : given;
    if (this.#counted) this.#engine.attemptEnded(this.#route!.lb, lease, counted, undefined);
    else this.#engine.released();
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** The exchange is over: release what it holds and write its access-log line, once. */
  #finish(termination: Termination, closeClient: 'keep' | 'end' | 'destroy' = 'destroy'): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#clearTimer();
    this.#unqueue?.();
    this.#unqueue = undefined;
    this.#releaseLease({ ok: true, durationMs: this.#headMs ?? 0 });
    this.#open.delete(this.#client);
    const client = closeClient === 'keep' || this.#client.destroyed ? undefined : this.#client;
    if (this.#upstream !== undefined) {
      this.#open.delete(this.#upstream);
      this.#upstream.destroy();
    }
    if (client === undefined) {
      // Kept: handed back to the HTTP server, or closing after a refusal already written.
    } else if (closeClient === 'end') {
      closeAfterAnswer(client);
    } else {
      client.destroy();
    }
    const done = this.#admissionDone;
    this.#admissionDone = undefined;
    this.#engine.admissionEnded(done, 'upgrade');
    if (this.#counted) {
      const status = termination === 'client-aborted' || termination === 'upstream-truncated' ? 0 : this.#status;
      const totalMs = performance.now() - this.#arrivedAt;
      this.#engine.requestEnded(this.#route!.lb, this.#backend, termination, status, this.#bytesIn, this.#bytesOut, totalMs, this.#queueMs, 0);
    }
    this.#log(termination);
  }

  #log(termination: Termination): void {
    const engine = this.#engine;
    if (engine.config.accessLog === undefined) return;
    const req = this.#req;
    const entry: AccessLogEntry = {
      time: new Date(this.#arrivedWall).toISOString(),
      method: req.method ?? '',
      path: req.url ?? '',
      status: termination === 'client-aborted' || termination === 'upstream-truncated' ? 0 : this.#status,
      pool: this.#route?.pool ?? '',
      attempts: this.#attempts,
      clientIp: this.#clientIp,
      bytesOut: this.#bytesOut,
      timings: {
        queueMs: Math.round(this.#queueMs * 1000) / 1000,
        ...(this.#headMs === undefined ? {} : { headMs: Math.round(this.#headMs * 1000) / 1000 }),
        totalMs: Math.round((performance.now() - this.#arrivedAt) * 1000) / 1000,
      },
      termination,
    };
    if (this.#backendId !== undefined) entry.backendId = this.#backendId;
    engine.log(entry);
  }
}

/** Whether a request carries a body: `Content-Length` above 0, or any `Transfer-Encoding`. */
function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** `Connection: close` from the client (or HTTP/1.0 without keep-alive). */
function wantsClose(req: IncomingMessage): boolean {
  const listed = connectionListed(req.headers.connection);
  return listed?.has('close') === true;
}

function safeReason(reason: string | undefined, fallback: string): string {
  return reason !== undefined && !UNSAFE.test(reason) ? reason : fallback;
}

/** The server an `'upgrade'` listener was called on, when it was one. */
export function serverOf(target: unknown): NetServer | undefined {
  return target instanceof NetServer ? target : undefined;
}
