/**
 * Session affinity ("stickiness"): keep a client on the backend that served it, while that backend
 * can serve. Four ways to recognise "the same client", one per configuration:
 *
 * - `cookie` — a signed cookie the proxy inserts (HAProxy `cookie … insert`, nginx `sticky cookie`;
 *   see `cookie.ts`). Stateless: nothing to replicate, survives proxy restarts, and the cookie is
 *   verified, so it can never pin a client to a backend of its choosing.
 * - `sourceIp` — the client address (HAProxy `stick on src`, nginx `ip_hash`), resolved through
 *   trusted proxies (`client-address.ts`), recorded in a stick-table.
 * - `header` — a request header's value (HAProxy `stick on hdr(x)`), e.g. an API key or tenant id.
 * - `learnCookie` — the application's own session cookie (HAProxy `stick store-response
 *   res.cook(JSESSIONID)` + `stick match req.cook(JSESSIONID)`, the old `appsession`): learned from the
 *   backend's `Set-Cookie`, so later requests carrying it stick; a deleting `Set-Cookie` forgets it.
 *
 * Exactly one is configured: each answers "who is this client?" differently, and two answers that
 * disagree would need a precedence rule users could not guess. (A signed cookie plus a learned
 * session cookie would both pin to the backend that issued the session — the learned one adds
 * nothing the signed one lacks.)
 *
 * Contract with the proxy: `lookup` says which backend id the request is stuck to (verified, or
 * from the table); the proxy asks the load balancer for that backend, which re-picks when it is down,
 * ejected, in maintenance or unknown (a stale id); after a backend answered, `commit` records the
 * backend that actually served and returns a `Set-Cookie` to append (cookie mode) or `undefined`.
 * Alternatively the proxy may hand `affinityTable` to `createLoadBalancer({ stickTable })` and call
 * `lb.acquire({ affinityKey: stickiness.affinityKey(req, ip, now) })`: the core then does the
 * lookup, the redispatch and the rewrite itself, and `commit` still issues cookies and learns.
 *
 * Table-based modes guard their table: every key is a flat string of its own (`flat-key.ts`: a key
 * cut from a padded header never keeps that header alive); keys longer than 128 characters (a JWT
 * in a header) are stored as their SHA-256, so a client sending huge distinct values cannot make each entry cost
 * kilobytes; `learnCookie` only ever INSERTS values the backend issued (a client inventing session
 * ids can touch nothing); and the table's `capacity` bounds the rest (least recently used first). A
 * client that floods a `sourceIp` or `header` table can evict other clients' entries — they are then
 * balanced afresh, never sent somewhere an attacker chose.
 *
 * Default table: `capacity` 100 000 (≈ 12 MB at ~120 B per entry — comfortably in memory, and more
 * concurrent clients than one Node proxy serves), `ttlMs` 30 minutes (HAProxy's customary
 * `expire 30m` and the servlet session default: an idle client forgets its backend about when its
 * application session would have expired anyway). Pass your own `table` to replicate it between
 * proxy instances (`@fulcrum/session-redis` and friends); Stickiness never closes a table it was given.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { InvalidOptionError, StickTable, coarseClock, type AffinityTable, type Clock } from '@fulcrum/core';
import { clientAddress, TrustedProxies } from './client-address';
import { StickyCookie, type CookieStickinessOptions, type VerifiedStickyCookie } from './cookie';
import { readCookie, readSetCookie, requestCookieLines } from './cookie-header';
import { flatKey } from './flat-key';

/** How requests are recognised as the same client (see the file header). Set exactly one of the first four. */
export interface StickinessOptions {
  /** A signed cookie inserted by the proxy. */
  cookie?: CookieStickinessOptions;
  /**
   * The client address. `trustedProxies` (CIDRs, addresses, `'loopback'`, `'private'`, `'linklocal'`)
   * decides whose `X-Forwarded-For` is believed; default: the proxy's own list, else nobody's (the
   * socket address).
   */
  sourceIp?: { trustedProxies?: readonly string[] };
  /** A request header's value (name, case-insensitive). */
  header?: string;
  /** The application's session cookie name, learned from the backend's `Set-Cookie`. */
  learnCookie?: string;
  /**
   * Key → backend id for `sourceIp`, `header` and `learnCookie`. Default: a new local
   * `StickTable({ capacity: 100_000, ttlMs, nodeId })`. Not allowed with `cookie` (stateless).
   */
  table?: StickTable<string>;
  /** Idle lifetime of an entry in the default table, ms > 0. Default 1 800 000 (30 min). Only without `table`. */
  ttlMs?: number;
}

/** What the proxy gives a `Stickiness`. */
export interface StickinessDeps {
  /** Clock of the default table. Default: the real clock. */
  clock?: Clock;
  /** The proxy's trusted proxies; used by `sourceIp` when `sourceIp.trustedProxies` is not set. */
  trustedProxies?: TrustedProxies;
  /** Node id of the default table (1–64 chars of [A-Za-z0-9._:-]). Default: `fulcrum-` + 12 random hex digits. */
  nodeId?: string;
}

/**
 * A request's sticky-cookie verification, carried by the caller from `lookup` to `commit` (cookie
 * mode): the raw engines keep one per connection and pass it to both calls, so the verification is
 * neither done twice nor kept in a request-keyed `WeakMap` in between. `undefined`: not looked up;
 * `null`: looked up, no valid cookie.
 */
export interface StickyVerification {
  verified: VerifiedStickyCookie | null | undefined;
}

/** The configured way of recognising a client. */
export type StickinessMode = 'cookie' | 'sourceIp' | 'header' | 'learnCookie';

/** Default capacity of the table a `Stickiness` creates. */
export const DEFAULT_STICKY_CAPACITY = 100_000;
/** Default idle lifetime of the table a `Stickiness` creates: 30 min. */
export const DEFAULT_STICKY_TTL_MS = 30 * 60 * 1000;
/** Raw keys longer than this are stored as their SHA-256 (base64url). */
export const MAX_RAW_STICKY_KEY_LENGTH = 128;

const MODES: readonly StickinessMode[] = ['cookie', 'sourceIp', 'header', 'learnCookie'];
const KNOWN_OPTIONS = new Set<string>([...MODES, 'table', 'ttlMs']);
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const KEY_PREFIX: Readonly<Record<Exclude<StickinessMode, 'cookie'>, string>> = Object.freeze({
  sourceIp: 'ip:',
  header: 'hdr:',
  learnCookie: 'ck:',
});
/** The prefix of a hashed key: the mode's prefix and `#`, built once. */
const HASHED_PREFIX: Readonly<Record<string, string>> = Object.freeze(Object.fromEntries(Object.values(KEY_PREFIX).map((prefix) => [prefix, `${prefix}#`])));

/** Session affinity for one pool (see the file header). */
export class Stickiness {
  readonly mode: StickinessMode;
  /** The cookie codec, in `cookie` mode. */
  readonly cookie: StickyCookie | undefined;
  /** The key → backend id table, in `sourceIp`, `header` and `learnCookie` modes. */
  readonly table: StickTable<string> | undefined;
  /**
   * A view for `createLoadBalancer({ stickTable })`, keyed by `affinityKey()`. Cookie mode: the key
   * is the verified backend id itself and writes are dropped (`commit` reissues the cookie).
   * `learnCookie`: writes only rewrite entries that exist. Otherwise: the table.
   */
  readonly affinityTable: AffinityTable;

  readonly #ownsTable: boolean;
  readonly #headerName: string | undefined;
  readonly #learnCookieName: string | undefined;
  readonly #sourceTrusted: TrustedProxies | undefined;
  /** Cookie verification of a request, from `lookup` to `commit` (null: verified as absent/invalid). */
  readonly #verified = new WeakMap<IncomingMessage, VerifiedStickyCookie | null>();
  #closed = false;

  constructor(options: StickinessOptions, deps: StickinessDeps = {}, path = 'stickiness') {
    if (typeof options !== 'object' || options === null || Array.isArray(options)) {
      throw new InvalidOptionError(path, options, `must be an object with one of ${MODES.join(', ')}`);
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
    const chosen = MODES.filter((mode) => options[mode] !== undefined);
    if (chosen.length !== 1) {
      throw new InvalidOptionError(
        path,
        chosen.length === 0 ? options : chosen,
        `must set exactly one of ${MODES.join(', ')} (each recognises a client differently)${chosen.length > 1 ? `; got ${chosen.join(' and ')}` : ''}`,
      );
    }
    const mode = chosen[0]!;
    this.mode = mode;

    if (mode === 'cookie') {
      if (options.table !== undefined)
        throw new InvalidOptionError(`${path}.table`, options.table, 'is not used with cookie stickiness (the signed cookie carries the state)');
      if (options.ttlMs !== undefined) throw new InvalidOptionError(`${path}.ttlMs`, options.ttlMs, 'is not used with cookie stickiness; set cookie.maxAgeMs');
      this.cookie = new StickyCookie(options.cookie!, `${path}.cookie`);
      this.table = undefined;
      this.#ownsTable = false;
      this.affinityTable = Object.freeze({
        get: (key: string) => key,
        set: () => undefined,
      });
      return;
    }

    this.cookie = undefined;
    if (mode === 'sourceIp') {
      const sourceIp: unknown = options.sourceIp;
      if (typeof sourceIp !== 'object' || sourceIp === null || Array.isArray(sourceIp)) {
        throw new InvalidOptionError(`${path}.sourceIp`, sourceIp, 'must be an object ({} or { trustedProxies: [...] })');
      }
      for (const key of Object.keys(sourceIp)) {
        if (key !== 'trustedProxies')
          throw new InvalidOptionError(`${path}.sourceIp.${key}`, (sourceIp as Record<string, unknown>)[key], 'is not an option (known: trustedProxies)');
      }
      const list = (sourceIp as { trustedProxies?: readonly string[] }).trustedProxies;
      this.#sourceTrusted = list !== undefined ? new TrustedProxies(list, `${path}.sourceIp.trustedProxies`) : deps.trustedProxies;
    } else if (mode === 'header') {
      if (typeof options.header !== 'string' || !TOKEN.test(options.header)) {
        throw new InvalidOptionError(`${path}.header`, options.header, 'must be a header name (an HTTP token)');
      }
      this.#headerName = options.header.toLowerCase();
    } else {
      if (typeof options.learnCookie !== 'string' || !TOKEN.test(options.learnCookie)) {
        throw new InvalidOptionError(`${path}.learnCookie`, options.learnCookie, 'must be a cookie name (an RFC 6265 token)');
      }
      this.#learnCookieName = options.learnCookie;
    }

    if (options.table !== undefined) {
      const table: unknown = options.table;
      if (
        typeof table !== 'object' ||
        table === null ||
        typeof (table as StickTable<string>).get !== 'function' ||
        typeof (table as StickTable<string>).set !== 'function' ||
        typeof (table as StickTable<string>).delete !== 'function' ||
        typeof (table as StickTable<string>).touch !== 'function'
      ) {
        throw new InvalidOptionError(`${path}.table`, table, 'must be a StickTable (get, set, delete, touch)');
      }
      if (options.ttlMs !== undefined) {
        throw new InvalidOptionError(`${path}.ttlMs`, options.ttlMs, 'cannot be set with `table`; the table has its own ttlMs');
      }
      this.table = options.table;
      this.#ownsTable = false;
    } else {
      const ttlMs = options.ttlMs ?? DEFAULT_STICKY_TTL_MS;
      if (typeof ttlMs !== 'number' || !Number.isFinite(ttlMs) || ttlMs <= 0) {
        throw new InvalidOptionError(`${path}.ttlMs`, ttlMs, 'must be a finite number of ms > 0');
      }
      this.table = new StickTable<string>({
        capacity: DEFAULT_STICKY_CAPACITY,
        ttlMs,
        nodeId: deps.nodeId ?? `fulcrum-${randomBytes(6).toString('hex')}`,
        clock: deps.clock ?? coarseClock,
      });
      this.#ownsTable = true;
    }

    const table = this.table;
    if (mode === 'learnCookie') {
      this.affinityTable = Object.freeze({
        get: (key: string) => table.get(key),
        // Only rewrite (a redispatch): a key the backend never issued is never inserted.
        set: (key: string, backendId: string) => {
          if (table.has(key)) table.set(key, backendId);
        },
        touch: (key: string) => {
          table.touch(key);
        },
      });
    } else {
      this.affinityTable = table;
    }
  }

  /**
   * The key that identifies this request's client for `affinityTable` (the verified backend id in
   * cookie mode), or `undefined` when the request carries none. Never throws.
   */
  affinityKey(req: IncomingMessage, clientIp: string, now: number): string | undefined {
    switch (this.mode) {
      case 'cookie':
        return this.#verify(req, now)?.backendId;
      case 'sourceIp': {
        const ip = this.#sourceTrusted !== undefined ? clientAddress(req, this.#sourceTrusted) : clientIp;
        return ip === '' ? undefined : tableKey(KEY_PREFIX.sourceIp, ip);
      }
      case 'header': {
        const value = req.headers[this.#headerName!];
        const text = typeof value === 'string' ? value : Array.isArray(value) ? value[0] : undefined;
        return text === undefined || text === '' ? undefined : tableKey(KEY_PREFIX.header, text);
      }
      case 'learnCookie': {
        const value = readCookie(requestCookieLines(req), this.#learnCookieName!, false);
        return typeof value === 'string' ? tableKey(KEY_PREFIX.learnCookie, value) : undefined;
      }
    }
  }

  /**
   * The backend id this request is stuck to — verified (cookie) or recorded (table) — or
   * `undefined`. The id may be stale: the load balancer re-picks when that backend cannot serve.
   * Never throws, never writes. With `carry` (cookie mode), the verification is left there for
   * `commit` (pass the same object) instead of being remembered per request.
   */
  lookup(req: IncomingMessage, clientIp: string, now: number, carry?: StickyVerification): string | undefined {
    if (carry !== undefined && this.mode === 'cookie') {
      const verified = this.cookie!.verify(requestCookieLines(req), now);
      carry.verified = verified ?? null;
      return verified?.backendId;
    }
    const key = this.affinityKey(req, clientIp, now);
    if (key === undefined) return undefined;
    return this.mode === 'cookie' ? key : this.table!.get(key);
  }

  /**
   * Record that `backendId` served `req`; call once per request after a backend answered (any
   * status), not when every attempt failed. Returns a `Set-Cookie` value to append to the response,
   * or `undefined`:
   * - cookie: a fresh cookie when the request had no valid one, one naming another backend, or one
   *   past half its `maxAgeMs` (sliding expiry); `secure` = the request arrived over TLS;
   * - sourceIp / header: key → `backendId` in the table (a touch when unchanged);
   * - learnCookie: the cookie's value in `upstreamSetCookie` → `backendId`; a deleting `Set-Cookie`
   *   (Max-Age ≤ 0, Expires in the past, empty value) removes the entry; a request cookie the table
   *   already knows is moved to `backendId` after a redispatch.
   * Never throws for request or response content. `carry`: the object given to `lookup` (cookie
   * mode reads the verification from it and clears it).
   */
  commit(
    req: IncomingMessage,
    clientIp: string,
    backendId: string,
    upstreamSetCookie: readonly string[] | undefined,
    secure: boolean,
    now: number,
    carry?: StickyVerification,
  ): string | undefined {
    if (this.#closed) return undefined;
    if (this.mode === 'cookie') {
      let verified: VerifiedStickyCookie | undefined;
      if (carry !== undefined && carry.verified !== undefined) {
        verified = carry.verified ?? undefined;
        carry.verified = undefined;
      } else {
        verified = this.#verify(req, now);
        this.#verified.delete(req);
      }
      const cookie = this.cookie!;
      if (verified !== undefined && verified.backendId === backendId && now - verified.issuedAt < cookie.maxAgeMs / 2) return undefined;
      return cookie.serialize(backendId, now, secure);
    }
    const table = this.table!;
    if (this.mode === 'learnCookie') {
      const name = this.#learnCookieName!;
      const requestValue = readCookie(requestCookieLines(req), name, false);
      const requestKey = typeof requestValue === 'string' ? tableKey(KEY_PREFIX.learnCookie, requestValue) : undefined;
      const issued = readSetCookie(upstreamSetCookie, name, now);
      if (issued !== undefined && issued.deleted) {
        if (requestKey !== undefined) table.delete(requestKey);
        if (issued.value !== '' && issued.value !== requestValue) table.delete(tableKey(KEY_PREFIX.learnCookie, issued.value));
        return undefined;
      }
      if (issued !== undefined) record(table, tableKey(KEY_PREFIX.learnCookie, issued.value), backendId);
      if (requestKey !== undefined && requestValue !== issued?.value) {
        const current = table.get(requestKey);
        if (current !== undefined) record(table, requestKey, backendId, current);
      }
      return undefined;
    }
    const key = this.affinityKey(req, clientIp, now);
    if (key !== undefined) record(table, key, backendId);
    return undefined;
  }

  /** Stop the default table's timers (a table passed in is left open). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#ownsTable) await this.table!.close();
  }

  #verify(req: IncomingMessage, now: number): VerifiedStickyCookie | undefined {
    const cached = this.#verified.get(req);
    if (cached !== undefined) return cached ?? undefined;
    const verified = this.cookie!.verify(requestCookieLines(req), now);
    this.#verified.set(req, verified ?? null);
    return verified;
  }
}

/**
 * Prefix + value, or prefix + '#' + SHA-256 for long values (see the file header) — flat, so an
 * entry never keeps alive the header it was cut from (see `flat-key.ts`).
 */
function tableKey(prefix: string, value: string): string {
  if (value.length <= MAX_RAW_STICKY_KEY_LENGTH) return flatKey(prefix, value);
  return flatKey(HASHED_PREFIX[prefix]!, createHash('sha256').update(value).digest('base64url'));
}

/** Set `key` → `backendId`, or only refresh its expiry when it already holds that id. */
function record(table: StickTable<string>, key: string, backendId: string, current = table.get(key)): void {
  if (current === backendId) table.touch(key);
  else table.set(key, backendId);
}
