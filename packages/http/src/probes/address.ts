/**
 * Where a probe connects: a backend's `address` ('http://10.0.0.5:8080', 'https://…', or
 * 'host:port') turned into the scheme, the host to dial and the port.
 *
 * The core validated the address when the backend entered the load balancer, so this only
 * interprets it. 'host:port' addresses carry no scheme and are probed over plain HTTP (the design
 * gives them no other meaning); a scheme without a port gets that scheme's default port, as a URL
 * would. IPv6 literals keep their brackets in the Host header and lose them for `connect()`, which
 * wants the bare address.
 *
 * It also names network errors for a probe's `detail` by their code, never by Node's message, which
 * embeds the backend's address: details end up in logs and on stats pages. And `runCheck` holds what
 * every probe shares: settling once on verdict, timeout or abort, and tearing the connection down.
 */
import type { ProbeResult } from '@fulcrum/core';

/** A backend address, ready for `net.connect` / `http.request`. */
export interface ProbeTarget {
  readonly protocol: 'http:' | 'https:';
  /** The host to dial, IPv6 without brackets. */
  readonly hostname: string;
  readonly port: number;
  /** `host[:port]` as a Host header carries it (IPv6 in brackets, the default port omitted). */
  readonly hostHeader: string;
}

const cache = new Map<string, ProbeTarget>();
const CACHE_LIMIT = 1024;

/**
 * Parse `address`. Throws a `TypeError` naming the address only for a value the core would have
 * refused (a probe called with a hand-made backend); callers turn it into a failed check.
 */
export function parseProbeTarget(address: string): ProbeTarget {
  const cached = cache.get(address);
  if (cached !== undefined) return cached;
  const url = new URL(address.includes('://') ? address : `http://${address}`);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new TypeError(`unsupported scheme ${url.protocol} in backend address`);
  }
  const protocol = url.protocol;
  const port = url.port === '' ? (protocol === 'https:' ? 443 : 80) : Number(url.port);
  const hostname = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  const target: ProbeTarget = Object.freeze({ protocol, hostname, port, hostHeader: url.host });
  // Probes run every few seconds per backend for the life of the process: parse each address once.
  // The bound only matters for pools whose membership churns through many addresses.
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(address, target);
  return target;
}

/** The target, or why the address cannot be probed (only a hand-made `Backend` gets there). */
export function tryParseTarget(address: string): ProbeTarget | string {
  try {
    return parseProbeTarget(address);
  } catch (error) {
    return `bad backend address: ${error instanceof Error ? error.message : String(error)}`;
  }
}

/**
 * The error's code (ECONNREFUSED, ETIMEDOUT, CERT_HAS_EXPIRED, …) rather than its message: Node's
 * messages embed the backend's address, and details travel to logs and stats pages. The rare error
 * without a code keeps its message with the address cut out.
 */
export function describeNetworkError(error: NodeJS.ErrnoException, target: { hostname: string; port: number }): string {
  if (typeof error.code === 'string' && error.code !== '') return error.code;
  const message = error.message.split(target.hostname).join('<backend>').split(`:${target.port}`).join('');
  return message.length > 120 ? `${message.slice(0, 117)}...` : message;
}

/**
 * One check, settled exactly once by whichever of its verdict, the timeout or the checker's abort
 * comes first — and always torn down on settling, so no socket outlives the check. `start` opens the
 * connection to the parsed target and returns what to destroy; it reports through `finish`, and may
 * ask `settled()` whether the check is already over. An address that does not parse is a failed
 * check; an aborted signal rejects with its reason (the checker's contract).
 */
export function runCheck(
  address: string,
  signal: AbortSignal,
  timeoutMs: number | undefined,
  start: (target: ProbeTarget, finish: (result: ProbeResult) => void, settled: () => boolean) => { destroy(): void },
): Promise<ProbeResult> {
  return new Promise<ProbeResult>((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const target = tryParseTarget(address);
    if (typeof target === 'string') {
      resolve({ ok: false, detail: target });
      return;
    }
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    // Not const: `start` may settle synchronously, before it returns the connection.
    // eslint-disable-next-line prefer-const
    let connection: { destroy(): void } | undefined;
    const onAbort = (): void => settle(undefined, signal.reason);
    const settle = (result: ProbeResult | undefined, abortReason?: unknown): void => {
      if (done) return;
      done = true;
      if (timer !== undefined) clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      connection?.destroy();
      if (result === undefined) reject(abortReason);
      else resolve(result);
    };
    connection = start(
      target,
      (result) => settle(result),
      () => done,
    );
    // A connection that failed synchronously has already settled; destroy what start returned.
    if (done) {
      connection.destroy();
      return;
    }
    signal.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => settle({ ok: false, detail: `timed out after ${timeoutMs} ms` }), timeoutMs);
      timer.unref();
    }
  });
}
