/**
 * Counters of HTTP/2 streams and gRPC call statuses, per proxy engine: what the stats page and
 * the Prometheus output add to the load balancer's snapshot. Plain numbers, read with
 * `protocolStats(proxy)`; counting is one increment per stream.
 */
import type { ProxyEngine } from '../proxy/proxy';

export interface ProtocolStats {
  /** Request streams received over HTTP/2 connections. */
  h2Streams: number;
  /** HTTP/1.1 requests forwarded to HTTP/2 backends. */
  h1ToH2Requests: number;
  /** gRPC calls ended, by `grpc-status` (the backend's, or the one the proxy answered with). */
  grpcStatuses: Record<number, number>;
}

const statsByEngine = new WeakMap<ProxyEngine, ProtocolStats>();

/** The counters of an engine (created on first use). */
export function statsOf(engine: ProxyEngine): ProtocolStats {
  let stats = statsByEngine.get(engine);
  if (stats === undefined) {
    stats = { h2Streams: 0, h1ToH2Requests: 0, grpcStatuses: {} };
    statsByEngine.set(engine, stats);
  }
  return stats;
}

export function countStream(engine: ProxyEngine, version: 1 | 2): void {
  const stats = statsOf(engine);
  if (version === 2) stats.h2Streams++;
  else stats.h1ToH2Requests++;
}

export function countGrpcStatus(engine: ProxyEngine, status: number): void {
  const statuses = statsOf(engine).grpcStatuses;
  statuses[status] = (statuses[status] ?? 0) + 1;
}
