/**
 * Writing a large stats body without holding the event loop: the body comes from a generator of
 * string pieces, gathered into chunks of about `CHUNK_BYTES` and written one chunk per turn of the
 * event loop (`setImmediate` between chunks, `drain` when the socket's buffer is full), so requests
 * on the same process — proxied ones included — run between two chunks of a 40,000-backend
 * `GET /metrics`. One `renderPrometheus` of such a pool once held the loop for seconds.
 *
 * Small bodies (the common case: `SMALL_BODY_BACKENDS` backends or fewer) are still rendered in one
 * go and sent with a Content-Length, which keeps HEAD exact and costs nothing measurable.
 *
 * Each handler also caps how many large bodies it renders at once (`MAX_CONCURRENT_RENDERS`):
 * a burst of scrapes on a huge pool gets 503 with `Retry-After: 1` rather than N copies of the
 * work and of the snapshots in memory. A client that goes away stops its render at the next chunk.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { send } from './respond';

/** About how many bytes are written per turn of the event loop. */
export const CHUNK_BYTES = 64 * 1024;
/** Up to this many backends (all pools together), a body is rendered in one step. */
export const SMALL_BODY_BACKENDS = 1000;
/** Large renders in progress per handler; more are answered 503. */
export const MAX_CONCURRENT_RENDERS = 2;

/** Counts a handler's large renders in progress. */
export class RenderGate {
  #active = 0;
  constructor(readonly limit: number = MAX_CONCURRENT_RENDERS) {}

  /** Take a slot, or answer 503 and return false. */
  enter(req: IncomingMessage, res: ServerResponse): boolean {
    if (this.#active >= this.limit) {
      send(req, res, 503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '1' }, 'stats busy: too many large renders at once, retry\n');
      return false;
    }
    this.#active++;
    return true;
  }

  leave(): void {
    this.#active--;
  }

  get active(): number {
    return this.#active;
  }
}

/**
 * Answer with the pieces of `body`, chunked, yielding to the event loop between chunks. HEAD gets
 * the headers only (without a length: it is not known before rendering). `done` runs once, however
 * the response ends (complete, client gone, or an error in the generator — then the socket is
 * destroyed, as a truncated body must not look complete).
 */
export function streamBody(req: IncomingMessage, res: ServerResponse, status: number, headers: OutgoingHttpHeaders, body: Iterator<string>, done: () => void): void {
  let finished = false;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    res.off('close', onClose);
    done();
  };
  const onClose = (): void => {
    if (!res.writableFinished) body.return?.();
    finish();
  };
  res.on('close', onClose);
  res.writeHead(status, { 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers });
  if (req.method === 'HEAD') {
    body.return?.();
    res.end();
    finish();
    return;
  }
  const step = (): void => {
    if (finished || res.destroyed) return finish();
    let chunk = '';
    let last = false;
    try {
      while (chunk.length < CHUNK_BYTES) {
        const next = body.next();
        if (next.done === true) {
          last = true;
          break;
        }
        chunk += next.value;
      }
    } catch {
      res.destroy();
      return finish();
    }
    if (last) {
      res.end(chunk, finish);
      return;
    }
    if (res.write(chunk)) setImmediate(step);
    else res.once('drain', step);
  };
  step();
}
