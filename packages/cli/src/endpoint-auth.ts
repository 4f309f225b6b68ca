/**
 * The optional gate in front of the stats page and the metrics (`stats.auth`, `metrics.auth`): a
 * bearer token, as Prometheus' `authorization` scrape setting sends, or HTTP Basic (RFC 7617), which
 * a browser asks for by itself and then also sends with the page's own `fetch` of `?format=json`.
 *
 * Both compare SHA-256 digests with `timingSafeEqual`: equal lengths whatever was sent, so neither
 * the secret's content nor its length leaks through timing (as the admin API does). A refusal is a
 * 401 with the matching `WWW-Authenticate` challenge and no body worth reading; the request body,
 * if any, is drained so the connection can be reused.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { NormalizedEndpointAuth } from './config';

/** `(req, res) → allowed`; when it returns false the 401 has been sent. */
export type EndpointGate = (req: IncomingMessage, res: ServerResponse) => boolean;

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/** A gate for `auth` (`undefined`: every request passes). `realm` names the surface in the challenge. */
export function endpointGate(auth: NormalizedEndpointAuth | undefined, realm: string): EndpointGate {
  if (auth === undefined) return () => true;
  const scheme = auth.kind === 'token' ? 'Bearer' : 'Basic';
  const expected = digest(auth.kind === 'token' ? auth.token : `${auth.username}:${auth.password}`);
  const challenge = auth.kind === 'token' ? `Bearer realm="${realm}"` : `Basic realm="${realm}", charset="UTF-8"`;
  const presented = (header: string | undefined): string | undefined => {
    if (typeof header !== 'string') return undefined;
    const space = header.indexOf(' ');
    if (space === -1 || header.slice(0, space).toLowerCase() !== scheme.toLowerCase()) return undefined;
    const credentials = header.slice(space + 1).trim();
    if (auth.kind === 'token') return credentials;
    // Basic: base64 of "user:password"; anything that does not decode to that shape is refused.
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(credentials)) return undefined;
    const decoded = Buffer.from(credentials, 'base64').toString('utf8');
    return decoded.includes(':') ? decoded : undefined;
  };
  return (req, res) => {
    const given = presented(req.headers.authorization);
    if (given !== undefined && timingSafeEqual(digest(given), expected)) return true;
    req.resume();
    const body = 'authentication required\n';
    res.writeHead(401, {
      'www-authenticate': challenge,
      'content-type': 'text/plain; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
    return false;
  };
}
