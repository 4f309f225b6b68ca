/**
 * `createProxyServer` options: everything `createProxy` takes (validated by the same code) plus the
 * listener's own, validated once into a frozen config.
 *
 * Listener defaults and why:
 * - `maxHeadBytes` 16 KiB and `maxHeaders` 100: HAProxy's `tune.bufsize` and `tune.http.maxhdr`
 *   (101); a larger head is refused with 431, never truncated.
 * - `headersTimeoutMs` 10 s: HAProxy's customary `timeout http-request`; a client that has not sent
 *   a whole head in 10 s is slow-loris, not slow (Node's own default is 60 s, checked every 30 s).
 * - `keepAliveTimeoutMs` 5 s: Node's `server.keepAliveTimeout`, below the 60 s of most backends' and
 *   load balancers' idle timeouts, so a proxy in front closes first.
 * - `tunnelIdleMs` 1 h: HAProxy's customary `timeout tunnel` for WebSockets.
 * - `backendIdleMs` 4 s: undici's keep-alive default, below Node's 5 s server default, so the proxy
 *   drops an idle backend connection before the backend does (and never writes into a closing one).
 * - `maxConnections` 20 000 per listener, and the process-wide `ConnectionLimit.global` (50 000)
 *   shared by every listener that is not given its own: excess connections are closed at accept,
 *   before they can use up file descriptors the backends need.
 * Timers are swept every 500 ms: each deadline holds to within half a second.
 */
import type { SecureContextOptions, TlsOptions as NodeTlsOptions } from 'node:tls';
import { InvalidOptionError } from '@fulcrum/core';
import { MAX_TIMER_MS, isPlainObject, optionalInteger } from '@fulcrum/core/validate';
import { ConnectionLimit } from '../proxy/connection-limit';
import type { ProxyOptions } from '../proxy/options';
import { normalizeHttp2Options, type Http2Options, type NormalizedHttp2Options } from '../h2/options';

export { ConnectionLimit };

export interface ProxyServerOptions extends ProxyOptions {
  /**
   * Serve HTTPS: Node's TLS server options (`key`/`cert`, `SNICallback`, `secureContext`…; the
   * `serverOptions` of a `createTlsContext` fit here). Default: plain HTTP.
   */
  tls?: NodeTlsOptions & SecureContextOptions;
  /** Open client connections on this listener; more are closed at accept. Default 20000. */
  maxConnections?: number;
  /** A cap shared with other listeners. Default `ConnectionLimit.global` (50000). */
  connectionLimit?: ConnectionLimit;
  /** Largest request head, bytes (431 above). Default 16384. */
  maxHeadBytes?: number;
  /** Most request header fields (431 above). Default 100. */
  maxHeaders?: number;
  /** A request head must arrive within this, ms, from its first byte (from accept for the first): else 408. Default 10000. */
  headersTimeoutMs?: number;
  /** An idle keep-alive client connection is closed after this, ms. Default 5000. */
  keepAliveTimeoutMs?: number;
  /** An upgraded connection (WebSocket) with no traffic either way is closed after this, ms. Default 3600000. */
  tunnelIdleMs?: number;
  /** An idle keep-alive connection to a backend is closed after this, ms. Default 4000. */
  backendIdleMs?: number;
  /** Accept absolute-form request targets (`GET http://host/path`); the path is forwarded. Default false. */
  allowAbsoluteForm?: boolean;
  /**
   * Serve HTTP/2 as well: on a TLS listener by ALPN (`h2` and `http/1.1` on the same port), on a
   * plain one with prior knowledge when `h2c: true`. `true` takes every default limit; see
   * `Http2Options`. Default false (HTTP/1.1 only).
   */
  http2?: boolean | Http2Options;
}

export interface NormalizedListenerOptions {
  readonly tls: (NodeTlsOptions & SecureContextOptions) | undefined;
  readonly maxConnections: number;
  readonly connectionLimit: ConnectionLimit;
  readonly maxHeadBytes: number;
  readonly maxHeaders: number;
  readonly headersTimeoutMs: number;
  readonly keepAliveTimeoutMs: number;
  readonly tunnelIdleMs: number;
  readonly backendIdleMs: number;
  readonly allowAbsoluteForm: boolean;
  readonly http2: NormalizedHttp2Options | undefined;
}

const LISTENER_KEYS = [
  'tls',
  'maxConnections',
  'connectionLimit',
  'maxHeadBytes',
  'maxHeaders',
  'headersTimeoutMs',
  'keepAliveTimeoutMs',
  'tunnelIdleMs',
  'backendIdleMs',
  'allowAbsoluteForm',
  'http2',
] as const;

const MAX_TIMER = MAX_TIMER_MS;
const int = optionalInteger;

/** Split `createProxyServer`'s options into the proxy's (validated by `createProxy`'s code) and the listener's. */
export function splitServerOptions(options: ProxyServerOptions): { proxy: ProxyOptions; listener: NormalizedListenerOptions } {
  if (!isPlainObject(options)) throw new InvalidOptionError('options', options, 'must be an object with a balancer or a router');
  const proxy: Record<string, unknown> = {};
  const given = options as unknown as Record<string, unknown>;
  for (const key of Object.keys(given)) if (!(LISTENER_KEYS as readonly string[]).includes(key)) proxy[key] = given[key];
  if (options.tls !== undefined && !isPlainObject(options.tls))
    throw new InvalidOptionError('tls', options.tls, 'must be an object of TLS server options (key, cert, SNICallback…)');
  return { proxy: proxy as ProxyOptions, listener: normalizeListenerOptions(options) };
}

/** The listener options alone, validated and defaulted (the CLI builds its frontends with these). */
export function normalizeListenerOptions(options: Omit<ProxyServerOptions, keyof ProxyOptions>): NormalizedListenerOptions {
  const limit = options.connectionLimit ?? ConnectionLimit.global;
  if (!(limit instanceof ConnectionLimit)) throw new InvalidOptionError('connectionLimit', limit, 'must be a ConnectionLimit');
  if (options.allowAbsoluteForm !== undefined && typeof options.allowAbsoluteForm !== 'boolean') {
    throw new InvalidOptionError('allowAbsoluteForm', options.allowAbsoluteForm, 'must be true or false');
  }
  return Object.freeze({
    tls: options.tls,
    maxConnections: int('maxConnections', options.maxConnections, 20_000, 1, 10_000_000),
    connectionLimit: limit,
    maxHeadBytes: int('maxHeadBytes', options.maxHeadBytes, 16_384, 256, 1_048_576),
    maxHeaders: int('maxHeaders', options.maxHeaders, 100, 1, 10_000),
    headersTimeoutMs: int('headersTimeoutMs', options.headersTimeoutMs, 10_000, 1, MAX_TIMER),
    keepAliveTimeoutMs: int('keepAliveTimeoutMs', options.keepAliveTimeoutMs, 5000, 1, MAX_TIMER),
    tunnelIdleMs: int('tunnelIdleMs', options.tunnelIdleMs, 3_600_000, 1, MAX_TIMER),
    backendIdleMs: int('backendIdleMs', options.backendIdleMs, 4000, 1, MAX_TIMER),
    allowAbsoluteForm: options.allowAbsoluteForm ?? false,
    http2: normalizeHttp2Options(options.http2),
  });
}
