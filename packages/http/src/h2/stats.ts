/**
 * Counters of HTTP/2 streams and gRPC call statuses, per proxy engine: what the stats page and
 * the Prometheus output add to the load balancer's snapshot. Plain numbers, read with
 * `protocolStats(proxy)`; counting is one increment per stream.
 */
import { PROXY_ENGINE, type ProxyEngine } from '../proxy/proxy';

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

/**
 * The HTTP/2 and gRPC counters of a proxy (`createProxy`'s handler or `createProxyServer`'s
 * server): a copy, safe to serialise. Zeroes for a proxy that has served no HTTP/2.
 */
export function protocolStats(proxy: object): ProtocolStats {
  const engine = engineOf(proxy);
  const stats = engine === undefined ? undefined : statsByEngine.get(engine);
  return { h2Streams: stats?.h2Streams ?? 0, h1ToH2Requests: stats?.h1ToH2Requests ?? 0, grpcStatuses: { ...(stats?.grpcStatuses ?? {}) } };
}

function engineOf(proxy: object): ProxyEngine | undefined {
  const viaSymbol = (proxy as { [PROXY_ENGINE]?: ProxyEngine })[PROXY_ENGINE];
  if (viaSymbol !== undefined) return viaSymbol;
  return (proxy as { engine?: ProxyEngine }).engine;
}

/**
 * The counters as Prometheus text (exposition format 0.0.4), to append to `prometheus(…)`'s:
 * `fulcrum_http2_streams_total`, `fulcrum_http1_to_http2_requests_total` and
 * `fulcrum_grpc_calls_total{grpc_status="…"}` (the numeric code, as gRPC's own metrics label it).
 */
export function renderProtocolMetrics(stats: ProtocolStats): string {
  let text = '# HELP fulcrum_http2_streams_total Request streams received over HTTP/2 connections.\n';
  text += '# TYPE fulcrum_http2_streams_total counter\n';
  text += `fulcrum_http2_streams_total ${stats.h2Streams}\n`;
  text += '# HELP fulcrum_http1_to_http2_requests_total HTTP/1.1 requests forwarded to HTTP/2 backends.\n';
  text += '# TYPE fulcrum_http1_to_http2_requests_total counter\n';
  text += `fulcrum_http1_to_http2_requests_total ${stats.h1ToH2Requests}\n`;
  text += "# HELP fulcrum_grpc_calls_total gRPC calls ended, by grpc-status (the backend's, or the proxy's own answer).\n";
  text += '# TYPE fulcrum_grpc_calls_total counter\n';
  for (const code of Object.keys(stats.grpcStatuses)
    .map(Number)
    .sort((a, b) => a - b)) {
    text += `fulcrum_grpc_calls_total{grpc_status="${code}"} ${stats.grpcStatuses[code]}\n`;
  }
  return text;
}
