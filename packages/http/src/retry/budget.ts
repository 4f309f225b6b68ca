/**
 * A retry budget (Envoy's `retry_budget`, Finagle's `RetryBudget`): retries in flight may not exceed
 * `percent` of the requests in flight, with a floor of `minConcurrency` so a quiet proxy can still
 * retry. When a whole pool is overloaded, every request would otherwise retry — multiplying the load
 * on the pool exactly when it can least take it (a retry storm). Defaults: 20 % and 3, Envoy's.
 * The proxy and the dispatcher charge it for retries after timeouts and 5xx answers (overload); a
 * refused or reset connection (a backend that is gone) is bounded by `attempts` alone.
 */
import type { FailureKind } from '@fulcrum/core';

export class RetryBudget {
  readonly percent: number;
  readonly minConcurrency: number;
  #active = 0;
  #retrying = 0;

  constructor(percent = 20, minConcurrency = 3) {
    this.percent = percent;
    this.minConcurrency = minConcurrency;
  }

  /** A request started. */
  begin(): void {
    this.#active++;
  }

  /** A request ended (whether or not it retried). */
  /** A request ends; `chargedRetries` is how many `'charged'` verdicts it got, given back here. */
  end(chargedRetries = 0): void {
    this.#active--;
    for (let i = 0; i < chargedRetries; i++) this.release();
  }

  /**
   * Decide a retry after a failure of `kind`: `'free'` for a refused or reset connection (a backend
   * that is gone; `attempts` bounds those), `'charged'` when a slot was taken (give it back with
   * `release` when the request ends), `'refused'` when the budget is spent.
   */
  charge(kind: FailureKind): 'free' | 'charged' | 'refused' {
    if (kind === 'connect' || kind === 'reset') return 'free';
    return this.tryAcquire() ? 'charged' : 'refused';
  }

  /** Take a retry slot if the budget allows; give it back with `release`. */
  tryAcquire(): boolean {
    const allowed = Math.max(this.minConcurrency, Math.floor((this.#active * this.percent) / 100));
    if (this.#retrying >= allowed) return false;
    this.#retrying++;
    return true;
  }

  release(): void {
    this.#retrying--;
  }

  get active(): number {
    return this.#active;
  }

  get retrying(): number {
    return this.#retrying;
  }
}
