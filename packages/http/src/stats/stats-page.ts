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
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { InvalidOptionError } from '@fulcrum/core';
import type { LoadBalancerSnapshot } from '@fulcrum/core';
import { EventLog } from './event-log';
import type { StatsEvent } from './event-log';
import { renderStatsPage, STATS_PAGE_CSP } from './page';
import { allowReadOnly, guarded, send } from './respond';
import { normalizeStatsSource, snapshotPools } from './source';
import type { StatsSource } from './source';

/** Options of `statsPage()`. */
export interface StatsPageOptions {
  /** The page title. Default `'Fulcrum'`. */
  title?: string;
  /** How often the page polls for fresh data, in ms (100–3,600,000). Default 1000. */
  refreshMs?: number;
  /** How many recent transitions to keep and show (1–10,000). Default 50. */
  historySize?: number;
}

/** What `?format=json` returns. */
export interface StatsJson {
  /** `lb.snapshot()` per pool name. */
  pools: Record<string, LoadBalancerSnapshot>;
  /** Recent transitions, oldest first. */
  events: StatsEvent[];
}

/** A `(req, res)` handler for `node:http` (and Express/Fastify through the adapters), plus `close()`. */
export type StatsHandler = ((req: IncomingMessage, res: ServerResponse) => void) & {
  /** Stop recording transitions (unsubscribe from every load balancer). The page still serves snapshots. */
  close(): void;
};

const KNOWN_OPTIONS = ['title', 'refreshMs', 'historySize'];

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
  const { title, refreshMs, historySize } = normalizeStatsPageOptions(options);
  const page = Buffer.from(renderStatsPage(title, refreshMs), 'utf8');
  const log = new EventLog(pools, historySize);

  const respond = (req: IncomingMessage, res: ServerResponse): void => {
    if (!allowReadOnly(req, res)) return;
    const format = requestedFormat(req.url);
    if (format === 'json') {
      const body: StatsJson = { pools: snapshotPools(pools), events: log.list() };
      send(req, res, 200, { 'content-type': 'application/json; charset=utf-8' }, JSON.stringify(body));
    } else if (format === 'html') {
      send(req, res, 200, {
        'content-type': 'text/html; charset=utf-8',
        'content-security-policy': STATS_PAGE_CSP,
        'x-frame-options': 'DENY',
        'referrer-policy': 'no-referrer',
      }, page);
    } else {
      send(req, res, 400, { 'content-type': 'text/plain; charset=utf-8' }, 'unknown format (use format=json or none)\n');
    }
  };
  const handler = (req: IncomingMessage, res: ServerResponse): void => guarded(req, res, () => respond(req, res));
  return Object.assign(handler, { close: () => log.close() });
}

function normalizeStatsPageOptions(input: unknown): { title: string; refreshMs: number; historySize: number } {
  if (input === undefined) return { title: 'Fulcrum', refreshMs: 1000, historySize: 50 };
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new InvalidOptionError('statsPage.options', input, 'must be an object');
  const options = input as Record<string, unknown>;
  for (const key of Object.keys(options)) {
    if (!KNOWN_OPTIONS.includes(key)) throw new InvalidOptionError(`statsPage.${key}`, options[key], `is not an option (known: ${KNOWN_OPTIONS.join(', ')})`);
  }
  const { title = 'Fulcrum', refreshMs = 1000, historySize = 50 } = options;
  if (typeof title !== 'string' || title.length === 0 || title.length > 200) {
    throw new InvalidOptionError('statsPage.title', title, 'must be a string of 1–200 characters');
  }
  if (!Number.isInteger(refreshMs) || (refreshMs as number) < 100 || (refreshMs as number) > 3_600_000) {
    throw new InvalidOptionError('statsPage.refreshMs', refreshMs, 'must be an integer number of ms from 100 to 3600000');
  }
  if (!Number.isInteger(historySize) || (historySize as number) < 1 || (historySize as number) > 10_000) {
    throw new InvalidOptionError('statsPage.historySize', historySize, 'must be an integer from 1 to 10000');
  }
  return { title, refreshMs: refreshMs as number, historySize: historySize as number };
}

/** `'html'` (no format), `'json'`, or `undefined` for anything else. A malformed query is HTML. */
function requestedFormat(url: string | undefined): 'html' | 'json' | undefined {
  const query = url === undefined ? -1 : url.indexOf('?');
  if (query === -1) return 'html';
  const format = new URLSearchParams((url as string).slice(query + 1)).get('format');
  if (format === null || format === '' || format === 'html') return 'html';
  return format === 'json' ? 'json' : undefined;
}
