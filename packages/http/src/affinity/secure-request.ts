/**
 * Whether the CLIENT reached us over TLS — what decides the `Secure` attribute of the sticky cookie
 * (`secure: 'auto'`, the default).
 *
 * Over a TLS socket the answer is the socket's. Behind a TLS-terminating proxy (a cloud load
 * balancer, HAProxy or nginx with `ssl`) the socket is plain HTTP from that proxy, and only its
 * headers say that the browser's connection was HTTPS: `X-Forwarded-Proto: https` (the de-facto
 * header; a list's LEFT-most value is the front-most hop's, the one facing the browser — Express's
 * `req.protocol` reads it the same way) or RFC 7239 `Forwarded: proto=https` (its first element).
 * Without `Secure` the browser would send the affinity cookie over any later plain-HTTP request to
 * the site, where anyone on the path can read or replay it.
 *
 * These headers are believed ONLY from a peer in `trustedProxies` (the caller passes
 * `peerTrusted`): any client can send `X-Forwarded-Proto: https`, and an untrusted claim must not
 * change what the proxy does. (A false claim could only add `Secure` — the safe direction — but the
 * rule is the same for every forwarded header: from trusted peers, or not at all.)
 *
 * Header values are read from `rawHeaders` (Node builds `req.headers` lazily), and only when the
 * socket is not TLS and the peer is trusted: the common paths cost one property read.
 */
import type { IncomingMessage } from 'node:http';
import type { TLSSocket } from 'node:tls';

/**
 * True when `req` arrived over TLS, or came from a trusted proxy (`peerTrusted`) whose first
 * `X-Forwarded-Proto` value is `https`, or whose first `Forwarded` element says `proto=https`
 * (case-insensitive). Never throws.
 */
export function isSecureRequest(req: Pick<IncomingMessage, 'socket' | 'rawHeaders'>, peerTrusted: boolean): boolean {
  if ((req.socket as TLSSocket | undefined)?.encrypted === true) return true;
  if (!peerTrusted) return false;
  const raw = req.rawHeaders;
  if (!Array.isArray(raw)) return false;
  let forwardedProto: string | undefined;
  let forwarded: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 17 && forwardedProto === undefined && name.toLowerCase() === 'x-forwarded-proto') forwardedProto = raw[i + 1]!;
    else if (name.length === 9 && forwarded === undefined && name.toLowerCase() === 'forwarded') forwarded = raw[i + 1]!;
  }
  if (forwardedProto !== undefined && isHttps(firstListValue(forwardedProto))) return true;
  return forwarded !== undefined && isHttps(firstElementProto(forwarded));
}

function isHttps(value: string | undefined): boolean {
  return value !== undefined && value.length === 5 && value.toLowerCase() === 'https';
}

/** The first comma-separated value, without surrounding whitespace. */
function firstListValue(value: string): string {
  const comma = value.indexOf(',');
  return (comma === -1 ? value : value.slice(0, comma)).trim();
}

/**
 * The `proto` parameter of the first element of a `Forwarded` value (RFC 7239 §4: elements are
 * separated by `,`, pairs by `;`, values are tokens or quoted strings, which may hold `,` or `;`).
 */
function firstElementProto(value: string): string | undefined {
  let start = 0;
  for (let i = 0; i <= value.length; i++) {
    const c = i === value.length ? 44 : value.charCodeAt(i);
    if (c === 34 /* " */) {
      // Skip a quoted string, honouring backslash escapes.
      for (i++; i < value.length && value.charCodeAt(i) !== 34; i++) if (value.charCodeAt(i) === 92) i++;
      continue;
    }
    if (c !== 59 /* ; */ && c !== 44 /* , */) continue;
    const pair = value.slice(start, i).trim();
    const equals = pair.indexOf('=');
    if (equals !== -1 && pair.slice(0, equals).trim().toLowerCase() === 'proto') {
      let proto = pair.slice(equals + 1).trim();
      if (proto.length >= 2 && proto.charCodeAt(0) === 34 && proto.charCodeAt(proto.length - 1) === 34) proto = proto.slice(1, -1);
      return proto;
    }
    if (c === 44) return undefined; // end of the first element
    start = i + 1;
  }
  return undefined;
}
