/**
 * `healthEndpoint()`: the backend's side of health checking and of graceful rolling restarts.
 *
 * It answers the probes of `httpProbe()` (and of any HTTP checker: Kubernetes readiness, nginx,
 * HAProxy `httpchk`) at a path, telling the balancers — in HAProxy's agent-check words, in the
 * `x-fulcrum-agent` header and a small JSON body — whether to send traffic and with what share of
 * the instance's weight. And it runs the shutdown sequence every rolling restart needs (the one
 * Kubernetes documents for `preStop` + `terminationGracePeriodSeconds`, and HAProxy's
 * `drain` → wait for sessions → stop):
 *
 *   1. `beginShutdown()` (or SIGTERM with `signals`) flips the endpoint to draining: probes get
 *      503 with `drain`, so every balancer stops sending new requests at its next check;
 *   2. the instance keeps serving for `graceMs` — requests balancers sent before they noticed must
 *      not be refused — and answers with `Connection: close` so keep-alive pools let go of it;
 *   3. it waits for the requests in flight (counted by the middleware) to finish, up to `timeoutMs`;
 *   4. it closes `server` if given (the event loop then empties and the process exits by itself),
 *      runs `onShutdown`, and exits the process only if `exitProcess` says so.
 *
 * Defaults and why:
 * - `path: '/health'`, and `agentHeader: 'x-fulcrum-agent'`: what `httpProbe({ path: '/health' })`
 *   reads by default.
 * - Serving answers say `ready` (`announceReady: true`): an instance that restarts after a drain must
 *   leave the draining state its predecessor asked for, and `ready` is the only word that does it
 *   (a plain `ok` deliberately cannot — see `probes/agent.ts`). The cost: an operator's
 *   `lb.drain(id)` lasts one probe interval; turn it off when drains are managed from the LB side.
 * - Draining answers 503 (not 200 + `drain`): every other checker understands 503 as "not ready",
 *   and to Fulcrum's probe the `drain` word applies at the first check, the 503 then takes the
 *   instance down after `fall` checks, which moves sticky clients off an instance about to exit.
 * - `graceMs: 5000`: longer than two default probe intervals (2 s, HAProxy's `inter`) plus jitter,
 *   so every balancer has checked at least once before the instance stops; `timeoutMs: 30000`:
 *   Kubernetes' default grace period, after which it would SIGKILL anyway.
 * - `check` (an app readiness check) gets `checkTimeoutMs: 2000`: a probe answer must not hang on a
 *   stuck database; a check that fails, throws or times out answers 503 with `down`.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { InvalidOptionError } from '@fulcrum/core';
import { checkKnownKeys, finiteNumber, isPlainObject, optionalInteger, optionalTimerMs } from '@fulcrum/core/validate';

export type HealthState = 'serving' | 'draining' | 'stopped';

export interface HealthEndpointOptions {
  /** The probe path (matched without the query). Default `'/health'`. */
  path?: string;
  /** Header carrying HAProxy agent words; `false` sends none. Default `'x-fulcrum-agent'`. */
  agentHeader?: string | false;
  /** Share of its configured weight this instance asks for, 0–100. Default 100 (not announced). */
  weightPercent?: number;
  /** Say `ready` while serving, so a restarted instance leaves drain. Default true. */
  announceReady?: boolean;
  /** App readiness: false, a throw or a rejection answers 503 `down`. Default none (always ready). */
  check?: () => boolean | Promise<boolean>;
  /** Longest wait for `check`, ms. Default 2000. */
  checkTimeoutMs?: number;
  /** Keep serving this long after shutdown begins, so every balancer notices, ms. Default 5000. */
  graceMs?: number;
  /** Longest wait for requests in flight after the grace period, ms. Default 30000. */
  timeoutMs?: number;
  /** Status of probe answers while draining. Default 503. */
  drainingStatus?: number;
  /** Signals that begin the shutdown (e.g. `['SIGTERM', 'SIGINT']`). Default none. */
  signals?: readonly NodeJS.Signals[];
  /** Closed at the end of the shutdown (no new connections; idle keep-alive ones dropped). */
  server?: Server;
  /** Runs after the requests in flight ended (close pools, flush logs). Errors are reported, not thrown. */
  onShutdown?: () => void | Promise<void>;
  /** Call `process.exit(0)` when the shutdown is complete. Default false: the process ends by itself. */
  exitProcess?: boolean;
  /** Errors of `check` and `onShutdown`, for logs. */
  onError?: (error: unknown) => void;
}

/** How a shutdown ended. */
export interface ShutdownResult {
  /** Requests still in flight when `timeoutMs` ran out (0 on a clean drain). */
  abandoned: number;
}

export interface HealthEndpoint {
  /**
   * Express middleware and a node:http handler in one: answers probes at `path`; other requests
   * are counted while in flight and passed to `next` — or, without `next` (a dedicated health
   * server), answered 404.
   */
  (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): void;
  /** Wrap a node:http handler: probes answered here, every other request counted and passed on. */
  wrap(handler: (req: IncomingMessage, res: ServerResponse) => void): (req: IncomingMessage, res: ServerResponse) => void;
  /** Flip to draining and run the shutdown; the same promise for every call. */
  beginShutdown(): Promise<ShutdownResult>;
  /** Change the announced weight share (0–100), e.g. for a canary ramp. */
  setWeightPercent(percent: number): void;
  readonly state: HealthState;
  /** Requests in flight (probes excluded). */
  readonly inflight: number;
  /** Remove signal handlers (for tests and hot reloads). */
  close(): void;
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Create the health endpoint of a backend. See `HealthEndpointOptions` for every default. */
export function healthEndpoint(options: HealthEndpointOptions = {}): HealthEndpoint {
  const config = normalize(options);
  let state: HealthState = 'serving';
  let weightPercent = config.weightPercent;
  let inflight = 0;
  let shutdown: Promise<ShutdownResult> | undefined;
  let idle: (() => void) | undefined;

  const report = (error: unknown): void => {
    try {
      config.onError?.(error);
    } catch {
      // A logging callback must not break the endpoint.
    }
  };

  const track = (res: ServerResponse): void => {
    inflight++;
    if (state !== 'serving') res.setHeader('connection', 'close');
    let counted = true;
    const done = (): void => {
      if (!counted) return;
      counted = false;
      inflight--;
      if (inflight === 0) idle?.();
    };
    res.once('finish', done);
    res.once('close', done);
  };

  const answer = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-length': 0 });
      res.end();
      return;
    }
    if (state !== 'serving') return send(req, res, config.drainingStatus, 'draining', ['drain'], weightPercent);
    if (config.check === undefined) return send(req, res, 200, 'ok', readyWords(), weightPercent);
    runCheck().then((ok) => {
      if (state !== 'serving') send(req, res, config.drainingStatus, 'draining', ['drain'], weightPercent);
      else if (ok) send(req, res, 200, 'ok', readyWords(), weightPercent);
      else send(req, res, 503, 'down', ['down'], weightPercent);
    }, report);
  };

  const readyWords = (): string[] => (config.announceReady ? ['up', 'ready'] : ['up']);

  const runCheck = (): Promise<boolean> =>
    new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), config.checkTimeoutMs);
      timer.unref();
      const settle = (ok: boolean): void => {
        clearTimeout(timer);
        resolve(ok);
      };
      try {
        Promise.resolve(config.check!()).then(
          (ok) => settle(ok === true),
          (error: unknown) => {
            report(error);
            settle(false);
          },
        );
      } catch (error) {
        report(error);
        settle(false);
      }
    });

  const send = (req: IncomingMessage, res: ServerResponse, status: number, word: string, words: string[], percent: number): void => {
    if (res.headersSent || res.destroyed) return;
    const payload: Record<string, unknown> = { status: word };
    const agent = [...words];
    if (percent !== 100) {
      payload.weightPercent = percent;
      agent.push(`${percent}%`);
    }
    const body = JSON.stringify(payload);
    const headers: Record<string, string | number> = {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
    };
    if (config.agentHeader !== undefined) headers[config.agentHeader] = agent.join(' ');
    if (state !== 'serving') headers.connection = 'close';
    res.writeHead(status, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  const isProbe = (req: IncomingMessage): boolean => {
    const url = req.url ?? '';
    const query = url.indexOf('?');
    return (query === -1 ? url : url.slice(0, query)) === config.path;
  };

  const waitForIdle = (timeoutMs: number): Promise<number> =>
    new Promise<number>((resolve) => {
      if (inflight === 0) return resolve(0);
      const timer = setTimeout(() => {
        idle = undefined;
        resolve(inflight);
      }, timeoutMs);
      idle = () => {
        clearTimeout(timer);
        idle = undefined;
        resolve(0);
      };
    });

  const run = async (): Promise<ShutdownResult> => {
    state = 'draining';
    await new Promise<void>((resolve) => setTimeout(resolve, config.graceMs));
    const abandoned = await waitForIdle(config.timeoutMs);
    state = 'stopped';
    const server = config.server;
    if (server !== undefined) {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Idle keep-alive sockets would hold the server open; sockets with a request finish first.
        server.closeIdleConnections();
      });
    }
    if (config.onShutdown !== undefined) {
      try {
        await config.onShutdown();
      } catch (error) {
        report(error);
      }
    }
    removeSignals();
    if (config.exitProcess) process.exit(0);
    return { abandoned };
  };

  const beginShutdown = (): Promise<ShutdownResult> => (shutdown ??= run());
  const onSignal = (): void => {
    void beginShutdown();
  };
  for (const signal of config.signals) process.on(signal, onSignal);
  const removeSignals = (): void => {
    for (const signal of config.signals) process.off(signal, onSignal);
  };

  const endpoint = ((req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void): void => {
    if (isProbe(req)) return answer(req, res);
    if (next === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain', 'content-length': 10 });
      res.end('Not Found\n');
      return;
    }
    track(res);
    next();
  }) as HealthEndpoint;

  Object.defineProperties(endpoint, {
    wrap: {
      value: (handler: (req: IncomingMessage, res: ServerResponse) => void) => (req: IncomingMessage, res: ServerResponse) => {
        if (isProbe(req)) return answer(req, res);
        track(res);
        handler(req, res);
      },
    },
    beginShutdown: { value: beginShutdown },
    setWeightPercent: {
      value: (percent: number) => {
        weightPercent = percentage('weightPercent', percent);
      },
    },
    state: { get: () => state, enumerable: true },
    inflight: { get: () => inflight, enumerable: true },
    close: { value: removeSignals },
  });
  return endpoint;
}

interface Config {
  path: string;
  agentHeader: string | undefined;
  weightPercent: number;
  announceReady: boolean;
  check: (() => boolean | Promise<boolean>) | undefined;
  checkTimeoutMs: number;
  graceMs: number;
  timeoutMs: number;
  drainingStatus: number;
  signals: readonly NodeJS.Signals[];
  server: Server | undefined;
  onShutdown: (() => void | Promise<void>) | undefined;
  exitProcess: boolean;
  onError: ((error: unknown) => void) | undefined;
}

const KNOWN = [
  'path',
  'agentHeader',
  'weightPercent',
  'announceReady',
  'check',
  'checkTimeoutMs',
  'graceMs',
  'timeoutMs',
  'drainingStatus',
  'signals',
  'server',
  'onShutdown',
  'exitProcess',
  'onError',
];

function normalize(options: HealthEndpointOptions): Config {
  const raw: unknown = options;
  if (!isPlainObject(raw)) throw new InvalidOptionError('options', raw, 'must be an object');
  checkKnownKeys('', raw, KNOWN);
  const path = options.path ?? '/health';
  if (typeof path !== 'string' || !/^\/[\x21-\x7e]{0,255}$/.test(path) || path.includes('?')) {
    throw new InvalidOptionError('path', path, "must be a path starting with '/', without a query");
  }
  let agentHeader: string | undefined = 'x-fulcrum-agent';
  if (options.agentHeader === false) agentHeader = undefined;
  else if (options.agentHeader !== undefined) {
    if (typeof options.agentHeader !== 'string' || !TOKEN.test(options.agentHeader))
      throw new InvalidOptionError('agentHeader', options.agentHeader, 'must be a header name or false');
    agentHeader = options.agentHeader.toLowerCase();
  }
  for (const key of ['check', 'onShutdown', 'onError'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'function') throw new InvalidOptionError(key, options[key], 'must be a function');
  }
  for (const key of ['announceReady', 'exitProcess'] as const) {
    if (options[key] !== undefined && typeof options[key] !== 'boolean') throw new InvalidOptionError(key, options[key], 'must be true or false');
  }
  const signals = options.signals ?? [];
  if (!Array.isArray(signals) || signals.some((s) => typeof s !== 'string' || !/^SIG[A-Z0-9]+$/.test(s))) {
    throw new InvalidOptionError('signals', signals, "must be an array of signal names like 'SIGTERM'");
  }
  const server = options.server;
  if (server !== undefined && (typeof server !== 'object' || server === null || typeof server.close !== 'function')) {
    throw new InvalidOptionError('server', server, 'must be a node:http Server');
  }
  const drainingStatus = optionalInteger('drainingStatus', options.drainingStatus, 503, 200, 599);
  return {
    path,
    agentHeader,
    weightPercent: options.weightPercent === undefined ? 100 : percentage('weightPercent', options.weightPercent),
    announceReady: options.announceReady ?? true,
    check: options.check,
    checkTimeoutMs: ms('checkTimeoutMs', options.checkTimeoutMs, 2000, 1),
    graceMs: ms('graceMs', options.graceMs, 5000, 0),
    timeoutMs: ms('timeoutMs', options.timeoutMs, 30_000, 0),
    drainingStatus,
    signals,
    server,
    onShutdown: options.onShutdown,
    exitProcess: options.exitProcess ?? false,
    onError: options.onError,
  };
}

function ms(path: string, value: unknown, fallback: number, min: number): number {
  return optionalTimerMs(path, value, fallback, min);
}

function percentage(path: string, value: unknown): number {
  return finiteNumber(path, value, { min: 0, max: 100 });
}
