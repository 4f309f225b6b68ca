/**
 * The small HTTP plumbing the stats handlers share: GET and HEAD only (a read-only surface — any
 * other method is a 405 with `Allow`, as RFC 9110 asks), HEAD answered with GET's headers and no
 * body, and no caching (stats are stale the moment they are written). A handler that throws (a
 * custom load balancer whose `snapshot()` fails) answers 500 instead of taking the server down.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';

/** Answer 405 unless the method is GET or HEAD; returns whether the request may proceed. */
export function allowReadOnly(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method === 'GET' || req.method === 'HEAD') return true;
  send(req, res, 405, { 'content-type': 'text/plain; charset=utf-8', allow: 'GET, HEAD' }, 'method not allowed\n');
  return false;
}

/** Write a complete response; HEAD gets the headers (with GET's Content-Length) only. */
export function send(req: IncomingMessage, res: ServerResponse, status: number, headers: OutgoingHttpHeaders, body: string | Buffer): void {
  const payload = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  res.writeHead(status, { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers, 'content-length': payload.length });
  res.end(req.method === 'HEAD' ? undefined : payload);
}

/** Run `respond`; if it throws before anything was sent, answer 500 (never the error's text). */
export function guarded(req: IncomingMessage, res: ServerResponse, respond: () => void): void {
  try {
    respond();
  } catch {
    if (!res.headersSent) send(req, res, 500, { 'content-type': 'text/plain; charset=utf-8' }, 'stats unavailable\n');
    else res.destroy();
  }
}
