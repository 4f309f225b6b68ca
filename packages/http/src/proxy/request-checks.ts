/**
 * The request-head checks a proxy must make before it routes, rate-limits or forwards anything —
 * the cases where Node's parser accepts a head that HAProxy 2.6 refuses, and where forwarding it
 * would let the proxy and the backend disagree about what the request is:
 *
 * - more header lines than `maxHeaderCount` → 431. Node's `maxHeadersCount` drops the excess
 *   silently, so a trusted front proxy's `X-Forwarded-For`, appended last, could vanish and the
 *   attacker's own claim be believed. The limit must stay below the server's `maxHeadersCount`
 *   (default 2000 lines) so that a truncated head is still seen as too long. HAProxy's
 *   `tune.http.maxhdr` is 101 (100 lines pass); HAProxy answers 400, RFC 6585 names 431.
 * - an HTTP/0.9 request line (`GET /`), which Node reports as version 0.9 → 400.
 * - a target that is not a path (absolute-form `http://…`, authority-form, `*`): those are for
 *   forward proxies and `OPTIONS *`, not a reverse proxy's backends → 400.
 * - a `#` fragment in the target: never sent by a conforming client (RFC 9112 §3.2) → 400.
 * - two `Host` header lines (RFC 9112 §3.2: "a server MUST respond with a 400 … to any request message
 *   that contains more than one Host header field line"), even with the same value: HAProxy merges
 *   identical ones, Fulcrum's two engines follow the RFC and agree with each other.
 * - `Transfer-Encoding` other than exactly `chunked` (`identity, chunked`, `gzip, chunked`) → 422, a
 *   second `Transfer-Encoding` line → 400, as HAProxy answers: a proxy that decodes only chunked
 *   must not pass on codings it did not apply. (Node already refuses `chunked, chunked`,
 *   `Transfer-Encoding` with `Content-Length`, and two differing `Content-Length`s.)
 *
 * One pass over `rawHeaders`; nothing is allocated for a request that passes with its Host spelled
 * `Host` or `host` (the comparisons of a repeated Host and of Transfer-Encoding build lower-case copies).
 */
import type { IncomingMessage } from 'node:http';

/** Why a request head is refused: the status and a short reason for the body. */
export interface HeadRefusal {
  readonly status: 400 | 422 | 431;
  readonly message: string;
}

/** HAProxy's `tune.http.maxhdr` (101) less one: the header lines a request may carry. */
export const DEFAULT_MAX_HEADER_COUNT = 100;

const TOO_MANY: HeadRefusal = Object.freeze({ status: 431, message: 'Request Header Fields Too Large' });
const BAD_VERSION: HeadRefusal = Object.freeze({ status: 400, message: 'Bad Request: HTTP/1.x only' });
const NOT_A_PATH: HeadRefusal = Object.freeze({ status: 400, message: 'Bad Request: the target must be a path' });
const FRAGMENT: HeadRefusal = Object.freeze({ status: 400, message: 'Bad Request: fragment in the request target' });
const TWO_HOSTS: HeadRefusal = Object.freeze({ status: 400, message: 'Bad Request: more than one Host' });
const TWO_TE: HeadRefusal = Object.freeze({ status: 400, message: 'Bad Request: more than one Transfer-Encoding' });
const CODING: HeadRefusal = Object.freeze({ status: 422, message: 'Unprocessable Content: Transfer-Encoding other than chunked' });

/**
 * Check a request head (see the file header); `undefined` when it may go on. `maxHeaderCount` is
 * the number of header lines allowed.
 */
export function checkRequestHead(req: IncomingMessage, maxHeaderCount: number): HeadRefusal | undefined {
  const raw = req.rawHeaders;
  if (raw.length > maxHeaderCount * 2) return TOO_MANY;
  if (req.httpVersionMajor !== 1) return BAD_VERSION;
  const url = req.url ?? '';
  if (url.charCodeAt(0) !== 0x2f /* / */) return NOT_A_PATH;
  if (url.includes('#')) return FRAGMENT;
  let host: string | undefined;
  let transferEncoding: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    // Cheap filter on length and first letter: only Host and Transfer-Encoding are looked at, and
    // the usual spellings are compared without building a lower-case copy.
    const first = name.charCodeAt(0) | 0x20;
    if (first === 0x68 /* h */ && name.length === 4 && (name === 'Host' || name === 'host' || name.toLowerCase() === 'host')) {
      const value = raw[i + 1]!;
      if (host !== undefined) return TWO_HOSTS;
      host = value;
    } else if (first === 0x74 /* t */ && name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
      if (transferEncoding !== undefined) return TWO_TE;
      transferEncoding = raw[i + 1]!;
    }
  }
  if (transferEncoding !== undefined && transferEncoding.trim().toLowerCase() !== 'chunked') return CODING;
  return undefined;
}
