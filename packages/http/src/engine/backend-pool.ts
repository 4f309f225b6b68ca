/**
 * The raw engine's persistent connections to one backend (no undici on this path). A connection
 * serves one request at a time (no pipelining towards backends: a slow response would hold up the
 * ones queued behind it, the head-of-line blocking a load balancer exists to avoid); idle ones are
 * kept LIFO (the most recently used is the most likely to still be open and warm) and closed after
 * `backendIdleMs`. The pool holds at most the backend's `maxConnections`, or `connectionsPerBackend`
 * when it has none; a request that finds it full waits for a connection to come back (bounded by
 * the connect timeout, like a connect). A connection that closes is replaced on the next demand.
 *
 * Whoever uses a connection (`owner`) gets its bytes and events; an idle connection that receives
 * anything — bytes, a FIN, an error — is closed, since a backend has nothing to say between requests.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { Backend } from '@fulcrum/core';
import { originOf } from '../proxy/headers';
import { countConnection } from '../stats/traffic';

/** What uses a backend connection: an exchange (request) or a tunnel. */
export interface ConnectionOwner {
  onUpstreamConnect(connection: BackendConnection): void;
  onUpstreamData(connection: BackendConnection, chunk: Buffer): void;
  /** The backend closed (FIN), errored or timed out; `error` says which (undefined for a clean FIN). */
  onUpstreamClose(connection: BackendConnection, error: Error | undefined): void;
  onUpstreamDrain(connection: BackendConnection): void;
  onUpstreamTimeout(connection: BackendConnection): void;
  /**
   * After `onUpstreamData`: whether the bytes it was given may still be referenced (queued in a
   * client socket's write buffer). A connection that reads into a reused buffer then reads the next
   * bytes into a fresh one.
   */
  holdsUpstreamBytes(): boolean;
}

/** Size of the buffer a plain-TCP backend connection reads into (Node's own read size). */
const READ_BUFFER_BYTES = 65_536;

export interface BackendPoolSettings {
  readonly connectMs: number;
  /** The proxy's `timeouts.headersMs`: the inactivity limit of a busy connection. */
  readonly headersMs: number;
  readonly backendIdleMs: number;
  readonly connectionsPerBackend: number;
  readonly backendTls: Readonly<Record<string, unknown>> | undefined;
}

/** A backend's address, parsed once. */
export interface BackendTarget {
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
  /** `host[:port]` for the Host header when the client's is not kept. */
  readonly authority: string;
}

export function backendTarget(address: string): BackendTarget {
  const url = new URL(originOf(address));
  const tls = url.protocol === 'https:';
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || (tls ? 443 : 80)), tls, authority: url.host };
}

export class BackendConnection {
  readonly socket: Socket;
  readonly pool: BackendPool;
  owner: ConnectionOwner | undefined;
  /** The socket completed its connect (and TLS handshake). */
  connected = false;
  /** A request was sent on it before: a failure now may be a keep-alive race. */
  requests = 0;
  closed = false;
  /** When it went back to the pool (for the idle sweep), ms since the epoch. */
  idleSince = 0;
  /**
   * Inactivity limit once connected, ms (0: none — a tunnel): no byte read or written for this long
   * and the owner gets `onUpstreamTimeout` (an idle connection is closed). Checked by the listener's
   * sweep (`checkActivity`), not a socket timer: Node re-inserts a socket's timer into its list on
   * every read and write (a call into C++ for the loop's time each), two per request here.
   */
  timeoutMs: number;
  /** `bytesRead + bytesWritten` at the last sweep, and when it last changed (ms since the epoch). */
  #progress = -1;
  #activeAt = 0;

  /** The buffer plain-TCP reads land in (`net.connect`'s `onread`), reused while nothing holds it. */
  #readBuffer: Buffer | undefined;

  constructor(pool: BackendPool, socket: Socket, readBuffer?: Buffer) {
    this.pool = pool;
    this.socket = socket;
    this.#readBuffer = readBuffer;
    this.timeoutMs = pool.responseTimeoutMs;
    socket.on(pool.target.tls ? 'secureConnect' : 'connect', () => {
      this.connected = true;
      // The socket's timer covered the connect; from now on the sweep watches for inactivity.
      socket.setTimeout(0);
      this.#activeAt = Date.now();
      this.owner?.onUpstreamConnect(this);
    });
    // TLS sockets emit 'data' (a fresh Buffer per read); plain TCP reads go through `onRead`.
    socket.on('data', (chunk: Buffer) => {
      if (this.owner !== undefined) this.owner.onUpstreamData(this, chunk);
      else this.destroy();
    });
    socket.on('end', () => this.#closed(undefined));
    socket.on('error', (error: Error) => this.#closed(error));
    socket.on('close', () => this.#closed(undefined));
    socket.on('drain', () => this.owner?.onUpstreamDrain(this));
    socket.on('timeout', () => {
      if (this.owner !== undefined) this.owner.onUpstreamTimeout(this);
      else this.destroy();
    });
  }

  /**
   * `onread` callback of a plain-TCP connection: the bytes are handed over as a slice of the reused
   * buffer, which stays valid only until this returns — so when the owner left some of them queued
   * in a client socket, the next read goes to a new buffer instead (no copy on the common path, where
   * the client write completed at once).
   */
  onRead(bytes: number, buffer: Buffer): void {
    const owner = this.owner;
    if (owner === undefined) {
      this.destroy();
      return;
    }
    owner.onUpstreamData(this, buffer.subarray(0, bytes));
    if (owner.holdsUpstreamBytes()) this.#readBuffer = undefined;
  }

  /** `onread`'s buffer source: the current buffer, or a new one when the last is still referenced. */
  nextReadBuffer(): Buffer {
    return (this.#readBuffer ??= Buffer.allocUnsafe(READ_BUFFER_BYTES));
  }

  /**
   * The sweep: a connected socket whose byte counts did not move for `timeoutMs` timed out. Bytes
   * still queued for writing count as written (`bytesWritten`), so a write the backend does not take
   * is inactivity, as with a socket timer. Activity is seen at the sweep after it, so the limit is
   * met within one or two sweep periods later, never earlier.
   */
  checkActivity(now: number): void {
    if (!this.connected || this.closed || this.timeoutMs === 0) return;
    const socket = this.socket;
    const progress = socket.bytesRead + socket.bytesWritten;
    if (progress !== this.#progress) {
      this.#progress = progress;
      this.#activeAt = now;
      return;
    }
    if (now - this.#activeAt < this.timeoutMs) return;
    this.#activeAt = now;
    if (this.owner !== undefined) this.owner.onUpstreamTimeout(this);
    else this.destroy();
  }

  /** Close the connection for good (it is never reused). */
  destroy(): void {
    if (!this.closed) this.#closed(undefined);
  }

  #closed(error: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    this.socket.destroy();
    const owner = this.owner;
    this.owner = undefined;
    this.pool.dropped(this);
    owner?.onUpstreamClose(this, error);
  }
}

/** Waits for a free slot of a full pool (`BackendPool.acquire`). */
export interface PoolWaiter {
  onPoolFree(): void;
}

export class BackendPool {
  readonly backend: Backend;
  readonly target: BackendTarget;
  readonly #settings: BackendPoolSettings;
  readonly #idle: BackendConnection[] = [];
  readonly #waiters: PoolWaiter[] = [];
  /** Every open connection (idle, busy, connecting), for the inactivity sweep. */
  readonly #open = new Set<BackendConnection>();
  #total = 0;
  #closed = false;

  constructor(backend: Backend, settings: BackendPoolSettings) {
    this.backend = backend;
    this.target = backendTarget(backend.address);
    this.#settings = settings;
  }

  get responseTimeoutMs(): number {
    return this.#settings.headersMs;
  }

  get limit(): number {
    return Number.isFinite(this.backend.maxConnections) ? this.backend.maxConnections : this.#settings.connectionsPerBackend;
  }

  /** Connections open (idle, busy and tunnels). */
  get size(): number {
    return this.#total;
  }

  get idleCount(): number {
    return this.#idle.length;
  }

  /**
   * A connection for `owner`: an idle one (returned, ready), a new one (returned; `onUpstreamConnect`
   * follows), or, when the pool is full, a cancel function — `waiter.onPoolFree()` is then called
   * once a slot frees up, unless the cancel function was called first. (The waiter is an object, not
   * a callback, so an exchange that finds a connection allocates nothing for the case it did not hit.)
   */
  acquire(owner: ConnectionOwner, waiter: PoolWaiter): BackendConnection | (() => void) {
    const idle = this.#idle;
    while (idle.length > 0) {
      const connection = idle.pop()!;
      if (connection.closed) continue;
      connection.owner = owner;
      return connection;
    }
    if (this.#total < this.limit && !this.#closed) return this.#connect(owner);
    this.#waiters.push(waiter);
    return () => {
      const index = this.#waiters.indexOf(waiter);
      if (index !== -1) this.#waiters.splice(index, 1);
    };
  }

  #connect(owner: ConnectionOwner): BackendConnection {
    const { host, port, tls } = this.target;
    const settings = this.#settings;
    let connection: BackendConnection;
    if (tls) {
      const socket = tlsConnect({ host, port, ...(isIp(host) ? {} : { servername: host }), ...(settings.backendTls ?? {}) } as ConnectionOptions);
      connection = new BackendConnection(this, socket);
    } else {
      // Reads land in one buffer per connection (`onread`), skipping a Buffer and the stream
      // machinery per read; the generator swaps in a new buffer when the last one is still in use.
      let self: BackendConnection | undefined;
      const readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
      const socket = netConnect({
        host,
        port,
        onread: {
          buffer: () => self?.nextReadBuffer() ?? readBuffer,
          callback: (bytes: number, buffer: Uint8Array) => {
            self?.onRead(bytes, buffer as Buffer);
            // Pausing (backpressure) is the owner's `socket.pause()`, never this return value.
            return true;
          },
        },
      });
      connection = self = new BackendConnection(this, socket, readBuffer);
    }
    const socket = connection.socket;
    socket.setNoDelay(true);
    socket.setTimeout(settings.connectMs);
    connection.owner = owner;
    this.#open.add(connection);
    this.#total++;
    countConnection(this.backend, 1);
    return connection;
  }

  /** The owner is done with a healthy connection that may carry another request. */
  release(connection: BackendConnection): void {
    connection.owner = undefined;
    if (connection.closed) return;
    if (this.#closed) return connection.destroy();
    connection.idleSince = Date.now();
    this.#idle.push(connection);
    this.#wake();
  }

  /** A connection closed: forget it, and let a waiter open a replacement. */
  dropped(connection: BackendConnection): void {
    this.#open.delete(connection);
    this.#total--;
    countConnection(this.backend, -1);
    const index = this.#idle.indexOf(connection);
    if (index !== -1) this.#idle.splice(index, 1);
    this.#wake();
  }

  #wake(): void {
    const waiter = this.#waiters.shift();
    waiter?.onPoolFree();
  }

  /**
   * The listener's sweep: close the connections idle for `backendIdleMs` or more, and time out those
   * inactive for their `timeoutMs`.
   */
  sweep(now: number): void {
    const idle = this.#idle;
    const limit = now - this.#settings.backendIdleMs;
    // LIFO: the oldest are at the front.
    while (idle.length > 0 && idle[0]!.idleSince <= limit) idle[0]!.destroy();
    // Deleting the current entry while iterating a Set is safe.
    for (const connection of this.#open) connection.checkActivity(now);
  }

  /** Close idle connections now and busy ones as they are released. */
  close(): void {
    this.#closed = true;
    for (const connection of this.#idle.splice(0)) connection.destroy();
    for (const waiter of this.#waiters.splice(0)) waiter.onPoolFree();
  }
}

function isIp(host: string): boolean {
  return /^[\d.]+$/.test(host) || host.includes(':');
}
