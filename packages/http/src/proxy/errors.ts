/**
 * Turning upstream failures into a `FailureKind` and a client answer. The answers are deliberately
 * short and the same for every backend: an error body must never carry a backend's address, an
 * error code from its socket or a stack — only what the client can act on.
 */
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FailureKind } from '@fulcrum/core';
import type { AttemptFailure } from '../retry/policy';

/** Connection errors where the request certainly never reached the backend. */
const NOT_SENT = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENOTFOUND', 'EAI_AGAIN', 'EADDRNOTAVAIL', 'UND_ERR_CONNECT_TIMEOUT']);

/** The proxy's own resources ran out: no backend is to blame, and another would fail alike. */
const LOCAL_EXHAUSTION = new Set(['EMFILE', 'ENFILE', 'ENOBUFS', 'ENOMEM']);

/** Whether an upstream error is the proxy running out of descriptors or memory, not the backend failing. */
export function isLocalExhaustion(error: unknown): boolean {
  const code = errorCode(error);
  return code !== undefined && LOCAL_EXHAUSTION.has(code);
}

const TIMEOUTS = new Set(['UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT', 'ETIMEDOUT']);

/** The `FailureKind` of an upstream error, and whether the request certainly never left the proxy. */
export function classifyError(error: unknown): AttemptFailure {
  const code = errorCode(error);
  // Whatever the code, a failure of the connect syscall itself (refused, or reset while the handshake
  // completed) happened before any request byte could be written.
  if (failedInConnect(error)) return { kind: code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT' ? 'timeout' : 'connect', notSent: true };
  if (code !== undefined && NOT_SENT.has(code)) {
    return { kind: code === 'UND_ERR_CONNECT_TIMEOUT' ? 'timeout' : 'connect', notSent: true };
  }
  if (code !== undefined && TIMEOUTS.has(code)) return { kind: 'timeout', notSent: false };
  if (code === 'UND_ERR_ABORTED') return { kind: 'aborted', notSent: false };
  const kind: FailureKind = 'reset';
  return { kind, notSent: false };
}

function failedInConnect(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e !== null && typeof e === 'object' && depth < 4; depth++) {
    if ((e as { syscall?: unknown }).syscall === 'connect') return true;
    e = (e as { cause?: unknown }).cause;
  }
  return false;
}

/** The error's code, or its cause's (undici wraps socket errors). */
function errorCode(error: unknown): string | undefined {
  for (let e: unknown = error, depth = 0; e !== null && typeof e === 'object' && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string') return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

/** Answer with a short plain-text error, or cut the connection when the response already began. */
export function sendError(res: ServerResponse, status: number, message: string, headers?: Readonly<Record<string, string>>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (res.destroyed || res.writableEnded) return;
  const body = `${message}\n`;
  try {
    res.writeHead(status, {
      ...headers,
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(body);
  } catch {
    res.destroy();
  }
}

/**
 * Hand an error the proxy handled to the user's `onError` (for logs), with the phase it happened in
 * and the backend involved. A throwing logger must not take the proxy down, so its error is dropped.
 */
export function reportError<P extends string>(
  onError: ((error: unknown, context: { phase: P; backendId?: string }) => void) | undefined,
  error: unknown,
  phase: P,
  backendId?: string,
): void {
  if (onError === undefined) return;
  try {
    onError(error, backendId === undefined ? { phase } : { phase, backendId });
  } catch {
    // Deliberately ignored: see above.
  }
}

/** How long a refused connection may take to drain its answer before it is destroyed anyway, ms. */
export const CLOSE_GRACE_MS = 1000;

/**
 * End a connection after its answer and destroy it once the answer is flushed — or after
 * `CLOSE_GRACE_MS` when the peer does not read it. Never left half-closed: a client that does not
 * send its FIN would hold the socket (and its descriptor) for as long as it likes.
 */
export function closeAfterAnswer(socket: Duplex, answer?: string | Buffer): void {
  if (socket.destroyed) return;
  const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
  timer.unref();
  socket.once('close', () => clearTimeout(timer));
  socket.on('error', () => undefined);
  if (answer === undefined) socket.end(() => socket.destroy());
  else socket.end(answer, () => socket.destroy());
}
