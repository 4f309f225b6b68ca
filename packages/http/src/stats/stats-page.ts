/**
 * `statsPage()`: a live HTML stats page for one or more load balancers, plus the same data as JSON
 * at `?format=json` — HAProxy's `stats uri`, as a `(req, res)` handler you mount anywhere.
 *
 * The handler holds no timers and no sockets: the page polls (every `refreshMs`, default 1000 —
 * HAProxy's stats refresh is user-chosen; a second is live enough to watch a failover and costs one
 * small JSON response per viewer per second) and each poll takes a fresh `snapshot()` of every pool.
 * The only state is the ring buffer of recent transitions (`historySize`, default 50), fed by the
 * load balancers' events from the moment the handler is created; `close()` unsubscribes.
 *
 * Like HAProxy's stats page it shows backend addresses: it is an operator's page. Mount it on an
 * admin port or behind authentication, never on the public listener as is.
 *
 * Beside each snapshot, `?format=json` carries the pool's traffic counters (`./traffic.ts`: sessions,
 * rates, bytes, errors, retries, queue, durations, checks, downtime — HAProxy's columns — and five
 * minutes of per-second history that the page draws as charts). Both engines record them; a pool
 * served by neither shows zeros.
 *
 * Cost: the page itself is static. `?format=json` for more than 1,000 backends (all pools) is
 * streamed: each pool is snapshotted in one step, then written in chunks of about 64 KB, one per turn
 * of the event loop, two such renders at most at once (a third gets 503, `Retry-After: 1`), so a
 * 40,000-backend pool's 11 MB answer does not hold up the other requests of the process.
 *
 * With `admin: { path }` each backend row gains drain / maintenance / ready buttons and a weight
 * input that call the admin API of `fulcrum` (HAProxy's stats page has the same "admin" mode). The
 * page carries only the API's path, never a secret: the operator types the bearer token into a
 * password field; it is kept in `sessionStorage` (this tab only, gone when the tab closes) and sent
 * in an `Authorization` header — not a cookie, so another site cannot make the browser use it
 * (no CSRF). The page's CSP allows `fetch` to its own origin only, so the API must be served on the
 * same origin as the page (under a path), not on another port.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { InvalidOptionError } from '@fulcrum/core';
import { finiteNumber } from '@fulcrum/core/validate';
import type { LoadBalancerSnapshot } from '@fulcrum/core';
import { protocolStatsJson, type ProtocolStatsJson } from '../h2/stats';
import { EventLog } from './event-log';
import type { StatsEvent } from './event-log';
import { renderStatsPage, STATS_PAGE_CSP } from './page';
import { allowReadOnly, guarded, send } from './respond';
import { normalizeFrontends, normalizeStatsSource, snapshotPools } from './source';
import type { StatsFrontends, StatsPool, StatsSource } from './source';
import { SMALL_BODY_BACKENDS, normalizeStreamOptions, streamBody } from './stream';
import { DURATION_BOUNDS_MS, statsTrafficOf, trafficJson, trafficJsonPieces } from './traffic';
import type { PoolTrafficJson } from './traffic';

/** Options of `statsPage()`. */
export interface StatsPageOptions {
  /** The page title. Default `'Fulcrum'`. */
  title?: string;
  /** How often the page polls for fresh data, in ms (100–3,600,000). Default 1000. */
  refreshMs?: number;
  /** How many recent transitions to keep and show (1–10,000). Default 50. */
  historySize?: number;
  /**
   * Show admin controls calling the admin API under `path` (an absolute path on the page's own
   * origin, e.g. `'/fulcrum/admin'`): `POST {path}/pools/:pool/backends/:id/drain|maintenance|ready`
   * and `PUT {path}/pools/:pool/backends/:id/weight`. Default: none (a read-only page).
   */
  admin?: { path: string };
  /** `?format=json` of more than 1,000 backends is streamed; this many at once at most (1–64). Default 2. */
  maxConcurrentRenders?: number;
  /** A streamed response whose client reads nothing for this long is cut, ms (100–3,600,000). Default 30,000. */
  stallTimeoutMs?: number;
  /**
   * Listeners by name (`createProxyServer` servers with `http2`) whose HTTP/2 sessions and streams
   * the page shows, or a function returning them. Default: none (the pools' HTTP/2 and gRPC counters
   * are shown whatever this says).
   */
  frontends?: StatsFrontends;
}

/** What `?format=json` returns. */
export interface StatsJson {
  /** `lb.snapshot()` per pool name. */
  pools: Record<string, LoadBalancerSnapshot>;
  /**
   * Recent transitions, oldest first. Under `fulcrum --workers` every worker's, merged: each with the
   * `worker` (slot) that recorded it first and the `workers` that recorded it.
   */
  events: StatsEvent[];
  /**
   * Traffic counters per pool name (HAProxy's stats columns, and the charts' per-second history);
   * absent for a custom load balancer without a clock. Plain numbers and bucket counts, so the
   * answers of several processes add up field by field.
   */
  traffic: Record<string, PoolTrafficJson>;
  /** Upper bounds (ms) of the duration histograms' buckets; the last bucket is open. */
  durationBoundsMs: readonly number[];
  /** HTTP/2 and gRPC counters: per pool (streams, HTTP/1.1 to HTTP/2 requests, gRPC statuses) and per listener. */
  protocol: ProtocolStatsJson;
  /** Processes whose counters this answer holds (1: this one). */
  workers: number;
}

/** A `(req, res)` handler for `node:http` (and Express/Fastify through the adapters), plus `close()`. */
export type StatsHandler = ((req: IncomingMessage, res: ServerResponse) => void) & {
  /** Stop recording transitions (unsubscribe from every load balancer). The page still serves snapshots. */
  close(): void;
  /** The recorded transitions, oldest first (what `?format=json` carries as `events`). */
  events(): StatsEvent[];
};

const KNOWN_OPTIONS = ['title', 'refreshMs', 'historySize', 'admin', 'maxConcurrentRenders', 'stallTimeoutMs', 'frontends'];
/** Absolute, visible ASCII without quotes, query or fragment: it goes into an attribute and into URLs. */
const ADMIN_PATH = /^\/[\x21-\x7e]{0,255}$/;

/**
 * A live stats page. `GET` (or `HEAD`) serves the HTML page; `GET ?format=json` serves
 * `{ pools, events }`; any other method gets 405, an unknown `format` 400.
 *
 * ```ts
 * const stats = statsPage({ web: lb }, { title: 'edge-1' });
 * http.createServer((req, res) => (req.url?.startsWith('/fulcrum') ? stats(req, res) : proxy(req, res)));
 * ```
 */
export function statsPage(source: StatsSource, options?: StatsPageOptions): StatsHandler {
  const pools = normalizeStatsSource('statsPage(source)', source);
  const { title, refreshMs, historySize, adminPath } = normalizeStatsPageOptions(options);
  const page = Buffer.from(renderStatsPage(title, refreshMs, adminPath), 'utf8');
  const log = new EventLog(pools, historySize);
  // Count from now on, so state changes and checks before the first view are not missed.
  for (const { lb } of pools) statsTrafficOf(lb);
  const { maxConcurrentRenders, stallTimeoutMs } = (options ?? {}) as StatsPageOptions;
  const frontends = normalizeFrontends('statsPage.frontends', options?.frontends);
  const gate = normalizeStreamOptions('statsPage', {
    ...(maxConcurrentRenders === undefined ? {} : { maxConcurrentRenders }),
    ...(stallTimeoutMs === undefined ? {} : { stallTimeoutMs }),
  });

  const respond = (req: IncomingMessage, res: ServerResponse): void => {
    if (!allowReadOnly(req, res)) return;
    const format = requestedFormat(req.url);
    if (format === 'json') {
      if (backendCount(pools) > SMALL_BODY_BACKENDS) {
        if (!gate.enter(req, res)) return;
        streamBody(
          req,
          res,
          200,
          { 'content-type': 'application/json; charset=utf-8' },
          statsJsonPieces(pools, log.list(), protocolStatsJson(pools, frontends?.())),
          () => gate.leave(),
          gate.stallTimeoutMs,
        );
        return;
      }
      const body: StatsJson = {
        pools: snapshotPools(pools),
        events: log.list(),
        traffic: trafficJson(pools),
        durationBoundsMs: DURATION_BOUNDS_MS,
        protocol: protocolStatsJson(pools, frontends?.()),
        workers: 1,
      };
      send(req, res, 200, { 'content-type': 'application/json; charset=utf-8' }, JSON.stringify(body));
    } else if (format === 'html') {
      send(
        req,
        res,
        200,
        {
          'content-type': 'text/html; charset=utf-8',
          'content-security-policy': STATS_PAGE_CSP,
          'x-frame-options': 'DENY',
          'referrer-policy': 'no-referrer',
        },
        page,
      );
    } else {
      send(req, res, 400, { 'content-type': 'text/plain; charset=utf-8' }, 'unknown format (use format=json or none)\n');
    }
  };
  const handler = (req: IncomingMessage, res: ServerResponse): void => guarded(req, res, () => respond(req, res));
  return Object.assign(handler, { close: () => log.close(), events: () => log.list() });
}

/** Backends over every pool, from the live lists (0 for a custom load balancer without one). */
function backendCount(pools: readonly StatsPool[]): number {
  let total = 0;
  for (const { lb } of pools) {
    const list = (lb as { backends?: unknown }).backends;
    if (Array.isArray(list)) total += list.length;
  }
  return total;
}

/**
 * The text of `JSON.stringify({ pools: snapshotPools(pools), events })`, piece by piece: each pool is
 * snapshotted when its turn comes (one step per pool — about a microsecond per backend) and its
 * backends are written one by one, so `streamBody` can yield to the event loop between chunks.
 * `backends` is the snapshot's last key, which keeps the text identical to the one-step form.
 */
function* statsJsonPieces(pools: readonly StatsPool[], events: readonly StatsEvent[], protocol: ProtocolStatsJson): Generator<string> {
  yield '{"pools":{';
  let firstPool = true;
  for (const { name, lb } of pools) {
    const { backends, ...head } = lb.snapshot();
    const opening = JSON.stringify(head);
    yield `${firstPool ? '' : ','}${JSON.stringify(name)}:${opening.slice(0, -1)}${opening.length > 2 ? ',' : ''}"backends":[`;
    firstPool = false;
    for (let i = 0; i < backends.length; i++) yield i === 0 ? JSON.stringify(backends[i]) : `,${JSON.stringify(backends[i])}`;
    yield ']}';
  }
  yield `},"events":${JSON.stringify(events)},"traffic":{`;
  let firstTraffic = true;
  for (const { name, lb } of pools) {
    const traffic = statsTrafficOf(lb);
    if (traffic === undefined) continue;
    yield `${firstTraffic ? '' : ','}${JSON.stringify(name)}:`;
    firstTraffic = false;
    yield* trafficJsonPieces(traffic, traffic.now());
  }
  yield `},"durationBoundsMs":${JSON.stringify(DURATION_BOUNDS_MS)},"protocol":${JSON.stringify(protocol)},"workers":1}`;
}

function normalizeStatsPageOptions(input: unknown): { title: string; refreshMs: number; historySize: number; adminPath: string | undefined } {
  if (input === undefined) return { title: 'Fulcrum', refreshMs: 1000, historySize: 50, adminPath: undefined };
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new InvalidOptionError('statsPage.options', input, 'must be an object');
  const options = input as Record<string, unknown>;
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.includes(key)) throw new InvalidOptionError(`statsPage.${key}`, options[key], `is not an option (known: ${KNOWN_OPTIONS.join(', ')})`);
  }
  const { title = 'Fulcrum', refreshMs = 1000, historySize = 50, admin } = options;
  if (typeof title !== 'string' || title.length === 0 || title.length > 200) {
    throw new InvalidOptionError('statsPage.title', title, 'must be a string of 1–200 characters');
  }
  finiteNumber('statsPage.refreshMs', refreshMs, { min: 100, max: 3_600_000, integer: true });
  finiteNumber('statsPage.historySize', historySize, { min: 1, max: 10_000, integer: true });
  return { title, refreshMs: refreshMs as number, historySize: historySize as number, adminPath: normalizeAdminPath(admin) };
}

function normalizeAdminPath(admin: unknown): string | undefined {
  if (admin === undefined) return undefined;
  if (typeof admin !== 'object' || admin === null || Array.isArray(admin)) throw new InvalidOptionError('statsPage.admin', admin, 'must be { path }');
  for (const key of Object.keys(admin)) {
    if (key !== 'path') throw new InvalidOptionError(`statsPage.admin.${key}`, (admin as Record<string, unknown>)[key], 'is not an option (known: path)');
  }
  const { path } = admin as { path?: unknown };
  if (typeof path !== 'string' || !ADMIN_PATH.test(path) || /["'<>\\?#]/.test(path) || path.startsWith('//')) {
    throw new InvalidOptionError(
      'statsPage.admin.path',
      path,
      'must be an absolute URL path on the same origin, like "/fulcrum/admin" (no query, quotes or "//" prefix)',
    );
  }
  // Without the trailing slash (the script appends "/pools/…"); the root is the empty prefix, so no
  // URL ever starts with "//" (which a browser would read as another host).
  return path.endsWith('/') ? path.slice(0, -1) : path;
}

/** `'html'` (no format), `'json'`, or `undefined` for anything else. A malformed query is HTML. */
function requestedFormat(url: string | undefined): 'html' | 'json' | undefined {
  const query = url === undefined ? -1 : url.indexOf('?');
  if (query === -1) return 'html';
  const format = new URLSearchParams((url as string).slice(query + 1)).get('format');
  if (format === null || format === '' || format === 'html') return 'html';
  return format === 'json' ? 'json' : undefined;
}
