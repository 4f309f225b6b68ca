/**
 * The part of one request's lifecycle that the three exchanges (`ProxiedRequest` on node:http and
 * undici, the raw engine's `Exchange`, HTTP/2's `StreamExchange`) share word for word: its place in
 * the wait queue, the time it waited there, the retry-budget slots its retries hold, and the wait a
 * backend's `Retry-After` asked for before the next attempt. `ProxyEngine.acquireOrQueue` drives it.
 *
 * A base class rather than a helper object: an exchange is one object, and the raw engine's hot path
 * allocates nothing more per request for it. What differs per exchange stays abstract.
 */
import type { Backend, Lease, LoadBalancer } from '@fulcrum/core';
import type { AttemptFailure, RetryState } from '../retry/policy';
import type { Termination } from './options';
import type { ProxyEngine } from './proxy';

/** A request as `ProxyEngine.acquireOrQueue` drives it. */
export abstract class AttemptSource {
  /** Takes the request out of the wait queue while it waits there. */
  #unqueue: (() => void) | undefined = undefined;
  /** Time spent in the wait queue, over all attempts, for the stats and the access log. */
  protected queueMs = 0;
  /** Retry-budget slots this request holds: a retry counts against the budget until the request ends. */
  #retrySlots = 0;
  /** A wait a backend asked for with Retry-After before the next attempt, and its timer. */
  protected retryDelayMs = 0;
  #retryTimer: NodeJS.Timeout | undefined = undefined;

  /** The request wants no backend any more (it ended, or its client left). */
  abstract get settled(): boolean;
  /** A lease for the next attempt (its key, sticky id and the backends already tried), or none free. */
  abstract acquireLease(): Lease | undefined;
  abstract startAttempt(lease: Lease): void;
  /** Answer the request with the proxy's own error. */
  abstract refuse(status: number, message: string, termination: Termination): void;

  /** It waits in the queue: `unqueue` takes it out. */
  queued(unqueue: () => void): void {
    this.#unqueue = unqueue;
  }

  /** It left the queue (started or expired) after `waitedMs`. */
  queueEnded(waitedMs: number): void {
    this.#unqueue = undefined;
    this.queueMs += waitedMs;
  }

  /** Give up the place in the wait queue, if it holds one (the request ended or its client left). */
  protected leaveQueue(): void {
    const unqueue = this.#unqueue;
    if (unqueue === undefined) return;
    this.#unqueue = undefined;
    unqueue();
  }

  /** Stop the timer of a delayed retry, if one runs (the request ended). */
  protected cancelRetry(): void {
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }

  /**
   * Whether a failed attempt on `backend` is retried (`ProxyEngine.retryVerdict`: the retry rules,
   * then the budget); a retry the budget charged holds its slot until the request ends. `method`:
   * the one the rules judge idempotence by; `replayable`: the request body can be sent again.
   */
  protected retryAllowed(
    engine: ProxyEngine,
    failure: AttemptFailure,
    method: string,
    attempts: number,
    responseStarted: boolean,
    clientGone: boolean,
    replayable: boolean,
    lb: LoadBalancer,
    backend: Backend | undefined,
  ): boolean {
    const state: RetryState = { method, attempts, maxAttempts: engine.config.attempts, responseStarted, clientGone, replayable };
    const verdict = engine.retryVerdict(failure, state, lb, backend);
    if (verdict === 'refused') return false;
    if (verdict === 'charged') this.#retrySlots++;
    return true;
  }

  /**
   * Count the request's end (`ProxyEngine.requestEnded`, after `requestStarted`) with its time in the
   * wait queue; the retry-budget slots its retries held go back to the budget.
   */
  protected countEnd(
    engine: ProxyEngine,
    lb: LoadBalancer,
    backend: Backend | undefined,
    termination: Termination,
    status: number,
    bytesIn: number,
    bytesOut: number,
    totalMs: number,
  ): void {
    engine.requestEnded(lb, backend, termination, status, bytesIn, bytesOut, totalMs, this.queueMs, this.#retrySlots);
    this.#retrySlots = 0;
  }

  /**
   * The next attempt of a retried request (its failed attempt's lease already released): now, or
   * after the Retry-After wait `retryDelayMs` (a timer, cancelled when the request ends).
   */
  protected attemptAgain(engine: ProxyEngine, lb: LoadBalancer): void {
    if (this.settled) return;
    const delay = this.retryDelayMs;
    this.retryDelayMs = 0;
    if (delay <= 0) return engine.acquireOrQueue(lb, this);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      engine.acquireOrQueue(lb, this);
    }, delay);
  }
}
