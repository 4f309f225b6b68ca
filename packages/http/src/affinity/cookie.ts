/**
 * The sticky cookie: the proxy tells the browser which backend served it, signed so the browser
 * cannot choose for itself.
 *
 * The idea is HAProxy's `cookie SRV insert indirect` and nginx's `sticky cookie`: the load balancer
 * inserts a cookie naming the backend, and later requests carrying it go to that backend while it
 * can serve. Those name the server in clear text and trust whatever comes back, so a client can pin
 * itself (or, through a tossed cookie, someone else) to a backend of its choosing. Here the value is
 *
 *     base64url( version 1 | issuedAt: uint32 seconds | backend id (UTF-8) | HMAC-SHA256[0..16) )
 *
 * with the MAC over a context label, the cookie's name and the bytes before it. It carries the
 * backend's opaque **id** — never its address — and when it was issued; its expiry is
 * `issuedAt + maxAgeMs` under the CURRENT configuration, so shortening `maxAgeMs` takes effect for
 * cookies already out. The MAC is truncated to 128 bits (NIST SP 800-107 allows truncation; an
 * online forger gets one guess per request against 2^128) which keeps the cookie near 60 bytes. The
 * label and name inside the MAC mean a value minted for another cookie or another purpose with the
 * same secret never verifies here.
 *
 * Key rotation follows express-session and cookie-parser: `secrets[0]` signs, every secret verifies,
 * so a new secret is rolled in first and the old one removed after `maxAgeMs`. Comparison is
 * `crypto.timingSafeEqual` on equal-length buffers. Anything wrong — absent, duplicated (see
 * `cookie-header.ts`), oversized, not canonical base64url (so a flipped padding bit cannot
 * survive), wrong version, bad MAC under every secret, an id that is not a valid backend id, issued
 * in the future beyond a 5-minute clock-skew allowance, or expired — reads as "no cookie": the request
 * is balanced as new and a fresh cookie is issued. `read` never throws.
 *
 * Defaults and why: name `fulcrum_srv` (says whose it is, no framework collision); `maxAgeMs` 24 h —
 * a day covers a working session, and the cookie is reissued once past half its age while the client
 * keeps coming, so an active client never loses affinity, while a leaked cookie stops working a day
 * later; `path` `/`; `sameSite` `Lax` (sent on top-level navigations, so following a link keeps the
 * backend, but not on cross-site subrequests); `httpOnly` true (scripts have no business with it);
 * `secure` `'auto'` (Secure when the request arrived over TLS, so the same configuration works behind
 * plain HTTP in development). `SameSite=None` and the `__Secure-`/`__Host-` name prefixes require
 * Secure in browsers, so with them Secure is always set.
 */
import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { BACKEND_ID_PATTERN, InvalidOptionError } from '@fulcrum/core';
import { DUPLICATE_COOKIE, readCookie } from './cookie-header';

/** Options of the signed sticky cookie (`stickiness.cookie`). */
export interface CookieStickinessOptions {
  /** Cookie name, an RFC 6265 token. Default `'fulcrum_srv'`. */
  name?: string;
  /**
   * HMAC keys, at least one; each at least 32 bytes (a string counts its UTF-8 bytes). The FIRST
   * signs, ALL verify (rotation: prepend the new key, drop the old one after `maxAgeMs`). Generate
   * one with `crypto.randomBytes(32).toString('base64url')`. Required.
   */
  secrets: readonly (string | Uint8Array)[];
  /** Lifetime of a cookie, ms, 1 s to 400 days (browsers cap Max-Age at 400 days). Default 86 400 000 (24 h). */
  maxAgeMs?: number;
  /** Cookie `Path`. Default `'/'`. */
  path?: string;
  /** Cookie `Domain`. Default: none (host-only). */
  domain?: string;
  /** `SameSite`: `'Strict' | 'Lax' | 'None'` (any case). Default `'Lax'`. None implies Secure. */
  sameSite?: 'Strict' | 'Lax' | 'None' | 'strict' | 'lax' | 'none';
  /** `HttpOnly`. Default `true`. */
  httpOnly?: boolean;
  /**
   * `Secure`: `true`, `false`, or `'auto'` (when the client's connection is TLS: the socket's, or a
   * trusted proxy's `X-Forwarded-Proto: https` / `Forwarded: proto=https`; see `secure-request.ts`).
   * Default `'auto'`.
   */
  secure?: boolean | 'auto';
}

/** A cookie that verified: the backend it names and when it was issued (ms, whole seconds). */
export interface VerifiedStickyCookie {
  readonly backendId: string;
  readonly issuedAt: number;
}

/** Default cookie name. */
export const DEFAULT_COOKIE_NAME = 'fulcrum_srv';
/** Default cookie lifetime: 24 h. */
export const DEFAULT_COOKIE_MAX_AGE_MS = 24 * 60 * 60 * 1000;
/** Verified values kept to skip the HMAC for returning clients; the cache is cleared when full. */
const VERIFIED_CACHE_SIZE = 10_000;
/** Backend ids whose latest signed value is kept. */
const SIGNED_CACHE_SIZE = 4096;

/** Minimum bytes per secret. */
export const MIN_SECRET_BYTES = 32;

const VERSION = 1;
const HEADER_BYTES = 5; // version + uint32 issuedAt
const MAC_BYTES = 16;
const MAX_ID_BYTES = 64; // BackendSpec.id is 1–64 chars of [A-Za-z0-9._:-]
const MIN_VALUE_BYTES = HEADER_BYTES + 1 + MAC_BYTES;
const MAX_VALUE_BYTES = HEADER_BYTES + MAX_ID_BYTES + MAC_BYTES;
const MAX_VALUE_CHARS = Math.ceil((MAX_VALUE_BYTES * 4) / 3);
const MIN_VALUE_CHARS = Math.ceil((MIN_VALUE_BYTES * 4) / 3);
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** Cookies issued up to this far in the future still verify (clock skew between proxy instances). */
const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;
const MAX_AGE_LIMIT_MS = 400 * 24 * 60 * 60 * 1000;
const LABEL = 'fulcrum-sticky-cookie-v1\0';
const KNOWN_OPTIONS = new Set(['name', 'secrets', 'maxAgeMs', 'path', 'domain', 'sameSite', 'httpOnly', 'secure']);

/**
 * Issues and verifies the signed sticky cookie (see the file header). Options are validated once,
 * here; `read` and `serialize` do no validation work beyond the request's own bytes.
 */
export class StickyCookie {
  readonly name: string;
  readonly maxAgeMs: number;
  readonly path: string;
  readonly domain: string | undefined;
  readonly sameSite: 'Strict' | 'Lax' | 'None';
  readonly httpOnly: boolean;
  readonly secure: boolean | 'auto';
  readonly #keys: readonly KeyObject[];
  /** Values that passed the MAC check → what they carry (bounded; cleared when full). */
  readonly #verified = new Map<string, VerifiedStickyCookie>();
  /** The latest value signed per backend id, with its issue second. */
  readonly #signed = new Map<string, { second: number; value: string; cookie: string | undefined; cookieSecure: string | undefined }>();
  readonly #context: Buffer;
  /** Attributes after the value, with and without Secure, built once. */
  readonly #attributes: string;
  readonly #attributesSecure: string;

  constructor(options: CookieStickinessOptions, path = 'stickiness.cookie') {
    if (typeof options !== 'object' || options === null || Array.isArray(options)) {
      throw new InvalidOptionError(path, options, 'must be an object with at least `secrets`');
    }
    for (const key of Object.keys(options)) {
      if (!KNOWN_OPTIONS.has(key)) {
        throw new InvalidOptionError(
          `${path}.${key}`,
          (options as unknown as Record<string, unknown>)[key],
          `is not an option (known: ${[...KNOWN_OPTIONS].join(', ')})`,
        );
      }
    }

    const name = options.name ?? DEFAULT_COOKIE_NAME;
    if (typeof name !== 'string' || !TOKEN.test(name) || name.length > 256) {
      throw new InvalidOptionError(`${path}.name`, name, 'must be a cookie name (an RFC 6265 token of up to 256 characters)');
    }
    this.name = name;

    // Key objects are imported once; a raw buffer would be imported again on every HMAC.
    this.#keys = validateSecrets(options.secrets, `${path}.secrets`).map((key) => createSecretKey(key));

    const maxAgeMs = options.maxAgeMs ?? DEFAULT_COOKIE_MAX_AGE_MS;
    if (typeof maxAgeMs !== 'number' || !Number.isFinite(maxAgeMs) || maxAgeMs < 1000 || maxAgeMs > MAX_AGE_LIMIT_MS) {
      throw new InvalidOptionError(`${path}.maxAgeMs`, maxAgeMs, `must be a number of ms from 1000 to ${MAX_AGE_LIMIT_MS} (400 days)`);
    }
    this.maxAgeMs = maxAgeMs;

    const cookiePath = options.path ?? '/';
    if (typeof cookiePath !== 'string' || !cookiePath.startsWith('/') || /[;\x00-\x1f\x7f]/.test(cookiePath) || cookiePath.length > 1024) {
      throw new InvalidOptionError(`${path}.path`, cookiePath, 'must be a path starting with "/" without ";" or control characters');
    }
    this.path = cookiePath;

    const domain = options.domain;
    if (
      domain !== undefined &&
      (typeof domain !== 'string' ||
        !/^\.?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(domain) ||
        domain.length > 253)
    ) {
      throw new InvalidOptionError(`${path}.domain`, domain, 'must be a host name such as "example.com"');
    }
    this.domain = domain;

    const sameSite = options.sameSite ?? 'Lax';
    const normalizedSameSite = typeof sameSite === 'string' ? SAME_SITE[sameSite.toLowerCase()] : undefined;
    if (normalizedSameSite === undefined) {
      throw new InvalidOptionError(`${path}.sameSite`, sameSite, "must be 'Strict', 'Lax' or 'None'");
    }
    this.sameSite = normalizedSameSite;

    const httpOnly = options.httpOnly ?? true;
    if (typeof httpOnly !== 'boolean') throw new InvalidOptionError(`${path}.httpOnly`, httpOnly, 'must be true or false');
    this.httpOnly = httpOnly;

    const secure = options.secure ?? 'auto';
    if (secure !== true && secure !== false && secure !== 'auto') {
      throw new InvalidOptionError(`${path}.secure`, secure, "must be true, false or 'auto'");
    }
    const prefixed = name.startsWith('__Secure-') || name.startsWith('__Host-');
    if (secure === false && (prefixed || normalizedSameSite === 'None')) {
      throw new InvalidOptionError(`${path}.secure`, secure, 'cannot be false with SameSite=None or a __Secure-/__Host- name: browsers drop such cookies');
    }
    if (name.startsWith('__Host-') && (cookiePath !== '/' || domain !== undefined)) {
      throw new InvalidOptionError(`${path}.name`, name, 'a __Host- cookie needs path "/" and no domain');
    }
    this.secure = prefixed || normalizedSameSite === 'None' ? true : secure;

    this.#context = Buffer.from(`${LABEL}${name}\0`, 'utf8');
    let attributes = `; Max-Age=${Math.floor(maxAgeMs / 1000)}; Path=${cookiePath}`;
    if (domain !== undefined) attributes += `; Domain=${domain}`;
    if (httpOnly) attributes += '; HttpOnly';
    attributes += `; SameSite=${normalizedSameSite}`;
    this.#attributes = attributes;
    this.#attributesSecure = `${attributes}; Secure`;
  }

  /**
   * The backend id named by a valid cookie in `cookieHeader` (a `Cookie` header: one string or
   * several lines), or `undefined` for anything else. Never throws.
   */
  read(cookieHeader: string | readonly string[] | undefined, now: number): string | undefined {
    return this.verify(cookieHeader, now)?.backendId;
  }

  /** Like `read`, with the cookie's issue time (to decide when to refresh it). Never throws. */
  verify(cookieHeader: string | readonly string[] | undefined, now: number): VerifiedStickyCookie | undefined {
    let value: ReturnType<typeof readCookie>;
    try {
      value = readCookie(cookieHeader, this.name, true);
    } catch {
      return undefined;
    }
    if (value === undefined || value === DUPLICATE_COOKIE) return undefined;
    return this.verifyValue(value, now);
  }

  /** Verify a bare cookie value (what follows `name=`). Never throws. */
  verifyValue(value: string, now: number): VerifiedStickyCookie | undefined {
    // A value that already passed the MAC check carries the same id and issue time every time it
    // comes back (a sticky client sends it on every request): only its age needs checking again.
    // Nothing enters this cache without a valid MAC, so a forged value always pays for the check.
    const known = this.#verified.get(value);
    if (known !== undefined) {
      return known.issuedAt > now + MAX_CLOCK_SKEW_MS || now >= known.issuedAt + this.maxAgeMs ? undefined : known;
    }
    const verified = this.#verify(value, now);
    if (verified !== undefined) {
      if (this.#verified.size >= VERIFIED_CACHE_SIZE) this.#verified.clear();
      this.#verified.set(value, verified);
    }
    return verified;
  }

  #verify(value: string, now: number): VerifiedStickyCookie | undefined {
    if (typeof value !== 'string' || value.length < MIN_VALUE_CHARS || value.length > MAX_VALUE_CHARS || !BASE64URL.test(value)) {
      return undefined;
    }
    const bytes = Buffer.from(value, 'base64url');
    // Canonical encoding only: Node's decoder ignores the unused low bits of the last character,
    // so without this check two cookie strings would carry the same signed bytes.
    if (bytes.length < MIN_VALUE_BYTES || bytes.length > MAX_VALUE_BYTES || bytes.toString('base64url') !== value) return undefined;
    if (bytes[0] !== VERSION) return undefined;
    const signedLength = bytes.length - MAC_BYTES;
    const mac = bytes.subarray(signedLength);
    let valid = false;
    for (const key of this.#keys) {
      // Every key is tried even after a match, so timing does not reveal which key signed.
      if (timingSafeEqual(this.#mac(key, bytes.subarray(0, signedLength)), mac)) valid = true;
    }
    if (!valid) return undefined;
    const issuedAt = bytes.readUInt32BE(1) * 1000;
    if (issuedAt > now + MAX_CLOCK_SKEW_MS || now >= issuedAt + this.maxAgeMs) return undefined;
    const backendId = bytes.toString('latin1', HEADER_BYTES, signedLength);
    // Signed ids are ids we issued; the check keeps a leaked key from smuggling anything else in.
    if (!BACKEND_ID_PATTERN.test(backendId)) return undefined;
    return { backendId, issuedAt };
  }

  /** The bare signed value for `backendId` issued at `now` (what `serialize` puts after `name=`). */
  sign(backendId: string, now: number): string {
    if (typeof backendId !== 'string' || !BACKEND_ID_PATTERN.test(backendId)) {
      throw new InvalidOptionError('backendId', backendId, 'must be a backend id (1–64 chars of [A-Za-z0-9._:-])');
    }
    // Issue times have one-second resolution, so every cookie for one backend within a second is the
    // same bytes: sign once per backend per second (new visitors arrive in bursts).
    const second = Math.floor(now / 1000);
    const cached = this.#signed.get(backendId);
    if (cached !== undefined && cached.second === second) return cached.value;
    const value = this.#sign(backendId, now);
    if (this.#signed.size >= SIGNED_CACHE_SIZE) this.#signed.clear();
    this.#signed.set(backendId, { second, value, cookie: undefined, cookieSecure: undefined });
    return value;
  }

  #sign(backendId: string, now: number): string {
    const idLength = backendId.length; // ASCII by the pattern above
    const bytes = Buffer.allocUnsafe(HEADER_BYTES + idLength + MAC_BYTES);
    bytes[0] = VERSION;
    bytes.writeUInt32BE(Math.max(0, Math.min(0xffffffff, Math.floor(now / 1000))), 1);
    bytes.write(backendId, HEADER_BYTES, 'latin1');
    this.#mac(this.#keys[0]!, bytes.subarray(0, HEADER_BYTES + idLength)).copy(bytes, HEADER_BYTES + idLength);
    return bytes.toString('base64url');
  }

  /**
   * A complete `Set-Cookie` value naming `backendId`, issued at `now`; `secure` says whether the
   * request arrived over TLS (used when the `secure` option is `'auto'`). Throws only for an
   * invalid backend id (a programming error: ids come from the load balancer).
   */
  serialize(backendId: string, now: number, secure: boolean): string {
    const withSecure = this.secure === true || (this.secure === 'auto' && secure);
    const value = this.sign(backendId, now);
    // The whole header value is kept with the signed value (same backend, same second): a new
    // visitor costs no string building either.
    const entry = this.#signed.get(backendId);
    if (entry !== undefined && entry.value === value) {
      if (withSecure) return (entry.cookieSecure ??= `${this.name}=${value}${this.#attributesSecure}`);
      return (entry.cookie ??= `${this.name}=${value}${this.#attributes}`);
    }
    return `${this.name}=${value}${withSecure ? this.#attributesSecure : this.#attributes}`;
  }

  /** A `Set-Cookie` value that deletes the cookie (for a client whose backend is gone for good). */
  serializeClear(secure: boolean): string {
    const withSecure = this.secure === true || (this.secure === 'auto' && secure);
    const attributes = (withSecure ? this.#attributesSecure : this.#attributes).replace(/; Max-Age=\d+/, '; Max-Age=0');
    return `${this.name}=${attributes}`;
  }

  #mac(key: KeyObject, signed: Uint8Array): Buffer {
    return createHmac('sha256', key).update(this.#context).update(signed).digest().subarray(0, MAC_BYTES);
  }
}

const SAME_SITE: Readonly<Record<string, 'Strict' | 'Lax' | 'None'>> = Object.freeze({
  strict: 'Strict',
  lax: 'Lax',
  none: 'None',
});

function validateSecrets(secrets: unknown, path: string): readonly Buffer[] {
  if (!Array.isArray(secrets) || secrets.length === 0) {
    throw new InvalidOptionError(
      path,
      secrets === undefined ? undefined : Array.isArray(secrets) ? secrets : '[not an array]',
      'must be a non-empty array of secrets (the first signs, all verify); generate one with crypto.randomBytes(32).toString("base64url")',
    );
  }
  const keys: Buffer[] = [];
  for (let i = 0; i < secrets.length; i++) {
    const secret: unknown = secrets[i];
    let key: Buffer;
    if (typeof secret === 'string') key = Buffer.from(secret, 'utf8');
    else if (secret instanceof Uint8Array)
      key = Buffer.from(secret); // a copy: later mutation by the caller changes nothing
    else throw new InvalidOptionError(`${path}[${i}]`, typeof secret, 'must be a string or a Uint8Array');
    // Never put the secret itself in an error message: messages end up in logs.
    if (key.length < MIN_SECRET_BYTES) {
      throw new InvalidOptionError(
        `${path}[${i}]`,
        `<redacted secret of ${key.length} bytes>`,
        `must be at least ${MIN_SECRET_BYTES} bytes of random data (HMAC-SHA256 keys shorter than that can be guessed offline from one cookie); generate one with crypto.randomBytes(32).toString("base64url")`,
      );
    }
    if (new Set(key).size < 8) {
      throw new InvalidOptionError(
        `${path}[${i}]`,
        `<redacted secret of ${key.length} bytes>`,
        'looks like a placeholder (fewer than 8 distinct bytes), not random data; generate one with crypto.randomBytes(32).toString("base64url")',
      );
    }
    keys.push(key);
  }
  return Object.freeze(keys);
}
