/**
 * The request as the shared decision code sees it. Routing (`createRouter`), affinity, `hashBy`, the
 * trusted-proxy walk and `admission` hooks were written against `node:http`'s `IncomingMessage` and
 * read only its head: `method`, `url`, `httpVersion`, `rawHeaders`, `headers` and `socket`
 * (`remoteAddress`, `encrypted`). The raw engine hands them this view of a parsed head instead, so
 * both engines take every decision through the same code.
 *
 * `headers` is built on first use, with Node's rules for repeated fields (`set-cookie` a list,
 * `cookie` joined with `; `, the fields Node keeps once — host, content-type, authorization … — the
 * first value, every other joined with `, `). The view has no body stream: an `admission` hook that
 * tried to read the body under the raw engine would find no `on('data')` (documented in the README).
 */
import type { Socket } from 'node:net';

/** Fields Node's `IncomingMessage.headers` keeps only the first of (`_http_incoming`'s `matchKnownFields`). */
const FIRST_ONLY = new Set([
  'content-type',
  'content-length',
  'user-agent',
  'referer',
  'host',
  'authorization',
  'proxy-authorization',
  'if-modified-since',
  'if-unmodified-since',
  'from',
  'location',
  'max-forwards',
  'retry-after',
  'etag',
  'last-modified',
  'server',
  'age',
  'expires',
]);

/**
 * A parsed request head as the raw engine sees it: the subset of `IncomingMessage` that routing,
 * affinity and admission read (`method`, `url`, `headers`, `rawHeaders`, `socket`; `headers` built on first use).
 */
export class RequestView {
  readonly method: string;
  readonly url: string;
  readonly httpVersion: string;
  readonly rawHeaders: string[];
  readonly socket: Socket;
  #headers: Record<string, string | string[]> | undefined;

  constructor(method: string, url: string, version: number, rawHeaders: string[], socket: Socket) {
    this.method = method;
    this.url = url;
    this.httpVersion = version === 10 ? '1.0' : '1.1';
    this.rawHeaders = rawHeaders;
    this.socket = socket;
  }

  get headers(): Record<string, string | string[]> {
    if (this.#headers !== undefined) return this.#headers;
    const headers: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>;
    const raw = this.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toLowerCase();
      const value = raw[i + 1]!;
      const existing = headers[name];
      if (existing === undefined) headers[name] = name === 'set-cookie' ? [value] : value;
      else if (name === 'set-cookie') (existing as string[]).push(value);
      else if (FIRST_ONLY.has(name)) continue;
      else headers[name] = `${existing as string}${name === 'cookie' ? '; ' : ', '}${value}`;
    }
    this.#headers = headers;
    return headers;
  }
}
