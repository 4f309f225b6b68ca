/**
 * Connection caps for the servers a proxy listens on (HAProxy's `maxconn`, global and per frontend).
 * Every accepted connection costs a descriptor and a parser whether or not it ever sends a request;
 * a cap keeps a flood of idle connections from starving the backends of descriptors (an `EMFILE` on
 * the way to a backend would be counted against that backend).
 *
 * - Per server, Node's own `server.maxConnections` does it best: the excess is closed in the accept
 *   path, before any JavaScript object exists for it (the server emits `'drop'`).
 *   `limitConnections(server, { perServer })` sets it.
 * - Across servers (`shared`), a `ConnectionLimit` counts the connections of every server it is
 *   attached to and destroys the excess as soon as it is accepted.
 *
 * Excess connections are refused — closed at once — rather than queued: a client then retries or
 * fails fast, and nothing waits holding memory. A connection handed back to a server (after a
 * refused upgrade) is counted once.
 */
import type { Server, Socket } from 'node:net';
import { finiteNumber } from '@fulcrum/core/validate';

/** A cap on the open connections of several servers together. */
export class ConnectionLimit {
  /**
   * The process-wide cap that every `createProxyServer` listener not given its own shares: 50 000
   * connections (below a typical `ulimit -n` of 65 536, leaving descriptors for the backends).
   */
  static readonly global = new ConnectionLimit(50_000);
  #max = 0;
  #open = 0;
  #refused = 0;
  readonly #counted = new WeakSet<Socket>();

  constructor(max: number) {
    this.max = max;
  }

  /**
   * The most connections open at once across the attached servers. Lowering it closes nothing that
   * is open; new connections are refused until the count is below it.
   */
  get max(): number {
    return this.#max;
  }

  set max(value: number) {
    this.#max = finiteNumber('maxConnections', value, { min: 1, integer: true });
  }

  /** Connections open now. */
  get open(): number {
    return this.#open;
  }

  /** Connections refused so far. */
  get refused(): number {
    return this.#refused;
  }

  /**
   * Take a slot for a connection a listener accepted itself (the raw engine counts on its TCP
   * sockets); false, and counted as refused, when the limit is reached. Pair with `release()`.
   */
  tryAcquire(): boolean {
    if (this.#open >= this.#max) {
      this.#refused++;
      return false;
    }
    this.#open++;
    return true;
  }

  /** Give back a slot `tryAcquire()` took. */
  release(): void {
    this.#open--;
  }

  /**
   * Count `server`'s connections against this limit (for a TLS server, the TCP connections, before
   * the handshake). Returns a function that detaches it.
   */
  attach(server: Server): () => void {
    const onConnection = (socket: Socket): void => {
      if (this.#counted.has(socket)) return;
      this.#counted.add(socket);
      if (this.#open >= this.#max) {
        this.#refused++;
        socket.destroy();
        return;
      }
      this.#open++;
      socket.once('close', () => this.#open--);
    };
    server.prependListener('connection', onConnection);
    return () => server.off('connection', onConnection);
  }
}

/** Options of `limitConnections`. */
export interface LimitConnectionsOptions {
  /** The most connections this server holds open at once (Node's `server.maxConnections`). */
  perServer?: number;
  /** A limit shared with other servers (`new ConnectionLimit(n)`). */
  shared?: ConnectionLimit;
}

/**
 * Cap a server's connections: `limitConnections(server, { perServer: 10_000, shared })`. Returns a
 * function that removes the shared count (the per-server cap stays until changed).
 */
export function limitConnections(server: Server, options: LimitConnectionsOptions): () => void {
  if (options.perServer !== undefined) {
    server.maxConnections = finiteNumber('perServer', options.perServer, { min: 1, integer: true });
  }
  return options.shared === undefined ? () => undefined : options.shared.attach(server);
}
