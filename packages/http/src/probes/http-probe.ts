/**
 * `httpProbe()`: an active HTTP health check for core's `HealthChecker` — request a path on the
 * backend, pass on an expected status, and read agent-style weight and drain requests from the
 * response (see `agent.ts`).
 *
 * Sources: HAProxy's `option httpchk` + `http-check expect status` (2xx and 3xx pass by default,
 * `/` by default), nginx's `health_check` (`uri` defaults to `/`, 2xx/3xx pass), Envoy's HTTP
 * health checker (expected statuses as ranges), HAProxy's `agent-check` for the agent words.
 *
 * Defaults and why:
 * - `path: '/'` — HAProxy's and nginx's default. It works against any backend out of the box; a
 *   default of `/health` would mark every backend without that route down at once (404), which is
 *   the worst way to learn about a default. Point it at `healthEndpoint()` with `path: '/health'`.
 * - `method: 'GET'` — HEAD is cheaper but some frameworks route it differently or not at all, and
 *   only a GET can carry a JSON agent body.
 * - `expectStatus: 200–399` — HAProxy's and nginx's rule: a redirect means the server is serving.
 * - `timeoutMs`: unset, so the checker's `timeoutMs` (whose signal aborts the probe) is the limit;
 *   set it to give one probe a shorter leash than the pool's default.
 * - One connection per check, `Connection: close`, through `node:http`/`node:https` with
 *   `agent: false` — not a pooled undici Agent. A health check should exercise what a new request
 *   exercises: accepting a connection (a backend whose accept queue is full or whose listener died
 *   behind a live keep-alive socket must fail). HAProxy likewise opens a fresh connection per check.
 *   And nothing is pooled, so nothing outlives a check: when the load balancer closes, the aborted
 *   signal destroys the only socket there is, and no agent needs a `close()` the `Probe` type has no
 *   place for. Bodies are never read beyond the 4 KiB an agent report may take; the socket is
 *   destroyed as soon as the verdict is known.
 * - Timers are unref'd: a probe never keeps a process alive on its own.
 */
import http from 'node:http';
import type { IncomingMessage } from 'node:http';
import https from 'node:https';
import { InvalidOptionError } from '@fulcrum/core';
import type { Backend, Probe, ProbeResult } from '@fulcrum/core';
import { describeNetworkError, runCheck } from './address';
import { AGENT_BODY_LIMIT, mergeAgentReports, parseAgentJson, parseAgentWords } from './agent';
import type { AgentReport } from './agent';
import { isPlainObject, optionalTimerMs, optionsObject } from '@fulcrum/core/validate';

/** Statuses a probe accepts: one, a list, or an inclusive range. */
export type ExpectStatus = number | readonly number[] | { readonly min: number; readonly max: number };

/** Options of `httpProbe()`. */
export interface HttpProbeOptions {
  /** Path (and query) to request. Must start with `/`. Default `'/'` (HAProxy's and nginx's). */
  path?: string;
  /** Default `'GET'`. `'HEAD'` saves the body but cannot carry a JSON agent report. */
  method?: 'GET' | 'HEAD';
  /** Statuses that pass. Default `{ min: 200, max: 399 }`. */
  expectStatus?: ExpectStatus;
  /** Give up after this many ms. Default: none of its own — the checker's `timeoutMs` aborts it. */
  timeoutMs?: number;
  /** Extra request headers. `host`, `connection` and framing headers are refused (see `host`). */
  headers?: Readonly<Record<string, string>>;
  /** Host header (and TLS server name) to send. Default: the backend address's `host[:port]`. */
  host?: string;
  /**
   * Response header carrying HAProxy agent words (`drain`, `ready`, `maint`, `down`, `75%`).
   * `false` ignores agent headers. Default `'x-fulcrum-agent'`.
   */
  agentHeader?: string | false;
  /** TLS settings for `https://` backends. Default: Node's (verify against the system CAs). */
  tls?: HttpProbeTlsOptions;
}

/** TLS settings of an HTTPS probe. */
export interface HttpProbeTlsOptions {
  /** CA certificates to trust instead of the default set (a private CA). */
  ca?: string | Buffer | readonly (string | Buffer)[];
  /** Verify the backend's certificate. Default `true`. */
  rejectUnauthorized?: boolean;
  /** SNI server name. Default: from the Host header (none for IP addresses). */
  servername?: string;
}

interface HttpProbeConfig {
  readonly path: string;
  readonly method: 'GET' | 'HEAD';
  readonly accepts: (status: number) => boolean;
  readonly expectDescription: string;
  readonly timeoutMs: number | undefined;
  readonly headers: Readonly<Record<string, string>>;
  readonly host: string | undefined;
  readonly agentHeader: string | undefined;
  readonly tls: Readonly<Pick<https.RequestOptions, 'ca' | 'rejectUnauthorized' | 'servername'>>;
}

const KNOWN_OPTIONS = ['path', 'method', 'expectStatus', 'timeoutMs', 'headers', 'host', 'agentHeader', 'tls'] as const;
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,256}$/;
const PATH = /^\/[\x21-\x7e]{0,2047}$/;
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::\d{1,5})?$/;
// The probe frames its own requests; letting a caller set these would make the request lie about
// its framing or its connection (request smuggling against the very backend being checked).
const RESERVED_HEADERS = new Set([
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'expect',
  'proxy-connection',
]);
const USER_AGENT = 'fulcrum-probe';
const JSON_TYPE = /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i;

/**
 * An HTTP(S) health check for `createLoadBalancer({ health: { probe } })`.
 *
 * ```ts
 * const lb = createLoadBalancer({ backends, health: { probe: httpProbe({ path: '/health' }) } });
 * ```
 *
 * Resolves a `ProbeResult`: `ok` when the status is expected and the agent did not say `down`,
 * with `weightPercent`/`drain`/`ready`/`maintenance` when the backend's agent header or JSON body
 * asked for them, and a `detail` like `HTTP 503 (expected 200-399)`. Connection errors and its own
 * timeout resolve `{ ok: false }`; an aborted `signal` rejects with the signal's reason. Options are
 * validated here, once (`InvalidOptionError`).
 */
export function httpProbe(options?: HttpProbeOptions): Probe {
  const config = normalizeHttpProbeOptions(options);
  return (backend, signal) => runHttpProbe(config, backend, signal);
}

function normalizeHttpProbeOptions(input: unknown): HttpProbeConfig {
  const options = optionsObject('httpProbe', input, KNOWN_OPTIONS);
  const { path = '/', method = 'GET', expectStatus, host, agentHeader = 'x-fulcrum-agent' } = options;
  if (typeof path !== 'string' || !PATH.test(path)) {
    throw new InvalidOptionError('httpProbe.path', path, 'must start with "/" and hold 1–2048 visible ASCII characters (percent-encode the rest)');
  }
  if (method !== 'GET' && method !== 'HEAD') throw new InvalidOptionError('httpProbe.method', method, 'must be "GET" or "HEAD"');
  const expect = normalizeExpectStatus(expectStatus);
  const timeoutMs = optionalTimerMs('httpProbe.timeoutMs', options.timeoutMs, undefined);
  if (host !== undefined && (typeof host !== 'string' || host.length > 261 || !HOST.test(host))) {
    throw new InvalidOptionError('httpProbe.host', host, 'must be a host name or IP with an optional port, like "api.internal:8080"');
  }
  let agent: string | undefined;
  if (agentHeader !== false) {
    if (typeof agentHeader !== 'string' || !TOKEN.test(agentHeader)) {
      throw new InvalidOptionError('httpProbe.agentHeader', agentHeader, 'must be a header name or false');
    }
    agent = agentHeader.toLowerCase();
  }
  return Object.freeze({
    path,
    method,
    ...expect,
    timeoutMs,
    headers: normalizeHeaders(options.headers),
    host: host as string | undefined,
    agentHeader: agent,
    tls: normalizeTls(options.tls),
  });
}

function normalizeExpectStatus(value: unknown): Pick<HttpProbeConfig, 'accepts' | 'expectDescription'> {
  const expected = 'must be a status code (100–599), a non-empty list of them, or { min, max } with min ≤ max';
  const isStatus = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 100 && (n as number) <= 599;
  if (value === undefined) return { accepts: (s) => s >= 200 && s <= 399, expectDescription: '200-399' };
  if (isStatus(value)) return { accepts: (s) => s === value, expectDescription: String(value) };
  if (Array.isArray(value)) {
    if (value.length === 0 || value.length > 500 || !value.every(isStatus)) throw new InvalidOptionError('httpProbe.expectStatus', value, expected);
    const set = new Set<number>(value);
    return { accepts: (s) => set.has(s), expectDescription: [...set].join(', ') };
  }
  if (isPlainObject(value)) {
    const { min, max } = value;
    const keys = Object.keys(value);
    if (isStatus(min) && isStatus(max) && min <= max && keys.length === 2) {
      return { accepts: (s) => s >= min && s <= max, expectDescription: `${min}-${max}` };
    }
  }
  throw new InvalidOptionError('httpProbe.expectStatus', value, expected);
}

function normalizeHeaders(value: unknown): Readonly<Record<string, string>> {
  if (value === undefined) return Object.freeze({});
  if (!isPlainObject(value)) throw new InvalidOptionError('httpProbe.headers', value, 'must be an object of header names to string values');
  const headers: Record<string, string> = {};
  for (const [name, headerValue] of Object.entries(value)) {
    const path = `httpProbe.headers[${JSON.stringify(name)}]`;
    if (!TOKEN.test(name)) throw new InvalidOptionError(path, name, 'must be a valid header name');
    const lower = name.toLowerCase();
    if (RESERVED_HEADERS.has(lower)) {
      throw new InvalidOptionError(path, name, lower === 'host' ? 'is set with the `host` option' : 'is managed by the probe and cannot be set');
    }
    // CR, LF and NUL would split or truncate the request; other controls are refused by Node anyway.
    if (typeof headerValue !== 'string' || headerValue.length > 8192 || /[\0-\x08\x0a-\x1f\x7f]/.test(headerValue)) {
      throw new InvalidOptionError(path, headerValue, 'must be a string of at most 8192 characters without control characters');
    }
    if (lower in headers) throw new InvalidOptionError(path, name, 'is given twice (header names are case-insensitive)');
    headers[lower] = headerValue;
  }
  return Object.freeze(headers);
}

function normalizeTls(value: unknown): HttpProbeConfig['tls'] {
  const options = optionsObject('httpProbe.tls', value, ['ca', 'rejectUnauthorized', 'servername']);
  const { ca, rejectUnauthorized, servername } = options;
  const isCa = (c: unknown): boolean => typeof c === 'string' || Buffer.isBuffer(c);
  if (ca !== undefined && !(isCa(ca) || (Array.isArray(ca) && ca.length > 0 && ca.every(isCa)))) {
    throw new InvalidOptionError('httpProbe.tls.ca', ca, 'must be a PEM string, a Buffer, or a non-empty list of them');
  }
  if (rejectUnauthorized !== undefined && typeof rejectUnauthorized !== 'boolean') {
    throw new InvalidOptionError('httpProbe.tls.rejectUnauthorized', rejectUnauthorized, 'must be true or false');
  }
  if (servername !== undefined && (typeof servername !== 'string' || !/^[A-Za-z0-9._-]{1,253}$/.test(servername))) {
    throw new InvalidOptionError('httpProbe.tls.servername', servername, 'must be a DNS name');
  }
  const tls: Pick<https.RequestOptions, 'ca' | 'rejectUnauthorized' | 'servername'> = {};
  // Copied, so a caller mutating its array later cannot change what the probe trusts.
  if (ca !== undefined) tls.ca = Array.isArray(ca) ? [...(ca as (string | Buffer)[])] : (ca as string | Buffer);
  if (rejectUnauthorized !== undefined) tls.rejectUnauthorized = rejectUnauthorized;
  if (servername !== undefined) tls.servername = servername;
  return Object.freeze(tls);
}

function runHttpProbe(config: HttpProbeConfig, backend: Backend, signal: AbortSignal): Promise<ProbeResult> {
  return runCheck(backend.address, signal, config.timeoutMs, (target, finish, settled) => {
    const headers: Record<string, string> = { 'user-agent': USER_AGENT, ...config.headers };
    headers.host = config.host ?? target.hostHeader;
    headers.connection = 'close';
    const transport = target.protocol === 'https:' ? https : http;
    // With `agent: false`, destroying the request (on settling) closes the check's only socket.
    const request = transport.request({
      protocol: target.protocol,
      hostname: target.hostname,
      port: target.port,
      method: config.method,
      path: config.path,
      headers,
      agent: false,
      ...(target.protocol === 'https:' ? config.tls : {}),
    });
    // Errors after settling (the socket torn down by `destroy()`) have nobody left to tell.
    request.on('error', (error: NodeJS.ErrnoException) => finish({ ok: false, detail: `request failed: ${describeNetworkError(error, target)}` }));
    request.on('response', (response) => {
      response.on('error', () => undefined);
      if (settled()) {
        response.destroy();
        return;
      }
      readResponse(config, response, finish);
    });
    request.end();
    return request;
  });
}

function readResponse(config: HttpProbeConfig, response: IncomingMessage, done: (result: ProbeResult) => void): void {
  const status = response.statusCode ?? 0;
  let headerReport: AgentReport = {};
  if (config.agentHeader !== undefined) {
    const raw = response.headers[config.agentHeader];
    if (raw !== undefined) headerReport = parseAgentWords(Array.isArray(raw) ? raw.join(',') : raw);
  }
  const finish = (jsonReport: AgentReport | undefined): void => done(buildResult(config, status, mergeAgentReports(headerReport, jsonReport ?? {})));

  const type = response.headers['content-type'];
  const declaredLength = Number(response.headers['content-length'] ?? 0);
  if (config.method === 'HEAD' || type === undefined || !JSON_TYPE.test(type) || !(declaredLength <= AGENT_BODY_LIMIT)) {
    finish(undefined);
    return;
  }
  const chunks: Buffer[] = [];
  let size = 0;
  response.on('data', (chunk: Buffer) => {
    size += chunk.length;
    // A chunked body may exceed what it never declared: stop reading, judge by status and header.
    if (size > AGENT_BODY_LIMIT) finish(undefined);
    else chunks.push(chunk);
  });
  response.on('end', () => finish(parseAgentJson(Buffer.concat(chunks).toString('utf8'))));
  // A body cut short after the status line: the status is still the verdict.
  response.on('aborted', () => finish(undefined));
  response.on('close', () => finish(undefined));
}

function buildResult(config: HttpProbeConfig, status: number, agent: AgentReport): ProbeResult {
  const statusOk = config.accepts(status);
  let detail = `HTTP ${status}`;
  if (!statusOk) detail += ` (expected ${config.expectDescription})`;
  if (agent.down === true) detail += ' (agent: down)';
  if (agent.description !== undefined) detail += `: ${agent.description}`;
  const result: ProbeResult = { ok: statusOk && agent.down !== true, detail };
  if (agent.weightPercent !== undefined) result.weightPercent = agent.weightPercent;
  if (agent.drain === true) result.drain = true;
  if (agent.ready === true) result.ready = true;
  if (agent.maintenance === true) result.maintenance = true;
  return result;
}
