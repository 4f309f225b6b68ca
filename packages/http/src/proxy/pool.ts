/**
 * One undici keep-alive `Pool` per backend, shared by the reverse proxy and the client-side
 * dispatcher: the same connection settings for both front ends. A backend with `maxConnections`
 * gets exactly that many connections (the cap is the pool's size); otherwise `connectionsPerBackend`.
 * Pipelining stays at 1: a pipelined request behind a slow one waits for it, which is head-of-line
 * blocking a load balancer exists to avoid.
 */
import type { Backend } from '@fulcrum/core';
import { Pool } from 'undici';
import { originOf } from './headers';

export interface BackendPoolSettings {
  readonly connectMs: number;
  readonly headersMs: number;
  readonly idleMs: number;
  readonly connectionsPerBackend: number;
  readonly backendTls: Readonly<Record<string, unknown>> | undefined;
}

/**
 * `allowH2`: negotiate HTTP/2 by ALPN with an `https://` backend (undici's `allowH2`); a backend
 * that offers only HTTP/1.1, and every `http://` one (undici speaks no h2c), stays on HTTP/1.1.
 */
/** Requests at once on one HTTP/2 connection: 100, undici's default and the value RFC 9113 §6.5.2 recommends as a minimum. */
export const H2_STREAMS_PER_CONNECTION = 100;

export function createBackendPool(backend: Backend, settings: BackendPoolSettings, options: { allowH2?: boolean } = {}): Pool {
  return new Pool(originOf(backend.address), {
    connections: Number.isFinite(backend.maxConnections) ? backend.maxConnections : settings.connectionsPerBackend,
    headersTimeout: settings.headersMs,
    bodyTimeout: settings.idleMs,
    connect: { timeout: settings.connectMs, ...(settings.backendTls ?? {}) },
    // One request at a time on an HTTP/1.1 connection. undici sizes a connection before it knows
    // its protocol (its pipelining, 1 by default, caps HTTP/2 streams too): with allowH2 a connection
    // takes H2_STREAMS_PER_CONNECTION requests at once — streams on HTTP/2, or, on an instance that
    // negotiates HTTP/1.1 after all, pipelined idempotent requests (undici pipelines nothing else).
    ...(options.allowH2 === true
      ? { allowH2: true, pipelining: H2_STREAMS_PER_CONNECTION, maxConcurrentStreams: H2_STREAMS_PER_CONNECTION }
      : { pipelining: 1 }),
  });
}
