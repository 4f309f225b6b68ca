/**
 * Active health checks: one probe loop per backend, on an injected clock. The checker only runs
 * probes and reports what they said (`onResult`); the load balancer folds results into the counter
 * (`reduceHealth`) and owns every `Backend` field.
 *
 * Source: HAProxy `src/check.c`. As there, the next check of a backend is scheduled when the current
 * one ends, at an interval chosen by the counter's phase (`srv_getinter`: `inter` at full health,
 * `fastinter` in transition, `downinter` when fully down — see `checkPhase`), so at most one probe per
 * backend is ever active; the first checks of a set of backends are spread uniformly over the
 * shortest interval (HAProxy's `start_checks`), and every later interval is spread over ±`jitter`
 * of itself (HAProxy's `spread-checks`, Envoy's interval jitter), so N backends — and N balancers
 * probing one backend — never settle into lockstep.
 *
 * A probe that throws, rejects, returns something that is not a boolean or a `ProbeResult`, or is
 * still pending after `timeoutMs` is a failure with a `detail` — never an unhandled rejection. On
 * timeout, `remove()` and `close()` the probe's `AbortSignal` is aborted; a result that arrives after
 * that is ignored. Timers go only through `clock.setTimeout`; the real clock unrefs them, so the
 * checker never keeps a process alive.
 *
 * A `ProbeResult` can carry HAProxy agent-check words: a weight percentage and `drain`/`ready`/
 * `maintenance` (see `applyAdminDirectives`).
 */
import type { Backend } from '../backend';
import type { Clock, Timer } from '../clock';
import type { Random } from '../random';
import type { NormalizedHealthOptions } from './options';
import type { CheckPhase } from './state-machine';

/** What a probe reports (agent-check style). */
export interface ProbeResult {
  /** The check passed. */
  ok: boolean;
  /** The backend asks for this percentage of its configured weight (HAProxy agent `75%`). Clamped to 0..100. */
  weightPercent?: number;
  /** The backend asks to be drained (agent `drain`). */
  drain?: boolean;
  /** The backend asks to leave drain/maintenance (agent `ready`). */
  ready?: boolean;
  /** The backend asks to be put in maintenance (agent `maint`). */
  maintenance?: boolean;
  /** Human-readable: the status line, the error, why it failed. */
  detail?: string;
}

/**
 * Checks one backend. Resolve `true`/`false` or a `ProbeResult`; throwing or rejecting counts as a
 * failure. Stop work when `signal` aborts (timeout, backend removed, checker closed).
 */
export type Probe = (backend: Backend, signal: AbortSignal) => Promise<boolean | ProbeResult>;

export interface HealthCheckerDeps {
  clock: Clock;
  random: Random;
  /**
   * A probe ended (or timed out), after `durationMs` on the clock. Called at most once per probe,
   * never after `remove()`/`close()`.
   */
  onResult(backend: Backend, result: ProbeResult, durationMs: number): void;
  /** Which interval the backend's next check waits: `checkPhase(status, config)`. */
  phase(backend: Backend): CheckPhase;
  /**
   * `onResult` or `phase` threw. Default: rethrow from a fresh `clock.setTimeout(…, 0)` so the bug
   * surfaces as an uncaught exception instead of a silently stopped check loop. Checks go on either way.
   */
  onError?(error: unknown, backend: Backend): void;
}

const DETAIL_MAX = 200;

interface Target {
  readonly backend: Backend;
  /** The pending wait before the next probe. */
  timer: Timer | undefined;
  /** The probe in flight, if any; `undefined` once it ended, timed out or was cancelled. */
  inflight: InflightProbe | undefined;
}

interface InflightProbe {
  readonly controller: AbortController;
  timeout: Timer | undefined;
}

/**
 * Runs `config.probe` for each added backend, forever, until removed or closed.
 *
 * ```ts
 * const checker = new HealthChecker(config, { clock, random, onResult, phase });
 * checker.add(backend);   // first probe within min(interval) ms, spread by `random`
 * checker.remove(backend); // aborts its probe, cancels its timer
 * checker.close();         // the same for every backend; nothing is scheduled afterwards
 * ```
 */
export class HealthChecker {
  readonly #config: NormalizedHealthOptions;
  readonly #deps: HealthCheckerDeps;
  readonly #targets = new Map<Backend, Target>();
  readonly #firstCheckSpreadMs: number;
  #closed = false;

  constructor(config: NormalizedHealthOptions, deps: HealthCheckerDeps) {
    this.#config = config;
    this.#deps = deps;
    this.#firstCheckSpreadMs = Math.min(config.intervalMs, config.fastIntervalMs, config.downIntervalMs);
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#closed;
  }

  /** How many backends are being checked. */
  get size(): number {
    return this.#targets.size;
  }

  /** True while a probe of `backend` is pending. */
  isProbing(backend: Backend): boolean {
    return this.#targets.get(backend)?.inflight !== undefined;
  }

  /**
   * Start checking `backend`: its first probe runs after a uniformly random delay within the shortest
   * configured interval. Adding a backend already checked, or adding after `close()`, does nothing.
   */
  add(backend: Backend): void {
    if (this.#closed || this.#targets.has(backend)) return;
    const target: Target = { backend, timer: undefined, inflight: undefined };
    this.#targets.set(backend, target);
    this.#schedule(target, this.#deps.random() * this.#firstCheckSpreadMs);
  }

  /** Stop checking `backend`: cancel its timer, abort its probe and ignore that probe's result. */
  remove(backend: Backend): void {
    const target = this.#targets.get(backend);
    if (target === undefined) return;
    this.#targets.delete(backend);
    this.#cancel(target);
  }

  /** Stop every check. Idempotent. Results of probes still in flight are ignored. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const targets = [...this.#targets.values()];
    this.#targets.clear();
    for (const target of targets) this.#cancel(target);
  }

  #cancel(target: Target): void {
    if (target.timer !== undefined) {
      this.#deps.clock.clearTimeout(target.timer);
      target.timer = undefined;
    }
    const probe = target.inflight;
    if (probe !== undefined) {
      target.inflight = undefined;
      if (probe.timeout !== undefined) this.#deps.clock.clearTimeout(probe.timeout);
      probe.controller.abort();
    }
  }

  #schedule(target: Target, delayMs: number): void {
    target.timer = this.#deps.clock.setTimeout(() => {
      target.timer = undefined;
      this.#run(target);
    }, delayMs);
  }

  #isCurrent(target: Target): boolean {
    return !this.#closed && this.#targets.get(target.backend) === target;
  }

  #run(target: Target): void {
    if (!this.#isCurrent(target) || target.inflight !== undefined) return;
    const { clock } = this.#deps;
    const probe: InflightProbe = { controller: new globalThis.AbortController(), timeout: undefined };
    target.inflight = probe;
    const startedAt = clock.now();

    const finish = (result: ProbeResult): void => {
      // Late results (after a timeout, remove or close) belong to a probe that no longer counts.
      if (target.inflight !== probe) return;
      target.inflight = undefined;
      if (probe.timeout !== undefined) clock.clearTimeout(probe.timeout);
      if (!this.#isCurrent(target)) return;
      this.#guard(target.backend, () => this.#deps.onResult(target.backend, result, clock.now() - startedAt), undefined);
      if (this.#isCurrent(target)) this.#schedule(target, this.#nextDelay(target.backend));
    };

    const { timeoutMs } = this.#config;
    probe.timeout = clock.setTimeout(() => {
      probe.timeout = undefined;
      if (target.inflight !== probe) return;
      probe.controller.abort(timeoutError(timeoutMs));
      finish({ ok: false, detail: `timed out after ${timeoutMs} ms` });
    }, timeoutMs);

    let pending: unknown;
    try {
      pending = this.#config.probe(target.backend, probe.controller.signal);
    } catch (error) {
      finish({ ok: false, detail: `probe threw: ${describeError(error)}` });
      return;
    }
    // Promise.resolve adopts any thenable; a thenable whose `then` throws becomes a rejection here.
    Promise.resolve(pending).then(
      (value) => finish(interpretProbeValue(value)),
      (error: unknown) => finish({ ok: false, detail: `probe failed: ${describeError(error)}` }),
    );
  }

  #nextDelay(backend: Backend): number {
    const phase = this.#guard<CheckPhase>(backend, () => this.#deps.phase(backend), 'transitioning');
    const { intervalMs, fastIntervalMs, downIntervalMs, jitter } = this.#config;
    const base = phase === 'up' ? intervalMs : phase === 'down' ? downIntervalMs : fastIntervalMs;
    return base * (1 + jitter * (2 * this.#deps.random() - 1));
  }

  /** Call into the load balancer; its exceptions must not stop the loop (`fallback` is used instead). */
  #guard<T>(backend: Backend, callback: () => T, fallback: T): T {
    try {
      return callback();
    } catch (error) {
      this.#raise(error, backend);
      return fallback;
    }
  }

  #raise(error: unknown, backend: Backend): void {
    const deps = this.#deps;
    const clock = deps.clock;
    let uncaught = error;
    if (deps.onError !== undefined) {
      try {
        deps.onError(error, backend);
        return;
      } catch (fromHandler) {
        uncaught = fromHandler;
      }
    }
    clock.setTimeout(() => {
      throw uncaught;
    }, 0);
  }
}

/**
 * Turn whatever a probe resolved with into a `ProbeResult`: `true`/`false`, or an object with a
 * boolean `ok`. Anything else is a failure. Optional fields are kept only when well-formed:
 * `weightPercent` a finite number (clamped to 0..100), flags only when `true`, `detail` a string
 * (truncated to 200 characters). Always returns a fresh object.
 */
export function interpretProbeValue(value: unknown): ProbeResult {
  if (value === true) return { ok: true };
  if (value === false) return { ok: false };
  if (typeof value !== 'object' || value === null || typeof (value as { ok?: unknown }).ok !== 'boolean') {
    return { ok: false, detail: `probe returned an invalid result: ${describeValueShort(value)}` };
  }
  const raw = value as Record<string, unknown>;
  const result: ProbeResult = { ok: raw.ok as boolean };
  const { weightPercent, detail } = raw;
  if (typeof weightPercent === 'number' && Number.isFinite(weightPercent)) {
    result.weightPercent = Math.min(100, Math.max(0, weightPercent));
  }
  if (raw.drain === true) result.drain = true;
  if (raw.ready === true) result.ready = true;
  if (raw.maintenance === true) result.maintenance = true;
  if (typeof detail === 'string') result.detail = detail.length > DETAIL_MAX ? `${detail.slice(0, DETAIL_MAX - 3)}...` : detail;
  return result;
}

function timeoutError(timeoutMs: number): Error {
  const error = new Error(`health check timed out after ${timeoutMs} ms`);
  error.name = 'TimeoutError';
  return error;
}

function describeError(error: unknown): string {
  if (error instanceof Error) return truncate(error.message || error.name);
  return describeValueShort(error);
}

function describeValueShort(value: unknown): string {
  let text: string;
  if (typeof value === 'string') text = JSON.stringify(value);
  else if (typeof value === 'function') text = 'a function';
  else if (typeof value !== 'object' || value === null) text = String(value);
  else {
    try {
      text = JSON.stringify(value) ?? 'an object';
    } catch {
      text = 'an object';
    }
  }
  return truncate(text);
}

function truncate(text: string): string {
  return text.length > 120 ? `${text.slice(0, 117)}...` : text;
}
