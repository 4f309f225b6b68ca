/**
 * One request through the balanced dispatcher: its attempts, its retries, and the one response the
 * caller sees.
 *
 * It is the dispatcher-side twin of the proxy's `ProxiedRequest`, on the same shared pieces: the
 * load balancer picks (`acquire` with the tried instances excluded, HAProxy's "server to avoid"),
 * `mayRetry` decides whether a failed attempt may go again, `classifyError` turns undici's errors
 * into failure kinds, the `RetryBudget` caps retries in flight, the proxy's `WaitQueue` holds
 * requests while every instance is at its `maxConnections`, and every attempt's outcome goes back
 * through `Lease.release` so peak-EWMA latencies, outlier detection and passive health see the
 * traffic.
 *
 * Toward the instance's undici `Pool` it is a callback-style handler (what undici's connections run
 * natively). Nothing reaches the caller's handler until an attempt is final: the caller sees one
 * `onConnect` (with an abort that cancels the whole request, retries included), then either the
 * head and body of the response that was kept, or one error. A retryable 502/503/504 (only when
 * `retryOn` lists it) is dropped unseen, as the proxy drops it.
 */
import type { Duplex } from 'node:stream';
import { NoBackendAvailableError, UpstreamError, type Backend, type FailureKind, type Lease } from '@fulcrum/core';
import { errors, type Dispatcher } from 'undici';
import { classifyError } from '../proxy/errors';
import { mayRetry, type AttemptFailure } from '../retry/policy';
import { AttemptBody } from './body';
import type { DispatcherEngine } from './engine';
import type { CallbackHandler } from './handlers';

/** undici refuses the request itself (bad header, bad method): no instance is at fault, nothing to retry. */
const CALLER_ERRORS = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED', 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH']);

interface Outcome {
  ok: boolean;
  status?: number;
  error?: FailureKind;
  durationMs?: number;
}

const NEUTRAL: Outcome = Object.freeze({ ok: true, error: 'aborted' as const });

export class BalancedRequest implements CallbackHandler {
  readonly #engine: DispatcherEngine;
  readonly #opts: Dispatcher.DispatchOptions;
  readonly #handler: CallbackHandler;
  readonly #key: string | undefined;
  readonly #body: AttemptBody;
  readonly #method: string;
  #tried: Backend[] | undefined;
  /** The instance of the current (or last) attempt: a retry avoids it. */
  #backend: Backend | undefined;
  #attempts = 0;
  #lease: Lease | undefined;
  #abortAttempt: ((reason?: Error) => void) | undefined;
  #attemptStart = 0;
  #headLatency: number | undefined;
  #status = 0;
  #responseStarted = false;
  #retrying = false;
  #done = false;
  #aborted: Error | undefined;
  #callerConnected = false;
  #unqueue: (() => void) | undefined;
  #retrySlots = 0;

  constructor(engine: DispatcherEngine, opts: Dispatcher.DispatchOptions, handler: CallbackHandler, key: string | undefined) {
    this.#engine = engine;
    this.#opts = opts;
    this.#handler = handler;
    this.#key = key;
    this.#body = new AttemptBody(opts.body);
    this.#method = opts.method;
  }

  /** Start the first attempt; returns what undici's `dispatch` returns (false: the pool is busy). */
  start(): boolean {
    const engine = this.#engine;
    engine.active.add(this);
    engine.budget.begin();
    return this.#next();
  }

  /** Cancel the whole request (the caller's abort, or `destroy()`). */
  abort(reason: Error): void {
    if (this.#done || this.#aborted !== undefined) return;
    this.#aborted = reason;
    if (this.#abortAttempt !== undefined && this.#lease !== undefined) {
      // The attempt's onError finishes the request with this reason.
      this.#abortAttempt(reason);
      return;
    }
    this.#unqueue?.();
    this.#unqueue = undefined;
    this.#releaseLease(NEUTRAL);
    this.#finish(reason);
  }

  readonly #callerAbort = (reason?: Error): void => {
    this.abort(reason ?? new errors.RequestAbortedError());
  };

  #acquire(): Lease | undefined {
    const tried = this.#tried;
    const key = this.#key;
    return this.#engine.lb.acquire({
      ...(key === undefined ? {} : { key, affinityKey: key }),
      ...(tried === undefined ? {} : { exclude: tried }),
      attempt: this.#attempts,
      skipFull: true,
    });
  }

  #next(): boolean {
    if (this.#done || this.#aborted !== undefined) return true;
    const engine = this.#engine;
    if (engine.destroyed) {
      this.#finish(new errors.ClientDestroyedError());
      return false;
    }
    const lease = this.#acquire();
    if (lease !== undefined) return this.#send(lease);
    if (engine.lb.tier === 'none' || engine.lb.closed) {
      this.#finish(new NoBackendAvailableError());
      return false;
    }
    // Every candidate is at its maxConnections: wait for a slot (HAProxy's maxconn + queue).
    const unqueue = engine.queue.add({
      tryStart: () => {
        if (this.#done || this.#aborted !== undefined) return true;
        const queued = this.#acquire();
        if (queued === undefined) return false;
        this.#unqueue = undefined;
        this.#send(queued);
        return true;
      },
      expire: (reason) => {
        this.#unqueue = undefined;
        this.#finish(
          new NoBackendAvailableError(
            reason === 'timeout' ? 'no backend available: every instance at maxConnections for queueTimeoutMs' : 'no backend available: dispatcher destroyed',
          ),
        );
      },
    });
    if (unqueue === undefined) {
      this.#finish(new NoBackendAvailableError('no backend available: every instance at maxConnections and the queue is full'));
      return false;
    }
    this.#unqueue = unqueue;
    return true;
  }

  #send(lease: Lease): boolean {
    const engine = this.#engine;
    this.#lease = lease;
    this.#backend = lease.backend;
    this.#attempts++;
    this.#status = 0;
    this.#headLatency = undefined;
    this.#abortAttempt = undefined;
    const opts = this.#opts;
    const body = this.#attempts === 1 && this.#body.reusable ? opts.body : this.#body.forAttempt();
    const attemptOpts = body === opts.body ? opts : { ...opts, body };
    this.#attemptStart = performance.now();
    return engine.pool(lease.backend).dispatch(attemptOpts, this);
  }

  // ---- undici callback handler (toward the instance's pool) ----------------------------------

  onConnect(abort: (reason?: Error) => void, context?: unknown): void {
    this.#abortAttempt = abort;
    if (this.#aborted !== undefined) {
      abort(this.#aborted);
      return;
    }
    if (!this.#callerConnected) {
      this.#callerConnected = true;
      this.#handler.onConnect?.(this.#callerAbort, context);
      if (this.#aborted !== undefined) abort(this.#aborted);
    }
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (this.#aborted !== undefined || this.#done) return false;
    // 1xx informational heads pass through; the final head decides.
    if (statusCode < 200) return this.#handler.onHeaders?.(statusCode, rawHeaders, resume, statusText) ?? true;
    this.#status = statusCode;
    this.#headLatency = performance.now() - this.#attemptStart;
    if (statusCode >= 502 && statusCode <= 504 && this.#shouldRetry({ kind: 'status', status: statusCode, notSent: false })) {
      this.#retrying = true;
      this.#abortAttempt?.(RETRYING);
      return false;
    }
    this.#responseStarted = true;
    this.#handler.onResponseStarted?.();
    return this.#handler.onHeaders?.(statusCode, rawHeaders, resume, statusText) ?? true;
  }

  onData(chunk: Buffer): boolean {
    if (this.#retrying || this.#done || this.#aborted !== undefined) return true;
    return this.#handler.onData?.(chunk) ?? true;
  }

  onComplete(trailers: string[] | Buffer[] | null): void {
    if (this.#done || this.#retrying) return;
    const status = this.#status;
    this.#releaseLease({ ok: status < 500, status, durationMs: this.#headLatency ?? performance.now() - this.#attemptStart });
    this.#finish(undefined);
    this.#handler.onComplete?.(trailers);
  }

  onUpgrade(statusCode: number, rawHeaders: Buffer[] | string[] | null, socket: Duplex): void {
    if (this.#done) return;
    this.#releaseLease({ ok: true, status: statusCode, durationMs: performance.now() - this.#attemptStart });
    this.#finish(undefined);
    this.#handler.onUpgrade?.(statusCode, rawHeaders, socket);
  }

  onBodySent(chunkSize: number, totalBytesSent: number): void {
    this.#handler.onBodySent?.(chunkSize, totalBytesSent);
  }

  onError(error: Error): void {
    if (this.#done) return;
    const lease = this.#lease;
    const backendId = lease?.backend.id;
    if (this.#aborted !== undefined) {
      this.#releaseLease(NEUTRAL);
      return this.#finish(this.#aborted);
    }
    if (this.#retrying) {
      // A retryable status: the response was never shown to the caller.
      this.#retrying = false;
      this.#releaseLease({ ok: false, status: this.#status, error: 'status', durationMs: this.#headLatency ?? 0 });
      return this.#retry();
    }
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' && CALLER_ERRORS.has(code)) {
      this.#releaseLease(NEUTRAL);
      return this.#finish(error);
    }
    this.#engine.report(error, backendId);
    const failure = classifyError(error);
    this.#releaseLease({ ok: false, error: failure.kind, durationMs: performance.now() - this.#attemptStart });
    if (!this.#responseStarted && this.#shouldRetry(failure)) return this.#retry();
    this.#finish(
      new UpstreamError(
        failure.kind,
        `upstream failed (${failure.kind})${backendId === undefined ? '' : ` on backend "${backendId}"`} after ${this.#attempts} attempt${this.#attempts === 1 ? '' : 's'}`,
        { cause: error },
      ),
    );
  }

  // ---- retries and endings ---------------------------------------------------------------------

  #shouldRetry(failure: AttemptFailure): boolean {
    const engine = this.#engine;
    const replayable = failure.notSent ? this.#body.replayableAfterNotSent() : this.#body.reusable;
    const allowed = mayRetry(
      failure,
      {
        method: this.#method,
        attempts: this.#attempts,
        maxAttempts: engine.config.shared.attempts,
        responseStarted: this.#responseStarted,
        clientGone: this.#aborted !== undefined || engine.destroyed,
        replayable,
      },
      engine.config.shared,
    );
    if (!allowed) return false;
    const verdict = engine.budget.charge(failure.kind);
    if (verdict === 'refused') return false;
    if (verdict === 'charged') this.#retrySlots++;
    return true;
  }

  #retry(): void {
    // The lease is already released (its outcome reported); the instance it was on is what to avoid.
    if (this.#backend !== undefined) (this.#tried ??= []).push(this.#backend);
    this.#abortAttempt = undefined;
    // Not from inside the failed connection's callbacks: the next attempt starts on a clean stack.
    queueMicrotask(() => {
      this.#next();
    });
  }

  #releaseLease(outcome: Outcome): void {
    const lease = this.#lease;
    if (lease === undefined) return;
    this.#lease = undefined;
    lease.release(outcome);
    this.#engine.released();
  }

  /** End the request: give back budget slots, leave the active set, and report an error if any. */
  #finish(error: Error | undefined): void {
    if (this.#done) return;
    this.#done = true;
    this.#unqueue?.();
    this.#unqueue = undefined;
    const budget = this.#engine.budget;
    for (; this.#retrySlots > 0; this.#retrySlots--) budget.release();
    budget.end();
    this.#engine.finished(this);
    if (error !== undefined) this.#handler.onError?.(error);
  }
}

/** Internal abort reason: a retryable status; the attempt is dropped and the request sent again. */
const RETRYING = Object.freeze(new Error('fulcrum: retrying on another instance'));
