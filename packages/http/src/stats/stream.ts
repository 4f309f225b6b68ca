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
 * work and of the snapshots in memory. A client that goes away stops its render at the next chunk,
 * and one that stops reading is cut after `stallTimeoutMs` without progress (default 30 s): otherwise
 * two idle readers would hold both slots, and every later scrape would get 503, for ever.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { InvalidOptionError } from '@fulcrum/core';
import { checkKnownKeys, finiteNumber } from '@fulcrum/core/validate';
import { send } from './respond';

/** About how many bytes are written per turn of the event loop. */
export const CHUNK_BYTES = 64 * 1024;
/** Up to this many backends (all pools together), a body is rendered in one step. */
export const SMALL_BODY_BACKENDS = 1000;
/** Large renders in progress per handler; more are answered 503. */
export const MAX_CONCURRENT_RENDERS = 2;
/** A streamed response whose socket sees no progress for this long is destroyed. */
export const STALL_TIMEOUT_MS = 30_000;

/** Options of the streaming handlers (`prometheusHandler`, `statsPage`). */
export interface StreamOptions {
  /** Large bodies rendered at once per handler; more get 503 with `Retry-After: 1`. 1–64, default 2. */
  maxConcurrentRenders?: number;
  /** Destroy a streamed response whose client reads nothing for this long, ms. 100–3,600,000, default 30,000. */
  stallTimeoutMs?: number;
}

/**
 * The answer to a large render past the limit: 503 with `Retry-After: 1`. Public: `fulcrum --workers`
 * answers the same when every render slot of the instance is taken.
 */
export function sendRendersBusy(req: IncomingMessage, res: ServerResponse): void {
  send(req, res, 503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '1' }, 'stats busy: too many large renders at once, retry\n');
}

/** Counts a handler's large renders in progress. */
export class RenderGate {
  #active = 0;
  constructor(
    readonly limit: number = MAX_CONCURRENT_RENDERS,
    readonly stallTimeoutMs: number = STALL_TIMEOUT_MS,
  ) {}

  /** Take a slot, or answer 503 and return false. */
  enter(req: IncomingMessage, res: ServerResponse): boolean {
    if (this.#active >= this.limit) {
      sendRendersBusy(req, res);
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
 * destroyed, as a truncated body must not look complete). A client that reads nothing for
 * `stallTimeoutMs` (100–3,600,000, default 30,000) is cut. Public: the CLI streams the summed
 * stats of its workers with it.
 */
export function streamBody(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  headers: OutgoingHttpHeaders,
  body: Iterator<string>,
  done: () => void = () => undefined,
  stallTimeoutMs: number = STALL_TIMEOUT_MS,
): void {
  finiteNumber('stallTimeoutMs', stallTimeoutMs, { min: 100, max: 3_600_000, integer: true });
  let finished = false;
  // Armed while waiting for the client to drain what was written: a reader that stops is cut, and
  // the render slot comes back.
  let stall: NodeJS.Timeout | undefined;
  const finish = (): void => {
    if (finished) return;
    finished = true;
    if (stall !== undefined) clearTimeout(stall);
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
    else {
      stall = setTimeout(() => res.destroy(), stallTimeoutMs);
      res.once('drain', () => {
        clearTimeout(stall);
        stall = undefined;
        step();
      });
    }
  };
  step();
}

/** Validate `StreamOptions` into a gate; `path` names them in errors. */
export function normalizeStreamOptions(path: string, input: unknown): RenderGate {
  if (input === undefined) return new RenderGate();
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new InvalidOptionError(path, input, 'must be an object');
  const options = input as Record<string, unknown>;
  checkKnownKeys(path, options, ['maxConcurrentRenders', 'stallTimeoutMs']);
  const { maxConcurrentRenders = MAX_CONCURRENT_RENDERS, stallTimeoutMs = STALL_TIMEOUT_MS } = options;
  finiteNumber(`${path}.maxConcurrentRenders`, maxConcurrentRenders, { min: 1, max: 64, integer: true });
  finiteNumber(`${path}.stallTimeoutMs`, stallTimeoutMs, { min: 100, max: 3_600_000, integer: true });
  return new RenderGate(maxConcurrentRenders as number, stallTimeoutMs as number);
}
