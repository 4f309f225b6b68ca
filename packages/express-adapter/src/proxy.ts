/**
 * `proxy(options)`: Fulcrum's reverse proxy (`createProxy` of `@fulcrum/http`) as Express middleware.
 *
 * Mount semantics follow http-proxy-middleware's default and Express's own contract: under
 * `app.use('/api', proxy(…))` a middleware sees `req.url` with the mount path removed, and that is the
 * path the backend receives (`/api/users?x=1` → `/users?x=1`), so a backend written to live at `/`
 * can be mounted anywhere. `keepMountPath: true` forwards `req.originalUrl` instead — the path exactly
 * as the client sent it — for backends that expect the public prefix. Routes (`app.all('/api/*p')`)
 * do not rewrite `req.url`, so there the backend always sees the full path.
 *
 * Everything else — streaming, retries, affinity, errors — is the proxy's. The one Express-specific
 * trap handled here is a body parser mounted before the proxy: it has already drained the request
 * stream, so there is nothing left to forward and the proxy would wait for bytes that never come.
 * That is a wiring mistake only the app can fix, so it goes to `next(err)` with a message saying so.
 */
import type { LoadBalancer } from '@fulcrum/core';
import { InvalidOptionError } from '@fulcrum/core';
import { createProxy, hasBody, type ProxyHandler, type ProxyOptions } from '@fulcrum/http';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { delegate } from './delegate';

/** Options of `proxy()`: every `createProxy` option, plus how the mount path is forwarded. */
export interface ExpressProxyOptions extends ProxyOptions {
  /**
   * Forward `req.originalUrl` (the path as the client sent it, mount path included) rather than
   * `req.url` (the path after the mount point). Default false: the mount path is stripped.
   */
  keepMountPath?: boolean;
}

/** Express middleware that forwards to the pool, with the proxy's `upgrade`, `close` and `lb`. */
export type ProxyMiddleware = RequestHandler & {
  /** Forward WebSocket upgrades: `server.on('upgrade', middleware.upgrade)` (Express never sees them). */
  readonly upgrade: ProxyHandler['upgrade'];
  /** Close the proxy: see `ProxyHandler.close`. */
  close(): Promise<void>;
  /** The load balancer the proxy uses (for `stats(mw.lb)`, `lb.drain(id)`, …). */
  readonly lb: LoadBalancer;
};

/** Create the middleware. Options are validated here, once; see `ProxyOptions` for defaults. */
export function proxy(options: ExpressProxyOptions): ProxyMiddleware {
  if (typeof options !== 'object' || options === null) throw new InvalidOptionError('options', options, 'must be an object with a balancer');
  const { keepMountPath = false, ...proxyOptions } = options;
  if (typeof keepMountPath !== 'boolean') throw new InvalidOptionError('keepMountPath', keepMountPath, 'must be true or false');
  const handler = createProxy(proxyOptions);

  const middleware = (req: Request, res: Response, next: NextFunction): void => {
    if (req.readableEnded && hasBody(req)) return next(bodyAlreadyRead());
    if (!keepMountPath) return delegate(handler, req, res, next);
    // Express puts the mount path back itself when `next` is called; ours must be undone first.
    const mountedUrl = req.url;
    req.url = req.originalUrl;
    delegate(handler, req, res, next, () => (req.url = mountedUrl));
  };
  return Object.defineProperties(middleware, {
    // `upgrade` is declared `this: unknown`: it never reads `this`, so it may travel unbound.
    // eslint-disable-next-line @typescript-eslint/unbound-method
    upgrade: { value: handler.upgrade, enumerable: true },
    close: { value: () => handler.close(), enumerable: true },
    lb: { value: handler.lb, enumerable: true },
  }) as ProxyMiddleware;
}

function bodyAlreadyRead(): Error {
  return Object.assign(
    new Error(
      '@fulcrum/express-adapter: the request body was already read (a body parser runs before the proxy); mount the proxy before express.json()/express.urlencoded()',
    ),
    { status: 500, expose: false },
  );
}
