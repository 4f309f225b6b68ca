/**
 * The standalone proxy: `startFulcrum(config)` opens the frontends, builds one load balancer and
 * one proxy per pool, routes between them, and serves stats, metrics and the admin API; `reload`
 * applies a new config without losing what must survive; `close` shuts down gracefully.
 *
 * Reload (the consul-template workflow; HAProxy's seamless reload, without a new process): the new
 * config is validated first and an invalid one changes nothing. A valid one is DIFFED:
 * - a pool whose balancing options (algorithm, health, outlier, slow start, panic threshold) are
 *   unchanged keeps its `LoadBalancer` and gets `lb.update(backends)`: unchanged backends keep their
 *   Backend object — health counter, admin state, ejection, in-flight count, latency — new ones join
 *   (with slow start), removed ones drain their in-flight requests;
 * - a pool whose proxy options (stickiness, hashBy, retries, timeouts…) are unchanged keeps its proxy,
 *   hence its keep-alive connections; its stick-table survives unless the stickiness mode changed;
 * - changed balancing options rebuild that pool's load balancer (its backends start afresh: the
 *   algorithm or the health model they were judged by is gone);
 * - frontends are matched by host:port: new ones are bound BEFORE anything else changes (a port in
 *   use fails the reload and leaves the old config running), removed ones stop listening and finish
 *   their requests; TLS certificates are re-read and swapped in place (`TlsContext.reload`: open
 *   connections keep what they negotiated, new handshakes get the new certificates — the config
 *   validation already built them once, so a bad certificate fails the reload before anything changes);
 * - a frontend's `redirectToHttps` is its request handler, swapped in place on reload (same socket);
 * - routes and splits are rebuilt from the file (runtime split changes made through the admin API
 *   are replaced: the file is the source of truth, as with HAProxy's runtime API).
 * Replication is opened once at start; changing it needs a restart (a warning says so).
 *
 * One proxy serves every frontend: `createRouter` gets each pool as a `PoolSpec` (its load balancer
 * and its own stickiness, hashBy, retries and timeouts), and `createProxy` hands each routed request
 * to that pool's engine — on node:http frontends through its handler, on raw frontends through
 * `engineFor(pool)` in the listener's dispatch. A reload that changes routes, pools or their proxy
 * options builds a new router and proxy; the old proxy finishes its requests, then is closed.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { LoadBalancer, StickTable, type BackendState, type HealthOptions, type LoadBalancerSnapshot, type Probe, type Replicator } from '@fulcrum/core';
import type { Server as TlsServer } from 'node:tls';
import {
  ConnectionLimit,
  DEFAULT_STICKY_CAPACITY,
  DEFAULT_STICKY_TTL_MS,
  PROXY_ENGINE,
  RateLimiter,
  RawListener,
  closeAfterAnswer,
  createProxy,
  createRouter,
  createTlsContext,
  normalizeListenerOptions,
  prometheusHandler,
  protocolStatsJson,
  PROMETHEUS_CONTENT_TYPE,
  redirectToHttps,
  sendRendersBusy,
  SMALL_BODY_BACKENDS,
  statsPage,
  trafficOf,
  type AccessLogEntry,
  type AdmissionVerdict,
  type NormalizedRateLimitOptions,
  type PoolSpec,
  type PoolTrafficJson,
  type ProxyHandler,
  type ProxyOptions,
  type RawDispatch,
  type RequestView,
  type Router,
  type StatsHandler,
  type TlsContext,
} from '@fulcrum/http';
import { AccessLogWriter } from './access-log';
import { createAdminHandler, type AdminControl } from './admin';
import { endpointGate, type EndpointGate } from './endpoint-auth';
import { MAX_TIMER_MS } from '@fulcrum/core/validate';
import { adoptListener, type HandoverState, type Inherited, type InheritedListener, type PoolHandover } from './handover';
import {
  validateConfigAsync,
  type FulcrumConfig,
  type NormalizedFrontend,
  type NormalizedPool,
  type ValidateAsyncOptions,
  type ValidateOptions,
} from './config';
import { loadConfig } from './load';
import { stderrLogger, type RunnerLogger } from './log';
import { namespaced, openReplicator, type ModuleLoader, type OpenReplicator } from './replication';
import {
  coalesce,
  mergeSnapshotsSteps,
  runSliced,
  streamPieces,
  sumWorkerTrafficSteps,
  workersMetricsPieces,
  workersStatsJsonPieces,
  type CollectedReports,
} from './worker-stats';
import { CHECKING_SLOT, type RenderSlot, type WorkerChange, type WorkerReport } from './workers';

/** How often Node sweeps connections for expired header and request timeouts, ms. */
const CONNECTIONS_CHECKING_INTERVAL_MS = 1000;

const BAD_REQUEST_ANSWER = 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n';

/** What Node's parser errors are answered with before the socket is destroyed ('' = nothing). */
const CLIENT_ERROR_ANSWERS: Readonly<Record<string, string>> = {
  HPE_HEADER_OVERFLOW: 'HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\n\r\n',
  ERR_HTTP_REQUEST_TIMEOUT: 'HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n',
  ECONNRESET: '',
};

/** Options of `startFulcrum`. */
export interface StartOptions {
  /** The config file: `reload()` without an argument and the admin API's reload read it again. */
  configFile?: string;
  /** Reload when the config file changes (fs.watch on its directory, debounced). Default true with `configFile`. */
  watch?: boolean;
  /** Debounce of file-change reloads, ms. Default 200 (editors and consul-template write in several steps). */
  watchDebounceMs?: number;
  /** Where the runner reports start, reloads and errors. Default: pino-style JSON lines on stderr. */
  logger?: RunnerLogger;
  /** Source of `$env:NAME`. Default `process.env`. */
  env?: ValidateOptions['env'];
  /** Loads the optional replication packages. Default `(name) => import(name)`. */
  importModule?: ModuleLoader;
  /**
   * Listening sockets and state handed over by a predecessor (a seamless upgrade, `handover.ts`):
   * listeners whose `host:port` key the config names are adopted instead of bound, and health
   * counters, admin states and learned stickiness are restored before the first request is served.
   */
  inherit?: Inherited;
  /** Set by `fulcrum --workers N` in each worker: how it shares state with the others (see workers.ts). */
  worker?: WorkerOptions;
}

/** A worker's link to the others, through the primary. */
export interface WorkerOptions {
  /** 1, 2, …: the worker's slot; its node id is `<nodeId>.w<slot>`. */
  readonly slot: number;
  /** Whether this worker runs the active health checks; the others apply its verdicts. */
  readonly runsChecks: boolean;
  /** The stick-tables' and shared rate limits' replicator when the config has no `replication`. */
  readonly replicator: Replicator<unknown>;
  /** Send an admin change made here, or a health verdict, to every other worker. */
  broadcast(change: WorkerChange): void;
  /** Every worker's report, for the aggregated admin state and metrics; `missing`: the slots of the workers left out. */
  collect(): Promise<WorkerReport[] & { missing?: number[] }>;
  /** The keys of the listeners this worker serves, after its start and each reload (`listeningSockets()`). */
  listening?(keys: readonly string[]): void;
  /**
   * One of `handler`'s render slots for a large aggregated answer, or undefined when none is left:
   * two at once per handler over every worker, as one process renders. Without it, this worker's
   * large answers are not counted.
   */
  renderSlot?(handler: string): Promise<RenderSlot | undefined>;
}

/** A running proxy. */
export interface FulcrumInstance {
  /** The config in force. */
  readonly config: FulcrumConfig;
  /**
   * Bound addresses: frontends in config order; the admin listener when it has its own port; the
   * listener serving the stats page and the metrics (their own, or the admin's), if any.
   */
  addresses(): { frontends: AddressInfo[]; admin: AddressInfo | undefined; stats: AddressInfo | undefined; metrics: AddressInfo | undefined };
  /** The load balancer of a pool. */
  pool(name: string): LoadBalancer | undefined;
  /**
   * Apply a new config (a parsed file or a validated `FulcrumConfig`), or re-read `configFile`.
   * Rejects — and changes nothing — when it is invalid or a new port cannot be bound.
   */
  reload(config?: unknown): Promise<void>;
  /**
   * Stop accepting, let in-flight requests finish for up to `graceMs` (default: the config's
   * `shutdown.graceMs`), then cut what is left and release everything. Idempotent.
   */
  close(graceMs?: number): Promise<void>;
  /**
   * Every listening socket, keyed `frontend host:port` or `service host:port` (the admin, stats and
   * metrics listeners) as the config names them: what a successor adopts.
   */
  listeningSockets(): Map<string, NetServer>;
  /** What a successor restores: health counters, states and learned stickiness, per pool. */
  handoverState(): HandoverState;
}

/** Backend states as operators read them in HAProxy's logs and stats page. */
const STATE_WORDS: Readonly<Record<BackendState, string>> = { up: 'UP', down: 'DOWN', draining: 'DRAIN', maintenance: 'MAINT' };
/** Why a backend changed state, in the log's words: its checks, the admin API or file, or its removal. */
const CAUSE_WORDS = { probe: 'check', admin: 'admin', removal: 'removed', handover: 'handover' } as const;

/**
 * The pool's health probe, recording what each check found (its `detail`, or "timed out" when the
 * checker gave up on it), so the line that says a backend went DOWN says why. The checker aborts
 * the signal before it acts on a timeout, and a result reaches this wrapper before the checker.
 */
function recordingProbe(probe: Probe, pool: string, lastCheck: Map<string, string>, log: RunnerLogger): Probe {
  return (backend, signal) => {
    const record = (ok: boolean, detail: string): void => {
      lastCheck.set(backend.id, detail);
      if (!ok) log('debug', `check of ${pool}/${backend.id} failed`, { pool, backend: backend.id, check: detail });
    };
    const onAbort = (): void => record(false, (signal.reason as Error | undefined)?.message ?? 'timed out');
    signal.addEventListener('abort', onAbort, { once: true });
    return Promise.resolve(probe(backend, signal)).then(
      (result) => {
        signal.removeEventListener('abort', onAbort);
        const ok = typeof result === 'boolean' ? result : result.ok === true;
        const detail = typeof result === 'object' && result !== null && typeof result.detail === 'string' ? result.detail : ok ? 'passed' : 'failed';
        record(ok, detail);
        return result;
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        record(false, `probe failed: ${(error as Error)?.message ?? String(error)}`);
        throw error;
      },
    );
  };
}

/** Log every state change, ejection, restoration, membership change and panic of a pool's load balancer. */
function logPoolEvents(lb: LoadBalancer, pool: string, lastCheck: ReadonlyMap<string, string>, log: RunnerLogger): void {
  lb.on('state', (id, from, to, cause) => {
    const fields: Record<string, unknown> = { pool, backend: id, from: STATE_WORDS[from], to: STATE_WORDS[to], reason: CAUSE_WORDS[cause] };
    if (cause === 'probe') fields.check = lastCheck.get(id);
    // A worker applying the checking worker's verdict repeats its line: only at debug.
    log(cause === 'handover' ? 'debug' : to === 'down' ? 'warn' : 'info', `backend ${pool}/${id} is ${STATE_WORDS[to]}`, fields);
  });
  lb.on('ejected', (id, rule, until) => {
    log('warn', `backend ${pool}/${id} is ejected`, { pool, backend: id, reason: 'outlier', rule, forMs: Math.max(0, Math.round(until - lb.clock.now())) });
  });
  lb.on('restored', (id) => log('info', `backend ${pool}/${id} is restored`, { pool, backend: id, reason: 'outlier' }));
  lb.on('added', (backend) => log('info', `backend ${pool}/${backend.id} added`, { pool, backend: backend.id, state: STATE_WORDS[backend.state] }));
  lb.on('removed', (backend) => log('info', `backend ${pool}/${backend.id} removed`, { pool, backend: backend.id }));
  lb.on('panic', (active, healthyFraction) => {
    log(active ? 'warn' : 'info', `pool ${pool} ${active ? 'enters' : 'leaves'} panic mode`, {
      pool,
      healthyFraction: Math.round(healthyFraction * 1000) / 1000,
    });
  });
}

interface PoolRuntime {
  readonly spec: NormalizedPool;
  readonly lb: LoadBalancer;
  /** What the last health check of each backend found, for the state-change log lines. */
  readonly lastCheck: Map<string, string>;
  readonly table: StickTable<string> | undefined;
}

interface Frontend {
  spec: NormalizedFrontend;
  readonly server: Server;
  /** The certificates of a TLS frontend (the one SNI implementation, `createTlsContext`), reloaded in place. */
  readonly tls: TlsContext | undefined;
  /** The handler of a `redirectToHttps` frontend, replaced on reload; `undefined` serves the proxy. */
  redirect: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
}

const ADMIT: AdmissionVerdict = Object.freeze({ admit: true as const });

type RawDispatchEngine = Exclude<RawDispatch, 'hand-off'>['engine'];

/** The engine behind a `createProxy` handler, which the raw frontends dispatch to. */
function engineOf(proxy: ProxyHandler): RawDispatchEngine {
  return (proxy as ProxyHandler & { [PROXY_ENGINE]: RawDispatchEngine })[PROXY_ENGINE];
}
/**
 * At the first start, how long requests wait for the replicated stick-tables to load what the other
 * instances already know (their snapshot), ms; past it the instance serves with what it has.
 */
const STICKY_SYNC_WAIT_MS = 5000;

/** Every worker's reports for one aggregated answer: merged snapshots and summed traffic counters beside them. */
interface Collected {
  reports: CollectedReports;
  pools: Record<string, LoadBalancerSnapshot>;
  traffic: Record<string, PoolTrafficJson>;
}

/** Transitions the stats page lists under `--workers` (the newest, over every worker): the page's own default. */
const STATS_HISTORY = 50;

/** The longest timer Node keeps: the check interval of a worker that never checks. */
const NEVER_MS = MAX_TIMER_MS;

/** Bind `server`, or make it accept on the socket a predecessor handed over. */
function listen(server: Server, port: number, host: string, inherited?: InheritedListener): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const onError = (error: Error): void => reject(error);
    server.once('error', onError);
    const done = (): void => {
      server.off('error', onError);
      resolvePromise();
    };
    if (inherited === undefined) server.listen(port, host, done);
    else if (server instanceof RawListener) adoptListener(server.server, (handle, cb) => server.listenOn(handle, cb), inherited, done);
    else adoptListener(server, (handle, cb) => server.listen(handle, cb), inherited, done);
  });
}

/** The `net.Server` under a frontend's server (a raw TCP frontend's `RawListener` wraps one). */
function netServerOf(server: Server): NetServer {
  return server instanceof RawListener ? server.server : server;
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolvePromise) => {
    if (!server.listening) return resolvePromise();
    server.close(() => resolvePromise());
    server.closeIdleConnections();
  });
}

function pathnameOf(url: string | undefined): string {
  if (url === undefined) return '/';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function underPath(pathname: string, base: string): boolean {
  return pathname === base || pathname.startsWith(base === '/' ? '/' : `${base}/`);
}

class FulcrumRunner implements FulcrumInstance, AdminControl {
  config: FulcrumConfig;
  readonly #options: StartOptions;
  readonly #log: RunnerLogger;
  readonly #pools = new Map<string, PoolRuntime>();
  readonly #frontends = new Map<string, Frontend>();
  /** `server.maxConnections`: every frontend's client connections together. */
  readonly #connectionLimit = new ConnectionLimit(10_000);
  readonly #limiters = new Map<string, RateLimiter>();
  #poolLimiter = new Map<string, RateLimiter>();
  #routeLimiter: (RateLimiter | undefined)[] = [];
  #router: Router | undefined;
  /** The proxy every frontend hands its requests to (over the router, or the single pool). */
  #proxy: ProxyHandler | undefined;
  /** What `#proxy` was built from, beyond the identity of its load balancers and stick-tables. */
  #proxyKey = '';
  /** The stats page as the frontends serve it (admin buttons when the API is under a frontend path). */
  #stats: StatsHandler | undefined;
  /** The stats page on its listener (admin buttons when that is the admin listener). */
  #statsListener: StatsHandler | undefined;
  #metrics: ((req: IncomingMessage, res: ServerResponse) => void) | undefined;
  #statsGate: EndpointGate = () => true;
  #metricsGate: EndpointGate = () => true;
  #admin: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  /** Listeners of the admin API, stats page and metrics, by `host:port` (they may share one). */
  readonly #services = new Map<string, Server>();
  #adminKey = '';
  #accessLog: AccessLogWriter | undefined;
  #accessLogKey = '';
  #replication: OpenReplicator | undefined;
  #replicationKey = '';
  #watcher: FSWatcher | undefined;
  #watchTimer: NodeJS.Timeout | undefined;
  #inflight = 0;
  /** The checking worker's last verdict per `pool␟backend` (workers that do not check). */
  readonly #verdicts = new Map<string, boolean>();
  /** A worker's last aggregate of every worker's pools, which its stats page shows. */
  #aggregated: Record<string, LoadBalancerSnapshot> | undefined;
  /**
   * Set at the first start while the stick-tables load their replicated snapshot: requests wait on
   * it rather than being balanced without what the other instances know (HAProxy's peers sync before
   * a new process serves).
   */
  #sync: Promise<void> | undefined;
  #idle: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  /** Reloads run one at a time: a file event during a reload waits for it. */
  #reloading: Promise<void> = Promise.resolve();
  /** Set once every frontend listens: a start that failed never "stops". */
  #started = false;
  /**
   * Listeners this worker serves without accepting on them (its primary accepts: `Inherited.relayed`),
   * with the address the primary bound, by server.
   */
  readonly #relayedAt = new WeakMap<NetServer, AddressInfo>();
  /** Connections the primary passed here that are still open: a shutdown waits for them as for its own. */
  readonly #relayedSockets = new Set<Socket>();
  #relayedDrained: (() => void) | undefined;
  readonly #forgetRelayed = (socket: Socket): void => {
    this.#relayedSockets.delete(socket);
    if (this.#relayedSockets.size === 0) this.#relayedDrained?.();
  };

  constructor(config: FulcrumConfig, options: StartOptions) {
    this.config = config;
    this.#options = options;
    this.#log = options.logger ?? stderrLogger;
  }

  async start(): Promise<void> {
    const config = this.config;
    if (config.replication !== undefined) {
      this.#replication = await openReplicator(config.replication, this.#nodeId(config), this.#options.importModule ?? ((name) => import(name)));
      this.#replicationKey = JSON.stringify(config.replication);
    } else if (this.#options.worker !== undefined) {
      // The primary relays between the workers and keeps the merged entries for the snapshot.
      this.#replication = { replicator: this.#options.worker.replicator, close: async () => undefined };
    }
    try {
      await this.#apply(config, true);
    } catch (error) {
      await this.close(0);
      throw error;
    }
    await this.#sync;
    // Sockets of the predecessor's listeners this config no longer has: released, so the ports free
    // up once the predecessor exits too.
    for (const [key, unused] of this.#options.inherit?.listeners ?? []) {
      this.#log('info', 'not adopting a listener the config no longer names', { listener: key });
      unused.server.close();
      for (const socket of unused.pending) socket.destroy();
    }
    this.#options.inherit?.listeners.clear();
    const file = this.#options.configFile;
    if (file !== undefined && this.#options.watch !== false) this.#watch(file);
    this.#started = true;
    const bound = this.addresses();
    this.#log('info', this.#options.worker === undefined ? 'fulcrum started' : 'worker serving', {
      nodeId: this.#nodeId(config),
      frontends: bound.frontends.map((a) => `${a.address}:${a.port}`),
      pools: [...config.pools.keys()],
      ...(bound.admin === undefined ? {} : { admin: `${bound.admin.address}:${bound.admin.port}` }),
    });
  }

  // ── FulcrumInstance ───────────────────────────────────────────────────────────────────────────

  addresses(): { frontends: AddressInfo[]; admin: AddressInfo | undefined; stats: AddressInfo | undefined; metrics: AddressInfo | undefined } {
    const frontends = this.config.frontends.map((spec) => this.#addressOf(this.#frontends.get(spec.key)!.server)!);
    const config = this.config;
    const at = (key: string | undefined): AddressInfo | undefined => {
      const server = key === undefined ? undefined : this.#services.get(key);
      return server === undefined ? undefined : this.#addressOf(server);
    };
    return {
      frontends,
      admin: at(config.admin?.port === undefined ? undefined : `${config.admin.host}:${config.admin.port}`),
      stats: at(config.stats?.listener?.key),
      metrics: at(config.metrics?.listener?.key),
    };
  }

  listeningSockets(): Map<string, NetServer> {
    const sockets = new Map<string, NetServer>();
    for (const [key, frontend] of this.#frontends) {
      const server = netServerOf(frontend.server);
      if (server.listening || this.#relayedAt.has(server)) sockets.set(`frontend ${key}`, server);
    }
    for (const [key, server] of this.#services) if (server.listening || this.#relayedAt.has(server)) sockets.set(`service ${key}`, server);
    return sockets;
  }

  /**
   * Serve a connection the primary of `--workers` accepted on the listener `key` (`frontend <key>`,
   * `service <host:port>`) as if this process had accepted it; one for a listener it no longer serves
   * is closed. A shutdown waits for it as for the connections its own listeners accepted.
   */
  serveRelayed(key: string, socket: Socket): void {
    const server = this.#servedAt(key);
    if (server === undefined || this.#closing !== undefined) {
      socket.destroy();
      return;
    }
    this.#relayedSockets.add(socket);
    socket.once('close', () => this.#forgetRelayed(socket));
    server.emit('connection', socket);
  }

  /** The server of the listener `key` if this process serves it (`listeningSockets().get(key)`, without the map). */
  #servedAt(key: string): NetServer | undefined {
    let server: NetServer | undefined;
    if (key.startsWith('frontend ')) {
      const frontend = this.#frontends.get(key.slice('frontend '.length));
      server = frontend === undefined ? undefined : netServerOf(frontend.server);
    } else if (key.startsWith('service ')) server = this.#services.get(key.slice('service '.length));
    return server !== undefined && (server.listening || this.#relayedAt.has(server)) ? server : undefined;
  }

  #addressOf(server: Server): AddressInfo | undefined {
    return (server.address() as AddressInfo | null) ?? this.#relayedAt.get(netServerOf(server));
  }

  /** Where the primary accepts for `server` (taken, so it applies once), if it does. */
  #relay(key: string, server: Server): boolean {
    const relayed = this.#options.inherit?.relayed;
    const address = relayed?.get(key);
    if (address === undefined) return false;
    relayed!.delete(key);
    this.#relayedAt.set(netServerOf(server), address);
    return true;
  }

  handoverState(): HandoverState {
    const pools: Record<string, PoolHandover> = {};
    for (const [name, pool] of this.#pools) {
      pools[name] = {
        backends: pool.lb.snapshot().backends.map((b) => ({ id: b.id, health: b.health?.value ?? null, state: b.state })),
        sticky: pool.table?.entries() ?? [],
      };
    }
    return { version: 1, pools };
  }

  /** The inherited listener for `key`, taken so it is adopted once. */
  #adopt(key: string): InheritedListener | undefined {
    const listeners = this.#options.inherit?.listeners;
    const inherited = listeners?.get(key);
    if (inherited !== undefined) listeners!.delete(key);
    return inherited;
  }

  pool(name: string): LoadBalancer | undefined {
    return this.#pools.get(name)?.lb;
  }

  reload(input?: unknown): Promise<void> {
    return this.#reload(input, input === undefined ? 'reload()' : 'reload(config)');
  }

  #reload(input: unknown, cause: string): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.#closing !== undefined) throw new Error('fulcrum is closing');
      let config: FulcrumConfig;
      if (input === undefined) {
        if (this.#options.configFile === undefined) throw new Error('reload() without a config needs the configFile option');
        config = await loadConfig(this.#options.configFile, this.#validateOptions());
      } else {
        config = isValidated(input) ? input : await validateConfigAsync(input, this.#validateOptions());
      }
      await this.#apply(config, false);
      this.config = config;
      this.#log('info', 'config reloaded', { cause, pools: [...config.pools.keys()] });
    };
    const next = this.#reloading.then(run, run);
    this.#reloading = next.catch(() => undefined);
    return next;
  }

  #validateOptions(): ValidateAsyncOptions {
    return {
      ...(this.#options.env === undefined ? {} : { env: this.#options.env }),
      ...(this.#options.importModule === undefined ? {} : { importModule: this.#options.importModule }),
    };
  }

  // ── AdminControl ──────────────────────────────────────────────────────────────────────────────

  poolNames(): readonly string[] {
    return [...this.#pools.keys()];
  }

  splits(): Record<string, Readonly<Record<string, number>>> {
    const out: Record<string, Readonly<Record<string, number>>> = {};
    const routes = this.config.routes ?? [];
    routes.forEach((route, i) => {
      const split = this.#router?.splitOf(route.name ?? i);
      if (split !== undefined) out[route.name ?? String(i)] = split;
    });
    return out;
  }

  setSplit(route: string, weights: Readonly<Record<string, number>>): void {
    if (this.#router === undefined) throw new Error('no routes are configured');
    const key = /^\d+$/.test(route) ? Number(route) : route;
    this.#router.setSplit(key, weights);
  }

  // ── Applying a config ─────────────────────────────────────────────────────────────────────────

  /** Resolves when every pool's stick-table has merged its snapshot, or after STICKY_SYNC_WAIT_MS. */
  #awaitTables(pools: readonly PoolRuntime[]): Promise<void> | undefined {
    const tables = pools.flatMap((p) => (p.table === undefined ? [] : [p.table]));
    if (tables.length === 0) return undefined;
    let timer: NodeJS.Timeout | undefined;
    const loaded = Promise.all(tables.map((table) => table.ready)).then(() => true);
    const late = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), STICKY_SYNC_WAIT_MS);
      timer.unref();
    });
    return Promise.race([loaded, late]).then((inTime) => {
      clearTimeout(timer);
      this.#sync = undefined;
      if (!inTime)
        this.#log('warn', 'stick-tables did not load the replicated snapshot in time: serving with what they have', { waitedMs: STICKY_SYNC_WAIT_MS });
    });
  }

  async #apply(config: FulcrumConfig, first: boolean): Promise<void> {
    if (!first && JSON.stringify(config.replication ?? null) !== (this.#replicationKey || 'null')) {
      this.#log('warn', 'replication settings changed: they take effect at the next restart');
    }
    if (!first && this.#options.worker !== undefined && config.workersAccept !== this.config.workersAccept) {
      this.#log('warn', 'workers.accept changed: it takes effect at the next restart or upgrade (SIGUSR2)', { accept: this.config.workersAccept });
    }
    // 1. Bind what is new before touching anything: a port in use must fail the reload cleanly.
    const opened: Frontend[] = [];
    const openedServices = new Map<string, Server>();
    // Sockets a predecessor handed over already have clients: they are adopted last, once every
    // pool, route and page below exists to serve what they accept.
    const adopted: [Server, InheritedListener][] = [];
    const adminKey = JSON.stringify(config.admin ?? null);
    const services = serviceListeners(config);
    try {
      for (const spec of config.frontends) {
        if (this.#frontends.has(spec.key)) continue;
        const frontend = this.#createFrontend(spec);
        opened.push(frontend);
        const inherited = this.#adopt(`frontend ${spec.key}`);
        if (this.#relay(`frontend ${spec.key}`, frontend.server)) continue;
        if (inherited === undefined) await listen(frontend.server, spec.port, spec.host);
        else adopted.push([frontend.server, inherited]);
      }
      for (const [key, listener] of services) {
        if (this.#services.has(key)) continue;
        // Node checks header and request timeouts every 30 s by default: once a second here, so
        // `server.headersTimeoutMs` holds on these listeners to the second.
        const server = createHttpServer({ connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS }, (req, res) => this.#serveListener(key, req, res));
        openedServices.set(key, server);
        const inherited = this.#adopt(`service ${key}`);
        if (this.#relay(`service ${key}`, server)) continue;
        if (inherited === undefined) await listen(server, listener.port, listener.host);
        else adopted.push([server, inherited]);
      }
    } catch (error) {
      await Promise.all([...opened.map((f) => closeServer(f.server)), ...[...openedServices.values()].map(closeServer)]);
      throw error;
    }

    // 2. Pools: keep or update their load balancers and stick-tables, or build new ones.
    const retired: Promise<void>[] = [];
    const next = new Map<string, PoolRuntime>();
    for (const [name, spec] of config.pools) next.set(name, this.#buildPool(config, spec, this.#pools.get(name)));
    if (first && this.#options.inherit !== undefined) restoreHandover(next, this.#options.inherit.state);
    if (first && this.#replication !== undefined) this.#sync = this.#awaitTables([...next.values()]);
    const poolsChanged = first || next.size !== this.#pools.size || [...next].some(([name, p]) => this.#pools.get(name)?.lb !== p.lb);
    const tablesChanged = [...next].some(([name, p]) => this.#pools.get(name)?.table !== p.table);
    // Load balancers and stick-tables no longer used: removed pools drain now; all are released
    // once the proxy that served them has finished its requests.
    const leaving: { lb: LoadBalancer | undefined; table: StickTable<string> | undefined }[] = [];
    for (const [name, old] of this.#pools) {
      const kept = next.get(name);
      if (kept === undefined) old.lb.update([]);
      leaving.push({ lb: kept?.lb === old.lb ? undefined : old.lb, table: kept?.table === old.table ? undefined : old.table });
    }
    this.#pools.clear();
    for (const [name, p] of next) this.#pools.set(name, p);

    // 3. The router and the proxy, then limits, stats, admin, access log.
    const proxyKey = JSON.stringify([config.routerKey, config.trustedProxies ?? null, [...config.pools.values()].map((p) => [p.name, p.proxyKey])]);
    if (first || poolsChanged || tablesChanged || proxyKey !== this.#proxyKey) {
      const oldProxy = this.#proxy;
      const oldRouter = this.#router;
      const built = this.#buildProxy(config, next);
      this.#router = built.router;
      this.#proxy = built.proxy;
      this.#proxyKey = proxyKey;
      const done = oldProxy === undefined ? Promise.resolve() : this.#retireProxy(oldProxy, oldRouter);
      retired.push(done.then(() => this.#release(leaving)));
    }
    this.#applyLimiters(config);
    // The stats page's admin buttons call the admin API from the browser: only possible when the API
    // is on the page's own origin (under a path of the frontends), since the page's CSP allows
    // `connect-src 'self'` and nothing else.
    // On the admin listener itself the API is at the root of the page's origin: buttons call "/pools/…".
    const statsAdminPath = config.admin !== undefined && config.admin.port === undefined ? config.admin.path : undefined;
    const statsOnAdminListener = config.admin?.port !== undefined && config.stats?.listener?.key === `${config.admin.host}:${config.admin.port}`;
    if (first || poolsChanged || statsKey(config) !== statsKey(this.config)) {
      this.#stats?.close();
      this.#statsListener?.close();
      const source = Object.fromEntries([...next].map(([n, p]) => [n, p.lb]));
      // A worker's page shows every worker's counters: its pools' snapshots are the aggregate.
      const pageSource = this.#options.worker === undefined ? source : Object.fromEntries([...next].map(([n, p]) => [n, this.#aggregatedView(n, p.lb)]));
      const stats = config.stats;
      const page = (adminPath: string | undefined, renders: string): StatsHandler =>
        this.#aggregating(
          renders,
          statsPage(pageSource, {
            title: stats!.title,
            refreshMs: stats!.refreshMs,
            frontends: this.#http2Frontends,
            ...(adminPath === undefined ? {} : { admin: { path: adminPath } }),
          }),
        );
      this.#stats = stats !== undefined && config.frontends.some((f) => f.stats) ? page(statsAdminPath, 'stats') : undefined;
      this.#statsListener = stats?.listener !== undefined ? page(statsOnAdminListener ? '/' : undefined, 'stats listener') : undefined;
      this.#metrics =
        config.metrics === undefined
          ? undefined
          : this.#options.worker !== undefined
            ? this.#workerMetrics
            : prometheusHandler(source, { frontends: this.#http2Frontends });
      this.#statsGate = endpointGate(stats?.auth, 'fulcrum-stats');
      this.#metricsGate = endpointGate(config.metrics?.auth, 'fulcrum-metrics');
    }
    if (adminKey !== this.#adminKey) {
      this.#admin =
        config.admin === undefined
          ? undefined
          : createAdminHandler(this, { token: config.admin.token, prefix: config.admin.port === undefined ? config.admin.path : '' });
      this.#adminKey = adminKey;
    }
    for (const [key, server] of openedServices) this.#services.set(key, server);
    // The same slowloris bounds as the frontends: these listeners face operators' tools, not only trusted ones.
    for (const server of this.#services.values()) this.#applyServerTimeouts(server, config);
    for (const [key, server] of this.#services) {
      if (services.has(key)) continue;
      this.#services.delete(key);
      retired.push(closeServer(server));
    }
    const accessLogKey = JSON.stringify(config.accessLog ?? null);
    if (accessLogKey !== this.#accessLogKey) {
      const old = this.#accessLog;
      const spec = config.accessLog;
      this.#accessLog =
        spec === undefined
          ? undefined
          : new AccessLogWriter({ format: spec.format, destination: spec.path, bufferBytes: spec.bufferBytes, flushMs: spec.flushMs });
      this.#accessLogKey = accessLogKey;
      if (old !== undefined) retired.push(old.close());
    }

    // 4. Frontends: install the new ones, refresh TLS and timeouts, retire the removed.
    for (const frontend of opened) this.#frontends.set(frontend.spec.key, frontend);
    const wanted = new Set(config.frontends.map((f) => f.key));
    for (const spec of config.frontends) {
      const frontend = this.#frontends.get(spec.key)!;
      if (!opened.includes(frontend)) {
        if (frontend.tls !== undefined && spec.tls !== undefined) {
          // Validation built these certificates once already: a failure here is not the file's.
          retired.push(
            frontend.tls
              .reload(spec.tls.certs)
              .catch((error: unknown) =>
                this.#log('error', 'TLS certificates not swapped; the previous ones stay', { frontend: spec.key, error: String(error) }),
              ),
          );
        }
        if (JSON.stringify(spec.redirectToHttps ?? null) !== JSON.stringify(frontend.spec.redirectToHttps ?? null)) {
          frontend.redirect = spec.redirectToHttps === undefined ? undefined : redirectToHttps(spec.redirectToHttps);
        }
        frontend.spec = spec;
      }
      this.#applyServerTimeouts(frontend.server, config, spec);
    }
    for (const [key, frontend] of this.#frontends) {
      if (wanted.has(key)) continue;
      this.#frontends.delete(key);
      retired.push(closeServer(frontend.server));
    }
    this.config = config;
    await Promise.all(adopted.map(([server, inherited]) => listen(server, 0, '', inherited)));
    this.#options.worker?.listening?.([...this.listeningSockets().keys()]);
    // Retirements finish in the background: they wait for in-flight requests.
    void Promise.all(retired).catch((error: unknown) => this.#log('warn', 'retiring old pools failed', { error: String(error) }));
  }

  #buildPool(config: FulcrumConfig, spec: NormalizedPool, old: PoolRuntime | undefined): PoolRuntime {
    let lb: LoadBalancer;
    let lastCheck: Map<string, string>;
    if (old !== undefined && old.spec.balancerKey === spec.balancerKey) {
      lb = old.lb;
      lastCheck = old.lastCheck;
      lb.update(spec.backends);
    } else {
      lastCheck = new Map();
      const health = spec.balancer.health as HealthOptions | undefined;
      const worker = this.#options.worker;
      let checks: HealthOptions | undefined =
        health === undefined ? undefined : { ...health, probe: recordingProbe(health.probe, spec.name, lastCheck, this.#log) };
      if (checks !== undefined && worker !== undefined && !worker.runsChecks) {
        // Health checks run once, in the checking worker: this one never probes (its first check
        // would come in ~24 days, and answers the last verdict it received) and applies the
        // checking worker's verdicts through `restoreHealth` (`applyChange`).
        const name = spec.name;
        checks = {
          ...checks,
          probe: (backend) => Promise.resolve(this.#verdicts.get(`${name}\u001f${backend.id}`) ?? true),
          intervalMs: NEVER_MS,
          fastIntervalMs: NEVER_MS,
          downIntervalMs: NEVER_MS,
        };
      }
      lb = new LoadBalancer({ ...spec.balancer, ...(checks === undefined ? {} : { health: checks }), backends: spec.backends });
      logPoolEvents(lb, spec.name, lastCheck, this.#log);
      if (checks !== undefined && worker?.runsChecks === true) {
        const name = spec.name;
        lb.on('state', (id, _from, to, cause) => {
          if (cause === 'probe') worker.broadcast({ op: 'health', pool: name, id, up: to !== 'down' });
        });
      }
    }
    const sticky = spec.stickiness;
    let table: StickTable<string> | undefined;
    if (sticky !== undefined && sticky.cookie === undefined) {
      table =
        old?.table !== undefined && old.spec.tableKey === spec.tableKey
          ? old.table
          : new StickTable<string>({
              capacity: DEFAULT_STICKY_CAPACITY,
              ttlMs: sticky.ttlMs ?? DEFAULT_STICKY_TTL_MS,
              nodeId: this.#nodeId(config),
              ...(this.#replication ? { replicator: namespaced<string>(this.#replication.replicator, `pool:${spec.name}`) } : {}),
              // Between workers of one host the IPC is cheap, and a client's next connection may go
              // to another worker at once: publish each write as it is made (a batch of one, written
              // to the IPC pipe synchronously by `commit`, before the answer's head), not in 50 ms
              // batches. The primary, which by default accepts every connection, reads it before it
              // passes that client's next connection on (worker-listeners.ts); with
              // `workers.accept: 'workers'` a next connection another worker accepts within two IPC
              // hops is balanced anew (README, "Workers").
              ...(config.replication === undefined && this.#options.worker !== undefined ? { batchMs: 0, maxBatch: 1 } : {}),
            });
    }
    return { spec, lb, lastCheck, table };
  }

  /** A pool as the router takes it: its load balancer and the proxy options it sets for itself. */
  #poolSpec(pool: PoolRuntime): PoolSpec {
    const { maxHeaderCount: _checkedBeforeRouting, ...own } = pool.spec.proxy as ProxyOptions;
    const sticky = pool.spec.stickiness;
    return {
      ...(own as Omit<PoolSpec, 'balancer'>),
      balancer: pool.lb,
      ...(sticky === undefined ? {} : { stickiness: { ...sticky, ...(pool.table === undefined ? {} : { table: pool.table }) } }),
      ...(pool.spec.hashBy === undefined ? {} : { hashBy: pool.spec.hashBy }),
    };
  }

  /** The router over the pools (with routes) and the one proxy every frontend hands requests to. */
  #buildProxy(config: FulcrumConfig, pools: ReadonlyMap<string, PoolRuntime>): { router: Router | undefined; proxy: ProxyHandler } {
    // A head is checked before it is routed: the largest of the pools' limits applies to all.
    const headerCounts = [...pools.values()].flatMap((p) =>
      (p.spec.proxy as ProxyOptions).maxHeaderCount === undefined ? [] : [(p.spec.proxy as ProxyOptions).maxHeaderCount!],
    );
    const shared: ProxyOptions = {
      ...(config.trustedProxies === undefined ? {} : { trustedProxies: config.trustedProxies }),
      ...(headerCounts.length === 0 ? {} : { maxHeaderCount: Math.max(...headerCounts) }),
      accessLog: this.#writeAccessLog,
      admission: this.#admission,
      onError: (error, context) => {
        if (context.phase === 'upstream')
          this.#log('warn', 'upstream error', { backendId: context.backendId, error: String((error as Error)?.message ?? error) });
      },
    };
    if (config.routes === undefined) {
      const only = pools.values().next().value as PoolRuntime;
      return { router: undefined, proxy: createProxy({ ...shared, ...this.#poolSpec(only) }) };
    }
    const router = createRouter({
      pools: Object.fromEntries([...pools].map(([name, pool]) => [name, this.#poolSpec(pool)])),
      routes: config.routes,
      encodedDotSegments: config.encodedDotSegments,
      ...(config.split ? { split: config.split } : {}),
    });
    try {
      return { router, proxy: createProxy({ ...shared, router }) };
    } catch (error) {
      router.close();
      throw error;
    }
  }

  /** Let a replaced proxy finish its requests, then close it, its engines' connections and its router. */
  async #retireProxy(proxy: ProxyHandler, router: Router | undefined): Promise<void> {
    const engine = engineOf(proxy);
    const engines = new Set([engine, ...[...(router?.pools.keys() ?? [])].map((name) => engine.engineFor(name))]);
    await proxy.close();
    for (const frontend of this.#frontends.values()) {
      if (frontend.server instanceof RawListener) for (const retiredEngine of engines) frontend.server.retire(retiredEngine);
    }
    router?.close();
  }

  /** Release load balancers and stick-tables nothing serves any more. */
  async #release(leaving: readonly { lb: LoadBalancer | undefined; table: StickTable<string> | undefined }[]): Promise<void> {
    for (const { lb } of leaving) lb?.close();
    await Promise.all(leaving.flatMap(({ table }) => (table === undefined ? [] : [table.close()])));
  }

  #applyLimiters(config: FulcrumConfig): void {
    const used = new Map<string, RateLimiter>();
    const limiter = (scope: string, options: NormalizedRateLimitOptions | undefined): RateLimiter | undefined => {
      if (options === undefined) return undefined;
      const key = `${scope}|${JSON.stringify(options)}`;
      let found = used.get(key) ?? this.#limiters.get(key);
      if (found === undefined) {
        found = new RateLimiter(
          options,
          options.shared && this.#replication
            ? { nodeId: this.#nodeId(config), replicator: namespaced<number>(this.#replication.replicator, `rate:${scope}`) }
            : {},
          scope,
        );
      }
      used.set(key, found);
      return found;
    };
    const global = limiter('rateLimit', config.rateLimit);
    const byPool = new Map<string, RateLimiter>();
    for (const [name, pool] of config.pools) {
      const chosen = limiter(`pools.${name}.rateLimit`, pool.rateLimit) ?? global;
      if (chosen !== undefined) byPool.set(name, chosen);
    }
    this.#routeLimiter = config.routeLimits.map((options, i) => limiter(`routes[${i}].rateLimit`, options));
    this.#poolLimiter = byPool;
    for (const [key, old] of this.#limiters) if (!used.has(key)) void old.close();
    this.#limiters.clear();
    for (const [key, value] of used) this.#limiters.set(key, value);
  }

  /** The rate limit of the request's route, else of its pool (else the global one, `#applyLimiters`). */
  #admission = (req: IncomingMessage, info: { clientIp: string; pool: string; route?: number }): AdmissionVerdict => {
    const limiter = (info.route === undefined ? undefined : this.#routeLimiter[info.route]) ?? this.#poolLimiter.get(info.pool);
    return limiter === undefined ? ADMIT : limiter.admission(req, info);
  };

  #writeAccessLog = (entry: AccessLogEntry): void => {
    this.#accessLog?.write(entry);
  };

  /** The `server.*` timeouts on a frontend, or (without `spec`) on an admin, stats or metrics listener. */
  #applyServerTimeouts(server: Server, config: FulcrumConfig, spec?: NormalizedFrontend): void {
    server.headersTimeout = config.server.headersTimeoutMs;
    server.requestTimeout = config.server.requestTimeoutMs;
    server.keepAliveTimeout = config.server.keepAliveTimeoutMs;
    if (spec === undefined) return;
    // Node refuses the excess in its accept path; Infinity lifts a cap a reload removed.
    server.maxConnections = spec.maxConnections ?? Number.POSITIVE_INFINITY;
    this.#connectionLimit.max = config.server.maxConnections;
  }

  #createFrontend(spec: NormalizedFrontend): Frontend {
    const tls = spec.tls === undefined ? undefined : createTlsContext({ certs: spec.tls.certs });
    const frontend: Frontend = {
      spec,
      server: undefined as unknown as Server,
      tls,
      redirect: spec.redirectToHttps === undefined ? undefined : redirectToHttps(spec.redirectToHttps),
    };
    // Read per request, so a reload can turn the redirect on, off or to another port on the same socket.
    const listener = (req: IncomingMessage, res: ServerResponse): void => {
      if (frontend.redirect !== undefined) frontend.redirect(req, res);
      else this.#handle(req, res, frontend);
    };
    // Node checks headersTimeout and requestTimeout every connectionsCheckingInterval (30 s by
    // default, set at creation only): once a second makes the timeouts hold to within a second.
    const checking = { connectionsCheckingInterval: CONNECTIONS_CHECKING_INTERVAL_MS };
    let server: Server;
    if (spec.engine === 'raw') {
      // The raw engine serves the proxied requests; the connections of Fulcrum's own pages (stats,
      // metrics, admin) and those arriving before the stick-tables are loaded go to a node:http server.
      // Its connections are counted by the raw listener, against the same global cap.
      const fallback = createHttpServer(checking, listener);
      const raw = new RawListener({
        listener: normalizeListenerOptions({
          ...(tls === undefined ? {} : { tls: tls.serverOptions }),
          headersTimeoutMs: this.config.server.headersTimeoutMs,
          connectionLimit: this.#connectionLimit,
          ...(spec.maxConnections === undefined ? {} : { maxConnections: spec.maxConnections }),
          ...(spec.http2 === undefined ? {} : { http2: spec.http2 }),
        }),
        dispatch: (view) => this.#dispatch(view, frontend),
        fallback,
        report: (error) => this.#log('error', 'frontend dispatch failed', { error: String(error) }),
      });
      if (tls !== undefined) tls.attach(raw.server as TlsServer);
      server = raw as unknown as Server;
      fallback.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.#upgrade(req, socket, head, fallback));
    } else {
      server =
        tls === undefined
          ? createHttpServer(checking, listener)
          : (tls.attach(createHttpsServer({ ...tls.serverOptions, ...checking }, listener)) as unknown as Server);
      this.#connectionLimit.attach(server);
    }
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      // The plaintext side of TLS termination must not carry a WebSocket to a backend either.
      if (frontend.redirect !== undefined) closeAfterAnswer(socket, 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      else this.#upgrade(req, socket, head, server);
    });
    server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
      // Answer what can be answered, then destroy: a half-closed socket would wait for a FIN that
      // a slowloris client never sends, holding a descriptor per connection.
      const answer = CLIENT_ERROR_ANSWERS[error.code ?? ''] ?? BAD_REQUEST_ANSWER;
      if (socket.writable && answer !== '') closeAfterAnswer(socket, answer);
      else socket.destroy();
    });
    (frontend as { server: Server }).server = server;
    return frontend;
  }

  // ── Requests ──────────────────────────────────────────────────────────────────────────────────

  /** A raw frontend's request: to its pool's engine, or (Fulcrum's own pages) to node:http. */
  #dispatch = (view: RequestView, frontend: Frontend): RawDispatch => {
    if (this.#sync !== undefined) return 'hand-off';
    const req = view as unknown as IncomingMessage;
    const config = this.config;
    const pathname = pathnameOf(view.url);
    if (config.admin !== undefined && config.admin.port === undefined && underPath(pathname, config.admin.path)) return 'hand-off';
    // Only where this frontend opted in: elsewhere those paths are proxied like any other.
    if (frontend.spec.stats && config.stats !== undefined && underPath(pathname, config.stats.path)) return 'hand-off';
    if (frontend.spec.metrics && config.metrics !== undefined && pathname === config.metrics.path) return 'hand-off';
    const engine = engineOf(this.#proxy!);
    // No route: the proxy's engine answers 404 and writes the access-log line.
    const route = engine.closed ? undefined : engine.route(req);
    // HTTP/1.1 to an HTTP/2 pool: `node:http` serves the connection, the pool's proxy translates.
    if (route !== undefined && view.httpVersion !== '2.0' && this.#pools.get(route.pool)?.spec.proxy.upstreamProtocol === 'h2') return 'hand-off';
    this.#inflight++;
    return { engine: route === undefined ? engine : engine.engineFor(route.pool), route, onEnd: this.#requestEnded };
  };

  #handle = (req: IncomingMessage, res: ServerResponse, frontend: Frontend): void => {
    if (this.#sync !== undefined) {
      void this.#sync.then(() => this.#handle(req, res, frontend));
      return;
    }
    this.#inflight++;
    res.once('close', this.#requestEnded);
    if (this.#closing !== undefined) res.shouldKeepAlive = false;
    const pathname = pathnameOf(req.url);
    const config = this.config;
    if (config.admin !== undefined && config.admin.port === undefined && this.#admin?.(req, res)) return;
    // Stats and metrics only where a frontend opted in (`"stats": true`); elsewhere the path is proxied.
    if (frontend.spec.stats && config.stats !== undefined && this.#stats !== undefined && underPath(pathname, config.stats.path)) {
      if (this.#statsGate(req, res)) this.#stats(req, res);
      return;
    }
    if (frontend.spec.metrics && config.metrics !== undefined && this.#metrics !== undefined && pathname === config.metrics.path) {
      if (this.#metricsGate(req, res)) this.#metrics(req, res);
      return;
    }
    this.#proxy!(req, res);
  };

  /** A request on the admin / stats / metrics listener `key`: whichever of them lives there. */
  #serveListener(key: string, req: IncomingMessage, res: ServerResponse): void {
    const config = this.config;
    const pathname = pathnameOf(req.url);
    if (config.stats?.listener?.key === key && this.#statsListener !== undefined && underPath(pathname, config.stats.path)) {
      if (this.#statsGate(req, res)) this.#statsListener(req, res);
      return;
    }
    if (config.metrics?.listener?.key === key && this.#metrics !== undefined && pathname === config.metrics.path) {
      if (this.#metricsGate(req, res)) this.#metrics(req, res);
      return;
    }
    if (config.admin?.port !== undefined && `${config.admin.host}:${config.admin.port}` === key && this.#admin?.(req, res)) return;
    req.resume();
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
  }

  #upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer, server: Server): void => {
    if (this.#sync !== undefined) {
      void this.#sync.then(() => this.#upgrade(req, socket, head, server));
      return;
    }
    if (this.#closing !== undefined) {
      closeAfterAnswer(socket, 'HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    // With the server as `this`, a refused upgrade's connection goes back to it for the next request.
    this.#proxy!.upgrade.call(server, req, socket, head);
  };

  // ── Workers (`fulcrum --workers N`) ───────────────────────────────────────────────────────────

  #nodeId(config: FulcrumConfig): string {
    const worker = this.#options.worker;
    if (worker === undefined) return config.nodeId;
    const suffix = `.w${worker.slot}`;
    return config.nodeId.slice(0, 64 - suffix.length) + suffix;
  }

  /** An admin API change made here: every other worker applies it too. */
  changed(change: WorkerChange): void {
    this.#options.worker?.broadcast(change);
  }

  /** Every worker's counters summed (states from the checking worker), when this is a worker. */
  aggregate(perWorker = false):
    | Promise<{
        pools: Record<string, LoadBalancerSnapshot>;
        workers: { slot: number; pid: number; requests: number; pools?: Record<string, LoadBalancerSnapshot> }[];
      }>
    | undefined {
    const worker = this.#options.worker;
    if (worker === undefined) return undefined;
    return this.#collect().then(({ reports, pools }) => ({
      pools,
      workers: reports.map((r) => ({
        slot: r.slot,
        pid: r.pid,
        requests: Object.values(r.pools).reduce((sum, p) => sum + p.backends.reduce((n, b) => n + b.requests, 0), 0),
        ...(perWorker ? { pools: r.pools } : {}),
      })),
    }));
  }

  /** This worker's snapshots, for an aggregation another worker asked for. */
  workerReport(): WorkerReport {
    const pools: Record<string, LoadBalancerSnapshot> = {};
    for (const [name, pool] of this.#pools) pools[name] = pool.lb.snapshot();
    const report: WorkerReport = { slot: this.#options.worker?.slot ?? 0, pid: process.pid, pools };
    // The stats beside the snapshots are for the page and the metrics: a failure to read them must
    // not take the worker down (this runs in an IPC handler), only leave them out of this answer.
    try {
      const traffic: Record<string, PoolTrafficJson> = {};
      for (const [name, pool] of this.#pools) traffic[name] = trafficOf(pool.lb).toJSON();
      const named = [...this.#pools].map(([name, pool]) => ({ name, lb: pool.lb }));
      report.stats = {
        events: (this.#stats ?? this.#statsListener)?.events() ?? [],
        traffic,
        protocol: protocolStatsJson(named, this.#http2Frontends()),
      };
    } catch (error) {
      this.#log('warn', 'stats left out of a worker report', { error: String(error) });
    }
    return report;
  }

  /** The raw frontends by `host:port`, whose HTTP/2 counters the stats show. */
  #http2Frontends = (): Record<string, object> => {
    const frontends: Record<string, object> = {};
    for (const [key, frontend] of this.#frontends) if (frontend.server instanceof RawListener) frontends[key] = frontend.server;
    return frontends;
  };

  /** Apply a change another worker made (admin API) or found (health verdict). Never throws. */
  applyChange(change: WorkerChange): void {
    try {
      if (change.op === 'reload') return this.reloadLogged('another worker');
      if (change.op === 'split') return this.#router?.setSplit(/^\d+$/.test(change.route) ? Number(change.route) : change.route, change.weights);
      const lb = this.#pools.get(change.pool)?.lb;
      if (lb === undefined) return;
      if (change.op === 'add') {
        lb.add(change.spec as never);
        return;
      }
      if (lb.get(change.id) === undefined) return;
      if (change.op === 'health') {
        this.#verdicts.set(`${change.pool}\u001f${change.id}`, change.up);
        lb.restoreHealth(change.id, change.up ? Number.MAX_SAFE_INTEGER : 0);
      } else if (change.op === 'drain') lb.drain(change.id);
      else if (change.op === 'maintenance') lb.maintain(change.id);
      else if (change.op === 'ready') lb.ready(change.id);
      else if (change.op === 'weight') lb.setWeight(change.id, change.weight);
      else void lb.remove(change.id);
    } catch (error) {
      this.#log('warn', 'a change from another worker could not be applied', { change: change.op, error: (error as Error).message });
    }
  }

  /**
   * A pool as a worker's stats page reads it: its own events (every worker sees the same state
   * changes), and the snapshot of every worker summed, fetched by `#aggregating` before the page's JSON is built.
   */
  #aggregatedView(name: string, lb: LoadBalancer): LoadBalancer {
    return { on: lb.on.bind(lb), off: lb.off.bind(lb), clock: lb.clock, snapshot: () => this.#aggregated?.[name] ?? lb.snapshot() } as unknown as LoadBalancer;
  }

  /**
   * In a worker, `handler`'s `?format=json` is answered once every worker's snapshot is in (the HTML
   * page is static); `renders` names the handler's render slots (`#answerAggregated`).
   */
  #aggregating(renders: string, handler: StatsHandler): StatsHandler {
    if (this.#options.worker === undefined) return handler;
    const wrapped = ((req: IncomingMessage, res: ServerResponse): void => {
      const url = req.url ?? '/';
      const query = url.indexOf('?');
      if (query === -1 || new URLSearchParams(url.slice(query + 1)).get('format') !== 'json') return handler(req, res);
      if (req.method !== 'GET' && req.method !== 'HEAD') return handler(req, res);
      req.resume();
      this.#answerAggregated(req, res, renders, ({ reports, pools, traffic }) => {
        this.#aggregated = pools;
        streamPieces(req, res, 200, { 'content-type': 'application/json; charset=utf-8' }, workersStatsJsonPieces(pools, reports, STATS_HISTORY, traffic));
      });
    }) as StatsHandler;
    wrapped.close = () => handler.close();
    wrapped.events = () => handler.events();
    return wrapped;
  }

  /** Prometheus metrics summed over every worker, plus the worker count. */
  #workerMetrics = (req: IncomingMessage, res: ServerResponse): void => {
    req.resume();
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    this.#answerAggregated(req, res, 'metrics', ({ reports, pools, traffic }) =>
      streamPieces(req, res, 200, { 'content-type': PROMETHEUS_CONTENT_TYPE }, workersMetricsPieces(pools, reports, traffic)),
    );
  };

  /**
   * Collect every worker's reports, then `render` the answer. Past `SMALL_BODY_BACKENDS` backends
   * (all pools, as one process counts them) the answer first takes one of `renders`' slots from the
   * primary — two at once over every worker, the single process's bound per handler — and a request
   * past them gets 503 with `Retry-After: 1` before anything is collected. Scrapes that share one
   * collection each hold a slot, as each renders and streams its own body: two simultaneous ones are
   * served, as by one process. The slot comes back when the response closes, however that happens
   * (completed, cut for stalling, or the client gone — during the collection too).
   */
  #answerAggregated(req: IncomingMessage, res: ServerResponse, renders: string, render: (collected: Collected) => void): void {
    const worker = this.#options.worker!;
    if (worker.renderSlot === undefined || this.#backendCount() <= SMALL_BODY_BACKENDS) {
      void this.#collect().then(render);
      return;
    }
    void worker.renderSlot(renders).then((slot) => {
      if (slot === undefined) {
        if (!res.destroyed) sendRendersBusy(req, res);
        return;
      }
      if (res.destroyed) return slot.release();
      res.once('close', () => slot.release());
      void this.#collect().then((collected) => {
        if (!res.destroyed) render(collected);
      });
    });
  }

  /** Backends over every pool, from the live lists: what decides, as in one process, whether an answer is large. */
  #backendCount(): number {
    let total = 0;
    for (const pool of this.#pools.values()) total += pool.lb.backends.length;
    return total;
  }

  /**
   * Every worker's reports, their snapshots merged and their traffic counters summed (a few ms per
   * turn of the event loop). Scrapes that arrive while one is under way share it: one IPC round and
   * one merge, not one per scrape. The result is shared: read it, never change it.
   */
  #collect = coalesce(async (): Promise<Collected> => {
    const reports = await this.#options.worker!.collect();
    await new Promise<void>((resolve) => setImmediate(resolve));
    const pools = await runSliced(mergeSnapshotsSteps(reports, CHECKING_SLOT));
    const traffic = await runSliced(sumWorkerTrafficSteps(reports));
    return { reports, pools, traffic };
  });

  #requestEnded = (): void => {
    this.#inflight--;
    if (this.#inflight === 0) this.#idle?.();
  };

  // ── File watching ─────────────────────────────────────────────────────────────────────────────

  #watch(file: string): void {
    const full = resolve(file);
    const name = basename(full);
    const debounceMs = this.#options.watchDebounceMs ?? 200;
    try {
      // The directory, not the file: editors and consul-template replace the file by a rename,
      // after which a watch on the old inode would never fire again.
      this.#watcher = watch(dirname(full), (_event, changed) => {
        if (changed !== null && changed.toString() !== name) return;
        if (this.#watchTimer !== undefined) clearTimeout(this.#watchTimer);
        this.#watchTimer = setTimeout(() => {
          this.#watchTimer = undefined;
          this.reloadLogged('file change');
        }, debounceMs);
      });
      this.#watcher.on('error', (error) => this.#log('warn', 'config watch failed; reload with SIGHUP', { error: error.message }));
    } catch (error) {
      this.#log('warn', 'config watch unavailable; reload with SIGHUP', { error: String(error) });
    }
  }

  /** Reload from the file, logging the outcome instead of throwing (file events, SIGHUP). */
  reloadLogged(cause: string): void {
    this.#reload(undefined, cause).catch((error: unknown) => {
      this.#log('error', 'config reload rejected; the previous config keeps running', { cause, error: (error as Error).message ?? String(error) });
    });
  }

  // ── Shutdown ──────────────────────────────────────────────────────────────────────────────────

  close(graceMs?: number): Promise<void> {
    this.#closing ??= this.#shutdown(graceMs ?? this.config.shutdownGraceMs);
    return this.#closing;
  }

  async #shutdown(graceMs: number): Promise<void> {
    this.#watcher?.close();
    if (this.#watchTimer !== undefined) clearTimeout(this.#watchTimer);
    const servers = [...this.#frontends.values()].map((f) => f.server);
    servers.push(...this.#services.values());
    // Stop accepting; idle keep-alive connections close now, busy ones after their response, and
    // connections accepted just before (their first request on its way) once it is answered.
    const relayedDrained =
      this.#relayedSockets.size === 0
        ? Promise.resolve()
        : new Promise<void>((resolvePromise) => {
            this.#relayedDrained = resolvePromise;
          });
    const closed = Promise.all([...servers.map(closeServer), relayedDrained]);
    await new Promise<void>((resolvePromise) => {
      // Keep-alive sockets that finished their request become idle: close them as they do, and at
      // once when the last request in flight ends.
      const closeIdle = (): void => {
        for (const server of servers) server.closeIdleConnections();
      };
      const sweep = setInterval(closeIdle, 100);
      this.#idle = closeIdle;
      const finish = (): void => {
        clearTimeout(deadline);
        clearInterval(sweep);
        this.#idle = undefined;
        resolvePromise();
      };
      const deadline = setTimeout(finish, graceMs);
      void closed.then(finish);
    });
    for (const server of servers) server.closeAllConnections();
    await closed;
    // The grace period is over: nothing is left to drain, so the load balancers are closed as they
    // are (emptying one backend by backend is quadratic in core's update and took 76 s for 40,000).
    if (this.#proxy !== undefined) await this.#retireProxy(this.#proxy, this.#router);
    await this.#release([...this.#pools.values()].map((p) => ({ lb: p.lb, table: p.table })));
    this.#pools.clear();
    this.#stats?.close();
    this.#statsListener?.close();
    await Promise.all([...this.#limiters.values()].map((l) => l.close()));
    await this.#accessLog?.close();
    await this.#replication?.close();
    if (this.#started) this.#log('info', 'fulcrum stopped');
  }
}

/**
 * Restore what a predecessor handed over, for the pools this config still has: check counters,
 * operators' drain and maintenance, learned stickiness. Backends and pools it no longer names are
 * skipped.
 */
function restoreHandover(pools: ReadonlyMap<string, PoolRuntime>, state: HandoverState): void {
  for (const [name, handed] of Object.entries(state.pools)) {
    const pool = pools.get(name);
    if (pool === undefined) continue;
    for (const backend of handed.backends) {
      if (pool.lb.get(backend.id) === undefined) continue;
      if (backend.health !== null) pool.lb.restoreHealth(backend.id, backend.health);
      if (backend.state === 'draining') pool.lb.drain(backend.id);
      else if (backend.state === 'maintenance') pool.lb.maintain(backend.id);
    }
    pool.table?.merge(handed.sticky);
  }
}

/** What the stats page and metrics are built from, beyond the pools. */
function statsKey(config: FulcrumConfig): string {
  return JSON.stringify([
    config.stats,
    config.metrics,
    config.admin?.port === undefined ? config.admin?.path : `${config.admin.host}:${config.admin.port}`,
    config.frontends.some((f) => f.stats),
  ]);
}

/** The listeners of the admin API, stats page and metrics, by `host:port` (shared when equal). */
export function serviceListeners(config: FulcrumConfig): Map<string, { port: number; host: string }> {
  const listeners = new Map<string, { port: number; host: string }>();
  if (config.admin?.port !== undefined) listeners.set(`${config.admin.host}:${config.admin.port}`, { port: config.admin.port, host: config.admin.host });
  for (const listener of [config.stats?.listener, config.metrics?.listener]) {
    if (listener !== undefined && !listeners.has(listener.key)) listeners.set(listener.key, { port: listener.port, host: listener.host });
  }
  return listeners;
}

function isValidated(input: unknown): input is FulcrumConfig {
  // A file's `pools` is an object; only `validateConfig` produces a Map.
  return typeof input === 'object' && input !== null && (input as { pools?: unknown }).pools instanceof Map;
}

/**
 * Start the standalone proxy from a config (a parsed file or a validated `FulcrumConfig`). Resolves
 * once every frontend listens; rejects — with nothing left open — if the config is invalid or a port
 * cannot be bound.
 */
export async function startFulcrum(
  config: unknown,
  options: StartOptions = {},
): Promise<
  FulcrumInstance & {
    reloadLogged(cause: string): void;
    applyChange(change: WorkerChange): void;
    workerReport(): WorkerReport;
    serveRelayed(key: string, socket: Socket): void;
  }
> {
  const validated = isValidated(config)
    ? config
    : await validateConfigAsync(config, {
        ...(options.env === undefined ? {} : { env: options.env }),
        ...(options.importModule === undefined ? {} : { importModule: options.importModule }),
      });
  const runner = new FulcrumRunner(validated, options);
  await runner.start();
  return runner;
}
