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

export function createBackendPool(backend: Backend, settings: BackendPoolSettings): Pool {
  return new Pool(originOf(backend.address), {
    connections: Number.isFinite(backend.maxConnections) ? backend.maxConnections : settings.connectionsPerBackend,
    pipelining: 1,
    headersTimeout: settings.headersMs,
    bodyTimeout: settings.idleMs,
    connect: { timeout: settings.connectMs, ...(settings.backendTls ?? {}) },
  });
}
