/**
 * `createTcpProxy`: layer-4 load balancing — HAProxy's `mode tcp`, nginx's `stream` module — as a
 * connection handler for `net.createServer`. Each client connection is given one backend for its
 * whole life and bytes are relayed both ways, untouched: databases (a Galera or MariaDB cluster),
 * Redis, message brokers, or TLS pass-through in front of backends that terminate TLS themselves.
 *
 * Per connection: a backend from the load balancer (`hashBy: 'source-ip'` gives hashing balancers
 * the client address as key, so a client keeps its backend across connections; least-connections
 * sees every open connection as in flight), a connect with a timeout, optionally the PROXY protocol
 * header first (see `proxy-protocol.ts`), then `pipe` both ways — Node's backpressure: a slow reader
 * on one side pauses the other side's socket, so memory stays bounded whatever the rates.
 *
 * A connect that fails or times out is retried on another backend (`exclude`), up to `attempts`,
 * which is always safe at layer 4: nothing is read from the client before the backend is connected,
 * so nothing was sent anywhere (HAProxy's `retries` + `option redispatch`). Client bytes that arrive
 * meanwhile wait in the client socket (it is not read until then). When every attempt fails, or no
 * backend is eligible, the client connection is closed: at layer 4 there is no way to say why.
 *
 * Backends with `maxConnections`: when every candidate is at its limit, the connection waits in a
 * bounded queue (`maxQueue`, default 1024; `queueTimeoutMs`, default 5000) — HAProxy's `maxconn` +
 * `maxqueue` + `timeout queue` in `mode tcp` — and is connected when a relayed connection ends and
 * frees a slot, in arrival order. A full queue or a wait past the timeout closes the connection; a
 * client that leaves while waiting leaves the queue. The same queue as `createProxy`'s.
 *
 * The lease is released once, when both sockets have closed, with the outcome: a failed connect
 * (`connect`/`timeout`), a backend reset (`reset`) or success; `durationMs` is the connect time — the
 * latency signal of layer 4 (a connection's lifetime measures the client, not the backend). Errors
 * on either socket end the pair and never reach the process as an uncaught exception.
 *
 * Half-close: a client that shuts down its sending side (FIN) has that passed on to the backend,
 * which can still answer — for that the server must be created with `allowHalfOpen: true`
 * (`net.createServer({ allowHalfOpen: true }, proxy)`); without it Node closes the client's side as
 * soon as it reads the FIN.
 *
 * Defaults and why: `connectMs` 5000 (HAProxy's customary `timeout connect`, as in `createProxy`);
 * `idleMs` 3 600 000 (1 h without a byte either way): HAProxy insists on `timeout client/server`
 * and its docs suggest long ones for databases, whose pooled connections sit idle for minutes — an
 * hour bounds abandoned connections without cutting healthy pools; TCP keep-alive (60 s) is enabled
 * on both sockets so a vanished peer is noticed long before that. `attempts` 3, as `createProxy`.
 * `noDelay` on both sockets: relayed small writes (query, reply) must not wait for Nagle.
 */
import net from 'node:net';
import { InvalidOptionError, LoadBalancer, isFulcrumError, type Backend, type Lease, type LoadBalancerOptions, type Outcome } from '@fulcrum/core';
import { MAX_TIMER_MS, checkKnownKeys, isPlainObject, optionalNumber } from '@fulcrum/core/validate';
import { normalizeIp } from '../affinity/ip';
import { reportError } from '../proxy/errors';
import { WaitQueue } from '../proxy/queue';
import { trafficOf, type PoolTraffic } from '../stats/traffic';
import { proxyHeader, type ProxyProtocolVersion } from './proxy-protocol';

/** Options of `createTcpProxy`. */
export interface TcpProxyOptions {
  /** A load balancer (the caller's), or its options (the proxy creates it and closes it). Backend addresses are `host:port` (or a URL, whose host and port are used). */
  balancer: LoadBalancer | LoadBalancerOptions;
  /**
   * The key for hashing balancers: `'source-ip'` (the client's address, IPv4-mapped IPv6 as IPv4) or
   * a function of the socket. Default: none (the balancer balances).
   */
  hashBy?: 'source-ip' | ((socket: net.Socket) => string | undefined);
  /** Send a PROXY protocol header before the client's bytes. Default `false`. */
  proxyProtocol?: false | ProxyProtocolVersion;
  timeouts?: {
    /** Connecting to a backend, ms. Default 5000. */
    connectMs?: number;
    /** Close a connection without a byte either way for this long, ms; 0 = never. Default 3 600 000. */
    idleMs?: number;
  };
  /** Connect attempts per client connection, the first included, 1–10. Default 3. */
  attempts?: number;
  /**
   * Connections that may wait for a slot when every candidate backend is at its `maxConnections`;
   * 0 closes such a connection at once. Default 1024.
   */
  maxQueue?: number;
  /** How long a connection may wait in that queue before it is closed, ms. Default 5000. */
  queueTimeoutMs?: number;
  /** Called with errors the proxy handled (for logs). Never required; never sees client bytes. */
  onError?: (error: unknown, context: { phase: 'connect' | 'upstream' | 'client'; backendId?: string }) => void;
}

/** A `net.Server` connection handler with a `close()`. */
export interface TcpProxyHandler {
  (socket: net.Socket): void;
  /** Close every relayed connection, refuse new ones, and close a load balancer the proxy created. */
  close(): Promise<void>;
  /** The load balancer. */
  readonly lb: LoadBalancer;
  /** Client connections being relayed or connecting. */
  readonly connections: number;
}

const KNOWN = new Set(['balancer', 'hashBy', 'proxyProtocol', 'timeouts', 'attempts', 'maxQueue', 'queueTimeoutMs', 'onError']);
const MAX_TIMER = MAX_TIMER_MS;
const KEEPALIVE_MS = 60_000;
/** Marks the error of our own connect timer, to report `timeout` rather than `connect`. */
const TIMEOUT = Symbol('connect timeout');

interface Config {
  readonly hashBy: TcpProxyOptions['hashBy'];
  readonly proxyProtocol: ProxyProtocolVersion | undefined;
  readonly connectMs: number;
  readonly idleMs: number;
  readonly attempts: number;
  readonly maxQueue: number;
  readonly queueTimeoutMs: number;
  readonly onError: TcpProxyOptions['onError'];
}

function number(path: string, value: unknown, fallback: number, min: number, max: number, integer: boolean): number {
  return optionalNumber(path, value, fallback, { min, max, integer });
}

function normalise(options: TcpProxyOptions): Config {
  if (!isPlainObject(options as unknown)) throw new InvalidOptionError('options', options, 'must be an object with a balancer');
  checkKnownKeys('', options, [...KNOWN]);
  const { hashBy, proxyProtocol = false, onError } = options;
  if (hashBy !== undefined && hashBy !== 'source-ip' && typeof hashBy !== 'function') {
    throw new InvalidOptionError('hashBy', hashBy, "must be 'source-ip' or a function (socket) => string | undefined");
  }
  if (proxyProtocol !== false && proxyProtocol !== 'v1' && proxyProtocol !== 'v2')
    throw new InvalidOptionError('proxyProtocol', proxyProtocol, "must be false, 'v1' or 'v2'");
  if (onError !== undefined && typeof onError !== 'function') throw new InvalidOptionError('onError', onError, 'must be a function');
  const timeouts = options.timeouts ?? {};
  if (!isPlainObject(timeouts as unknown)) throw new InvalidOptionError('timeouts', timeouts, 'must be { connectMs?, idleMs? }');
  checkKnownKeys('timeouts', timeouts, ['connectMs', 'idleMs']);
  return Object.freeze({
    hashBy,
    proxyProtocol: proxyProtocol === false ? undefined : proxyProtocol,
    connectMs: number('timeouts.connectMs', timeouts.connectMs, 5000, 1, MAX_TIMER, false),
    idleMs: number('timeouts.idleMs', timeouts.idleMs, 3_600_000, 0, MAX_TIMER, false),
    attempts: number('attempts', options.attempts, 3, 1, 10, true),
    maxQueue: number('maxQueue', options.maxQueue, 1024, 0, 1_000_000, true),
    queueTimeoutMs: number('queueTimeoutMs', options.queueTimeoutMs, 5000, 1, MAX_TIMER, false),
    onError,
  });
}

function resolveBalancer(balancer: unknown): { lb: LoadBalancer; owned: boolean } {
  if (balancer instanceof LoadBalancer) return { lb: balancer, owned: false };
  const candidate = balancer as Partial<LoadBalancer> | null;
  if (typeof candidate === 'object' && candidate !== null && typeof candidate.acquire === 'function' && typeof candidate.snapshot === 'function') {
    return { lb: candidate as LoadBalancer, owned: false };
  }
  if (!isPlainObject(balancer)) throw new InvalidOptionError('balancer', balancer, 'must be a LoadBalancer or the options of createLoadBalancer');
  try {
    return { lb: new LoadBalancer(balancer as unknown as LoadBalancerOptions), owned: true };
  } catch (error) {
    if (isFulcrumError(error, 'FULCRUM_INVALID_OPTION')) {
      const invalid = error as InvalidOptionError;
      throw new InvalidOptionError(`balancer.${invalid.path}`, invalid.value, invalid.expected, { cause: error });
    }
    throw error;
  }
}

function ignore(): void {}

const targets = new Map<string, { host: string; port: number }>();

/** `host:port`, `[v6]:port` or a URL → what `net.connect` takes. Parsed once per address. */
function targetOf(address: string): { host: string; port: number } {
  let target = targets.get(address);
  if (target === undefined) {
    const url = new URL(address.includes('://') ? address : `tcp://${address}`);
    const port = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    target = { host, port };
    if (targets.size >= 1024) targets.clear();
    targets.set(address, target);
  }
  return target;
}

/** One client connection and its backend. */
class Relay {
  readonly #proxy: TcpProxy;
  readonly #client: net.Socket;
  readonly #key: string | undefined;
  #upstream: net.Socket | undefined;
  #lease: Lease | undefined;
  #tried: Backend[] | undefined;
  #attempt = 0;
  #connectTimer: NodeJS.Timeout | undefined;
  #connectStart = 0;
  #connectMs = 0;
  #connected = false;
  #outcome: Outcome = { ok: true };
  #done = false;
  /** The pool's stats counters: a relayed connection is a session of the pool, as HAProxy counts a TCP session. */
  readonly #traffic: PoolTraffic;
  readonly #arrivedAt = performance.now();
  #queuedAt = 0;
  #queueMs = 0;
  /** Leaves the wait queue, while the connection waits there for a slot. */
  #unqueue: (() => void) | undefined;

  constructor(proxy: TcpProxy, client: net.Socket) {
    this.#proxy = proxy;
    this.#client = client;
    this.#key = proxy.keyOf(client);
    this.#traffic = trafficOf(proxy.lb);
    this.#traffic.started();
    client.on('error', this.#onClientError);
    client.once('close', this.#onClientClose);
  }

  start(): void {
    this.#connect();
  }

  /** A backend with a free slot, or `undefined` when none is eligible or every candidate is full. */
  #acquire(): Lease | undefined {
    return this.#proxy.lb.acquire({
      ...(this.#key === undefined ? {} : { key: this.#key }),
      ...(this.#tried === undefined ? {} : { exclude: this.#tried }),
      attempt: this.#attempt,
      skipFull: true,
    });
  }

  /** Take a backend — or wait in the queue for one to free a slot — and connect to it. */
  #connect(): void {
    if (this.#done) return;
    const proxy = this.#proxy;
    const lease = this.#acquire();
    if (lease !== undefined) return this.#connectTo(lease);
    if (proxy.closed || proxy.lb.tier === 'none') return this.end();
    // Every candidate is at its maxConnections: wait for a slot.
    const unqueue = proxy.queue.add({
      tryStart: () => {
        if (this.#done || this.#client.destroyed) return true;
        const queued = this.#acquire();
        if (queued === undefined) return false;
        this.#leaveQueue();
        this.#connectTo(queued);
        return true;
      },
      expire: () => {
        this.#unqueue = undefined;
        this.end();
      },
    });
    if (unqueue === undefined) return this.end();
    this.#unqueue = unqueue;
    this.#queuedAt = performance.now();
    // A socket nobody reads never learns that its peer left. While waiting, let the client's bytes
    // gather in the socket's own buffer (bounded by its highWaterMark; `pipe` delivers them later) so
    // that a client that hangs up is noticed and leaves the queue instead of holding a place in it.
    this.#client.on('readable', this.#onReadableWhileQueued);
    this.#client.once('end', this.#onEndWhileQueued);
  }

  #onReadableWhileQueued = (): void => {
    // Reading an empty buffer takes no bytes; at the end of the stream it makes 'end' fire.
    if (this.#client.readableLength === 0) this.#client.read();
  };

  #onEndWhileQueued = (): void => {
    // 'end' fires only once the buffer is empty, so this client hung up without sending a byte:
    // there is nothing to relay. (One that sent bytes and then half-closed keeps its place; its bytes
    // and its FIN are relayed once it is connected.)
    this.end();
  };

  #leaveQueue(): void {
    if (this.#queuedAt > 0) this.#queueMs += performance.now() - this.#queuedAt;
    this.#queuedAt = 0;
    this.#unqueue = undefined;
    this.#client.off('readable', this.#onReadableWhileQueued);
    this.#client.off('end', this.#onEndWhileQueued);
  }

  #connectTo(lease: Lease): void {
    const proxy = this.#proxy;
    this.#lease = lease;
    this.#attempt++;
    let target: { host: string; port: number };
    try {
      target = targetOf(lease.backend.address);
    } catch (error) {
      proxy.report(error, 'connect', lease.backend.id);
      return this.#connectFailed('connect');
    }
    this.#connectStart = performance.now();
    const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    this.#upstream = upstream;
    upstream.on('error', this.#onUpstreamError);
    upstream.once('close', this.#onUpstreamClose);
    upstream.once('connect', this.#onConnect);
    this.#connectTimer = setTimeout(() => {
      this.#connectTimer = undefined;
      upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT', [TIMEOUT]: true }));
    }, proxy.config.connectMs);
  }

  #onConnect = (): void => {
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    this.#connected = true;
    this.#connectMs = performance.now() - this.#connectStart;
    const upstream = this.#upstream!;
    const client = this.#client;
    if (this.#done || client.destroyed) {
      upstream.destroy();
      return;
    }
    const config = this.#proxy.config;
    upstream.setNoDelay(true);
    client.setNoDelay(true);
    upstream.setKeepAlive(true, KEEPALIVE_MS);
    client.setKeepAlive(true, KEEPALIVE_MS);
    if (config.proxyProtocol !== undefined) {
      upstream.write(
        proxyHeader(config.proxyProtocol, {
          sourceAddress: client.remoteAddress,
          sourcePort: client.remotePort,
          destinationAddress: client.localAddress,
          destinationPort: client.localPort,
        }),
      );
    }
    if (config.idleMs > 0) {
      // The client socket's timer is refreshed by reads from the client AND writes to it, so it
      // measures silence in both directions.
      client.setTimeout(config.idleMs, this.#onIdle);
    }
    client.pipe(upstream);
    upstream.pipe(client);
  };

  #onIdle = (): void => {
    this.#client.destroy();
    this.#upstream?.destroy();
  };

  #onUpstreamError = (error: Error): void => {
    if (!this.#connected) {
      this.#proxy.report(error, 'connect', this.#lease?.backend.id);
      const timedOut = (error as { [TIMEOUT]?: boolean })[TIMEOUT] === true;
      return this.#connectFailed(timedOut ? 'timeout' : 'connect');
    }
    this.#proxy.report(error, 'upstream', this.#lease?.backend.id);
    this.#outcome = { ok: false, error: 'reset', durationMs: this.#connectMs };
    this.#client.destroy();
  };

  #connectFailed(kind: 'connect' | 'timeout'): void {
    const lease = this.#lease;
    this.#lease = undefined;
    const upstream = this.#upstream;
    this.#upstream = undefined;
    if (upstream !== undefined) {
      upstream.off('close', this.#onUpstreamClose);
      upstream.off('connect', this.#onConnect);
      // A late error of this abandoned socket must not be taken for one of the next attempt.
      upstream.off('error', this.#onUpstreamError);
      upstream.on('error', ignore);
      upstream.destroy();
    }
    const retry = this.#attempt < this.#proxy.config.attempts && !this.#done && !this.#client.destroyed;
    if (lease !== undefined) {
      this.#release(lease, { ok: false, error: kind, durationMs: performance.now() - this.#connectStart });
      // An error a retry may recover from is not the connection's error (HAProxy's econ counts the last).
      if (retry) this.#traffic.recovered(lease.backend, kind);
      (this.#tried ??= []).push(lease.backend);
    }
    if (retry) this.#connect();
    else this.end();
    // The slot this attempt held is free: after this connection's own retry, a waiting one may have it.
    if (lease !== undefined) this.#proxy.released();
  }

  #onClientError = (error: Error): void => {
    // The client reset: not the backend's fault, so the outcome stays as it is. 'close' follows.
    this.#proxy.report(error, 'client', this.#lease?.backend.id);
  };

  #onClientClose = (): void => {
    // Both directions of the client are done (or it reset): whatever the backend still sends has
    // nowhere to go. A client leaving during the connect is an abort, not a backend failure.
    if (!this.#connected) this.#outcome = { ok: true, error: 'aborted' };
    this.end();
  };

  #onUpstreamClose = (): void => {
    // pipe() has ended the client's side on the backend's FIN; let queued bytes reach the client,
    // then close it ('close' on the client ends the relay). After a reset it is already destroyed.
    if (!this.#client.destroyed) this.#client.destroySoon();
    else if (this.#client.closed) this.end();
  };

  /** Finish: close both sockets, release the lease once, forget the relay. */
  end(): void {
    if (this.#done) return;
    this.#done = true;
    clearTimeout(this.#connectTimer);
    this.#connectTimer = undefined;
    const unqueue = this.#unqueue;
    this.#leaveQueue();
    unqueue?.();
    this.#client.destroy();
    this.#upstream?.destroy();
    const lease = this.#lease;
    this.#lease = undefined;
    if (lease !== undefined) this.#release(lease, this.#outcome.durationMs === undefined ? { ...this.#outcome, durationMs: this.#connectMs } : this.#outcome);
    const outcome = this.#outcome;
    const termination = !this.#connected
      ? outcome.error === 'aborted'
        ? 'client-aborted'
        : 'upstream-failed'
      : outcome.error === 'reset'
        ? 'upstream-truncated'
        : 'ok';
    const client = this.#client;
    this.#traffic.ended(lease?.backend, termination, 0, client.bytesRead, client.bytesWritten, performance.now() - this.#arrivedAt, this.#queueMs);
    this.#proxy.forget(this);
    if (lease !== undefined) this.#proxy.released();
  }

  /** Release an attempt's lease and count it (the backend's sessions, and a retry of the one before). */
  #release(lease: Lease, outcome: Outcome): void {
    lease.release(outcome);
    const previous = this.#tried === undefined ? undefined : this.#tried[this.#tried.length - 1];
    this.#traffic.attemptEnded(lease.backend, outcome, lease.backend.inflight + 1, lease.startedAt, previous);
  }
}

class TcpProxy {
  readonly lb: LoadBalancer;
  readonly config: Config;
  readonly #owned: boolean;
  readonly #relays = new Set<Relay>();
  /** Connections waiting for a backend slot. */
  readonly queue: WaitQueue;
  closed = false;

  constructor(options: TcpProxyOptions) {
    this.config = normalise(options);
    const { lb, owned } = resolveBalancer((options as { balancer?: unknown }).balancer);
    this.lb = lb;
    this.#owned = owned;
    this.queue = new WaitQueue(this.config.maxQueue, this.config.queueTimeoutMs);
  }

  /** A connection ended or gave up a backend: a waiting one may take the slot. */
  released(): void {
    if (this.queue.length > 0 && !this.closed) this.queue.wake();
  }

  get size(): number {
    return this.#relays.size;
  }

  keyOf(socket: net.Socket): string | undefined {
    const hashBy = this.config.hashBy;
    if (hashBy === undefined) return undefined;
    if (hashBy === 'source-ip') {
      const remote = socket.remoteAddress;
      return remote === undefined ? undefined : (normalizeIp(remote) ?? remote);
    }
    try {
      const key = hashBy(socket);
      return typeof key === 'string' && key !== '' ? key : undefined;
    } catch (error) {
      // A user function's bug must not drop the connection: without a key it is simply balanced.
      this.report(error, 'client');
      return undefined;
    }
  }

  handle(socket: net.Socket): void {
    if (this.closed) {
      socket.on('error', () => undefined);
      socket.destroy();
      return;
    }
    const relay = new Relay(this, socket);
    this.#relays.add(relay);
    relay.start();
  }

  forget(relay: Relay): void {
    this.#relays.delete(relay);
  }

  report(error: unknown, phase: 'connect' | 'upstream' | 'client', backendId?: string): void {
    reportError(this.config.onError, error, phase, backendId);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.queue.close();
    for (const relay of [...this.#relays]) relay.end();
    if (this.#owned) this.lb.close();
  }
}

/**
 * Create a layer-4 proxy: `net.createServer({ allowHalfOpen: true }, createTcpProxy({ balancer }))`.
 * See `TcpProxyOptions` for every option and its default. Throws `InvalidOptionError` for invalid options.
 */
export function createTcpProxy(options: TcpProxyOptions): TcpProxyHandler {
  const proxy = new TcpProxy(options);
  const handler = ((socket: net.Socket) => proxy.handle(socket)) as TcpProxyHandler;
  Object.defineProperties(handler, {
    close: { value: () => proxy.close() },
    lb: { value: proxy.lb, enumerable: true },
    connections: { get: () => proxy.size, enumerable: true },
  });
  return handler;
}
