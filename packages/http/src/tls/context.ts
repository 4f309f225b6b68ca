/**
 * TLS termination: `https.createServer` options that pick a certificate by SNI, and a context that
 * swaps certificates at runtime without dropping a connection.
 *
 * The model is nginx's one-`server`-block-per-name and HAProxy's `crt-list`: several certificates,
 * each serving the names it lists (by default the DNS names in its subjectAltName — its CN only when
 * it has none), chosen per handshake from the client's SNI; exact names win over wildcards, a
 * wildcard `*.example.com` covers exactly ONE label (RFC 6125 §6.4.3: `a.example.com`, not
 * `a.b.example.com` nor `example.com`), and a client without SNI (or naming nothing we serve) gets
 * the default certificate: the one marked `default: true`, else the first. Selection is a map
 * lookup, then one per label for the wildcard.
 *
 * Reloading is Node's own mechanism: every certificate becomes a `SecureContext` up front (so a bad
 * key or a key that does not match its certificate is refused before anything changes), then the
 * SNI table is replaced in one assignment and, for clients without SNI, `server.setSecureContext` is
 * called on the servers given to `attach`. Established connections keep the context they
 * negotiated; only new handshakes see the new certificates — HAProxy's "set ssl cert" + "commit".
 *
 * Defaults: `minVersion: 'TLSv1.2'` (TLS 1.0/1.1 are deprecated by RFC 8996; Node's own default is
 * the same, stated here so it does not drift), Node's cipher list (maintained with OpenSSL), and
 * client-initiated renegotiation refused (as HAProxy and nginx do; see `NO_RENEGOTIATION`). The
 * PEM material is given as strings or Buffers; reading files and watching them for renewals belongs
 * to the caller (or the CLI), which then calls `reload`.
 */
import { X509Certificate, constants as cryptoConstants } from 'node:crypto';
import type { ServerOptions } from 'node:https';
import { createSecureContext, type SecureContext, type SecureContextOptions, type Server as TlsServer } from 'node:tls';
import { InvalidOptionError } from '@fulcrum/core';
import { isPlainObject } from '@fulcrum/core/validate';

/** One certificate and the names it serves. */
export interface TlsCertificate {
  /** PEM certificate chain (leaf first). */
  cert: string | Buffer;
  /** PEM private key. */
  key: string | Buffer;
  /** Passphrase of an encrypted key. */
  passphrase?: string;
  /** PEM CA certificates for client-certificate verification (only with `requestCert`). */
  ca?: string | Buffer | readonly (string | Buffer)[];
  /**
   * The server names this certificate answers (`'example.com'`, `'*.example.com'`). Default: the DNS
   * names of its subjectAltName (its subject CN when it has none).
   */
  servernames?: readonly string[];
  /** Serve it to clients without SNI or naming no known host. Default: the first certificate. */
  default?: boolean;
}

/** Options of `tlsOptions` / `createTlsContext`. */
export interface TlsOptions {
  /** At least one certificate. */
  certs: readonly TlsCertificate[];
  /** Lowest protocol version. Default `'TLSv1.2'`. */
  minVersion?: 'TLSv1.2' | 'TLSv1.3';
  /** OpenSSL cipher list for TLS ≤ 1.2. Default: Node's. */
  ciphers?: string;
  /** Ask clients for a certificate (mutual TLS; verified against each cert's `ca`). Default false. */
  requestCert?: boolean;
  /** With `requestCert`, refuse clients without a valid certificate. Default true. */
  rejectUnauthorized?: boolean;
}

/** A reloadable set of certificates. */
export interface TlsContext {
  /** Options for `https.createServer` (or `tls.createServer`); stable across reloads. */
  readonly serverOptions: ServerOptions;
  /**
   * Replace the certificates (all of them, same options shape). Validates everything first; on an
   * error nothing changes and the promise rejects with an `InvalidOptionError`. Open connections
   * are untouched; new handshakes use the new certificates.
   */
  reload(options: TlsOptions | readonly TlsCertificate[]): Promise<void>;
  /**
   * Keep a server's default certificate (for clients without SNI) in step with `reload`. Servers are
   * forgotten when they emit `close`. Returns the server.
   */
  attach<S extends TlsServer>(server: S): S;
  /** The server names currently served, exact names first (for logs and stats). */
  readonly servernames: readonly string[];
  /** The context for a server name (what SNI would choose), or the default. */
  contextFor(servername: string | undefined): SecureContext;
}

interface Table {
  readonly exact: ReadonlyMap<string, SecureContext>;
  /** Wildcard suffix (`example.com` for `*.example.com`) → context. */
  readonly wildcard: ReadonlyMap<string, SecureContext>;
  readonly fallback: SecureContext;
  readonly fallbackOptions: SecureContextOptions;
  readonly names: readonly string[];
}

/**
 * OpenSSL's `SSL_OP_NO_RENEGOTIATION`: a client's request to renegotiate a TLS 1.2 session is
 * answered with a `no_renegotiation` alert. Renegotiation is a handshake the client can ask for at
 * any time, each costing the server a full key exchange (a CPU-exhaustion lever, CVE-2011-1473), and
 * nothing a proxy serves needs it; HAProxy and nginx refuse it the same way. (Node alone would allow
 * 3 per 10 minutes per connection.) TLS 1.3 has no renegotiation at all. Set on every context —
 * the server's default and each SNI one — so the certificate chosen never changes the answer.
 */
const NO_RENEGOTIATION = cryptoConstants.SSL_OP_NO_RENEGOTIATION;

const KNOWN = new Set(['certs', 'minVersion', 'ciphers', 'requestCert', 'rejectUnauthorized']);
const CERT_KEYS = new Set(['cert', 'key', 'passphrase', 'ca', 'servernames', 'default']);
const LABEL = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const SERVERNAME = new RegExp(`^(?:\\*\\.)?${LABEL}(?:\\.${LABEL})*$`);

function pem(path: string, value: unknown): string | Buffer {
  if ((typeof value === 'string' && value.includes('-----BEGIN')) || (Buffer.isBuffer(value) && value.includes('-----BEGIN'))) return value;
  throw new InvalidOptionError(
    path,
    typeof value === 'string' ? `${value.slice(0, 20)}…` : value === undefined ? undefined : typeof value,
    'must be PEM text (a string or Buffer with "-----BEGIN")',
  );
}

/** The DNS names a certificate was issued for. */
function namesOf(cert: string | Buffer, path: string): string[] {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (error) {
    throw new InvalidOptionError(path, '[certificate]', 'must be a valid PEM X.509 certificate', { cause: error });
  }
  const names: string[] = [];
  for (const entry of (x509.subjectAltName ?? '').split(',')) {
    const trimmed = entry.trim();
    if (trimmed.startsWith('DNS:')) names.push(trimmed.slice(4).toLowerCase());
  }
  if (names.length === 0) {
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(x509.subject)?.[1];
    if (cn !== undefined) names.push(cn.trim().toLowerCase());
  }
  return names.filter((name) => SERVERNAME.test(name));
}

function normaliseOptions(input: unknown): { certs: readonly TlsCertificate[]; common: SecureContextOptions } {
  const options = Array.isArray(input) ? { certs: input } : input;
  if (!isPlainObject(options)) throw new InvalidOptionError('options', options, 'must be { certs: [{ cert, key }], … }');
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw new InvalidOptionError(key, options[key], `is not a TLS option (known: ${[...KNOWN].join(', ')})`);
  }
  const { certs, minVersion = 'TLSv1.2', ciphers, requestCert = false, rejectUnauthorized = true } = options as unknown as TlsOptions;
  if (!Array.isArray(certs) || certs.length === 0) throw new InvalidOptionError('certs', certs, 'must be a non-empty array of { cert, key }');
  if (minVersion !== 'TLSv1.2' && minVersion !== 'TLSv1.3') throw new InvalidOptionError('minVersion', minVersion, "must be 'TLSv1.2' or 'TLSv1.3'");
  if (ciphers !== undefined && (typeof ciphers !== 'string' || ciphers.length === 0))
    throw new InvalidOptionError('ciphers', ciphers, 'must be an OpenSSL cipher list');
  if (typeof requestCert !== 'boolean') throw new InvalidOptionError('requestCert', requestCert, 'must be true or false');
  if (typeof rejectUnauthorized !== 'boolean') throw new InvalidOptionError('rejectUnauthorized', rejectUnauthorized, 'must be true or false');
  return { certs, common: { minVersion, secureOptions: NO_RENEGOTIATION, ...(ciphers === undefined ? {} : { ciphers }) } };
}

/** Build the SNI table; throws `InvalidOptionError` naming `certs[i]…` for anything wrong. */
function buildTable(certs: readonly TlsCertificate[], common: SecureContextOptions): Table {
  const exact = new Map<string, SecureContext>();
  const wildcard = new Map<string, SecureContext>();
  const contexts: { context: SecureContext; options: SecureContextOptions }[] = [];
  let defaultIndex = -1;
  certs.forEach((entry: unknown, i: number) => {
    const path = `certs[${i}]`;
    if (!isPlainObject(entry)) throw new InvalidOptionError(path, entry, 'must be { cert, key, servernames?, default? }');
    for (const key of Object.keys(entry)) {
      if (!CERT_KEYS.has(key)) throw new InvalidOptionError(`${path}.${key}`, entry[key], `is not a certificate option (known: ${[...CERT_KEYS].join(', ')})`);
    }
    const spec = entry as unknown as TlsCertificate;
    const cert = pem(`${path}.cert`, spec.cert);
    const key = pem(`${path}.key`, spec.key);
    if (spec.passphrase !== undefined && typeof spec.passphrase !== 'string')
      throw new InvalidOptionError(`${path}.passphrase`, '[hidden]', 'must be a string');
    if (spec.default !== undefined && typeof spec.default !== 'boolean') throw new InvalidOptionError(`${path}.default`, spec.default, 'must be true or false');
    let names: string[];
    if (spec.servernames === undefined) {
      names = namesOf(cert, `${path}.cert`);
      if (names.length === 0) throw new InvalidOptionError(`${path}.servernames`, undefined, 'must be given: the certificate names no DNS host');
    } else {
      if (!Array.isArray(spec.servernames) || spec.servernames.length === 0)
        throw new InvalidOptionError(`${path}.servernames`, spec.servernames, 'must be a non-empty array of host names');
      names = spec.servernames.map((name: unknown, j: number) => {
        const lower = typeof name === 'string' ? name.toLowerCase().replace(/\.$/, '') : name;
        if (typeof lower !== 'string' || !SERVERNAME.test(lower) || lower.length > 253) {
          throw new InvalidOptionError(`${path}.servernames[${j}]`, name, 'must be a host name or "*.suffix"');
        }
        return lower;
      });
    }
    const contextOptions: SecureContextOptions = {
      ...common,
      cert,
      key,
      ...(spec.passphrase === undefined ? {} : { passphrase: spec.passphrase }),
      ...(spec.ca === undefined ? {} : { ca: spec.ca as SecureContextOptions['ca'] }),
    };
    let context: SecureContext;
    try {
      context = createSecureContext(contextOptions);
    } catch (error) {
      // OpenSSL's message says what is wrong (mismatched key, bad decrypt) without any secret in it.
      const reason = error instanceof Error ? error.message : String(error);
      throw new InvalidOptionError(`${path}.key`, '[hidden]', `must be the private key of ${path}.cert (${reason})`, { cause: error });
    }
    for (const name of names) {
      const table = name.startsWith('*.') ? wildcard : exact;
      const lookup = name.startsWith('*.') ? name.slice(2) : name;
      // The first certificate listing a name keeps it, as in HAProxy's crt-list order.
      if (!table.has(lookup)) table.set(lookup, context);
    }
    if (spec.default === true) {
      if (defaultIndex !== -1) throw new InvalidOptionError(`${path}.default`, true, `conflicts with certs[${defaultIndex}].default: only one default`);
      defaultIndex = i;
    }
    contexts.push({ context, options: contextOptions });
  });
  const fallback = contexts[defaultIndex === -1 ? 0 : defaultIndex]!;
  const names = [...exact.keys(), ...[...wildcard.keys()].map((suffix) => `*.${suffix}`)];
  return { exact, wildcard, fallback: fallback.context, fallbackOptions: fallback.options, names: Object.freeze(names) };
}

function select(table: Table, servername: string | undefined): SecureContext {
  if (typeof servername !== 'string' || servername.length === 0) return table.fallback;
  let name = servername.toLowerCase();
  if (name.endsWith('.')) name = name.slice(0, -1);
  const exact = table.exact.get(name);
  if (exact !== undefined) return exact;
  const dot = name.indexOf('.');
  if (dot > 0) {
    const wildcard = table.wildcard.get(name.slice(dot + 1));
    if (wildcard !== undefined) return wildcard;
  }
  return table.fallback;
}

/**
 * A reloadable TLS context (see the file header): `https.createServer(tls.serverOptions, handler)`,
 * then `await tls.reload(newCerts)` at any time. Throws `InvalidOptionError` for invalid options.
 */
export function createTlsContext(options: TlsOptions): TlsContext {
  const { certs, common } = normaliseOptions(options);
  const { requestCert = false, rejectUnauthorized = true } = options;
  let table = buildTable(certs, common);
  const servers = new Set<TlsServer>();
  const serverOptions: ServerOptions = {
    ...common,
    ...table.fallbackOptions,
    ...(requestCert ? { requestCert, rejectUnauthorized } : {}),
    SNICallback: (servername, callback) => {
      // The table reference is read once per handshake, so a reload mid-handshake is harmless.
      callback(null, select(table, servername));
    },
  };
  return {
    serverOptions,
    async reload(next) {
      // A bare list keeps the protocol options given at creation; a full object replaces them.
      const normalised = Array.isArray(next) ? { certs: next as readonly TlsCertificate[], common } : normaliseOptions(next);
      if (normalised.certs.length === 0) throw new InvalidOptionError('certs', next, 'must be a non-empty array of { cert, key }');
      const built = buildTable(normalised.certs, normalised.common);
      // Contexts are built; now swap. Nothing below can fail on user input.
      table = built;
      for (const server of servers) server.setSecureContext(built.fallbackOptions);
    },
    attach(server) {
      servers.add(server);
      server.once('close', () => servers.delete(server));
      return server;
    },
    get servernames() {
      return table.names;
    },
    contextFor(servername) {
      return select(table, servername);
    },
  };
}

/**
 * `https.createServer` options with SNI selection over `certs` (not reloadable; use
 * `createTlsContext` to reload). Throws `InvalidOptionError` for invalid options.
 */
export function tlsOptions(options: TlsOptions): ServerOptions {
  return createTlsContext(options).serverOptions;
}
