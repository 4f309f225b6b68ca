/**
 * `hashBy`: which part of a request feeds a hashing balancer (ring hash, Maglev, rendezvous, bounded
 * load), so that requests with the same key land on the same backend without any state.
 *
 * The choices are those of nginx's `hash $var consistent`, HAProxy's `balance source | uri | hdr(x)
 * | url_param(x)` and Envoy's `hash_policy` (header, cookie, source IP, query parameter):
 * - `'source-ip'`: the client address as resolved by `clientAddress` (trusted `X-Forwarded-For`);
 * - `'uri'`: the whole request target, path and query (nginx's `$request_uri`, the usual key for
 *   sharding a cache; HAProxy's `balance uri whole`);
 * - `{ header: name }`, `{ cookie: name }`, `{ query: name }`: one value (the first when repeated);
 * - a function of the request, for anything else.
 *
 * The spec is validated once; the compiled extractor never throws per request. A missing or empty
 * value — and a user function that throws or returns a non-string — yields `undefined`, and the
 * balancer spreads such requests round-robin instead of piling every keyless request on one backend
 * (what an empty-string key would do). Keys are not length-limited here: hashing is O(length) and
 * Node bounds the request head (`maxHeaderSize`).
 *
 * A hash key comes from the client, so a client can choose where its own requests go among the
 * eligible backends; that is inherent to hashing and harmless. What a client can never do through
 * it is reach a backend that is down or outside the pool: the balancer only picks eligible ones.
 */
import type { IncomingMessage } from 'node:http';
import { InvalidOptionError } from '@fulcrum/core';
import { readCookie, requestCookieLines } from './cookie-header';

/** What feeds a hashing balancer (see the file header). */
export type HashBy = 'source-ip' | 'uri' | { header: string } | { cookie: string } | { query: string } | ((req: IncomingMessage) => string | undefined);

/** A compiled `hashBy`: the key of one request, or `undefined`. Never throws. */
export type HashKeyExtractor = (req: IncomingMessage, clientIp: string) => string | undefined;

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const EXPECTED = "must be 'source-ip', 'uri', { header: name }, { cookie: name }, { query: name } or a function (req) => string | undefined";

/** Validate `hashBy` once and return its per-request extractor. Throws `InvalidOptionError` naming `path`. */
export function compileHashBy(hashBy: HashBy, path = 'hashBy'): HashKeyExtractor {
  if (hashBy === 'source-ip') return (_req, clientIp) => (clientIp === '' ? undefined : clientIp);
  if (hashBy === 'uri') return (req) => nonEmpty(req.url);
  if (typeof hashBy === 'function') {
    const fn = hashBy;
    return (req) => {
      try {
        return nonEmpty(fn(req));
      } catch {
        // A user function's bug must not fail the request: without a key it is simply balanced.
        return undefined;
      }
    };
  }
  if (typeof hashBy !== 'object' || hashBy === null || Array.isArray(hashBy)) throw new InvalidOptionError(path, hashBy, EXPECTED);
  const keys = Object.keys(hashBy);
  if (keys.length !== 1) throw new InvalidOptionError(path, hashBy, EXPECTED);
  const kind = keys[0]!;
  const name: unknown = (hashBy as Record<string, unknown>)[kind];
  switch (kind) {
    case 'header': {
      if (typeof name !== 'string' || !TOKEN.test(name)) throw new InvalidOptionError(`${path}.header`, name, 'must be a header name (an HTTP token)');
      const lower = name.toLowerCase();
      return (req) => {
        const value = req.headers[lower];
        return nonEmpty(typeof value === 'string' ? value : Array.isArray(value) ? value[0] : undefined);
      };
    }
    case 'cookie': {
      if (typeof name !== 'string' || !TOKEN.test(name)) throw new InvalidOptionError(`${path}.cookie`, name, 'must be a cookie name (an RFC 6265 token)');
      return (req) => {
        const value = readCookie(requestCookieLines(req), name, false);
        return typeof value === 'string' ? value : undefined;
      };
    }
    case 'query': {
      if (typeof name !== 'string' || name.length === 0 || name.length > 256) {
        throw new InvalidOptionError(`${path}.query`, name, 'must be a query parameter name of 1–256 characters');
      }
      return (req) => queryParameter(req.url, name);
    }
    default:
      throw new InvalidOptionError(path, hashBy, EXPECTED);
  }
}

/** The first value of query parameter `name` in a request target, decoded; `undefined` if absent or empty. */
export function queryParameter(url: string | undefined, name: string): string | undefined {
  if (typeof url !== 'string') return undefined;
  const question = url.indexOf('?');
  if (question === -1) return undefined;
  const hash = url.indexOf('#', question);
  try {
    // URLSearchParams never throws on malformed percent-encoding (it keeps the bytes), but a
    // defensive catch costs nothing and keeps the "never throws" promise independent of it.
    return nonEmpty(new URLSearchParams(url.slice(question + 1, hash === -1 ? undefined : hash)).get(name) ?? undefined);
  } catch {
    return undefined;
  }
}

function nonEmpty(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}
