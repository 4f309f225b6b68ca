/**
 * `redirectToHttps()`: the port-80 side of TLS termination — every request is sent to the same URL
 * over https, the way nginx's `return 301 https://$host$request_uri;` and HAProxy's
 * `http-request redirect scheme https` do.
 *
 * Status: 301 for GET and HEAD (cacheable, every client follows it), 308 for everything else — a 301
 * lets clients turn a POST into a GET and drop the body (RFC 9110 §15.4.2), 308 forbids that.
 *
 * The Host header is the only way to know the name the client used, and it is client input. The
 * rule: the redirect goes to THE SAME HOST the request named, on the https port — never anywhere
 * else — and a Host that is not syntactically a host (`evil.com/x`, `a@b`, spaces, several ports,
 * empty, absent) gets 400, so no crafted value can turn the target into another origin
 * (`https://evil.com/x.good.com`) or inject a header. With `hosts` the names are also checked
 * against an allow-list (exact or `*.suffix`), and unknown names get 421 Misdirected Request: use
 * it when a shared cache sits in front, so a poisoned Host cannot be cached under a known URL.
 * The request target must be origin-form (`/path?query`, kept byte for byte); absolute-form and
 * `*` targets get 400. The response has a tiny body and closes nothing: keep-alive works as usual.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { InvalidOptionError } from '@fulcrum/core';
import { checkKnownKeys, isPlainObject, optionalInteger } from '@fulcrum/core/validate';
import { parseHost } from '../router/match';

/** Options of `redirectToHttps`. */
export interface RedirectToHttpsOptions {
  /** The https port to send clients to. Default 443 (then left out of the URL). */
  port?: number;
  /**
   * Serve only these host names (`'example.com'`, `'*.example.com'`); others get 421. Default: any
   * syntactically valid host.
   */
  hosts?: readonly string[];
}

const HOST_NAME = /^(?:\*\.)?[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;
const TARGET = /^\/[\x21-\x7e]*$/;

function answer(res: ServerResponse, status: number, message: string, location?: string): void {
  const body = `${message}\n`;
  try {
    res.writeHead(status, {
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      ...(location === undefined ? { 'cache-control': 'no-store' } : { location }),
    });
    res.end(body);
  } catch {
    res.destroy();
  }
}

/** A `(req, res)` handler redirecting to https (see the file header). */
export function redirectToHttps(options: RedirectToHttpsOptions = {}): (req: IncomingMessage, res: ServerResponse) => void {
  if (!isPlainObject(options as unknown)) throw new InvalidOptionError('options', options, 'must be { port?, hosts? }');
  checkKnownKeys('', options, ['port', 'hosts']);
  const port = optionalInteger('port', options.port, 443, 1, 65_535);
  const portSuffix = port === 443 ? '' : `:${port}`;
  let exact: Set<string> | undefined;
  let suffixes: string[] | undefined;
  if (options.hosts !== undefined) {
    if (!Array.isArray(options.hosts) || options.hosts.length === 0)
      throw new InvalidOptionError('hosts', options.hosts, 'must be a non-empty array of host names');
    exact = new Set();
    suffixes = [];
    options.hosts.forEach((host: unknown, i: number) => {
      const lower = typeof host === 'string' ? host.toLowerCase() : host;
      if (typeof lower !== 'string' || !HOST_NAME.test(lower)) throw new InvalidOptionError(`hosts[${i}]`, host, 'must be a host name or "*.suffix"');
      if (lower.startsWith('*.')) suffixes!.push(lower.slice(1));
      else exact!.add(lower);
    });
  }
  return (req, res) => {
    const host = parseHost(req.headers.host);
    if (host === undefined) return answer(res, 400, 'Bad Request: invalid Host');
    if (exact !== undefined && !exact.has(host) && !suffixes!.some((suffix) => host.length > suffix.length && host.endsWith(suffix))) {
      return answer(res, 421, 'Misdirected Request');
    }
    const target = req.url ?? '';
    if (!TARGET.test(target)) return answer(res, 400, 'Bad Request');
    const method = req.method ?? 'GET';
    const status = method === 'GET' || method === 'HEAD' ? 301 : 308;
    // Drain a request body so the connection stays usable for the next request.
    req.resume();
    answer(res, status, status === 301 ? 'Moved Permanently' : 'Permanent Redirect', `https://${host}${portSuffix}${target}`);
  };
}
