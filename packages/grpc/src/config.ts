/**
 * The `fulcrum` policy's configuration, as it appears in a gRPC service config:
 *
 *   { "loadBalancingConfig": [{ "fulcrum": { "algorithm": "peak-ewma", "outlier": {} } }] }
 *
 * Validated once, when grpc-js parses the service config, into a frozen, fully defaulted object;
 * the picker never re-checks it. Every error is an `InvalidOptionError` naming the field path from
 * the policy's object (`fulcrum.outlier.baseEjectionMs`), the value and what is allowed. grpc-js
 * itself swallows a policy's parse error and moves on to the next entry of `loadBalancingConfig`
 * (logging it only at debug level), so `fulcrumServiceConfig()` runs the same validation up front,
 * where a mistake throws at the caller.
 *
 * The service config is JSON, so only JSON-expressible options are here: no functions (the
 * outlier detector's `isFailure` is replaced by `failureStatuses`), no clock or random source.
 */
import { createBalancer, hasBalancer, InvalidOptionError } from '@fulcrum/core';
import { isPlainObject, normalizeOutlierOptions, normalizePanicThreshold, normalizeSlowStartOptions } from '@fulcrum/core/validate';
import type { BalancerOptions, OutlierOptions, SlowStartOptions } from '@fulcrum/core';
import { DEFAULT_FAILURE_STATUSES, GRPC_STATUS } from './status';
import type { GrpcStatusName } from './status';

/** The name the policy registers under, and the key of its entry in `loadBalancingConfig`. */
export const POLICY_NAME = 'fulcrum';

/** Options of the `fulcrum` policy: the value of `{ fulcrum: … }` in `loadBalancingConfig`. */
export interface FulcrumPolicyOptions {
  /**
   * The balancing algorithm, a built-in or registered name of `@fulcrum/core` (`'p2c'`,
   * `'peak-ewma'`, `'round-robin'`, `'least-connections'`, `'maglev'`, `'ring-hash'`,
   * `'rendezvous'`, …). Default `'p2c'`, as in `createLoadBalancer`.
   */
  algorithm?: string;
  /**
   * Options of the balancer (`tableSize` for Maglev, `minRingSize`/`maxRingSize` for the ring hash,
   * `defaultRttMs`/`decayMs` for peak-EWMA, `inner`/`factor` for bounded load). Default none.
   */
  algorithmOptions?: Omit<BalancerOptions, 'random' | 'clock'>;
  /**
   * Hash calls by the value of this metadata key (lowercase ASCII, not binary `-bin`), for the
   * hashing algorithms: calls with the same value go to the same backend, on every client that sees
   * the same addresses. A call without the key is balanced as if unhashed. Required by
   * `'maglev'`, `'ring-hash'`, `'rendezvous'` and `'bounded-load'`; refused by the others.
   */
  hashKey?: { metadata: string };
  /** Passive outlier ejection (Envoy's outlier detection), without `isFailure`. Default off; `{}` for Envoy's defaults. */
  outlier?: Omit<OutlierOptions, 'isFailure'>;
  /** Ramp the weight of a backend that (re)connects over `windowMs`. Default off. */
  slowStart?: SlowStartOptions;
  /** As in `createLoadBalancer`: 0..1, default 0.5; 0 disables panic. */
  panicThreshold?: number;
  /** Decay time of each backend's latency average, in ms. Default 10000. */
  latencyDecayMs?: number;
  /**
   * Statuses that count against the backend that answered, by name or number. Default
   * `['UNAVAILABLE', 'INTERNAL', 'UNKNOWN']`. `CANCELLED` can not be listed (the client cancelled).
   */
  failureStatuses?: readonly (GrpcStatusName | number)[];
  /**
   * Health from the backends' `grpc.health.v1.Health/Watch` stream for `serviceName` (`''` is the
   * whole server): a backend is balanced to only while its watch says `SERVING`; a server that
   * does not implement the health service (`UNIMPLEMENTED`) counts as serving. Default off.
   */
  healthCheck?: { serviceName: string };
  /** A name for stats, logs and the `onLoadBalancer` hook (the load balancer's `name`). Default `'grpc'`. */
  name?: string;
}

/** `FulcrumPolicyOptions` validated, with every default applied. */
export interface NormalizedFulcrumPolicyOptions {
  readonly algorithm: string;
  readonly algorithmOptions: Readonly<Omit<BalancerOptions, 'random' | 'clock'>>;
  readonly hashKey: { readonly metadata: string } | undefined;
  readonly outlier: Readonly<Omit<OutlierOptions, 'isFailure'>> | undefined;
  readonly slowStart: Readonly<SlowStartOptions> | undefined;
  readonly panicThreshold: number;
  readonly latencyDecayMs: number;
  /** Bit n set when status code n is a failure. */
  readonly failureMask: number;
  readonly failureStatuses: readonly number[];
  readonly healthCheck: { readonly serviceName: string } | undefined;
  readonly name: string;
}

const KNOWN_KEYS = [
  'algorithm',
  'algorithmOptions',
  'hashKey',
  'outlier',
  'slowStart',
  'panicThreshold',
  'latencyDecayMs',
  'failureStatuses',
  'healthCheck',
  'name',
] as const;

const ALGORITHM_OPTION_KEYS = ['tableSize', 'minRingSize', 'maxRingSize', 'defaultRttMs', 'decayMs', 'inner', 'factor'] as const;
const HASHING = new Set(['maglev', 'ring-hash', 'rendezvous', 'bounded-load']);
// Built-ins that ignore a key: a hashKey with them is a mistake. A registered balancer may use one.
const UNHASHED = new Set(['p2c', 'peak-ewma', 'round-robin', 'weighted-round-robin', 'least-connections', 'random', 'first']);
// Metadata keys as HTTP/2 carries them: lowercase token characters. `-bin` keys hold bytes, not text.
const METADATA_KEY = /^[0-9a-z_.-]{1,256}$/;
const NAME = /^[\x21-\x7e]{1,128}$/;

/**
 * Validate the policy's options (the object under `fulcrum`). Throws `InvalidOptionError` whose
 * path starts with `path` (default `'fulcrum'`).
 */
export function normalizeFulcrumPolicyOptions(value: unknown, path = POLICY_NAME): NormalizedFulcrumPolicyOptions {
  if (value === undefined || value === null) value = {};
  if (!isPlainObject(value)) throw new InvalidOptionError(path, value, 'must be an object');
  for (const key of Object.keys(value)) {
    if (!(KNOWN_KEYS as readonly string[]).includes(key)) {
      throw new InvalidOptionError(`${path}.${key}`, value[key], `is not an option (known: ${KNOWN_KEYS.join(', ')})`);
    }
  }

  const algorithm = value.algorithm ?? 'p2c';
  if (typeof algorithm !== 'string' || !hasBalancer(algorithm)) {
    throw new InvalidOptionError(
      `${path}.algorithm`,
      algorithm,
      'must be the name of a built-in or registered balancer (p2c, peak-ewma, round-robin, least-connections, maglev, ring-hash, rendezvous, …)',
    );
  }

  const algorithmOptions = value.algorithmOptions ?? {};
  if (!isPlainObject(algorithmOptions)) throw new InvalidOptionError(`${path}.algorithmOptions`, algorithmOptions, 'must be an object');
  for (const key of Object.keys(algorithmOptions)) {
    if (!(ALGORITHM_OPTION_KEYS as readonly string[]).includes(key)) {
      throw new InvalidOptionError(`${path}.algorithmOptions.${key}`, algorithmOptions[key], `is not an option (known: ${ALGORITHM_OPTION_KEYS.join(', ')})`);
    }
  }
  // The balancer validates its own options; building one here reports a mistake at parse time.
  try {
    createBalancer(algorithm, { ...algorithmOptions });
  } catch (error) {
    if (error instanceof InvalidOptionError) {
      throw new InvalidOptionError(`${path}.algorithmOptions.${error.path}`, error.value, error.expected, { cause: error });
    }
    throw error;
  }

  let hashKey: NormalizedFulcrumPolicyOptions['hashKey'];
  if (value.hashKey !== undefined) {
    const raw = value.hashKey;
    if (!isPlainObject(raw)) throw new InvalidOptionError(`${path}.hashKey`, raw, "must be an object like { metadata: 'x-user-id' }");
    for (const key of Object.keys(raw)) {
      if (key !== 'metadata') throw new InvalidOptionError(`${path}.hashKey.${key}`, raw[key], 'is not an option (known: metadata)');
    }
    const metadata = raw.metadata;
    if (typeof metadata !== 'string' || !METADATA_KEY.test(metadata) || metadata.endsWith('-bin') || metadata.startsWith('grpc-')) {
      throw new InvalidOptionError(
        `${path}.hashKey.metadata`,
        metadata,
        "must be a lowercase ASCII metadata key (0-9 a-z _ . -), not a binary '-bin' key or a reserved 'grpc-' one",
      );
    }
    hashKey = Object.freeze({ metadata });
  }
  const hashing = HASHING.has(algorithm);
  if (hashing && hashKey === undefined) {
    throw new InvalidOptionError(`${path}.hashKey`, undefined, `is required by the hashing algorithm '${algorithm}' (e.g. { metadata: 'x-user-id' })`);
  }
  if (hashKey !== undefined && UNHASHED.has(algorithm)) {
    throw new InvalidOptionError(
      `${path}.hashKey`,
      hashKey,
      `is used only by hashing algorithms (maglev, ring-hash, rendezvous, bounded-load), not by '${algorithm}'`,
    );
  }

  let outlier: NormalizedFulcrumPolicyOptions['outlier'];
  if (value.outlier !== undefined) {
    if (isPlainObject(value.outlier) && 'isFailure' in value.outlier) {
      throw new InvalidOptionError(
        `${path}.outlier.isFailure`,
        value.outlier.isFailure,
        'is not an option here: list the statuses that count as failures in failureStatuses',
      );
    }
    normalizeOutlierOptions(value.outlier, `${path}.outlier`);
    outlier = Object.freeze({ ...(value.outlier as object) });
  }

  let slowStart: NormalizedFulcrumPolicyOptions['slowStart'];
  if (value.slowStart !== undefined) {
    normalizeSlowStartOptions(value.slowStart, `${path}.slowStart`);
    slowStart = Object.freeze({ ...(value.slowStart as SlowStartOptions) });
  }

  const panicThreshold = normalizePanicThreshold(value.panicThreshold, `${path}.panicThreshold`);

  const latencyDecayMs = value.latencyDecayMs ?? 10_000;
  if (typeof latencyDecayMs !== 'number' || !Number.isFinite(latencyDecayMs) || latencyDecayMs <= 0) {
    throw new InvalidOptionError(`${path}.latencyDecayMs`, latencyDecayMs, 'must be a finite number of ms > 0');
  }

  const rawStatuses = value.failureStatuses ?? DEFAULT_FAILURE_STATUSES;
  if (!Array.isArray(rawStatuses)) {
    throw new InvalidOptionError(`${path}.failureStatuses`, rawStatuses, "must be an array of gRPC status names or codes, like ['UNAVAILABLE', 'INTERNAL']");
  }
  let failureMask = 0;
  const failureStatuses: number[] = [];
  rawStatuses.forEach((status: unknown, i: number) => {
    const code = typeof status === 'string' ? (GRPC_STATUS as Record<string, number>)[status] : status;
    if (typeof code !== 'number' || !Number.isInteger(code) || code < 1 || code > 16 || code === GRPC_STATUS.CANCELLED) {
      throw new InvalidOptionError(
        `${path}.failureStatuses[${i}]`,
        status,
        'must be a gRPC status name or code other than OK and CANCELLED (e.g. UNAVAILABLE or 14)',
      );
    }
    if ((failureMask & (1 << code)) === 0) failureStatuses.push(code);
    failureMask |= 1 << code;
  });

  let healthCheck: NormalizedFulcrumPolicyOptions['healthCheck'];
  if (value.healthCheck !== undefined) {
    const raw = value.healthCheck;
    if (!isPlainObject(raw)) throw new InvalidOptionError(`${path}.healthCheck`, raw, "must be an object like { serviceName: '' }");
    for (const key of Object.keys(raw)) {
      if (key !== 'serviceName') throw new InvalidOptionError(`${path}.healthCheck.${key}`, raw[key], 'is not an option (known: serviceName)');
    }
    const serviceName = raw.serviceName ?? '';
    if (typeof serviceName !== 'string' || serviceName.length > 1024) {
      throw new InvalidOptionError(`${path}.healthCheck.serviceName`, serviceName, "must be a string of at most 1024 characters ('' for the whole server)");
    }
    healthCheck = Object.freeze({ serviceName });
  }

  const name = value.name ?? 'grpc';
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new InvalidOptionError(`${path}.name`, name, 'must be 1 to 128 printable ASCII characters');
  }

  return Object.freeze({
    algorithm,
    algorithmOptions: Object.freeze({ ...(algorithmOptions as Omit<BalancerOptions, 'random' | 'clock'>) }),
    hashKey,
    outlier,
    slowStart,
    panicThreshold,
    latencyDecayMs,
    failureMask,
    failureStatuses: Object.freeze(failureStatuses),
    healthCheck,
    name,
  });
}

/**
 * A service config that selects the `fulcrum` policy, for the channel option
 * `grpc.service_config` (as a JSON string) or a resolver. Validates `options` first and throws
 * `InvalidOptionError` on a mistake that grpc-js would otherwise skip silently.
 *
 *   new Client(target, credentials, { 'grpc.service_config': JSON.stringify(fulcrumServiceConfig({ algorithm: 'peak-ewma' })) })
 */
export function fulcrumServiceConfig(options: FulcrumPolicyOptions = {}): { loadBalancingConfig: [{ fulcrum: FulcrumPolicyOptions }] } {
  normalizeFulcrumPolicyOptions(options);
  return { loadBalancingConfig: [{ [POLICY_NAME]: options } as { fulcrum: FulcrumPolicyOptions }] };
}
