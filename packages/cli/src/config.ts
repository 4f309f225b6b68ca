/**
 * The config file of `fulcrum --config`: its types, `$env:NAME` substitution, and validation into a
 * frozen, fully defaulted `FulcrumConfig` the runner only reads.
 *
 * Keys mirror the API's option names (design §3): a pool holds `createLoadBalancer` options
 * (`algorithm`, `health`, `outlier`, `slowStart`, `panicThreshold`) plus the per-pool `createProxy`
 * options (`stickiness`, `hashBy`, `attempts`, `timeouts`, …); `routes` and `split` are
 * `createRouter`'s. Validation runs the SAME normalizers the API runs and prefixes their paths, so a
 * message reads `pools.api.backends[2].weight: must be 0 or a finite number ≥ 0.01 and ≤ 1000000 (…),
 * got "x"` whichever layer found it, and a file that passes `fulcrum --check` is one the API accepts. Unknown keys are refused
 * at every level (a typo such as `healh` must not silently disable health checks), as HAProxy and
 * Envoy refuse unknown directives. `$schema` is allowed at the top for editors.
 *
 * TLS frontends are checked by building them with `createTlsContext` (the runner's own TLS code), so
 * a key that does not match its certificate fails `fulcrum --check` and a reload, not the first
 * handshake; a `redirectToHttps` frontend is checked by `redirectToHttps` itself (nginx's
 * `return 301 https://…` server block) and may not also terminate TLS.
 *
 * Secrets stay out of the file: any string that is exactly `"$env:NAME"` is replaced by the
 * environment variable NAME (consul-template and Docker secrets set those); a missing one is an error
 * naming the path, never an empty secret.
 *
 * Defaults and why: frontends listen on all interfaces (a proxy is meant to be reached), the admin
 * API on 127.0.0.1 (HAProxy's runtime API is a local socket for the same reason); access logs off
 * unless asked (a busy proxy writes gigabytes); the stats page and metrics on the admin listener or
 * their own (127.0.0.1), never on a frontend that has not opted in (they show every backend's
 * address: HAProxy's `stats uri` on a public bind is a classic leak); shutdown grace 10 s (Kubernetes gives 30 s before
 * SIGKILL, leaving room for the endpoint removal to propagate); server `headersTimeoutMs` 20 s and
 * `requestTimeoutMs` 300 s against slowloris-style clients, `keepAliveTimeoutMs` 5 s (Node's).
 */
import { isIP } from 'node:net';
import { hostname } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import {
  ALGORITHM_NAMES,
  InvalidOptionError,
  NODE_ID_PATTERN,
  hasBalancer,
  BACKEND_ID_PATTERN,
  isInvalidOptionError,
  type BackendSpec,
  type HealthOptions,
  type LoadBalancerOptions,
  type OutlierOptions,
  type SlowStartOptions,
} from '@fulcrum/core';
import {
  MAX_TIMER_MS,
  describeBounds,
  isPlainObject,
  normalizeBackendSpecs,
  optionalInteger,
  optionsObject,
  normalizeHealthOptions,
  normalizeOutlierOptions,
  normalizePanicThreshold,
  normalizeSlowStartOptions,
} from '@fulcrum/core/validate';
import {
  Stickiness,
  TrustedProxies,
  compileHashBy,
  createTlsContext,
  httpProbe,
  normalizeHttp2Options,
  normalizeProxyOptions,
  normalizeRateLimitOptions,
  normalizeRouterOptions,
  redirectToHttps,
  tcpProbe,
  type HashBy,
  type Http2Options,
  type NormalizedRateLimitOptions,
  type ProxyOptions,
  type RateLimitOptions,
  type RedirectToHttpsOptions,
  type RouteSpec,
  type SplitOptions,
  type StickinessOptions,
} from '@fulcrum/http';
import { ConfigPathError, MAX_CONFIG_FILE_BYTES, checkAppendable, checkAppendableSync, readConfigFile, readConfigFileSync } from './files';

// ─── The file's shape ─────────────────────────────────────────────────────────────────────────────

/** A listening port. */
export interface FrontendConfig {
  /** TCP port, 1–65535 (0 = any free port; for tests). Required. */
  port: number;
  /** Interface to bind. Default `'0.0.0.0'` (every IPv4 interface; `'::'` for IPv6 too). */
  host?: string;
  /**
   * Terminate TLS here: SNI picks a certificate by the names it was issued for (the first is the
   * default). The files are re-read, checked and swapped on every reload.
   */
  tls?: { certs: readonly { cert: string; key: string }[] };
  /**
   * What serves it: `'raw'` (default) is `createProxyServer`'s engine — Fulcrum's own HTTP/1.1
   * parser and backend pools, less CPU per request; `'node'` is `createProxy` on a
   * `node:http` server with undici. A `redirectToHttps` frontend is always served by `node:http`.
   * Changing it takes effect at the next restart.
   */
  engine?: 'raw' | 'node';
  /**
   * Answer every request on this frontend with a redirect to the same URL over https (the port-80
   * side of TLS termination): `redirectToHttps`'s options, `{ port?: 443, hosts?: [...] }`. Nothing
   * else is served here — not the stats page, not the admin API. Not with `tls`.
   */
  redirectToHttps?: RedirectToHttpsOptions;
  /**
   * Serve the stats page (top-level `stats`) on this frontend too. Default false: stats show backend
   * addresses and states, so they live on the admin listener or a listener of their own unless a
   * frontend is opted in by name — bind such a frontend to a private address, or set `stats.auth`.
   */
  stats?: boolean;
  /** Serve the Prometheus metrics (top-level `metrics`) on this frontend too. Default false, as `stats`. */
  metrics?: boolean;
  /**
   * Serve HTTP/2 too (raw engine only): by ALPN on a TLS frontend, with prior knowledge on a plain
   * one when `{ "h2c": true }`; `true` or the limits of `Http2Options`. The stats page, metrics and
   * admin API answer HTTP/1.1 only. Default false.
   */
  http2?: boolean | Http2Options;
}

/**
 * Who may read the stats page or the metrics: a bearer token (`Authorization: Bearer …`, for
 * scrapers and scripts) or a user name and password (HTTP Basic, which browsers ask for by
 * themselves — the way to protect the page). Compared in constant time. Use `"$env:NAME"`.
 */
export type EndpointAuthConfig = { token: string } | { username: string; password: string };

/** Where the stats page or the metrics listen, beyond the frontends that opt in. */
export interface EndpointListenerConfig {
  /**
   * A listener of their own on this port. Without it they are served on the admin listener
   * (`admin.port`), and without that only on frontends with `"stats": true` / `"metrics": true`.
   * The stats page and the metrics may share a port (one listener), and share the admin's.
   */
  port?: number;
  /** Interface of that listener. Default `'127.0.0.1'` (as the admin API). */
  host?: string;
  /** Require a token or a password. Default: none (rely on where it listens). */
  auth?: EndpointAuthConfig;
}

/** Active health checks of a pool: core's `HealthOptions` minus `probe`, plus the probe's own options. */
export interface HealthConfig extends Omit<HealthOptions, 'probe'> {
  /** `'http'` (default) or `'tcp'`. */
  type?: 'http' | 'tcp';
  /** `httpProbe` options. `path` default `'/'`. */
  path?: string;
  method?: 'GET' | 'HEAD';
  expectStatus?: number | readonly number[] | { min: number; max: number };
  headers?: Readonly<Record<string, string>>;
  host?: string;
  agentHeader?: string | false;
}

/** Per-pool `createProxy` options the file may set. */
export type PoolProxyConfig = Pick<
  ProxyOptions,
  | 'attempts'
  | 'retryOn'
  | 'retryNonIdempotent'
  | 'retryBudget'
  | 'maxReplayBytes'
  | 'maxQueue'
  | 'queueTimeoutMs'
  | 'timeouts'
  | 'connectionsPerBackend'
  | 'preserveHost'
  | 'forwardedHeaders'
  | 'backendTls'
  | 'maxHeaderCount'
  | 'upgradeTimeouts'
  | 'upstreamProtocol'
  | 'grpc'
>;

/** A pool: its backends, how to balance them, and how to proxy to them. */
export interface PoolConfig extends PoolProxyConfig {
  backends: readonly BackendSpec[];
  /** Default `'p2c'`. */
  algorithm?: string;
  health?: HealthConfig;
  outlier?: OutlierOptions;
  slowStart?: SlowStartOptions;
  panicThreshold?: number;
  latencyDecayMs?: number;
  /** Without `table` (the runner owns the stick-table, replicated when `replication` is set). */
  stickiness?: Omit<StickinessOptions, 'table'>;
  /** Without functions: `'source-ip'`, `'uri'`, `{ header }`, `{ cookie }`, `{ query }`. */
  hashBy?: HashBy;
  rateLimit?: RateLimitOptions;
}

/** A route of the file: `createRouter`'s `RouteSpec` plus an optional `rateLimit` for its requests. */
export interface RouteConfig extends RouteSpec {
  rateLimit?: RateLimitOptions;
}

/** Stick-table replication between instances (one of three). */
export type ReplicationConfig =
  | { redis: { url: string; channel?: string; key?: string } }
  | { sql: { url: string; table?: string } }
  | { directory: { dir: string; pollIntervalMs?: number } };

/** The whole file. */
export interface FulcrumConfigFile {
  $schema?: string;
  frontends: readonly FrontendConfig[];
  pools: Readonly<Record<string, PoolConfig>>;
  routes?: readonly RouteConfig[];
  split?: SplitOptions;
  /**
   * What the routes do with a path whose encoded `/`, `\\` or `;` borders a dot segment
   * (`/public/..%2Fadmin`): `'reject'` (default) matches no route, so it is never forwarded;
   * `'pass'` matches it as written. `createRouter`'s option of the same name.
   */
  encodedDotSegments?: 'reject' | 'pass';
  trustedProxies?: readonly string[];
  replication?: ReplicationConfig;
  /** This instance's id in replicated entries. Default: host name + pid, sanitised. */
  nodeId?: string;
  /**
   * The stats page at `path`: on its own listener (`port`), else on the admin listener, plus on the
   * frontends that set `"stats": true`. Default: off. Over 1,000 backends, `?format=json` is rendered
   * two at a time at most (a third gets 503 with `Retry-After: 1`); under `--workers N`, over all the
   * workers together.
   */
  stats?: EndpointListenerConfig & { path: string; title?: string; refreshMs?: number };
  /**
   * Prometheus metrics at `path`, served where `stats` would be (`"metrics": true` on frontends).
   * Default: off. Over 1,000 backends, two scrapes are rendered at a time at most, as `stats`.
   */
  metrics?: EndpointListenerConfig & { path: string };
  /** The admin API. Default: off. */
  admin?: { token: string; port?: number; host?: string; path?: string };
  /** Access logs. Default: off. */
  accessLog?: { format?: 'json' | 'text'; path?: string; bufferBytes?: number; flushMs?: number };
  /** A rate limit for every pool without its own. Default: none. */
  rateLimit?: RateLimitOptions;
  shutdown?: { graceMs?: number };
  /** Node HTTP server timeouts of the frontends. */
  server?: {
    headersTimeoutMs?: number;
    requestTimeoutMs?: number;
    keepAliveTimeoutMs?: number;
    /** Client connections open at once over all frontends (HAProxy's global `maxconn`). Default 10000. */
    maxConnections?: number;
  };
}

// ─── The validated shape ──────────────────────────────────────────────────────────────────────────

export interface NormalizedFrontend {
  readonly port: number;
  readonly host: string;
  /** PEM contents read from the files (re-read on each reload), already checked by `createTlsContext`. */
  readonly tls: { readonly certs: readonly { readonly cert: string; readonly key: string }[] } | undefined;
  /** Redirect everything to https with these `redirectToHttps` options (validated). */
  readonly redirectToHttps: Readonly<RedirectToHttpsOptions> | undefined;
  /** Serves the stats page / the metrics too (an explicit opt-in). */
  readonly stats: boolean;
  readonly metrics: boolean;
  /** `host:port` — frontends are matched on reload by this. */
  readonly key: string;
  /** Per-frontend connection cap; undefined = none. */
  readonly maxConnections: number | undefined;
  /** `'raw'` (createProxyServer's engine) or `'node'` (createProxy on node:http). */
  readonly engine: 'raw' | 'node';
  /** HTTP/2 on this frontend (validated `Http2Options`), or undefined. */
  readonly http2: Http2Options | undefined;
}

export interface NormalizedPool {
  readonly name: string;
  readonly backends: readonly BackendSpec[];
  /** `createLoadBalancer` options minus backends (probe built). */
  readonly balancer: Omit<LoadBalancerOptions, 'backends'>;
  /** Per-pool `createProxy` options (no balancer/router/stickiness/hashBy). */
  readonly proxy: PoolProxyConfig;
  readonly stickiness: Omit<StickinessOptions, 'table'> | undefined;
  readonly hashBy: HashBy | undefined;
  readonly rateLimit: NormalizedRateLimitOptions | undefined;
  /** Equal keys ⇒ the load balancer can be kept on reload (only its backends differ). */
  readonly balancerKey: string;
  /** Equal keys ⇒ the pool's proxy (and its keep-alive connections) can be kept on reload. */
  readonly proxyKey: string;
  /** Equal keys ⇒ the stick-table of source-ip/header/learnCookie stickiness can be kept. */
  readonly tableKey: string;
}

export type NormalizedReplication =
  | { readonly kind: 'redis'; readonly url: string; readonly channel: string | undefined; readonly key: string | undefined }
  | { readonly kind: 'sql'; readonly url: string; readonly table: string | undefined }
  | { readonly kind: 'directory'; readonly dir: string; readonly pollIntervalMs: number | undefined };

/** A listener of the stats page, metrics or admin API: `key` (`host:port`) identifies it across reloads. */
export interface NormalizedListener {
  readonly port: number;
  readonly host: string;
  readonly key: string;
}

/** A validated `auth`: exactly one of a token and a user/password pair. */
export type NormalizedEndpointAuth =
  { readonly kind: 'token'; readonly token: string } | { readonly kind: 'basic'; readonly username: string; readonly password: string };

/** A validated config: frozen, every default applied. */
export interface FulcrumConfig {
  readonly nodeId: string;
  readonly frontends: readonly NormalizedFrontend[];
  readonly pools: ReadonlyMap<string, NormalizedPool>;
  /** Routes for `createRouter` (rate limits removed), or `undefined` for a single pool without routes. */
  readonly routes: readonly RouteSpec[] | undefined;
  /** `rateLimit` of each route (by index). */
  readonly routeLimits: readonly (NormalizedRateLimitOptions | undefined)[];
  readonly split: SplitOptions | undefined;
  /** Encoded `/`, `\\` or `;` next to a dot segment: `'reject'` (the default: no route matches) or `'pass'`. */
  readonly encodedDotSegments: 'reject' | 'pass';
  readonly routerKey: string;
  readonly trustedProxies: readonly string[] | undefined;
  readonly replication: NormalizedReplication | undefined;
  /** `listener`: its own or the admin's (`undefined`: only on the frontends that opt in). */
  readonly stats:
    | {
        readonly path: string;
        readonly title: string;
        readonly refreshMs: number;
        readonly listener: NormalizedListener | undefined;
        readonly auth: NormalizedEndpointAuth | undefined;
      }
    | undefined;
  readonly metrics: { readonly path: string; readonly listener: NormalizedListener | undefined; readonly auth: NormalizedEndpointAuth | undefined } | undefined;
  readonly admin: { readonly token: string; readonly port: number | undefined; readonly host: string; readonly path: string } | undefined;
  readonly accessLog: { readonly format: 'json' | 'text'; readonly path: string; readonly bufferBytes: number; readonly flushMs: number } | undefined;
  readonly rateLimit: NormalizedRateLimitOptions | undefined;
  readonly shutdownGraceMs: number;
  /**
   * Under `fulcrum --workers N`, which process accepts the connections (`workers.accept`):
   * `'primary'` (default) accepts every one and passes it to a worker, round-robin, on the same
   * ordered channel as the replicated stick-table entries, so learned stickiness holds whichever
   * worker takes a client's next connection; `'workers'` lets every worker accept on the shared
   * socket (the kernel spreads them), which saves the primary an accept and an IPC pass per
   * connection but leaves a window of two IPC hops in which a learned entry has not reached the
   * other workers. Ignored without `--workers`.
   */
  readonly workersAccept: 'primary' | 'workers';
  readonly server: {
    readonly headersTimeoutMs: number;
    readonly requestTimeoutMs: number;
    readonly keepAliveTimeoutMs: number;
    readonly maxConnections: number;
  };
}

/** Where validation reads the environment and relative files from. */
export interface ValidateOptions {
  /** Source of `$env:NAME`. Default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  /** Directory relative paths (TLS files, directory replication, log file) resolve against. Default `process.cwd()`. */
  baseDir?: string;
  /**
   * Reads TLS certificate and key files. Default: `readConfigFileSync` — regular files only, at most
   * 1 MiB, opened non-blocking (a FIFO, device or directory is refused, never waited on).
   * `validateConfigAsync` reads them asynchronously instead.
   */
  readFile?: (path: string) => string;
  /**
   * Checks that the access log file can be appended to (throws if not). Default
   * `checkAppendableSync`: opens it for appending, creating it if missing, as `nginx -t` does.
   */
  checkWritable?: (path: string) => void;
}

/** `validateConfigAsync` options: `ValidateOptions` plus how the optional packages are loaded. */
export interface ValidateAsyncOptions extends Omit<ValidateOptions, 'readFile' | 'checkWritable'> {
  /** Loads the replication packages to check they are installed. Default `(name) => import(name)`. */
  importModule?: (name: string) => Promise<unknown>;
}

const TOP_KEYS = [
  '$schema',
  'frontends',
  'pools',
  'routes',
  'split',
  'encodedDotSegments',
  'trustedProxies',
  'replication',
  'nodeId',
  'stats',
  'metrics',
  'admin',
  'accessLog',
  'rateLimit',
  'shutdown',
  'workers',
  'server',
];
const BALANCER_KEYS = ['backends', 'algorithm', 'health', 'outlier', 'slowStart', 'panicThreshold', 'latencyDecayMs'];
const PROXY_KEYS = [
  'attempts',
  'retryOn',
  'retryNonIdempotent',
  'retryBudget',
  'maxReplayBytes',
  'maxQueue',
  'queueTimeoutMs',
  'timeouts',
  'connectionsPerBackend',
  'preserveHost',
  'forwardedHeaders',
  'backendTls',
  'maxHeaderCount',
  'upgradeTimeouts',
  'upstreamProtocol',
  'grpc',
];
const POOL_KEYS = [...BALANCER_KEYS, ...PROXY_KEYS, 'stickiness', 'hashBy', 'rateLimit'];
/** The keys of a backend, a stickiness, a retry budget and a route as a file writes them (the API's take functions and objects too). */
const BACKEND_KEYS = ['id', 'address', 'weight', 'backup', 'maxConnections', 'zone', 'metadata'];
const STICKINESS_KEYS = ['cookie', 'sourceIp', 'header', 'learnCookie', 'ttlMs'];
const RETRY_BUDGET_KEYS = ['percent', 'minConcurrency'];
const ROUTE_KEYS = ['name', 'match', 'pool', 'split', 'rewritePrefix', 'rateLimit'];
const HEALTH_CORE_KEYS = ['rise', 'fall', 'intervalMs', 'fastIntervalMs', 'downIntervalMs', 'timeoutMs', 'jitter', 'initialState'];
const HEALTH_PROBE_KEYS = ['path', 'method', 'expectStatus', 'headers', 'host', 'agentHeader'];
const ENV_PREFIX = '$env:';
/** Deepest nesting a config file may have; its own keys need 6 levels (`frontends[0].tls.certs[0].cert`). */
const MAX_CONFIG_DEPTH = 32;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A path of the admin API or stats page: absolute, visible ASCII, no query. */
const URL_PATH = /^\/[\x21-\x7e]{0,255}$/;

/** Throw unless `value` is a plain object with only `known` keys; return it. */
function objectOf(path: string, value: unknown, known: readonly string[], what = 'an object'): Record<string, unknown> {
  return optionsObject(path, value, known, { expected: `must be ${what}`, allowMissing: false });
}

function join(prefix: string, path: string): string {
  if (prefix === '') return path;
  if (path === '') return prefix;
  return path.startsWith('[') ? `${prefix}${path}` : `${prefix}.${path}`;
}

/**
 * Run a normalizer of the API and re-throw its `InvalidOptionError` with the file's path in front
 * (`httpProbe.path` → `pools.web.health.path`), keeping its message, value and expectation.
 */
function under<T>(prefix: string, run: () => T, strip?: RegExp): T {
  try {
    return run();
  } catch (error) {
    if (!isInvalidOptionError(error)) throw error;
    const e = error as InvalidOptionError;
    const inner = strip === undefined ? e.path : e.path.replace(strip, '');
    throw new InvalidOptionError(join(prefix, inner), e.value, e.expected, { cause: error });
  }
}

const integer = optionalInteger;

function nonEmptyString(path: string, value: unknown, what = 'a non-empty string'): string {
  if (typeof value !== 'string' || value.length === 0) throw new InvalidOptionError(path, value, `must be ${what}`);
  return value;
}

/**
 * Replace every string that is exactly `"$env:NAME"` by that environment variable, returning a new
 * tree. A missing variable is an error naming where it was asked for.
 */
export function substituteEnv(value: unknown, env: Readonly<Record<string, string | undefined>>, path = '', depth = 0): unknown {
  // Deeper than any key of the file goes (6 levels): refused with a path, before any recursive walk
  // here or later (JSON.stringify of a backend's `metadata`) can overflow the stack.
  if (depth > MAX_CONFIG_DEPTH)
    throw new InvalidOptionError(path, '(nested further)', `must not nest objects or arrays more than ${MAX_CONFIG_DEPTH} levels deep`);
  if (typeof value === 'string') {
    if (!value.startsWith(ENV_PREFIX)) return value;
    const name = value.slice(ENV_PREFIX.length);
    if (!ENV_NAME.test(name)) throw new InvalidOptionError(path, value, 'must name an environment variable as "$env:NAME" (letters, digits, _)');
    const found = env[name];
    if (found === undefined || found === '') throw new InvalidOptionError(path, value, `reads the environment variable ${name}, which is not set`);
    return found;
  }
  if (Array.isArray(value)) return value.map((item, i) => substituteEnv(item, env, `${path}[${i}]`, depth + 1));
  if (isPlainObject(value)) {
    const out: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value)) out[key] = substituteEnv(item, env, join(path, key), depth + 1);
    return out;
  }
  return value;
}

/**
 * Validate a parsed config file (after `$env:` substitution) into a `FulcrumConfig`. Throws core's
 * `InvalidOptionError` whose `path` is the path in the file.
 */
export function validateConfig(input: unknown, options: ValidateOptions = {}): FulcrumConfig {
  return validateSubstituted(substituteEnv(input, options.env ?? process.env), options);
}

/**
 * `validateConfig`, with the files the config refers to read and checked asynchronously (TLS
 * certificates and keys: regular files of at most 1 MiB; the access log: appendable), and the
 * optional packages that `replication` needs loaded — so `fulcrum --check`, `loadConfig` and a
 * reload catch a missing `@fulcrum/session-redis` and never block the event loop on a file.
 */
export async function validateConfigAsync(input: unknown, options: ValidateAsyncOptions = {}): Promise<FulcrumConfig> {
  const baseDir = options.baseDir ?? process.cwd();
  const file = substituteEnv(input, options.env ?? process.env);
  const reads = new Map<string, Promise<string>>();
  for (const path of certificatePaths(file, baseDir)) if (!reads.has(path)) reads.set(path, readConfigFile(path));
  const logPath = accessLogPath(file, baseDir);
  const [texts, logCheck] = await Promise.all([
    Promise.all(
      [...reads].map(
        async ([path, text]) =>
          [
            path,
            await text.then(
              (t) => ({ text: t }),
              (error: unknown) => ({ error }),
            ),
          ] as const,
      ),
    ),
    logPath === undefined
      ? undefined
      : checkAppendable(logPath).then(
          () => undefined,
          (error: unknown) => error,
        ),
  ]);
  const read = new Map(texts);
  const config = validateSubstituted(file, {
    ...options,
    baseDir,
    readFile: (path) => {
      const found = read.get(path);
      if (found === undefined) return readConfigFileSync(path);
      if ('error' in found) throw found.error;
      return found.text;
    },
    checkWritable: (path) => {
      if (path !== logPath) return checkAppendableSync(path);
      if (logCheck !== undefined) throw logCheck as Error;
    },
  });
  if (config.replication !== undefined) await checkReplicationPackages(config.replication, options.importModule ?? ((name) => import(name)));
  return config;
}

/** The certificate and key files of the TLS frontends, resolved (shapes are checked later, by validation). */
function certificatePaths(file: unknown, baseDir: string): string[] {
  const paths: string[] = [];
  const frontends = isPlainObject(file) ? file.frontends : undefined;
  if (!Array.isArray(frontends)) return paths;
  for (const frontend of frontends) {
    const certs = isPlainObject(frontend) && isPlainObject(frontend.tls) ? frontend.tls.certs : undefined;
    if (!Array.isArray(certs)) continue;
    for (const pair of certs) {
      if (!isPlainObject(pair)) continue;
      for (const name of [pair.cert, pair.key]) if (typeof name === 'string' && name.length > 0) paths.push(isAbsolute(name) ? name : resolve(baseDir, name));
    }
  }
  return paths;
}

function accessLogPath(file: unknown, baseDir: string): string | undefined {
  const log = isPlainObject(file) ? file.accessLog : undefined;
  if (!isPlainObject(log) || typeof log.path !== 'string' || log.path === '' || log.path === '-') return undefined;
  return resolve(baseDir, log.path);
}

/** The packages each kind of replication imports (replication.ts), checked at validation time. */
const REPLICATION_PACKAGES: Readonly<Record<NormalizedReplication['kind'], readonly string[]>> = {
  redis: ['@fulcrum/session-redis', 'ioredis'],
  sql: ['@fulcrum/session-sql', 'mysql2/promise'],
  directory: ['@fulcrum/session-fs'],
};

async function checkReplicationPackages(spec: NormalizedReplication, importModule: (name: string) => Promise<unknown>): Promise<void> {
  for (const name of REPLICATION_PACKAGES[spec.kind]) {
    try {
      await importModule(name);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      throw new InvalidOptionError(
        `replication.${spec.kind}`,
        name,
        `needs the package ${name}, which ${code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND' ? 'is not installed' : 'cannot be loaded'} (install it next to @fulcrum/cli)`,
        { cause: error },
      );
    }
  }
}

function validateSubstituted(substituted: unknown, options: ValidateOptions): FulcrumConfig {
  const baseDir = options.baseDir ?? process.cwd();
  const readFile = options.readFile ?? ((path: string) => readConfigFileSync(path));
  const checkWritable = options.checkWritable ?? checkAppendableSync;
  const file = objectOf('', substituted, TOP_KEYS, 'an object (the config file)');

  const nodeId = file.nodeId === undefined ? defaultNodeId() : file.nodeId;
  if (typeof nodeId !== 'string' || !NODE_ID_PATTERN.test(nodeId)) {
    throw new InvalidOptionError('nodeId', nodeId, 'must be 1–64 characters of A–Z, a–z, 0–9, ".", "_", ":" or "-"');
  }

  const trustedProxies = file.trustedProxies as readonly string[] | undefined;
  if (trustedProxies !== undefined) new TrustedProxies(trustedProxies, 'trustedProxies');

  // Pools.
  if (!isPlainObject(file.pools) || Object.keys(file.pools).length === 0) {
    throw new InvalidOptionError('pools', file.pools, 'must be an object of pool names to pools, with at least one pool');
  }
  const pools = new Map<string, NormalizedPool>();
  for (const [name, raw] of Object.entries(file.pools)) {
    const path = `pools.${name}`;
    if (!BACKEND_ID_PATTERN.test(name)) throw new InvalidOptionError(path, name, 'pool names must be 1–64 characters of A–Z, a–z, 0–9, ".", "_", ":" or "-"');
    pools.set(name, validatePool(path, name, raw));
  }

  // Routes.
  let routes: RouteSpec[] | undefined;
  const routeLimits: (NormalizedRateLimitOptions | undefined)[] = [];
  if (file.routes !== undefined) {
    if (!Array.isArray(file.routes) || file.routes.length === 0) throw new InvalidOptionError('routes', file.routes, 'must be a non-empty array of routes');
    routes = file.routes.map((route: unknown, i: number) => {
      const { rateLimit, ...spec } = objectOf(`routes[${i}]`, route, ROUTE_KEYS);
      routeLimits.push(rateLimit === undefined ? undefined : normalizeRateLimitOptions(rateLimit, `routes[${i}].rateLimit`));
      return spec as unknown as RouteSpec;
    });
  } else if (pools.size > 1) {
    throw new InvalidOptionError('routes', undefined, `must be given when there are several pools (${[...pools.keys()].join(', ')})`);
  }
  if (file.split !== undefined && routes === undefined) throw new InvalidOptionError('split', file.split, 'needs "routes" with a split');
  const encodedDotSegments = file.encodedDotSegments ?? 'reject';
  if (encodedDotSegments !== 'reject' && encodedDotSegments !== 'pass') {
    throw new InvalidOptionError('encodedDotSegments', encodedDotSegments, "must be 'reject' or 'pass'");
  }
  if (file.encodedDotSegments !== undefined && routes === undefined) {
    throw new InvalidOptionError('encodedDotSegments', file.encodedDotSegments, 'applies to "routes": without routes nothing is matched on the path');
  }
  if (routes !== undefined) {
    // createRouter's own checks of routes, pool names, splits and the split cookie, with nothing built.
    const names = Object.fromEntries([...pools.keys()].map((name) => [name, { backends: [] }]));
    under('', () =>
      normalizeRouterOptions({ pools: names, routes: routes!, encodedDotSegments, ...(file.split === undefined ? {} : { split: file.split as SplitOptions }) }),
    );
  }

  const frontends = validateFrontends(file.frontends, baseDir, readFile);
  const admin = validateAdmin(file.admin);
  const stats = validateStats(file.stats, admin);
  const metrics = validateMetrics(file.metrics, admin);
  checkEndpointPlacement(frontends, admin, stats, metrics);

  return Object.freeze({
    nodeId,
    frontends,
    pools,
    routes: routes === undefined ? undefined : Object.freeze(routes),
    routeLimits: Object.freeze(routeLimits),
    split: file.split as SplitOptions | undefined,
    encodedDotSegments,
    routerKey: JSON.stringify([file.routes ?? null, file.split ?? null, encodedDotSegments]),
    trustedProxies,
    replication: validateReplication(file.replication, baseDir),
    stats,
    metrics,
    admin,
    accessLog: validateAccessLog(file.accessLog, baseDir, checkWritable),
    rateLimit: file.rateLimit === undefined ? undefined : normalizeRateLimitOptions(file.rateLimit, 'rateLimit'),
    shutdownGraceMs: integer('shutdown.graceMs', objectOrEmpty('shutdown', file.shutdown, ['graceMs']).graceMs, 10_000, 0, 3_600_000),
    workersAccept: validateWorkersAccept(file.workers),
    server: validateServer(file.server),
  });
}

function validateWorkersAccept(raw: unknown): FulcrumConfig['workersAccept'] {
  const accept = objectOrEmpty('workers', raw, ['accept']).accept ?? 'primary';
  if (accept !== 'primary' && accept !== 'workers') throw new InvalidOptionError('workers.accept', accept, 'must be "primary" or "workers"');
  return accept;
}

function objectOrEmpty(path: string, value: unknown, known: readonly string[]): Record<string, unknown> {
  return value === undefined ? {} : objectOf(path, value, known);
}

function validatePool(path: string, name: string, raw: unknown): NormalizedPool {
  const pool = objectOf(path, raw, POOL_KEYS, 'an object with "backends"');
  if (pool.backends === undefined) throw new InvalidOptionError(`${path}.backends`, undefined, 'must be an array of backends (it may be empty)');
  if (Array.isArray(pool.backends))
    pool.backends.forEach((spec: unknown, i: number) => isPlainObject(spec) && objectOf(`${path}.backends[${i}]`, spec, BACKEND_KEYS));
  under(path, () => normalizeBackendSpecs(pool.backends, 'backends'));
  // The specs as written (validated): normalized ones carry Infinity and undefined, which are not specs.
  const backends = (pool.backends as BackendSpec[]).map((spec) => Object.freeze(JSON.parse(JSON.stringify(spec)) as BackendSpec));
  const balancer: Record<string, unknown> = { name };
  if (pool.algorithm !== undefined) {
    if (typeof pool.algorithm !== 'string' || !hasBalancer(pool.algorithm)) {
      throw new InvalidOptionError(`${path}.algorithm`, pool.algorithm, `must be one of ${ALGORITHM_NAMES.map((n) => `'${n}'`).join(', ')}`);
    }
    balancer.algorithm = pool.algorithm;
  }
  if (pool.health !== undefined) balancer.health = validateHealth(`${path}.health`, pool.health);
  if (pool.outlier !== undefined) {
    under(path, () => normalizeOutlierOptions(pool.outlier, 'outlier'));
    balancer.outlier = pool.outlier;
  }
  if (pool.slowStart !== undefined) {
    under(path, () => normalizeSlowStartOptions(pool.slowStart, 'slowStart'));
    balancer.slowStart = pool.slowStart;
  }
  if (pool.panicThreshold !== undefined) {
    under(path, () => normalizePanicThreshold(pool.panicThreshold, 'panicThreshold'));
    balancer.panicThreshold = pool.panicThreshold;
  }
  if (pool.latencyDecayMs !== undefined) {
    const decay = pool.latencyDecayMs;
    if (typeof decay !== 'number' || !Number.isFinite(decay) || decay <= 0)
      throw new InvalidOptionError(`${path}.latencyDecayMs`, decay, 'must be a finite number > 0 (ms)');
    balancer.latencyDecayMs = pool.latencyDecayMs;
  }
  if (pool.retryBudget !== undefined) objectOf(`${path}.retryBudget`, pool.retryBudget, RETRY_BUDGET_KEYS);
  const proxy: Record<string, unknown> = {};
  for (const key of PROXY_KEYS) if (pool[key] !== undefined) proxy[key] = pool[key];
  under(path, () => normalizeProxyOptions(proxy as ProxyOptions));
  let stickiness: Omit<StickinessOptions, 'table'> | undefined;
  if (pool.stickiness !== undefined) {
    if (isPlainObject(pool.stickiness) && 'table' in pool.stickiness) {
      throw new InvalidOptionError(
        `${path}.stickiness.table`,
        pool.stickiness.table,
        'is not a key of the config file (the stick-table is the runner\'s; set "replication" to share it)',
      );
    }
    objectOf(`${path}.stickiness`, pool.stickiness, STICKINESS_KEYS);
    stickiness = pool.stickiness as Omit<StickinessOptions, 'table'>;
    const probe = new Stickiness(stickiness, {}, `${path}.stickiness`);
    void probe.close();
  }
  const hashBy = pool.hashBy as HashBy | undefined;
  if (hashBy !== undefined) {
    if (typeof hashBy === 'function') throw new InvalidOptionError(`${path}.hashBy`, hashBy, 'must be data in a config file');
    compileHashBy(hashBy, `${path}.hashBy`);
  }
  const rateLimit = pool.rateLimit === undefined ? undefined : normalizeRateLimitOptions(pool.rateLimit, `${path}.rateLimit`);
  return Object.freeze({
    name,
    backends: Object.freeze(backends),
    balancer: Object.freeze(balancer) as Omit<LoadBalancerOptions, 'backends'>,
    proxy: Object.freeze(proxy) as PoolProxyConfig,
    stickiness,
    hashBy,
    rateLimit,
    balancerKey: JSON.stringify(BALANCER_KEYS.filter((k) => k !== 'backends').map((k) => pool[k] ?? null)),
    proxyKey: JSON.stringify([...PROXY_KEYS, 'stickiness', 'hashBy'].map((k) => pool[k] ?? null)),
    tableKey: JSON.stringify(stickiness === undefined || stickiness.cookie !== undefined ? null : stickiness),
  });
}

function validateHealth(path: string, raw: unknown): HealthOptions {
  const health = objectOf(path, raw, ['type', ...HEALTH_CORE_KEYS, ...HEALTH_PROBE_KEYS]);
  const type = health.type ?? 'http';
  if (type !== 'http' && type !== 'tcp') throw new InvalidOptionError(`${path}.type`, type, 'must be "http" or "tcp"');
  const core: Record<string, unknown> = {};
  for (const key of HEALTH_CORE_KEYS) if (health[key] !== undefined) core[key] = health[key];
  const probeOptions: Record<string, unknown> = {};
  for (const key of HEALTH_PROBE_KEYS) if (health[key] !== undefined) probeOptions[key] = health[key];
  if (type === 'tcp' && Object.keys(probeOptions).length > 0) {
    const key = Object.keys(probeOptions)[0]!;
    throw new InvalidOptionError(`${path}.${key}`, probeOptions[key], 'is an HTTP check option (this check has "type": "tcp")');
  }
  const probe = type === 'tcp' ? tcpProbe() : under(path, () => httpProbe(probeOptions), /^httpProbe\.?/);
  const options = { ...core, probe } as HealthOptions;
  under(path, () => normalizeHealthOptions(options, ''), /^\.?/);
  return Object.freeze(options);
}

function validateFrontends(raw: unknown, baseDir: string, readFile: (path: string) => string): NormalizedFrontend[] {
  if (!Array.isArray(raw) || raw.length === 0) throw new InvalidOptionError('frontends', raw, 'must be a non-empty array like [{ "port": 8080 }]');
  const seen = new Map<string, number>();
  return raw.map((item: unknown, i: number) => {
    const path = `frontends[${i}]`;
    const frontend = objectOf(path, item, ['port', 'host', 'tls', 'redirectToHttps', 'stats', 'metrics', 'maxConnections', 'engine', 'http2']);
    if (frontend.engine !== undefined && frontend.engine !== 'raw' && frontend.engine !== 'node') {
      throw new InvalidOptionError(
        `${path}.engine`,
        frontend.engine,
        'must be "raw" (the default: Fulcrum\'s own HTTP/1.1 engine) or "node" (node:http + undici)',
      );
    }
    if (frontend.port === undefined) throw new InvalidOptionError(`${path}.port`, undefined, describeBounds({ min: 0, max: 65_535, integer: true }));
    const port = integer(`${path}.port`, frontend.port, 0, 0, 65_535);
    const host = frontend.host === undefined ? '0.0.0.0' : listenAddress(`${path}.host`, frontend.host);
    const key = `${host}:${port}`;
    const first = seen.get(key);
    if (first !== undefined && port !== 0) throw new InvalidOptionError(`${path}.port`, port, `must differ from frontends[${first}] on the same host`);
    seen.set(key, i);
    let tls: NormalizedFrontend['tls'];
    if (frontend.tls !== undefined) {
      const spec = objectOf(`${path}.tls`, frontend.tls, ['certs']);
      if (!Array.isArray(spec.certs) || spec.certs.length === 0)
        throw new InvalidOptionError(`${path}.tls.certs`, spec.certs, 'must be a non-empty array of { "cert": "file.pem", "key": "file.key" }');
      const certs = spec.certs.map((c: unknown, j: number) => {
        const cpath = `${path}.tls.certs[${j}]`;
        const pair = objectOf(cpath, c, ['cert', 'key']);
        return Object.freeze({ cert: readPem(`${cpath}.cert`, pair.cert, baseDir, readFile), key: readPem(`${cpath}.key`, pair.key, baseDir, readFile) });
      });
      tls = Object.freeze({ certs: Object.freeze(certs) });
      // The same check the runner's reload makes (a key that does not match its certificate, a
      // certificate naming no host), made here so `fulcrum --check` catches it and a reload with a
      // bad certificate is refused before anything changes.
      under(`${path}.tls`, () => createTlsContext({ certs: tls!.certs }));
    }
    let redirect: Readonly<RedirectToHttpsOptions> | undefined;
    if (frontend.redirectToHttps !== undefined) {
      const rpath = `${path}.redirectToHttps`;
      if (tls !== undefined)
        throw new InvalidOptionError(rpath, frontend.redirectToHttps, 'must not be set on a TLS frontend (it would redirect https to itself)');
      const spec = objectOf(rpath, frontend.redirectToHttps, ['port', 'hosts'], 'an object like { "port": 443 }');
      under(rpath, () => redirectToHttps(spec as RedirectToHttpsOptions), /^options\.?/);
      redirect = Object.freeze({
        ...(spec.port === undefined ? {} : { port: spec.port as number }),
        ...(spec.hosts === undefined ? {} : { hosts: Object.freeze([...(spec.hosts as string[])]) }),
      });
    }
    const optIn = (name: 'stats' | 'metrics'): boolean => {
      const value = frontend[name];
      if (value !== undefined && typeof value !== 'boolean') throw new InvalidOptionError(`${path}.${name}`, value, 'must be true or false');
      if (value === true && redirect !== undefined)
        throw new InvalidOptionError(`${path}.${name}`, value, 'must not be set on a redirectToHttps frontend (it serves nothing but the redirect)');
      return value === true;
    };
    const maxConnections = frontend.maxConnections === undefined ? undefined : integer(`${path}.maxConnections`, frontend.maxConnections, 0, 1, 10_000_000);
    const engine = redirect !== undefined ? 'node' : ((frontend.engine as 'raw' | 'node' | undefined) ?? 'raw');
    let http2: Http2Options | undefined;
    if (frontend.http2 !== undefined && frontend.http2 !== false) {
      if (engine !== 'raw') throw new InvalidOptionError(`${path}.http2`, frontend.http2, 'needs the raw engine (no "engine": "node", no redirectToHttps)');
      normalizeHttp2Options(frontend.http2, `${path}.http2`);
      http2 = frontend.http2 === true ? {} : (frontend.http2 as Http2Options);
    }
    return Object.freeze({
      port,
      host,
      tls,
      redirectToHttps: redirect,
      stats: optIn('stats'),
      metrics: optIn('metrics'),
      key: `${key}${tls ? '/tls' : ''}`,
      maxConnections,
      engine,
      http2,
    });
  });
}

function readPem(path: string, file: unknown, baseDir: string, readFile: (path: string) => string): string {
  const name = nonEmptyString(path, file, 'a file path of a PEM file');
  const full = isAbsolute(name) ? name : resolve(baseDir, name);
  let text: string;
  try {
    text = readFile(full);
  } catch (error) {
    const reason = error instanceof ConfigPathError ? error.reason : `cannot be read (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`;
    throw new InvalidOptionError(path, file, `must be a readable regular file of at most ${MAX_CONFIG_FILE_BYTES / 1024 / 1024} MiB, but it ${reason}`, {
      cause: error,
    });
  }
  if (!text.includes('-----BEGIN ')) throw new InvalidOptionError(path, file, 'must be a PEM file (no "-----BEGIN" line found)');
  return text;
}

function validateReplication(raw: unknown, baseDir: string): NormalizedReplication | undefined {
  if (raw === undefined) return undefined;
  const spec = objectOf('replication', raw, ['redis', 'sql', 'directory']);
  const kinds = Object.keys(spec);
  if (kinds.length !== 1) throw new InvalidOptionError('replication', raw, 'must hold exactly one of "redis", "sql", "directory"');
  if (spec.redis !== undefined) {
    const redis = objectOf('replication.redis', spec.redis, ['url', 'channel', 'key']);
    const url = nonEmptyString('replication.redis.url', redis.url, 'a redis:// or rediss:// URL');
    if (!/^rediss?:\/\//.test(url)) throw new InvalidOptionError('replication.redis.url', url, 'must be a redis:// or rediss:// URL');
    return Object.freeze({
      kind: 'redis',
      url,
      channel: redisName('replication.redis.channel', redis.channel),
      key: redisName('replication.redis.key', redis.key),
    });
  }
  if (spec.sql !== undefined) {
    const sql = objectOf('replication.sql', spec.sql, ['url', 'table']);
    const url = nonEmptyString('replication.sql.url', sql.url, 'a mysql:// URL');
    if (!/^mysql:\/\//.test(url)) throw new InvalidOptionError('replication.sql.url', url, 'must be a mysql:// URL');
    if (sql.table !== undefined && (typeof sql.table !== 'string' || !SQL_TABLE_NAME.test(sql.table))) {
      throw new InvalidOptionError(
        'replication.sql.table',
        sql.table,
        'must be a table name: a letter or "_", then up to 47 letters, digits or "_" (it is written into SQL statements, so nothing else)',
      );
    }
    return Object.freeze({ kind: 'sql', url, table: sql.table as string | undefined });
  }
  const directory = objectOf('replication.directory', spec.directory, ['dir', 'pollIntervalMs']);
  const dir = nonEmptyString('replication.directory.dir', directory.dir, 'a directory path');
  return Object.freeze({
    kind: 'directory',
    dir: resolve(baseDir, dir),
    pollIntervalMs:
      directory.pollIntervalMs === undefined ? undefined : integer('replication.directory.pollIntervalMs', directory.pollIntervalMs, 1000, 10, MAX_TIMER_MS),
  });
}

/** RFC 1123 host names (`localhost`, `edge-1.internal`), resolved by `listen` itself. */
const LISTEN_HOST_NAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * An address to listen on: an IPv4 or IPv6 literal (without brackets), or a host name. Checked here
 * so `fulcrum --check` refuses `"0.0.0.0:80"`, `"[::1]"` or `"300.1.1.1"` rather than the start.
 */
function listenAddress(path: string, value: unknown): string {
  const expected = 'must be an IP address such as "0.0.0.0", "127.0.0.1", "::" or "::1" (no brackets, no port), or a host name such as "localhost"';
  if (typeof value !== 'string') throw new InvalidOptionError(path, value, expected);
  if (isIP(value) !== 0) return value;
  // Dotted digits that are not an IPv4 address (`300.1.1.1`, `10.0.0`) are a typo, not a host name.
  if (!LISTEN_HOST_NAME.test(value) || /^[0-9.]+$/.test(value)) throw new InvalidOptionError(path, value, expected);
  return value;
}

/** `@fulcrum/session-sql`'s table-name rule, checked here so `fulcrum --check` refuses under this option's name. */
const SQL_TABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/;
/** `@fulcrum/session-redis`'s rule for channel and key names: a CR or LF would split a command. */
const REDIS_NAME = /^[^\0\r\n]{1,256}$/;

function redisName(path: string, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !REDIS_NAME.test(value)) throw new InvalidOptionError(path, value, 'must be 1–256 characters without NUL, CR or LF');
  return value;
}

function urlPath(path: string, value: unknown): string {
  if (typeof value !== 'string' || !URL_PATH.test(value) || value.includes('?') || value.includes('#')) {
    throw new InvalidOptionError(path, value, 'must be a URL path starting with "/" (visible ASCII, no query)');
  }
  return value.length > 1 && value.endsWith('/') ? value.slice(0, -1) : value;
}

function validateStats(raw: unknown, admin: FulcrumConfig['admin']): FulcrumConfig['stats'] {
  if (raw === undefined) return undefined;
  const stats = objectOf('stats', raw, ['path', 'title', 'refreshMs', 'port', 'host', 'auth']);
  const title = stats.title === undefined ? 'Fulcrum' : nonEmptyString('stats.title', stats.title);
  return Object.freeze({
    path: urlPath('stats.path', stats.path),
    title,
    refreshMs: integer('stats.refreshMs', stats.refreshMs, 1000, 100, 3_600_000),
    listener: endpointListener('stats', stats, admin),
    auth: endpointAuth('stats.auth', stats.auth),
  });
}

function validateMetrics(raw: unknown, admin: FulcrumConfig['admin']): FulcrumConfig['metrics'] {
  if (raw === undefined) return undefined;
  const metrics = objectOf('metrics', raw, ['path', 'port', 'host', 'auth']);
  return Object.freeze({
    path: urlPath('metrics.path', metrics.path),
    listener: endpointListener('metrics', metrics, admin),
    auth: endpointAuth('metrics.auth', metrics.auth),
  });
}

/** The stats page's or metrics' listener: its own `port`, else the admin listener, else none. */
function endpointListener(path: string, spec: Record<string, unknown>, admin: FulcrumConfig['admin']): NormalizedListener | undefined {
  if (spec.port === undefined) {
    if (spec.host !== undefined) throw new InvalidOptionError(`${path}.host`, spec.host, 'needs "port" (the host of a listener of its own)');
    return admin?.port === undefined ? undefined : listenerOf(admin.port, admin.host);
  }
  const port = integer(`${path}.port`, spec.port, 0, 0, 65_535);
  const host = spec.host === undefined ? '127.0.0.1' : listenAddress(`${path}.host`, spec.host);
  return listenerOf(port, host);
}

function listenerOf(port: number, host: string): NormalizedListener {
  return Object.freeze({ port, host, key: `${host}:${port}` });
}

/** Shortest token and password accepted: guessable secrets are no protection. */
const MIN_ENDPOINT_SECRET = 16;

function endpointAuth(path: string, raw: unknown): NormalizedEndpointAuth | undefined {
  if (raw === undefined) return undefined;
  const auth = objectOf(path, raw, ['token', 'username', 'password'], 'an object: { "token": "…" } or { "username": "…", "password": "…" }');
  const hidden = (value: unknown): unknown => (typeof value === 'string' ? `(${value.length} characters)` : value);
  if (auth.token !== undefined) {
    if (auth.username !== undefined || auth.password !== undefined)
      throw new InvalidOptionError(path, '(token and username/password)', 'must hold either "token" or "username" and "password", not both');
    if (typeof auth.token !== 'string' || auth.token.length < MIN_ENDPOINT_SECRET || /[\s\x00-\x1f\x7f]/.test(auth.token)) {
      throw new InvalidOptionError(
        `${path}.token`,
        hidden(auth.token),
        `must be a secret of at least ${MIN_ENDPOINT_SECRET} characters without spaces or control characters (use "$env:NAME")`,
      );
    }
    return Object.freeze({ kind: 'token', token: auth.token });
  }
  if (typeof auth.username !== 'string' || auth.username.length === 0 || auth.username.length > 128 || /[:\x00-\x1f\x7f]/.test(auth.username)) {
    throw new InvalidOptionError(`${path}.username`, auth.username, 'must be 1–128 characters without ":" or control characters (or give "token" instead)');
  }
  if (typeof auth.password !== 'string' || auth.password.length < MIN_ENDPOINT_SECRET || /[\x00-\x1f\x7f]/.test(auth.password)) {
    throw new InvalidOptionError(
      `${path}.password`,
      hidden(auth.password),
      `must be a secret of at least ${MIN_ENDPOINT_SECRET} characters without control characters (use "$env:NAME")`,
    );
  }
  return Object.freeze({ kind: 'basic', username: auth.username, password: auth.password });
}

/** What the admin API answers at the root of its own listener: the stats page or metrics must not hide it. */
const ADMIN_SEGMENTS = ['state', 'pools', 'routes', 'reload'];

/**
 * Stats and metrics must be served somewhere, never on a listener that is also a frontend, and on
 * the admin listener not over one of its endpoints; frontends may only opt in to what is configured.
 */
function checkEndpointPlacement(
  frontends: readonly NormalizedFrontend[],
  admin: FulcrumConfig['admin'],
  stats: FulcrumConfig['stats'],
  metrics: FulcrumConfig['metrics'],
): void {
  const adminKey = admin?.port === undefined ? undefined : `${admin.host}:${admin.port}`;
  for (const [name, spec] of [
    ['stats', stats],
    ['metrics', metrics],
  ] as const) {
    const optedIn = frontends.findIndex((f) => f[name]);
    if (spec === undefined) {
      if (optedIn !== -1) throw new InvalidOptionError(`frontends[${optedIn}].${name}`, true, `needs the top-level "${name}" ({ "path": … })`);
      continue;
    }
    const listener = spec.listener;
    if (listener === undefined && optedIn === -1) {
      throw new InvalidOptionError(
        name,
        { path: spec.path },
        `has no listener: give it a "port" of its own (on 127.0.0.1 by default), give "admin" a "port" (it is then served there), or opt a frontend in with "${name}": true`,
      );
    }
    if (listener === undefined) continue;
    const clash = frontends.findIndex(
      (f) =>
        f.port !== 0 &&
        f.port === listener.port &&
        (f.host === listener.host || f.host === '0.0.0.0' || f.host === '::' || listener.host === '0.0.0.0' || listener.host === '::'),
    );
    if (clash !== -1)
      throw new InvalidOptionError(
        `${name}.port`,
        listener.port,
        `must differ from frontends[${clash}].port (to serve ${name} on a frontend, set "${name}": true there)`,
      );
    if (listener.key === adminKey) {
      const first = spec.path.split('/')[1] ?? '';
      if (spec.path === '/' || ADMIN_SEGMENTS.includes(first)) {
        throw new InvalidOptionError(
          `${name}.path`,
          spec.path,
          `must not hide the admin API it shares a listener with (not "/", nor under /${ADMIN_SEGMENTS.join(', /')})`,
        );
      }
    }
  }
  if (
    stats?.listener !== undefined &&
    metrics?.listener !== undefined &&
    stats.listener.key === metrics.listener.key &&
    (stats.path === metrics.path || stats.path === '/')
  ) {
    throw new InvalidOptionError('metrics.path', metrics.path, 'must not be under stats.path on the listener they share');
  }
}

/** Tokens shorter than this are guessable; HAProxy users put the runtime API on a socket, we need a real secret. */
const MIN_TOKEN_LENGTH = 16;

function validateAdmin(raw: unknown): FulcrumConfig['admin'] {
  if (raw === undefined) return undefined;
  const admin = objectOf('admin', raw, ['token', 'port', 'host', 'path']);
  if (typeof admin.token !== 'string' || admin.token.length < MIN_TOKEN_LENGTH) {
    // Never echo the token itself into a log.
    throw new InvalidOptionError(
      'admin.token',
      typeof admin.token === 'string' ? `(${admin.token.length} characters)` : admin.token,
      `must be a secret of at least ${MIN_TOKEN_LENGTH} characters (use "$env:NAME")`,
    );
  }
  if (admin.port === undefined && admin.path === undefined) {
    throw new InvalidOptionError('admin', '(no port, no path)', 'must set "port" (its own listener) or "path" (under every frontend)');
  }
  return Object.freeze({
    token: admin.token,
    port: admin.port === undefined ? undefined : integer('admin.port', admin.port, 0, 0, 65_535),
    host: admin.host === undefined ? '127.0.0.1' : listenAddress('admin.host', admin.host),
    path: admin.path === undefined ? '' : adminPath(admin.path),
  });
}

/** The stats page calls the admin API at this path from the browser: no characters that need quoting there. */
function adminPath(value: unknown): string {
  const path = urlPath('admin.path', value);
  if (/["'<>\\]/.test(path) || path.startsWith('//'))
    throw new InvalidOptionError('admin.path', value, 'must be a URL path without quotes, "<", ">", "\\" or a leading "//"');
  return path;
}

function validateAccessLog(raw: unknown, baseDir: string, checkWritable: (path: string) => void): FulcrumConfig['accessLog'] {
  if (raw === undefined) return undefined;
  const log = objectOf('accessLog', raw, ['format', 'path', 'bufferBytes', 'flushMs']);
  const format = log.format ?? 'json';
  if (format !== 'json' && format !== 'text') throw new InvalidOptionError('accessLog.format', format, 'must be "json" or "text"');
  const path =
    log.path === undefined || log.path === '-' ? '-' : resolve(baseDir, nonEmptyString('accessLog.path', log.path, 'a file path, or "-" for stdout'));
  if (path !== '-') {
    try {
      checkWritable(path);
    } catch (error) {
      const reason = error instanceof ConfigPathError ? error.reason : String((error as Error)?.message ?? error);
      throw new InvalidOptionError('accessLog.path', log.path, `must be a file this process can append to, but it ${reason}`, { cause: error });
    }
  }
  return Object.freeze({
    format,
    path,
    bufferBytes: integer('accessLog.bufferBytes', log.bufferBytes, 1 << 20, 4096, 1 << 30),
    flushMs: integer('accessLog.flushMs', log.flushMs, 100, 1, 60_000),
  });
}

function validateServer(raw: unknown): FulcrumConfig['server'] {
  const server = objectOrEmpty('server', raw, ['headersTimeoutMs', 'requestTimeoutMs', 'keepAliveTimeoutMs', 'maxConnections']);
  return Object.freeze({
    headersTimeoutMs: integer('server.headersTimeoutMs', server.headersTimeoutMs, 20_000, 1, MAX_TIMER_MS),
    requestTimeoutMs: integer('server.requestTimeoutMs', server.requestTimeoutMs, 300_000, 0, MAX_TIMER_MS),
    keepAliveTimeoutMs: integer('server.keepAliveTimeoutMs', server.keepAliveTimeoutMs, 5000, 1, MAX_TIMER_MS),
    maxConnections: integer('server.maxConnections', server.maxConnections, 10_000, 1, 10_000_000),
  });
}

function defaultNodeId(): string {
  const id = `${hostname()}-${process.pid}`.replace(/[^A-Za-z0-9._:-]/g, '-').slice(-64);
  return id.length === 0 ? `fulcrum-${process.pid}` : id;
}
