/**
 * HTTP/2 options: the limits of an HTTP/2 listener and the upstream protocol of each pool.
 *
 * Listener limit defaults, and why:
 * - `maxConcurrentStreams` 100: HAProxy's `tune.h2.max-concurrent-streams` and the RFC 9113 §6.5.2
 *   recommended minimum; nginx uses 128. Streams past it are refused by the HTTP/2 layer
 *   (RST_STREAM REFUSED_STREAM) before the proxy sees them.
 * - `maxHeaderListSize` 16384 bytes of decoded header list (name + value + 32 per field, RFC 9113
 *   §6.5.2): the HTTP/1.1 listener's `maxHeadBytes`, so a header list that would be refused over
 *   HTTP/1.1 is refused over HTTP/2 as well — and an HPACK bomb (a few bytes that decode to
 *   megabytes through the dynamic table) is cut at 16 KiB decoded, whatever it weighs on the wire.
 * - `maxHeaderListPairs` 104: the listener's `maxHeaders` (100) plus the four pseudo-headers.
 * - `maxResetsPerSecond` 100: a client that cancels more streams than this in one second is doing
 *   the 2023 "rapid reset" attack (CVE-2023-44487) — each stream costs the proxy a backend request
 *   while costing the attacker two frames — and its connection gets GOAWAY ENHANCE_YOUR_CALM.
 *   Browsers and gRPC clients cancel a handful per second at most.
 * - `maxSessionMemoryMb` 10: Node's own default, stated: a session whose buffered frames and HPACK
 *   state exceed it gets ENHANCE_YOUR_CALM on new streams.
 * - `idleTimeoutMs` 120000: an HTTP/2 connection with no open stream is closed (GOAWAY) after this;
 *   gRPC channels keep their connection across calls, so this is longer than HTTP/1.1's 5 s.
 */
import { InvalidOptionError } from '@fulcrum/core';
import { isPlainObject } from '@fulcrum/core/validate';

/** The protocol a pool speaks to its backends. */
export type UpstreamProtocol = 'http1' | 'h2';

/** HTTP/2 on a `createProxyServer` listener (`http2: true` for the defaults). */
export interface Http2Options {
  /**
   * On a plain-TCP listener, accept HTTP/2 with prior knowledge (h2c): a connection that opens with
   * the HTTP/2 preface is served as HTTP/2, any other as HTTP/1.1. Default false. (On a TLS
   * listener, ALPN chooses: `h2` and `http/1.1` are offered on the same port.)
   */
  h2c?: boolean;
  /** Streams a client may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS). Default 100. */
  maxConcurrentStreams?: number;
  /** Largest decoded header list of a request, bytes (SETTINGS_MAX_HEADER_LIST_SIZE). Default 16384. */
  maxHeaderListSize?: number;
  /** Most header fields in a request, pseudo-headers included. Default 104. */
  maxHeaderListPairs?: number;
  /** Streams a client may reset per second before its connection is closed (rapid reset). Default 100. */
  maxResetsPerSecond?: number;
  /** Memory an HTTP/2 session may hold, MB (Node's `maxSessionMemory`). Default 10. */
  maxSessionMemoryMb?: number;
  /** An HTTP/2 connection with no stream open is closed after this, ms. Default 120000. */
  idleTimeoutMs?: number;
}

export interface NormalizedHttp2Options {
  readonly h2c: boolean;
  readonly maxConcurrentStreams: number;
  readonly maxHeaderListSize: number;
  readonly maxHeaderListPairs: number;
  readonly maxResetsPerSecond: number;
  readonly maxSessionMemoryMb: number;
  readonly idleTimeoutMs: number;
}

const KEYS = ['h2c', 'maxConcurrentStreams', 'maxHeaderListSize', 'maxHeaderListPairs', 'maxResetsPerSecond', 'maxSessionMemoryMb', 'idleTimeoutMs'];

function int(path: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(path, value, `must be an integer from ${min} to ${max}`);
  }
  return value;
}

/** `http2` of the listener options: `undefined`/`false` → HTTP/1.1 only. */
export function normalizeHttp2Options(value: unknown, path = 'http2'): NormalizedHttp2Options | undefined {
  if (value === undefined || value === false) return undefined;
  const options = value === true ? {} : value;
  if (!isPlainObject(options)) throw new InvalidOptionError(path, value, 'must be true, false or an object of HTTP/2 options');
  const given = options as Record<string, unknown>;
  for (const key of Object.keys(given)) {
    if (!KEYS.includes(key)) throw new InvalidOptionError(`${path}.${key}`, given[key], `is not an HTTP/2 option (known: ${KEYS.join(', ')})`);
  }
  if (given.h2c !== undefined && typeof given.h2c !== 'boolean') throw new InvalidOptionError(`${path}.h2c`, given.h2c, 'must be true or false');
  return Object.freeze({
    h2c: (given.h2c as boolean | undefined) ?? false,
    maxConcurrentStreams: int(`${path}.maxConcurrentStreams`, given.maxConcurrentStreams, 100, 1, 10_000),
    maxHeaderListSize: int(`${path}.maxHeaderListSize`, given.maxHeaderListSize, 16_384, 1024, 1_048_576),
    maxHeaderListPairs: int(`${path}.maxHeaderListPairs`, given.maxHeaderListPairs, 104, 8, 10_000),
    maxResetsPerSecond: int(`${path}.maxResetsPerSecond`, given.maxResetsPerSecond, 100, 1, 1_000_000),
    maxSessionMemoryMb: int(`${path}.maxSessionMemoryMb`, given.maxSessionMemoryMb, 10, 1, 10_000),
    idleTimeoutMs: int(`${path}.idleTimeoutMs`, given.idleTimeoutMs, 120_000, 1, 2_147_483_647),
  });
}

/** `upstreamProtocol` of the proxy options: one protocol for every pool, or one per pool name. */
export function normalizeUpstreamProtocol(value: unknown): { readonly fallback: UpstreamProtocol; readonly byPool: ReadonlyMap<string, UpstreamProtocol> } {
  const check = (path: string, protocol: unknown): UpstreamProtocol => {
    if (protocol !== 'http1' && protocol !== 'h2') throw new InvalidOptionError(path, protocol, "must be 'http1' or 'h2'");
    return protocol;
  };
  if (value === undefined) return { fallback: 'http1', byPool: new Map() };
  if (typeof value === 'string') return { fallback: check('upstreamProtocol', value), byPool: new Map() };
  if (!isPlainObject(value)) throw new InvalidOptionError('upstreamProtocol', value, "must be 'http1', 'h2' or an object of pool name → protocol");
  const byPool = new Map<string, UpstreamProtocol>();
  for (const [pool, protocol] of Object.entries(value as Record<string, unknown>)) byPool.set(pool, check(`upstreamProtocol.${pool}`, protocol));
  return { fallback: 'http1', byPool };
}
