/**
 * `grpcHealthProbe({ service })`: the gRPC health checking protocol as an active health check —
 * one unary `grpc.health.v1.Health/Check` call per probe, over HTTP/2 (h2c for `http://` and
 * `host:port` addresses, TLS with ALPN `h2` for `https://`).
 *
 * Source: https://github.com/grpc/grpc/blob/master/doc/health-checking.md, as Envoy's gRPC health
 * checker and Kubernetes' `grpc` probe use it. The backend is up iff the call ends with
 * `grpc-status: 0` and its `HealthCheckResponse.status` is `SERVING` (1); `NOT_SERVING`, `UNKNOWN`,
 * `SERVICE_UNKNOWN`, an `UNIMPLEMENTED` health service or any other failure is down, with the reason
 * in `detail`. `service` names the service checked (default `''`, the server as a whole).
 *
 * The two messages are one string field and one enum field; they are encoded and decoded here (a
 * dozen lines of protobuf wire format) rather than pulling a protobuf runtime into the package.
 * A probe opens its own connection and closes it: checks run every few seconds and must not share
 * fate (or flow-control windows) with the traffic they judge.
 */
import http2, { type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import type { Probe } from '@fulcrum/core';
import { InvalidOptionError } from '@fulcrum/core';
import { describeNetworkError, runCheck } from './address';
import { optionalTimerMs, optionsObject } from '@fulcrum/core/validate';

/** Options of `grpcHealthProbe()`. */
export interface GrpcHealthProbeOptions {
  /** The service name to check (`HealthCheckRequest.service`). Default `''`: the whole server. */
  service?: string;
  /** Give up after this many ms (also sent as `grpc-timeout`). Default: the checker's `timeoutMs` aborts it. */
  timeoutMs?: number;
  /** TLS for `https://` backends: `ca`, `rejectUnauthorized` (default true), `servername`. */
  tls?: { ca?: string | Buffer | readonly (string | Buffer)[]; rejectUnauthorized?: boolean; servername?: string };
  /** Extra request metadata (e.g. an auth token). Header names in lower case. */
  metadata?: Readonly<Record<string, string>>;
}

const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

/** `HealthCheckRequest { string service = 1; }` in a gRPC length-prefixed frame. */
export function encodeHealthCheckRequest(service: string): Buffer {
  const name = Buffer.from(service, 'utf8');
  const field = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a]), varint(name.length), name]);
  const frame = Buffer.alloc(5);
  frame.writeUInt32BE(field.length, 1);
  return Buffer.concat([frame, field]);
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80) {
    bytes.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  bytes.push(rest);
  return Buffer.from(bytes);
}

/**
 * `HealthCheckResponse.status` from a gRPC frame (1 = SERVING), 0 when the field is absent (proto3
 * default), or `undefined` when the bytes are not one uncompressed, well-formed message.
 */
export function decodeHealthCheckResponse(body: Buffer): number | undefined {
  if (body.length < 5 || body[0] !== 0) return undefined;
  const length = body.readUInt32BE(1);
  if (body.length !== 5 + length) return undefined;
  let status = 0;
  let i = 5;
  while (i < body.length) {
    const key = body[i++]!;
    const wireType = key & 7;
    if (wireType !== 0) {
      // Unknown length-delimited fields are skipped; other wire types are not in this message.
      if (wireType !== 2) return undefined;
      let length = 0;
      let shift = 0;
      for (;;) {
        if (i >= body.length || shift > 28) return undefined;
        const byte = body[i++]!;
        length |= (byte & 0x7f) << shift;
        if (byte < 0x80) break;
        shift += 7;
      }
      i += length;
      if (i > body.length) return undefined;
      continue;
    }
    let value = 0;
    let shift = 0;
    for (;;) {
      if (i >= body.length || shift > 28) return undefined;
      const byte = body[i++]!;
      value |= (byte & 0x7f) << shift;
      if (byte < 0x80) break;
      shift += 7;
    }
    if (key >> 3 === 1) status = value;
  }
  return status;
}

/**
 * A gRPC health check for `createLoadBalancer({ health: { probe } })`: `{ ok: true }` when the
 * backend answers SERVING for `service`; else `{ ok: false, detail }` (the serving status, the gRPC
 * status and message, or the network error's code). An aborted `signal` rejects with its reason.
 */
export function grpcHealthProbe(options?: GrpcHealthProbeOptions): Probe {
  const config = optionsObject('grpcHealthProbe', options, ['service', 'timeoutMs', 'tls', 'metadata']);
  const service = config.service ?? '';
  if (typeof service !== 'string')
    throw new InvalidOptionError('grpcHealthProbe.service', service, 'must be a string (a gRPC service name, or empty for the whole server)');
  const timeoutMs = optionalTimerMs('grpcHealthProbe.timeoutMs', config.timeoutMs, undefined);
  const tls = optionsObject('grpcHealthProbe.tls', config.tls, ['ca', 'rejectUnauthorized', 'servername']);
  if (tls.rejectUnauthorized !== undefined && typeof tls.rejectUnauthorized !== 'boolean') {
    throw new InvalidOptionError('grpcHealthProbe.tls.rejectUnauthorized', tls.rejectUnauthorized, 'must be true or false');
  }
  const metadata = optionsObject('grpcHealthProbe.metadata', config.metadata, Object.keys((config.metadata as object | undefined) ?? {}));
  for (const [name, value] of Object.entries(metadata)) {
    if (!/^[a-z0-9_.-]+$/.test(name) || name.startsWith('grpc-') || typeof value !== 'string' || /[\r\n\0]/.test(value)) {
      throw new InvalidOptionError(
        `grpcHealthProbe.metadata.${name}`,
        value,
        'must be a lower-case metadata name (not grpc-*) with a string value without CR, LF or NUL',
      );
    }
  }
  const request = encodeHealthCheckRequest(service);
  const tlsOptions = Object.freeze({ ...tls });
  const extra = Object.freeze({ ...(metadata as Record<string, string>) });

  return (backend, signal) =>
    runCheck(backend.address, signal, timeoutMs, (target, finish) => {
      const secure = target.protocol === 'https:';
      const origin = `${secure ? 'https' : 'http'}://${target.hostHeader}`;
      const session: ClientHttp2Session = http2.connect(origin, secure ? { ...tlsOptions } : {});
      const fail = (detail: string): void => finish({ ok: false, detail });
      session.on('error', (error: NodeJS.ErrnoException) => fail(`connect failed: ${describeNetworkError(error, target)}`));
      const headers: Record<string, string> = {
        ...extra,
        ':method': 'POST',
        ':path': '/grpc.health.v1.Health/Check',
        'content-type': 'application/grpc',
        te: 'trailers',
      };
      if (timeoutMs !== undefined) headers['grpc-timeout'] = `${Math.max(1, Math.ceil(timeoutMs))}m`;
      const stream = session.request(headers);
      const chunks: Buffer[] = [];
      let size = 0;
      let head: IncomingHttpHeaders | undefined;
      stream.on('response', (h) => {
        head = h;
      });
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        // A health answer is a few bytes; a backend sending more is not answering this protocol.
        if (size > 1024) return fail('health answer too large');
        chunks.push(chunk);
      });
      stream.on('error', (error: NodeJS.ErrnoException) => fail(`stream failed: ${describeNetworkError(error, target)}`));
      const settleWith = (trailers: IncomingHttpHeaders): void => {
        const httpStatus = Number(head?.[':status']);
        if (httpStatus !== 200) return fail(`HTTP status ${httpStatus}`);
        const grpcStatus = trailers['grpc-status'] ?? head?.['grpc-status'];
        if (grpcStatus !== '0') {
          const message = String(trailers['grpc-message'] ?? head?.['grpc-message'] ?? '').slice(0, 120);
          return fail(`grpc-status ${String(grpcStatus)}${message === '' ? '' : `: ${message}`}`);
        }
        const status = decodeHealthCheckResponse(Buffer.concat(chunks));
        if (status === undefined) return fail('malformed HealthCheckResponse');
        if (status === 1) finish({ ok: true, detail: 'SERVING' });
        else fail(SERVING_STATUS[status] ?? `status ${status}`);
      };
      let trailers: IncomingHttpHeaders | undefined;
      stream.on('trailers', (t) => {
        trailers = t;
      });
      stream.on('end', () => settleWith(trailers ?? {}));
      stream.on('close', () => fail('stream closed without an answer'));
      stream.end(request);
      return {
        destroy: () => {
          stream.close();
          session.destroy();
        },
      };
    });
}
