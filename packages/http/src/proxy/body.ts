/**
 * The request body and the replay buffer. A retry must send the same body again, so a body that may
 * be replayed has to be held — but holding every upload would turn the proxy into a memory sink. Like
 * nginx's `proxy_request_buffering` with a cap: a body of at most `maxReplayBytes` (known from
 * Content-Length, or found to end within the cap) is read fully before the first attempt and can be
 * sent any number of times; a larger one is streamed to the first backend as it arrives and is never
 * replayed (an attempt that failed before touching the connection still may be: its body was not
 * consumed).
 */
import type { IncomingMessage } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';

export type RequestBody =
  /** No body (GET, HEAD, Content-Length: 0). */
  | { kind: 'none' }
  /** Fully read, replayable. */
  | { kind: 'buffered'; data: Buffer }
  /** Streaming; `stream` may be used once. */
  | { kind: 'stream'; stream: Readable };

/** Whether the request has a body at all (RFC 9112 §6.3). */
export function hasBody(req: IncomingMessage): boolean {
  // From `rawHeaders`: Node builds `req.headers` lazily, and a GET never needs it otherwise.
  const raw = req.rawHeaders;
  if (!Array.isArray(raw)) {
    if (req.headers['transfer-encoding'] !== undefined) return true;
    const length = req.headers['content-length'];
    return length !== undefined && length !== '0';
  }
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Node's parser refuses a request with both, or with conflicting lengths; the first length wins
    // in `req.headers` too.
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') return true;
    if (name.length === 14 && name.toLowerCase() === 'content-length') return raw[i + 1] !== '0';
  }
  return false;
}

/**
 * Read the body into memory when it fits in `maxReplayBytes`, else start streaming it. Resolves with
 * `undefined` when the client went away while the body was being read.
 */
export function readBody(req: IncomingMessage, maxReplayBytes: number): Promise<RequestBody | undefined> {
  if (!hasBody(req)) {
    // Drain anything unexpected so the connection can be reused.
    req.resume();
    return Promise.resolve({ kind: 'none' });
  }
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxReplayBytes) {
    return Promise.resolve({ kind: 'stream', stream: req });
  }
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onGone);
      req.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      chunks.push(chunk);
      if (size > maxReplayBytes) {
        // Too big to hold: hand over what was read, followed by the rest of the stream.
        settled = true;
        cleanup();
        req.pause();
        const stream = new PassThrough();
        for (const c of chunks) stream.write(c);
        req.pipe(stream);
        req.on('error', (error) => stream.destroy(error));
        req.resume();
        resolve({ kind: 'stream', stream });
      }
    };
    const onEnd = () => {
      if (settled) return;
      settled = true;
      cleanup();
      resolve({ kind: 'buffered', data: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size) });
    };
    const onGone = () => {
      if (settled) return;
      settled = true;
      cleanup();
      resolve(undefined);
    };
    const onClose = () => {
      if (!req.complete) onGone();
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onClose);
  });
}
