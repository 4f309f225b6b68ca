/**
 * `stats()` and `metrics()`: `@fulcrum/http`'s stats page and Prometheus handler as Express middleware.
 *
 * Both handlers read only the query string, never the path, so they work at any mount point: under
 * `app.use('/fulcrum', stats(lb))` the page is `/fulcrum`, its JSON `/fulcrum?format=json`, and the
 * page polls its own URL, so it keeps working behind any prefix (HAProxy's `stats uri`, mounted where
 * the operator wants it). They answer GET and HEAD, and 405 to anything else, rather than falling
 * through to the next middleware: a POST to a stats URL is a mistake worth seeing.
 *
 * The page shows backend addresses: mount it behind authentication or on an admin listener.
 */
import { prometheusHandler, statsPage, type StatsPageOptions, type StatsSource } from '@fulcrum/http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { delegate } from './delegate';

/** The stats middleware, plus `close()` to stop recording transitions. */
export type StatsMiddleware = RequestHandler & {
  /** Unsubscribe from the load balancers' events; the page still serves snapshots. */
  close(): void;
};

/**
 * The live stats page (HTML) and `?format=json`, relative to the mount. `source` is one load
 * balancer (e.g. `proxyMiddleware.lb`) or pools by name. Options: title (default 'Fulcrum'),
 * refreshMs (default 1000), historySize (default 50).
 */
export function stats(source: StatsSource, options?: StatsPageOptions): StatsMiddleware {
  const page = statsPage(source, options);
  const middleware = (req: Request, res: Response, next: NextFunction): void => delegate(page, req, res, next);
  return Object.defineProperty(middleware, 'close', { value: () => page.close(), enumerable: true }) as StatsMiddleware;
}

/** Prometheus text exposition (format 0.0.4) of `source`'s pools and backends. */
export function metrics(source: StatsSource): RequestHandler {
  const handler = prometheusHandler(source);
  return (req: Request, res: Response, next: NextFunction): void => delegate(handler, req, res, next);
}
