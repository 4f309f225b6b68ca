/**
 * `createProxyServer`: the raw-socket HTTP/1.1 engine — a standalone listener that owns its bytes.
 * `node:http`'s server objects and undici cost about two thirds of `createProxy`'s CPU per request
 * (bench/README.md); this engine parses heads itself (`parser.ts`), writes each response head and
 * its first body bytes in one socket write, and keeps its own keep-alive pools to the backends.
 * Every decision — routing, admission, affinity, hashing, retries and their budget, the queue,
 * lease outcomes, the access log — goes through the same code as `createProxy` (`ProxyEngine`), so
 * the two engines behave alike; one behaviour suite runs against both.
 *
 * Connections are capped per listener (`maxConnections`) and across listeners (`connectionLimit`):
 * the excess is closed at accept. Client deadlines (head, keep-alive idle, body, tunnel) are swept
 * every 500 ms. TLS listeners refuse client-initiated renegotiation and bound the handshake by
 * `headersTimeoutMs`.
 */
import type { AddressInfo } from 'node:net';
import { createServer as createHttpServer, type IncomingMessage } from 'node:http';
import type { LoadBalancer } from '@fulcrum/core';
import { ProxyEngine, serveRequest } from '../proxy/proxy';
import { aliasFrontend } from '../h2/stats';
import { RawListener } from './listener';
import { splitServerOptions, type ProxyServerOptions } from './options';

/** A running raw-engine listener. */
export interface ProxyServer {
  /** Start listening; resolves once bound. `host` defaults to `'127.0.0.1'`, not every interface. */
  listen(port: number, host?: string): Promise<void>;
  /**
   * Stop: no new connections; idle keep-alive connections and tunnels close now, busy ones after
   * their response; after `graceMs` (default 10000) whatever is left is cut. Then queued requests
   * get 503, backend connections close, and a load balancer the server created is closed.
   */
  close(graceMs?: number): Promise<void>;
  /** The bound address, or `null` before `listen`. */
  address(): AddressInfo | null;
  /** Open client connections. */
  readonly connections: number;
  /** The load balancer of a single-pool server; with a router, the first pool's. */
  readonly lb: LoadBalancer;
  /** Every pool by name (a single `balancer`'s is its `name`, `'default'` unless given). */
  readonly pools: ReadonlyMap<string, LoadBalancer>;
}

class RawProxyServer implements ProxyServer {
  readonly engine: ProxyEngine;
  readonly #listener: RawListener;
  #closing: Promise<void> | undefined;

  constructor(options: ProxyServerOptions) {
    const { proxy, listener } = splitServerOptions(options);
    const engine = new ProxyEngine(proxy);
    this.engine = engine;
    const h2Pools = [...engine.pools.keys()].some((pool) => engine.config.upstreamProtocol(pool) === 'h2');
    this.#listener = new RawListener({
      listener,
      dispatch: (view) => {
        const route = engine.closed ? undefined : engine.route(view as unknown as IncomingMessage);
        // A pool with options of its own (createRouter's PoolSpec) is served by its own engine.
        const target = route === undefined ? engine : engine.engineFor(route.pool);
        // An HTTP/1.1 connection with a request for an HTTP/2 pool is served by `node:http` from
        // then on (`serveRequest`: HTTP/1.1 → HTTP/2 translation); HTTP/2 streams never come here.
        if (h2Pools && route !== undefined && view.httpVersion !== '2.0' && target.config.upstreamProtocol(route.pool) === 'h2') return 'hand-off';
        return { engine: target, route };
      },
      ...(h2Pools ? { fallback: createHttpServer((req, res) => serveRequest(engine, req, res)) } : {}),
      report: (error) => engine.report(error, 'client'),
    });
    this.#listener.on('error', (error) => engine.report(error, 'client'));
    aliasFrontend(this, this.#listener);
  }

  get connections(): number {
    return this.#listener.connections;
  }

  get lb(): LoadBalancer {
    return this.engine.lb;
  }

  get pools(): ReadonlyMap<string, LoadBalancer> {
    return this.engine.pools;
  }

  listen(port: number, host = '127.0.0.1'): Promise<void> {
    const server = this.#listener;
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      server.server.once('error', onError);
      server.listen(port, host, () => {
        server.server.off('error', onError);
        resolve();
      });
    });
  }

  address(): AddressInfo | null {
    return this.#listener.address();
  }

  close(graceMs = 10_000): Promise<void> {
    this.#closing ??= this.#shutdown(graceMs);
    return this.#closing;
  }

  async #shutdown(graceMs: number): Promise<void> {
    const listener = this.#listener;
    // Queued requests get their 503 now; requests in progress run to their end.
    this.engine.queue.close();
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        listener.closeAllConnections();
      }, graceMs);
      listener.close(() => {
        clearTimeout(timer);
        resolve();
      });
      if (graceMs === 0) listener.closeAllConnections();
    });
    await this.engine.close();
  }
}

/**
 * Create a standalone proxy listener on the raw-socket engine: `await server.listen(8080)`. Takes
 * every option of `createProxy` (see `ProxyOptions`) plus the listener's (`ProxyServerOptions`).
 */
export function createProxyServer(options: ProxyServerOptions): ProxyServer {
  return new RawProxyServer(options);
}
