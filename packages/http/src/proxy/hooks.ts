/**
 * Request and response hooks (`on: { proxyReq, proxyRes }`), in the shape users of
 * http-proxy-middleware know: `proxyReq` sees the upstream request just before each attempt is sent
 * and changes its headers with `setHeader` / `removeHeader` (as on a `ClientRequest`); `proxyRes`
 * sees the backend's response head before it goes to the client and changes `headers` in place (as
 * on an `IncomingMessage`). Both engines call them at the same points with the same objects, so a
 * hook written for `createProxy` works unchanged on `createProxyServer`.
 *
 * What a hook may change, and why not more: headers of the message, nothing of its framing or of the
 * connection. Hop-by-hop headers (RFC 9110 §7.6.1) and `Content-Length` / `Transfer-Encoding` are
 * the proxy's: each engine frames the message itself, and a hook that set them could make the
 * proxy and the backend (or the client) disagree about where a message ends — request smuggling.
 * With `forwardedHeaders` on (the default), `X-Forwarded-For/-Proto/-Host` and `Forwarded` are the
 * proxy's too: the backend trusts them because the proxy wrote them. Setting or removing one of
 * those names, a name that is not an RFC 9110 token, or a value with CR, LF or NUL throws an
 * `InvalidOptionError` at the call — the attempt is never sent (the client gets 500), as Node's own
 * `setHeader` throws on an invalid character. In a response, hop-by-hop headers and `Content-Length`
 * are the proxy's (setting them throws; a `Content-Length` the hook deleted is kept), and the
 * forwarding headers mean nothing there and are not guarded. Hooks are synchronous: one that returns a promise is
 * refused the same way, since nothing would wait for it.
 */
import type { IncomingMessage } from 'node:http';
import type { Backend } from '@fulcrum/core';
import { InvalidOptionError } from '@fulcrum/core';
import { isPlainObject } from '@fulcrum/core/validate';
import { HOP_BY_HOP } from './headers';

/** The upstream request of one attempt, as `on.proxyReq` sees it. */
export interface ProxyRequestHead {
  /** The method sent upstream. */
  readonly method: string;
  /** Path and query sent upstream (after any route rewrite). */
  readonly path: string;
  /** The backend this attempt goes to (read it; never write it). */
  readonly backend: Backend;
  /** 1 for the first attempt, 2 for the first retry, … */
  readonly attempt: number;
  /** A header's value (several lines joined with `, `), case-insensitive; `undefined` when absent. */
  getHeader(name: string): string | undefined;
  /** Every header, lower-case names; a header sent on several lines is an array. A copy. */
  getHeaders(): Record<string, string | string[]>;
  getHeaderNames(): string[];
  hasHeader(name: string): boolean;
  /** Replace a header (every line of it). An array sends one line per value. */
  setHeader(name: string, value: string | number | readonly string[]): this;
  /** Add a line to a header, keeping the lines it has. */
  appendHeader(name: string, value: string | number | readonly string[]): this;
  removeHeader(name: string): this;
  /** Whether the proxy owns this header (hop-by-hop, framing, forwarding): setting or removing it throws. */
  proxyOwns(name: string): boolean;
}

/** A backend's response head, as `on.proxyRes` sees it before it goes to the client. */
export interface ProxyResponseHead {
  readonly statusCode: number;
  /** The backend that answered (read it; never write it). */
  readonly backend: Backend;
  /**
   * The headers the client will get (lower-case names, hop-by-hop ones already removed): change,
   * add (`headers['x-served-by'] = 'edge'`) or delete entries in place. A stickiness cookie the
   * proxy adds is appended after the hook.
   */
  headers: Record<string, string | string[]>;
}

/** `on`: hooks around each attempt (see the file header for what they may change). */
export interface ProxyHooks {
  /**
   * Before each attempt is sent (a retry calls it again, for the new backend): change the upstream
   * request's headers. Under `createProxy`, `req` is the client's `IncomingMessage`; under
   * `createProxyServer`, a view of its head (method, url, headers, rawHeaders, socket; no body).
   */
  proxyReq?: (proxyReq: ProxyRequestHead, req: IncomingMessage) => void;
  /**
   * When a final response head arrives, before anything of it goes to the client. Not called for the
   * answer to an upgrade request (a WebSocket handshake), whose head is relayed as the backend sent it.
   */
  proxyRes?: (proxyRes: ProxyResponseHead, req: IncomingMessage) => void;
}

/** The hooks, checked once at construction. */
export interface NormalizedHooks {
  readonly proxyReq: ProxyHooks['proxyReq'];
  readonly proxyRes: ProxyHooks['proxyRes'];
  /** Request header names a hook may neither set nor remove. */
  readonly managed: ReadonlySet<string>;
}

const FORWARDING = ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded'];

/** Response header names a hook may neither set nor remove: the client's framing and connection. */
const RESPONSE_MANAGED: ReadonlySet<string> = new Set([...HOP_BY_HOP, 'content-length']);

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const UNSAFE = /[\r\n\0]/;

export function normalizeHooks(on: unknown, forwardedHeaders: boolean): NormalizedHooks | undefined {
  if (on === undefined) return undefined;
  if (!isPlainObject(on)) throw new InvalidOptionError('on', on, 'must be an object like { proxyReq(proxyReq, req) {…}, proxyRes(proxyRes, req) {…} }');
  for (const key of Object.keys(on)) {
    if (key !== 'proxyReq' && key !== 'proxyRes') throw new InvalidOptionError(`on.${key}`, on[key], 'is not a hook (known: proxyReq, proxyRes)');
    if (on[key] !== undefined && typeof on[key] !== 'function') throw new InvalidOptionError(`on.${key}`, on[key], 'must be a function');
  }
  const managed = new Set([...HOP_BY_HOP, 'content-length', ...(forwardedHeaders ? FORWARDING : [])]);
  return Object.freeze({ proxyReq: on.proxyReq as ProxyHooks['proxyReq'], proxyRes: on.proxyRes as ProxyHooks['proxyRes'], managed });
}

/** Check a header a hook sets: a token name the proxy does not own, values without CR, LF or NUL. */
function checkedHeader(hook: string, managed: ReadonlySet<string>, name: unknown, value: unknown): { lower: string; values: string[] } {
  if (typeof name !== 'string' || !TOKEN.test(name)) throw new InvalidOptionError(hook, name, 'a header name must be an RFC 9110 token');
  const lower = name.toLowerCase();
  if (managed.has(lower)) throw new InvalidOptionError(hook, name, 'may not set or remove this header: the proxy owns it (hop-by-hop, framing or forwarding)');
  const values = Array.isArray(value) ? (value as unknown[]) : [value];
  const out: string[] = [];
  for (const item of values) {
    if (typeof item !== 'string' && typeof item !== 'number')
      throw new InvalidOptionError(`${hook}: ${lower}`, item, 'a header value must be a string or a number');
    const text = String(item);
    if (UNSAFE.test(text)) throw new InvalidOptionError(`${hook}: ${lower}`, text, 'a header value must not contain CR, LF or NUL');
    out.push(text);
  }
  return { lower, values: out };
}

/** `on.proxyReq`'s view of an attempt's flat `[name, value, …]` header list, edited in place. */
class UpstreamRequestHead implements ProxyRequestHead {
  readonly method: string;
  readonly path: string;
  readonly backend: Backend;
  readonly attempt: number;
  readonly #list: string[];
  readonly #managed: ReadonlySet<string>;

  constructor(list: string[], method: string, path: string, backend: Backend, attempt: number, managed: ReadonlySet<string>) {
    this.#list = list;
    this.method = method;
    this.path = path;
    this.backend = backend;
    this.attempt = attempt;
    this.#managed = managed;
  }

  getHeader(name: string): string | undefined {
    const lower = String(name).toLowerCase();
    let found: string | undefined;
    const list = this.#list;
    for (let i = 0; i < list.length; i += 2) {
      if (list[i]!.toLowerCase() === lower) found = found === undefined ? list[i + 1]! : `${found}, ${list[i + 1]!}`;
    }
    return found;
  }

  getHeaders(): Record<string, string | string[]> {
    const out: Record<string, string | string[]> = {};
    const list = this.#list;
    for (let i = 0; i < list.length; i += 2) {
      const lower = list[i]!.toLowerCase();
      const existing = out[lower];
      if (existing === undefined) out[lower] = list[i + 1]!;
      else if (typeof existing === 'string') out[lower] = [existing, list[i + 1]!];
      else existing.push(list[i + 1]!);
    }
    return out;
  }

  getHeaderNames(): string[] {
    return Object.keys(this.getHeaders());
  }

  hasHeader(name: string): boolean {
    return this.getHeader(name) !== undefined;
  }

  setHeader(name: string, value: string | number | readonly string[]): this {
    const { lower, values } = checkedHeader('on.proxyReq', this.#managed, name, value);
    this.#remove(lower);
    for (const v of values) this.#list.push(lower, v);
    return this;
  }

  appendHeader(name: string, value: string | number | readonly string[]): this {
    const { lower, values } = checkedHeader('on.proxyReq', this.#managed, name, value);
    for (const v of values) this.#list.push(lower, v);
    return this;
  }

  removeHeader(name: string): this {
    const { lower } = checkedHeader('on.proxyReq', this.#managed, name, '');
    this.#remove(lower);
    return this;
  }

  proxyOwns(name: string): boolean {
    return this.#managed.has(String(name).toLowerCase());
  }

  #remove(lower: string): void {
    const list = this.#list;
    let w = 0;
    for (let r = 0; r < list.length; r += 2) {
      if (list[r]!.toLowerCase() === lower) continue;
      list[w++] = list[r]!;
      list[w++] = list[r + 1]!;
    }
    list.length = w;
  }
}

function refuseThenable(hook: string, result: unknown): void {
  if (typeof result === 'object' && result !== null && typeof (result as { then?: unknown }).then === 'function') {
    // Nothing waits for it: its edits would race the request. Say so rather than lose them.
    (result as Promise<unknown>).then(undefined, () => undefined);
    throw new InvalidOptionError(hook, 'a promise', 'must be synchronous (it returned a promise)');
  }
}

/** Run `on.proxyReq` over an attempt's header list (edited in place). Throws what the hook throws. */
export function runRequestHook(
  hooks: NormalizedHooks,
  list: string[],
  req: IncomingMessage,
  method: string,
  path: string,
  backend: Backend,
  attempt: number,
): void {
  const head = new UpstreamRequestHead(list, method, path, backend, attempt, hooks.managed);
  refuseThenable('on.proxyReq', hooks.proxyReq!(head, req));
}

/**
 * Run `on.proxyRes` over the response headers the client will get and check what it left: an
 * entry it added or changed that is not a token name, is one the proxy owns, or carries CR, LF or
 * NUL throws (the response is not sent). `original` are the headers before the hook.
 */
export function runResponseHook(
  hooks: NormalizedHooks,
  headers: Record<string, string | string[]>,
  req: IncomingMessage,
  statusCode: number,
  backend: Backend,
): Record<string, string | string[]> {
  const original = { ...headers };
  const head: ProxyResponseHead = { statusCode, backend, headers };
  refuseThenable('on.proxyRes', hooks.proxyRes!(head, req));
  const edited = head.headers;
  if (typeof edited !== 'object' || edited === null) throw new InvalidOptionError('on.proxyRes', edited, 'headers must stay an object');
  const out: Record<string, string | string[]> = {};
  for (const name of Object.keys(edited)) {
    const value = edited[name];
    if (value === undefined) continue;
    if (original[name] === value) {
      out[name] = value;
      continue;
    }
    const { lower, values } = checkedHeader('on.proxyRes', RESPONSE_MANAGED, name, value);
    out[lower] = Array.isArray(value) ? values : values[0]!;
  }
  // Removing what the backend sent is allowed, except the framing the client relies on: that stays.
  const length = original['content-length'];
  if (length !== undefined && out['content-length'] === undefined) out['content-length'] = length;
  return out;
}
