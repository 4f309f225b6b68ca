/**
 * Counters of HTTP/2 and gRPC: what the stats page, its JSON and the Prometheus output add to the
 * load balancer's snapshot and traffic counters.
 *
 * Three owners, because the facts belong to three different things:
 * - per proxy engine (`protocolStats(proxy)`): request streams, HTTP/1.1-to-HTTP/2 requests and gRPC
 *   statuses of everything that engine forwarded — the library's original view, kept as it was;
 * - per pool (`poolProtocolStats(lb)`, keyed by the load balancer like `trafficOf`, so a reload that
 *   keeps the pool keeps its counts): the same three counters, for the pool the stream was routed to;
 * - per listener (`frontendProtocolStats(listener)`): HTTP/2 sessions (connections) and streams open
 *   now and in all, streams refused and streams the client reset — HAProxy's `h2` frontend
 *   counters (`h2_open_connections`, `h2_backend_open_streams`, `h2_rst_stream_rcvd`…) for what
 *   `node:http2` lets a JavaScript server see. Streams nghttp2 refuses on its own (past
 *   SETTINGS_MAX_CONCURRENT_STREAMS) never reach JavaScript and are not in `streamsRefused`.
 *
 * Counting is one or two increments per stream or session; nothing is allocated per stream. The
 * registries are `WeakMap`s on `globalThis` under `Symbol.for` keys, as the traffic counters', so two
 * bundled copies of this module share one set of counts.
 */
import type { LoadBalancer } from '@fulcrum/core';
import { PROXY_ENGINE, type ProxyEngine } from '../proxy/proxy';

export interface ProtocolStats {
  /** Request streams received over HTTP/2 connections. */
  h2Streams: number;
  /** HTTP/1.1 requests forwarded to HTTP/2 backends. */
  h1ToH2Requests: number;
  /** gRPC calls ended, by `grpc-status` (the backend's, or the one the proxy answered with). */
  grpcStatuses: Record<number, number>;
}

/** A listener's HTTP/2 counters (plain numbers: the counts of several processes add up). */
export interface FrontendProtocolStats {
  /** HTTP/2 connections open now, and accepted in all. */
  sessions: number;
  sessionsTotal: number;
  /** Request streams open now, and opened in all. */
  streams: number;
  streamsTotal: number;
  /** Streams the listener refused with REFUSED_STREAM (it was closing). */
  streamsRefused: number;
  /** Streams the client reset (RST_STREAM) before their response was complete. */
  streamsReset: number;
  /** Connections closed with GOAWAY ENHANCE_YOUR_CALM for resetting too many streams (rapid reset). */
  sessionsClosedForResets: number;
}

/** What `?format=json` carries under `protocol`, and what `renderProtocolFamilies` renders. */
export interface ProtocolStatsJson {
  /** Per pool name (pools that have seen an HTTP/2 stream, an HTTP/2 backend or a gRPC call). */
  pools: Record<string, ProtocolStats>;
  /** Per listener name (listeners that serve HTTP/2). */
  frontends: Record<string, FrontendProtocolStats>;
}

function registry<V>(name: string): WeakMap<object, V> {
  const key = Symbol.for(name);
  return ((globalThis as Record<symbol, unknown>)[key] ??= new WeakMap()) as WeakMap<object, V>;
}

const statsByEngine = registry<ProtocolStats>('fulcrum.stats.protocol.engine');
const statsByPool = registry<ProtocolStats>('fulcrum.stats.protocol.pool');
const statsByFrontend = registry<FrontendProtocolStats>('fulcrum.stats.protocol.frontend');

function emptyProtocolStats(): ProtocolStats {
  return { h2Streams: 0, h1ToH2Requests: 0, grpcStatuses: {} };
}

/** The counters of a listener (created on first use): `Http2Frontend` writes them. */
export function frontendStatsOf(listener: object): FrontendProtocolStats {
  let stats = statsByFrontend.get(listener);
  if (stats === undefined) {
    stats = { sessions: 0, sessionsTotal: 0, streams: 0, streamsTotal: 0, streamsRefused: 0, streamsReset: 0, sessionsClosedForResets: 0 };
    statsByFrontend.set(listener, stats);
  }
  return stats;
}

/** The counters of an engine (created on first use). */
export function statsOf(engine: ProxyEngine): ProtocolStats {
  let stats = statsByEngine.get(engine);
  if (stats === undefined) {
    stats = emptyProtocolStats();
    statsByEngine.set(engine, stats);
  }
  return stats;
}

function poolStatsOf(lb: LoadBalancer): ProtocolStats {
  let stats = statsByPool.get(lb);
  if (stats === undefined) {
    stats = emptyProtocolStats();
    statsByPool.set(lb, stats);
  }
  return stats;
}

/** A request stream began: over HTTP/2 (`version` 2) or HTTP/1.1 to an HTTP/2 backend (1); `lb`: its pool, once routed. */
export function countStream(engine: ProxyEngine, version: 1 | 2, lb?: LoadBalancer): void {
  const stats = statsOf(engine);
  const pool = lb === undefined ? undefined : poolStatsOf(lb);
  if (version === 2) {
    stats.h2Streams++;
    if (pool !== undefined) pool.h2Streams++;
  } else {
    stats.h1ToH2Requests++;
    if (pool !== undefined) pool.h1ToH2Requests++;
  }
}

export function countGrpcStatus(engine: ProxyEngine, status: number, lb?: LoadBalancer): void {
  const statuses = statsOf(engine).grpcStatuses;
  statuses[status] = (statuses[status] ?? 0) + 1;
  if (lb !== undefined) {
    const pool = poolStatsOf(lb).grpcStatuses;
    pool[status] = (pool[status] ?? 0) + 1;
  }
}

function copy(stats: ProtocolStats | undefined): ProtocolStats {
  return { h2Streams: stats?.h2Streams ?? 0, h1ToH2Requests: stats?.h1ToH2Requests ?? 0, grpcStatuses: { ...(stats?.grpcStatuses ?? {}) } };
}

/**
 * The HTTP/2 and gRPC counters of a proxy (`createProxy`'s handler or `createProxyServer`'s
 * server): a copy, safe to serialise. Zeroes for a proxy that has served no HTTP/2.
 */
export function protocolStats(proxy: object): ProtocolStats {
  const engine = engineOf(proxy);
  return copy(engine === undefined ? undefined : statsByEngine.get(engine));
}

/** The HTTP/2 and gRPC counters of the streams routed to `lb`'s pool, by any proxy: a copy. */
export function poolProtocolStats(lb: LoadBalancer): ProtocolStats {
  return copy(statsByPool.get(lb));
}

/**
 * The HTTP/2 counters of a listener — a `createProxyServer` server (or its raw listener) with the
 * `http2` option: a copy; `undefined` for one that serves no HTTP/2.
 */
export function frontendProtocolStats(listener: object): FrontendProtocolStats | undefined {
  const stats = statsByFrontend.get(frontendAliases.get(listener) ?? listener);
  return stats === undefined ? undefined : { ...stats };
}

const frontendAliases = registry<object>('fulcrum.stats.protocol.frontend-alias');

/** `alias` (a `ProxyServer`) reads the counters of `listener` (its raw listener). */
export function aliasFrontend(alias: object, listener: object): void {
  frontendAliases.set(alias, listener);
}

/** Whether `stats` counted anything. */
function counted(stats: ProtocolStats): boolean {
  return stats.h2Streams > 0 || stats.h1ToH2Requests > 0 || Object.keys(stats.grpcStatuses).length > 0;
}

/**
 * The `protocol` part of the stats JSON: every pool that counted something, every listener that
 * serves HTTP/2. Prototype-less objects, so a pool called `__proto__` is a pool like any other.
 */
export function protocolStatsJson(
  pools: readonly { name: string; lb: LoadBalancer }[],
  frontends: Readonly<Record<string, object>> | undefined,
): ProtocolStatsJson {
  const json: ProtocolStatsJson = {
    pools: Object.create(null) as Record<string, ProtocolStats>,
    frontends: Object.create(null) as Record<string, FrontendProtocolStats>,
  };
  for (const { name, lb } of pools) {
    const stats = poolProtocolStats(lb);
    if (counted(stats)) json.pools[name] = stats;
  }
  for (const name of Object.keys(frontends ?? {})) {
    const stats = frontendProtocolStats(frontends![name]!);
    if (stats !== undefined) json.frontends[name] = stats;
  }
  return json;
}

/** Field-by-field sum of several processes' `protocol` JSON (`fulcrum --workers`). */
export function sumProtocolStats(parts: readonly ProtocolStatsJson[]): ProtocolStatsJson {
  const sum: ProtocolStatsJson = {
    pools: Object.create(null) as Record<string, ProtocolStats>,
    frontends: Object.create(null) as Record<string, FrontendProtocolStats>,
  };
  for (const part of parts) {
    for (const [name, stats] of Object.entries(part.pools)) {
      const into = (sum.pools[name] ??= emptyProtocolStats());
      into.h2Streams += stats.h2Streams;
      into.h1ToH2Requests += stats.h1ToH2Requests;
      for (const [code, n] of Object.entries(stats.grpcStatuses)) into.grpcStatuses[Number(code)] = (into.grpcStatuses[Number(code)] ?? 0) + n;
    }
    for (const [name, stats] of Object.entries(part.frontends)) {
      const into = sum.frontends[name];
      if (into === undefined) {
        sum.frontends[name] = { ...stats };
        continue;
      }
      for (const key of FRONTEND_FIELDS) into[key] += stats[key];
    }
  }
  return sum;
}

const FRONTEND_FIELDS: readonly (keyof FrontendProtocolStats)[] = [
  'sessions',
  'sessionsTotal',
  'streams',
  'streamsTotal',
  'streamsRefused',
  'streamsReset',
  'sessionsClosedForResets',
];

function engineOf(proxy: object): ProxyEngine | undefined {
  const viaSymbol = (proxy as { [PROXY_ENGINE]?: ProxyEngine })[PROXY_ENGINE];
  if (viaSymbol !== undefined) return viaSymbol;
  return (proxy as { engine?: ProxyEngine }).engine;
}

/** Label values escape backslash, double quote and line feed (the format's only escapes). */
function label(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

function family(name: string, type: 'counter' | 'gauge', help: string): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
}

/**
 * The counters as Prometheus text (exposition format 0.0.4), to append to `prometheus(…)`'s:
 * `fulcrum_http2_streams_total`, `fulcrum_http1_to_http2_requests_total` and
 * `fulcrum_grpc_calls_total{grpc_status="…"}` (the numeric code, as gRPC's own metrics label it).
 */
export function renderProtocolMetrics(stats: ProtocolStats): string {
  let text = family('fulcrum_http2_streams_total', 'counter', 'Request streams received over HTTP/2 connections.');
  text += `fulcrum_http2_streams_total ${stats.h2Streams}\n`;
  text += family('fulcrum_http1_to_http2_requests_total', 'counter', 'HTTP/1.1 requests forwarded to HTTP/2 backends.');
  text += `fulcrum_http1_to_http2_requests_total ${stats.h1ToH2Requests}\n`;
  text += family('fulcrum_grpc_calls_total', 'counter', "gRPC calls ended, by grpc-status (the backend's, or the proxy's own answer).");
  for (const code of codesOf(stats)) text += `fulcrum_grpc_calls_total{grpc_status="${code}"} ${stats.grpcStatuses[code]}\n`;
  return text;
}

function codesOf(stats: ProtocolStats): number[] {
  return Object.keys(stats.grpcStatuses)
    .map(Number)
    .sort((a, b) => a - b);
}

const FRONTEND_FAMILIES: readonly { name: string; type: 'counter' | 'gauge'; help: string; key: keyof FrontendProtocolStats }[] = [
  { name: 'fulcrum_frontend_http2_sessions', type: 'gauge', help: 'HTTP/2 connections open now on the listener.', key: 'sessions' },
  { name: 'fulcrum_frontend_http2_sessions_total', type: 'counter', help: 'HTTP/2 connections the listener accepted.', key: 'sessionsTotal' },
  { name: 'fulcrum_frontend_http2_streams', type: 'gauge', help: 'HTTP/2 request streams open now on the listener.', key: 'streams' },
  { name: 'fulcrum_frontend_http2_streams_total', type: 'counter', help: 'HTTP/2 request streams the listener opened.', key: 'streamsTotal' },
  {
    name: 'fulcrum_frontend_http2_refused_streams_total',
    type: 'counter',
    help: 'HTTP/2 streams the listener refused with REFUSED_STREAM (it was closing).',
    key: 'streamsRefused',
  },
  {
    name: 'fulcrum_frontend_http2_reset_streams_total',
    type: 'counter',
    help: 'HTTP/2 streams the client reset before their response was complete.',
    key: 'streamsReset',
  },
  {
    name: 'fulcrum_frontend_http2_rapid_reset_closes_total',
    type: 'counter',
    help: 'HTTP/2 connections closed with ENHANCE_YOUR_CALM for resetting too many streams.',
    key: 'sessionsClosedForResets',
  },
];

/**
 * The `protocol` JSON as Prometheus text: per pool `fulcrum_pool_http2_streams_total`,
 * `fulcrum_pool_http1_to_http2_requests_total`, `fulcrum_pool_grpc_calls_total{grpc_status}`; per
 * listener (label `frontend`) the `fulcrum_frontend_http2_*` families. Every family is written, with
 * its HELP and TYPE, even when no pool or listener has a sample yet.
 */
export function renderProtocolFamilies(json: ProtocolStatsJson): string {
  const pools = Object.keys(json.pools);
  let text = family('fulcrum_pool_http2_streams_total', 'counter', 'Request streams received over HTTP/2 connections and routed to the pool.');
  for (const name of pools) text += `fulcrum_pool_http2_streams_total{pool="${label(name)}"} ${json.pools[name]!.h2Streams}\n`;
  text += family('fulcrum_pool_http1_to_http2_requests_total', 'counter', "HTTP/1.1 requests forwarded to the pool's HTTP/2 backends.");
  for (const name of pools) text += `fulcrum_pool_http1_to_http2_requests_total{pool="${label(name)}"} ${json.pools[name]!.h1ToH2Requests}\n`;
  text += family('fulcrum_pool_grpc_calls_total', 'counter', "gRPC calls of the pool ended, by grpc-status (the backend's, or the proxy's own answer).");
  for (const name of pools) {
    const stats = json.pools[name]!;
    for (const code of codesOf(stats)) text += `fulcrum_pool_grpc_calls_total{pool="${label(name)}",grpc_status="${code}"} ${stats.grpcStatuses[code]}\n`;
  }
  const frontends = Object.keys(json.frontends);
  for (const f of FRONTEND_FAMILIES) {
    text += family(f.name, f.type, f.help);
    for (const name of frontends) text += `${f.name}{frontend="${label(name)}"} ${json.frontends[name]![f.key]}\n`;
  }
  return text;
}
