/**
 * From a `node:http` handler to Express middleware: the one translation both middlewares need.
 *
 * Fulcrum's handlers answer every failure they understand themselves (the proxy's 502/503/504, the
 * stats page's 405/400). What is left is a handler that throws — a bug, or a request it was never
 * meant to see — and that belongs to the app's error middleware, as any other middleware's error
 * does in Express (and as http-proxy-middleware hands its errors on). Only while nothing has been
 * written, though: once a status line is out, the error handler cannot answer any more, and a
 * half-sent response is ended by cutting the connection, which is what the client must learn.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NextFunction, Request, Response } from 'express';

/** Call `handler`; a synchronous throw goes to `next(err)` if nothing was sent, else the response is cut. */
export function delegate(
  handler: (req: IncomingMessage, res: ServerResponse) => void,
  req: Request,
  res: Response,
  next: NextFunction,
  restore?: () => void,
): void {
  try {
    handler(req, res);
  } catch (error) {
    restore?.();
    if (res.headersSent) res.destroy();
    else next(error);
  }
}
