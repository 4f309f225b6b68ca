/**
 * Upgraded connections (WebSockets): the handshake is forwarded to a backend chosen like any request
 * (affinity included), then bytes are relayed both ways until either side closes. The backend's own
 * answer — 101 or a refusal — goes to the client unchanged, so the proxy needs no WebSocket knowledge.
 * The lease is held for the life of the connection: a WebSocket is load, and least-connections should
 * see it.
 */
import type { IncomingMessage } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { clientAddress } from '../affinity';
import type { RouteDecision } from './options';
import type { ProxyEngine } from './proxy';
import { normalizeAddress } from './proxy';
import { classifyError } from './errors';
import { requestHeaders } from './headers';

export class UpgradeProxy {
  readonly #engine: ProxyEngine;
  readonly #open = new Set<Duplex>();

  constructor(engine: ProxyEngine) {
    this.#engine = engine;
  }

  handle(req: IncomingMessage, client: Duplex, head: Buffer): void {
    const engine = this.#engine;
    client.on('error', (error) => engine.report(error, 'client'));
    if (engine.closed || !req.url?.startsWith('/')) return refuse(client, 503, 'Service Unavailable');
    let route: RouteDecision | undefined;
    try {
      route = engine.route(req);
    } catch (error) {
      engine.report(error, 'upgrade');
    }
    if (route === undefined) return refuse(client, 404, 'Not Found');
    const remote = req.socket.remoteAddress ?? '';
    const clientIp = engine.trusted === undefined ? normalizeAddress(remote) : clientAddress(req, engine.trusted);
    const stickyId = engine.stickiness?.lookup(req, clientIp, route.lb.clock.now());
    const key = engine.hashKey?.(req, clientIp);
    const lease = route.lb.acquire({
      ...(key === undefined ? {} : { key }),
      ...(stickyId === undefined ? {} : { stickyBackendId: stickyId }),
    });
    if (lease === undefined) return refuse(client, 503, 'Service Unavailable: no backend available');
    const backend = lease.backend;
    const url = new URL(backend.address.includes('://') ? backend.address : `http://${backend.address}`);
    const headers = requestHeaders(
      req.rawHeaders,
      {
        remoteAddress: normalizeAddress(remote),
        encrypted: (req.socket as TLSSocket).encrypted === true,
        peerTrusted: engine.trusted?.contains(remote) ?? false,
        preserveHost: engine.config.preserveHost,
        addForwarded: engine.config.forwardedHeaders,
        upgrade: true,
      },
      url.host,
    );
    if (headers === undefined) {
      lease.release({ ok: true });
      return refuse(client, 400, 'Bad Request');
    }
    const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const upstream: Socket =
      url.protocol === 'https:'
        ? tlsConnect({ host, port, servername: host, ...(engine.config.backendTls ?? {}) })
        : netConnect({ host, port });
    const started = performance.now();
    let connected = false;
    let finished = false;
    const connectTimer = setTimeout(() => upstream.destroy(Object.assign(new Error('connect timeout'), { code: 'UND_ERR_CONNECT_TIMEOUT' })), engine.config.connectMs);
    this.#open.add(client);
    this.#open.add(upstream);
    const finish = (error?: unknown) => {
      if (finished) return;
      finished = true;
      clearTimeout(connectTimer);
      this.#open.delete(client);
      this.#open.delete(upstream);
      if (error !== undefined && !connected) {
        const failure = classifyError(error);
        lease.release({ ok: false, error: failure.kind, durationMs: performance.now() - started });
        engine.report(error, 'upgrade', backend.id);
        refuse(client, failure.kind === 'timeout' ? 504 : 502, failure.kind === 'timeout' ? 'Gateway Timeout' : 'Bad Gateway');
      } else {
        lease.release({ ok: true, durationMs: performance.now() - started });
        client.destroy();
      }
      upstream.destroy();
      engine.released();
    };
    upstream.once(url.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      connected = true;
      clearTimeout(connectTimer);
      let request = `${req.method ?? 'GET'} ${route.path} HTTP/1.1\r\n`;
      for (let i = 0; i < headers.length; i += 2) request += `${headers[i]}: ${headers[i + 1]}\r\n`;
      upstream.write(`${request}\r\n`);
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', (error) => finish(error));
    upstream.on('close', () => finish());
    client.on('close', () => finish());
  }

  /** Close every upgraded connection. */
  close(): void {
    for (const socket of this.#open) socket.destroy();
    this.#open.clear();
  }
}

function refuse(socket: Duplex, status: number, message: string): void {
  if (socket.destroyed) return;
  const body = `${message}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${message.split(':')[0]}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
