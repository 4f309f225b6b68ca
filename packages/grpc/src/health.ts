/**
 * The gRPC health checking protocol (`grpc.health.v1.Health`, grpc/doc/health-checking.md), both
 * ends, without a protobuf runtime: its two messages have one field each, so they are encoded by
 * hand (field 1, a length-delimited string in the request; field 1, a varint enum in the response).
 * Unknown fields are skipped as the protobuf wire format requires, so a newer server's additions do
 * not break the client.
 *
 * - Client: `HealthWatchedSubchannel` wraps a grpc-js subchannel and reports it unhealthy until its
 *   `Watch` stream says `SERVING` — the wrapper-around-a-subchannel design of grpc-js's own client
 *   health checks, which pick_first (and so each of the policy's children) already obeys. As the
 *   protocol specifies, `UNIMPLEMENTED` means the server has no health service and counts as
 *   healthy; any other end of the stream is retried with exponential backoff (1 s doubling to 30 s,
 *   reset by a received message), the last known status standing meanwhile.
 * - Server: `createHealthService()` for backends (and the tests): `Check` and `Watch`, with
 *   `setStatus(service, status)` pushing to every watcher.
 */
import { Client, Metadata, experimental, status as grpcStatus } from '@grpc/grpc-js';
import type {
  ServerWritableStream,
  ServiceDefinition,
  sendUnaryData,
  ServerUnaryCall,
  UntypedServiceImplementation,
  ClientReadableStream,
} from '@grpc/grpc-js';
import { InvalidOptionError } from '@fulcrum/core';

/** `grpc.health.v1.HealthCheckResponse.ServingStatus`. */
export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';
const SERVING_STATUSES: readonly ServingStatus[] = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];

export const HEALTH_WATCH_PATH = '/grpc.health.v1.Health/Watch';
export const HEALTH_CHECK_PATH = '/grpc.health.v1.Health/Check';

// ─── wire format ──────────────────────────────────────────────────────────────────────────────

function writeVarint(out: number[], value: number): void {
  while (value > 0x7f) {
    out.push((value & 0x7f) | 0x80);
    value >>>= 7;
  }
  out.push(value);
}

/** Reads a varint at `pos`; returns [value, next position]. Values past 2³² are not needed here. */
function readVarint(buf: Uint8Array, pos: number): [number, number] {
  let value = 0;
  let shift = 0;
  for (let i = 0; i < 10; i++) {
    if (pos >= buf.length) throw new Error('truncated varint');
    const byte = buf[pos++]!;
    if (shift < 32) value += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return [value, pos];
    shift += 7;
  }
  throw new Error('varint longer than 10 bytes');
}

/** Calls `onField(field, wireType, value | bytes)` for each field; throws on a malformed message. */
function readFields(buf: Uint8Array, onField: (field: number, wireType: number, varint: number, bytes: Uint8Array | undefined) => void): void {
  let pos = 0;
  while (pos < buf.length) {
    let tag: number;
    [tag, pos] = readVarint(buf, pos);
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (field === 0) throw new Error('field number 0');
    if (wireType === 0) {
      let v: number;
      [v, pos] = readVarint(buf, pos);
      onField(field, 0, v, undefined);
    } else if (wireType === 2) {
      let length: number;
      [length, pos] = readVarint(buf, pos);
      if (pos + length > buf.length) throw new Error('truncated length-delimited field');
      onField(field, 2, 0, buf.subarray(pos, pos + length));
      pos += length;
    } else if (wireType === 1 || wireType === 5) {
      pos += wireType === 1 ? 8 : 4;
      if (pos > buf.length) throw new Error('truncated fixed field');
    } else {
      throw new Error(`unsupported wire type ${wireType}`);
    }
  }
}

/** `HealthCheckRequest { string service = 1; }` */
export interface HealthCheckRequest {
  service: string;
}

/** `HealthCheckResponse { ServingStatus status = 1; }` */
export interface HealthCheckResponse {
  status: ServingStatus;
}

// Messages are objects, not bare values: grpc-js's server takes a falsy request (the empty service
// name as a string) for a missing one and fails the call.
export function encodeHealthCheckRequest(request: HealthCheckRequest): Buffer {
  const bytes = Buffer.from(request.service, 'utf8');
  if (bytes.length === 0) return Buffer.alloc(0);
  const head: number[] = [0x0a];
  writeVarint(head, bytes.length);
  return Buffer.concat([Buffer.from(head), bytes]);
}

export function decodeHealthCheckRequest(buf: Uint8Array): HealthCheckRequest {
  let service = '';
  readFields(buf, (field, wireType, _v, bytes) => {
    if (field === 1 && wireType === 2) service = Buffer.from(bytes!).toString('utf8');
  });
  return { service };
}

export function encodeHealthCheckResponse(response: HealthCheckResponse): Buffer {
  const code = SERVING_STATUSES.indexOf(response.status);
  // proto3 omits a field at its default (0, UNKNOWN).
  return code === 0 ? Buffer.alloc(0) : Buffer.from([0x08, code]);
}

export function decodeHealthCheckResponse(buf: Uint8Array): HealthCheckResponse {
  let code = 0;
  readFields(buf, (field, wireType, v) => {
    if (field === 1 && wireType === 0) code = v;
  });
  // An enum value this version does not know is treated as UNKNOWN (not serving).
  return { status: SERVING_STATUSES[code] ?? 'UNKNOWN' };
}

// ─── client: a subchannel whose health is its Watch stream ──────────────────────────────────────

const INITIAL_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 30_000;

/** A grpc-js subchannel reported healthy only while `grpc.health.v1.Health/Watch` says SERVING. */
export class HealthWatchedSubchannel extends experimental.BaseSubchannelWrapper {
  readonly #serviceName: string;
  readonly #onStatus: (status: ServingStatus | 'UNIMPLEMENTED') => void;
  #call: ClientReadableStream<HealthCheckResponse> | undefined;
  #client: Client | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #backoffMs = INITIAL_BACKOFF_MS;
  #destroyed = false;
  readonly #onConnectivity: experimental.ConnectivityStateListener;

  constructor(child: experimental.SubchannelInterface, serviceName: string, onStatus: (status: ServingStatus | 'UNIMPLEMENTED') => void = () => {}) {
    super(child);
    this.#serviceName = serviceName;
    this.#onStatus = onStatus;
    // Not healthy until the server says so (the protocol's rule for a new connection).
    this.setHealthy(false);
    this.#onConnectivity = (_subchannel, _previous, next) => {
      if (next === READY) this.#startWatch();
      else this.#stopWatch(true);
    };
    child.addConnectivityStateListener(this.#onConnectivity);
    if (child.getConnectivityState() === READY) this.#startWatch();
  }

  #startWatch(): void {
    if (this.#destroyed || this.#call !== undefined) return;
    if (this.#retryTimer !== undefined) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    }
    this.#client ??= new Client('fulcrum-health', null as never, { channelOverride: this.child.getChannel() });
    const call = this.#client.makeServerStreamRequest<HealthCheckRequest, HealthCheckResponse>(
      HEALTH_WATCH_PATH,
      encodeHealthCheckRequest,
      decodeHealthCheckResponse,
      { service: this.#serviceName },
      new Metadata(),
      {},
    );
    this.#call = call;
    call.on('data', ({ status }: HealthCheckResponse) => {
      if (this.#call !== call) return;
      this.#backoffMs = INITIAL_BACKOFF_MS;
      this.setHealthy(status === 'SERVING');
      this.#onStatus(status);
    });
    call.on('error', (error: { code?: number }) => {
      if (this.#call !== call) return;
      this.#call = undefined;
      if (error.code === grpcStatus.UNIMPLEMENTED) {
        // No health service on this server: it is healthy as long as it is connected.
        this.setHealthy(true);
        this.#onStatus('UNIMPLEMENTED');
        return;
      }
      this.#scheduleRetry();
    });
    call.on('end', () => {
      if (this.#call !== call) return;
      this.#call = undefined;
      this.#scheduleRetry();
    });
  }

  #scheduleRetry(): void {
    if (this.#destroyed || this.#retryTimer !== undefined || this.child.getConnectivityState() !== READY) return;
    const delay = this.#backoffMs;
    this.#backoffMs = Math.min(this.#backoffMs * 2, MAX_BACKOFF_MS);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.child.getConnectivityState() === READY) this.#startWatch();
    }, delay);
    this.#retryTimer.unref?.();
  }

  #stopWatch(markUnhealthy: boolean): void {
    const call = this.#call;
    this.#call = undefined;
    call?.cancel();
    if (this.#retryTimer !== undefined) {
      clearTimeout(this.#retryTimer);
      this.#retryTimer = undefined;
    }
    this.#backoffMs = INITIAL_BACKOFF_MS;
    if (markUnhealthy) this.setHealthy(false);
  }

  protected override destroy(): void {
    this.#destroyed = true;
    this.child.removeConnectivityStateListener(this.#onConnectivity);
    this.#stopWatch(false);
    super.destroy();
  }
}

const READY = 2; // ConnectivityState.READY

// ─── server ───────────────────────────────────────────────────────────────────────────────────

export interface HealthService {
  /** Add to a server: `server.addService(health.definition, health.implementation)`. */
  readonly definition: ServiceDefinition;
  readonly implementation: UntypedServiceImplementation;
  /** Set a service's status (`''` is the whole server) and tell every watcher of it. */
  setStatus(service: string, status: ServingStatus): void;
  /** End every Watch stream (e.g. before `server.tryShutdown`, which waits for open calls). */
  close(): void;
}

/**
 * A `grpc.health.v1.Health` service for a grpc-js server. `statuses` sets the initial statuses
 * (default `{ '': 'SERVING' }`); a service never set is `SERVICE_UNKNOWN` (Watch) or `NOT_FOUND` (Check).
 */
export function createHealthService(statuses: Readonly<Record<string, ServingStatus>> = { '': 'SERVING' }): HealthService {
  const current = new Map<string, ServingStatus>();
  const watchers = new Map<string, Set<ServerWritableStream<HealthCheckRequest, HealthCheckResponse>>>();
  const check = (service: string, status: unknown, path: string): ServingStatus => {
    if (typeof service !== 'string') throw new InvalidOptionError(`${path}.service`, service, 'must be a string');
    if (typeof status !== 'string' || !SERVING_STATUSES.includes(status as ServingStatus)) {
      throw new InvalidOptionError(path, status, `must be one of ${SERVING_STATUSES.join(', ')}`);
    }
    return status as ServingStatus;
  };
  for (const [service, status] of Object.entries(statuses)) current.set(service, check(service, status, `statuses[${JSON.stringify(service)}]`));

  const definition: ServiceDefinition = {
    Check: {
      path: HEALTH_CHECK_PATH,
      requestStream: false,
      responseStream: false,
      requestSerialize: encodeHealthCheckRequest,
      requestDeserialize: (b: Buffer) => decodeHealthCheckRequest(b),
      responseSerialize: encodeHealthCheckResponse,
      responseDeserialize: (b: Buffer) => decodeHealthCheckResponse(b),
    },
    Watch: {
      path: HEALTH_WATCH_PATH,
      requestStream: false,
      responseStream: true,
      requestSerialize: encodeHealthCheckRequest,
      requestDeserialize: (b: Buffer) => decodeHealthCheckRequest(b),
      responseSerialize: encodeHealthCheckResponse,
      responseDeserialize: (b: Buffer) => decodeHealthCheckResponse(b),
    },
  };
  const implementation: UntypedServiceImplementation = {
    Check(call: ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback: sendUnaryData<HealthCheckResponse>) {
      const status = current.get(call.request.service);
      if (status === undefined) callback({ code: grpcStatus.NOT_FOUND, details: 'unknown service' });
      else callback(null, { status });
    },
    Watch(call: ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) {
      const service = call.request.service;
      let set = watchers.get(service);
      if (set === undefined) watchers.set(service, (set = new Set()));
      set.add(call);
      call.on('cancelled', () => set!.delete(call));
      call.write({ status: current.get(service) ?? 'SERVICE_UNKNOWN' });
    },
  };
  return {
    definition,
    implementation,
    setStatus(service, status) {
      check(service, status, 'status');
      current.set(service, status);
      for (const call of watchers.get(service) ?? []) call.write({ status });
    },
    close() {
      for (const set of watchers.values()) {
        for (const call of set) call.end();
        set.clear();
      }
    },
  };
}
