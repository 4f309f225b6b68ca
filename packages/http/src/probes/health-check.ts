/**
 * Health checks configured the way the `fulcrum` config file does it: `health: { path: '/healthz',
 * intervalMs: 2000 }` in a load balancer's options, with no probe function to write. Core's
 * `HealthOptions` needs a `probe` (core does no I/O); this builds `httpProbe(…)` (or `tcpProbe()` for
 * `type: 'tcp'`) from the probe's options written beside the checker's, so the library and the CLI
 * take the same object. Options with a `probe` pass through untouched.
 */
import { InvalidOptionError, type HealthOptions, type LoadBalancerOptions } from '@fulcrum/core';
import { isPlainObject } from '@fulcrum/core/validate';
import { httpProbe, type ExpectStatus, type HttpProbeTlsOptions } from './http-probe';
import { tcpProbe } from './tcp-probe';

/** Active health checks without a probe function: core's `HealthOptions` minus `probe`, plus the probe's options. */
export interface HealthCheckOptions extends Omit<HealthOptions, 'probe'> {
  /** `'http'` (default): `httpProbe` with the options below; `'tcp'`: `tcpProbe()` (a connect), which takes none of them. */
  type?: 'http' | 'tcp';
  /** Path (and query) to request. Default `'/'` (HAProxy's and nginx's); point it at `healthEndpoint()`'s path. */
  path?: string;
  /** Default `'GET'`. */
  method?: 'GET' | 'HEAD';
  /** Statuses that pass. Default 200–399. */
  expectStatus?: ExpectStatus;
  /** Extra request headers. */
  headers?: Readonly<Record<string, string>>;
  /** Host header (and TLS server name). Default: the backend address's `host[:port]`. */
  host?: string;
  /** Response header with HAProxy agent words; `false` ignores it. Default `'x-fulcrum-agent'`. */
  agentHeader?: string | false;
  /** TLS settings for `https://` backends. */
  tls?: HttpProbeTlsOptions;
}

/** `createLoadBalancer`'s options, where `health` may also be a `HealthCheckOptions` (the proxy builds the probe). */
export interface ProxyBalancerOptions extends Omit<LoadBalancerOptions, 'health'> {
  health?: HealthOptions | HealthCheckOptions;
}

const CORE_KEYS = ['rise', 'fall', 'intervalMs', 'fastIntervalMs', 'downIntervalMs', 'timeoutMs', 'jitter', 'initialState'];
const PROBE_KEYS = ['path', 'method', 'expectStatus', 'headers', 'host', 'agentHeader', 'tls'];

/**
 * Core's `HealthOptions` for `health`: unchanged when it has a `probe` (or is absent), else the probe
 * built from its options. `path` names the option in errors (`'balancer.health'`).
 */
export function resolveHealth(path: string, health: unknown): HealthOptions | undefined {
  if (health === undefined) return undefined;
  if (!isPlainObject(health)) throw new InvalidOptionError(path, health, "must be an object like { path: '/healthz', intervalMs: 2000 }");
  if (health.probe !== undefined) return health as unknown as HealthOptions;
  const type = health.type ?? 'http';
  if (type !== 'http' && type !== 'tcp') throw new InvalidOptionError(`${path}.type`, type, "must be 'http' or 'tcp'");
  const checker: Record<string, unknown> = {};
  const probe: Record<string, unknown> = {};
  for (const key of Object.keys(health)) {
    if (key === 'type') continue;
    if (CORE_KEYS.includes(key)) checker[key] = health[key];
    else if (PROBE_KEYS.includes(key)) {
      if (type === 'tcp') throw new InvalidOptionError(`${path}.${key}`, health[key], "is an HTTP check option (this check has type: 'tcp')");
      probe[key] = health[key];
    } else {
      throw new InvalidOptionError(`${path}.${key}`, health[key], `is not a health option (known: probe, type, ${[...CORE_KEYS, ...PROBE_KEYS].join(', ')})`);
    }
  }
  let built;
  try {
    built = type === 'tcp' ? tcpProbe() : httpProbe(probe);
  } catch (error) {
    // `httpProbe.path` → `balancer.health.path`: the option as the user wrote it.
    if (!(error instanceof InvalidOptionError)) throw error;
    throw new InvalidOptionError(`${path}.${error.path.replace(/^httpProbe\.?/, '')}`, error.value, error.expected, { cause: error });
  }
  return { ...checker, probe: built } as HealthOptions;
}

/** Load balancer options with `health` resolved to core's form. */
export function resolveBalancerOptions(path: string, options: Record<string, unknown>): LoadBalancerOptions {
  if (options.health === undefined || (isPlainObject(options.health) && options.health.probe !== undefined)) return options as unknown as LoadBalancerOptions;
  return { ...options, health: resolveHealth(path === '' ? 'health' : `${path}.health`, options.health) } as unknown as LoadBalancerOptions;
}
