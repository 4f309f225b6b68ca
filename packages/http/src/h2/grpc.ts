/**
 * gRPC over the proxy: what the proxy must know of the protocol to balance it per call
 * (https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md).
 *
 * - A call is a request whose `content-type` starts with `application/grpc`.
 * - `grpc-timeout` (`1–8 digits` + `H M S m u n`) is the client's deadline: it becomes the
 *   request's deadline at the proxy, so a call is not forwarded or waited on past it.
 * - Errors the proxy makes itself are *trailers-only* responses (one HEADERS frame with
 *   `:status 200`, `content-type`, `grpc-status`, `grpc-message` and END_STREAM), which every gRPC
 *   client reads as the call's status; an HTTP 502 page would reach the application as
 *   `UNKNOWN`/`INTERNAL` with a confusing message.
 * - A call's outcome is its `grpc-status` (from the trailers, or the trailers-only head); by default
 *   `UNAVAILABLE`, `INTERNAL` and `UNKNOWN` count as backend failures for passive health and outlier
 *   ejection — the statuses a server returns when it, not the request, is broken (Envoy's
 *   `retry-on: unavailable, internal` family and grpc-js's own transparent-retry classes).
 */
import { InvalidOptionError } from '@fulcrum/core';
import { isPlainObject } from '@fulcrum/core/validate';
import type { Termination } from '../proxy/options';

/** gRPC status codes the proxy uses (grpc/doc/statuscodes.md). */
export const GrpcStatus = Object.freeze({
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
});

/** Options of gRPC handling (`createProxy({ grpc })` / `createProxyServer({ grpc })`). */
export interface GrpcOptions {
  /** `grpc-status` codes that count as a backend failure (passive health, outlier ejection). Default `[14, 13, 2]` (UNAVAILABLE, INTERNAL, UNKNOWN). */
  failureStatuses?: readonly number[];
  /**
   * Full method names (`/pkg.Service/Method`, or `/pkg.Service/*` for every method of a service)
   * that are safe to call twice: such calls are retried like idempotent HTTP methods (on `retryOn`
   * failures, while no response header has reached the client). Others are retried only when they
   * never reached a backend. Default none.
   */
  idempotentMethods?: readonly string[];
}

export interface NormalizedGrpcOptions {
  readonly failureStatuses: ReadonlySet<number>;
  readonly idempotentMethods: ReadonlySet<string>;
  readonly idempotentServices: ReadonlySet<string>;
}

const DEFAULT_FAILURES = [GrpcStatus.UNAVAILABLE, GrpcStatus.INTERNAL, GrpcStatus.UNKNOWN];

export function normalizeGrpcOptions(options: GrpcOptions | undefined): NormalizedGrpcOptions {
  if (options !== undefined && !isPlainObject(options))
    throw new InvalidOptionError('grpc', options, 'must be an object ({ failureStatuses, idempotentMethods })');
  for (const key of Object.keys(options ?? {})) {
    if (key !== 'failureStatuses' && key !== 'idempotentMethods')
      throw new InvalidOptionError(
        `grpc.${key}`,
        (options as Record<string, unknown>)[key],
        'is not a gRPC option (known: failureStatuses, idempotentMethods)',
      );
  }
  const failures = options?.failureStatuses ?? DEFAULT_FAILURES;
  if (!Array.isArray(failures)) throw new InvalidOptionError('grpc.failureStatuses', failures, 'must be an array of gRPC status codes (0–16)');
  failures.forEach((code, i) => {
    if (!Number.isInteger(code) || code < 0 || code > 16)
      throw new InvalidOptionError(`grpc.failureStatuses[${i}]`, code, 'must be a gRPC status code (an integer 0–16)');
  });
  const methods = options?.idempotentMethods ?? [];
  if (!Array.isArray(methods)) throw new InvalidOptionError('grpc.idempotentMethods', methods, 'must be an array of method names like /pkg.Service/Method');
  const exact = new Set<string>();
  const services = new Set<string>();
  methods.forEach((name, i) => {
    if (typeof name !== 'string' || !/^\/[^/\s]+\/(\*|[^/\s*]+)$/.test(name)) {
      throw new InvalidOptionError(`grpc.idempotentMethods[${i}]`, name, 'must be /package.Service/Method or /package.Service/*');
    }
    if (name.endsWith('/*')) services.add(name.slice(0, -1));
    else exact.add(name);
  });
  return Object.freeze({ failureStatuses: new Set(failures), idempotentMethods: exact, idempotentServices: services });
}

/** Whether a route marks this call (`:path` = `/pkg.Service/Method`) idempotent. */
export function isIdempotentCall(config: NormalizedGrpcOptions, path: string): boolean {
  // Sizes first: a path is a new string per call, which a set lookup must hash.
  if (config.idempotentMethods.size > 0 && config.idempotentMethods.has(path)) return true;
  if (config.idempotentServices.size === 0) return false;
  const slash = path.indexOf('/', 1);
  return slash > 0 && config.idempotentServices.has(path.slice(0, slash + 1));
}

/** Whether a request is a gRPC call (by its content-type). */
export function isGrpcContentType(contentType: string | undefined): boolean {
  return (
    contentType !== undefined && contentType.startsWith('application/grpc') && (contentType.length === 16 || contentType[16] === '+' || contentType[16] === ';')
  );
}

const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000_001 };

/**
 * A `grpc-timeout` value in ms (fractions kept), or `undefined` when absent or malformed (a
 * malformed one is ignored, as grpc-js and Envoy do, rather than failing the call).
 */
export function parseGrpcTimeout(value: string | undefined): number | undefined {
  if (value === undefined || value.length < 2 || value.length > 9) return undefined;
  const unit = UNIT_MS[value[value.length - 1]!];
  const digits = value.slice(0, -1);
  if (unit === undefined || !/^\d{1,8}$/.test(digits)) return undefined;
  return Number(digits) * unit;
}

/** The status of an error the proxy answers itself, by why it answers. */
export function grpcStatusFor(termination: Termination, httpStatus: number): number {
  switch (termination) {
    case 'timeout':
      return GrpcStatus.DEADLINE_EXCEEDED;
    case 'queue-full':
    case 'queue-timeout':
    case 'proxy-exhausted':
      return GrpcStatus.RESOURCE_EXHAUSTED;
    case 'denied':
      return httpStatus === 401 ? GrpcStatus.UNAUTHENTICATED : httpStatus === 403 ? GrpcStatus.PERMISSION_DENIED : GrpcStatus.RESOURCE_EXHAUSTED;
    case 'not-found':
      return GrpcStatus.UNIMPLEMENTED;
    case 'bad-request':
    case 'internal-error':
      return GrpcStatus.INTERNAL;
    default:
      // no-backend, upstream-failed, closed: the service is not reachable now; the client may retry.
      return GrpcStatus.UNAVAILABLE;
  }
}

/** The head of a trailers-only response carrying `status` (sent with END_STREAM). */
export function trailersOnly(status: number, message: string): Record<string, string | number> {
  return {
    ':status': 200,
    'content-type': 'application/grpc',
    'grpc-status': String(status),
    'grpc-message': encodeGrpcMessage(message),
  };
}

/** `grpc-message` is percent-encoded (spec: every byte outside 0x20–0x7E, and '%'). */
export function encodeGrpcMessage(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** A `grpc-status` header value as a number, or `undefined` when absent or not a code. */
export function readGrpcStatus(value: string | string[] | undefined): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || !/^\d{1,2}$/.test(text)) return undefined;
  return Number(text);
}
