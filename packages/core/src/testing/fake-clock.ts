/**
 * A manual clock for tests. Core never reads real time (see `../clock`), so a `FakeClock` lets a test
 * replay any timing behaviour — health-check intervals, slow start, ejection expiry, stick-table TTLs —
 * exactly and instantly: time moves only when the test calls `advance()`.
 *
 * Timers fire in due-time order (ties in the order they were scheduled, like real event loops), and
 * `now()` reads each timer's due time while it runs, so code that reschedules itself from inside a
 * callback sees the same clock it would in production. Between two timers `advance()` yields to the
 * event loop so that promise chains started by a callback (a probe resolving, a store write) settle
 * before the next timer fires; see `settle` below for how.
 */
import type { Clock, Timer } from '../clock';

interface ScheduledTimer {
  readonly id: number;
  readonly dueAt: number;
  readonly fn: () => void;
}

type Scheduler = (fn: () => void) => unknown;

/**
 * The platform's own macrotask scheduler, captured when this module loads so that a test runner's fake
 * timers (`vi.useFakeTimers()`, `jest.useFakeTimers()`) installed later cannot stall `advance()`.
 * `setImmediate` (Node, Bun, Deno) runs after the microtask queue is fully drained, however deep the
 * promise chains in it; `setTimeout(fn, 0)` does the same in browsers and workers.
 */
const macrotask: Scheduler | undefined = (() => {
  const host = globalThis as { setImmediate?: Scheduler; setTimeout?: (fn: () => void, ms: number) => unknown };
  if (typeof host.setImmediate === 'function') return host.setImmediate.bind(globalThis);
  if (typeof host.setTimeout === 'function') {
    const setTimeoutFn = host.setTimeout.bind(globalThis);
    return (fn: () => void) => setTimeoutFn(fn, 0);
  }
  return undefined;
})();

/** Microtask turns to yield when the platform has no macrotask scheduler at all. */
const MICROTASK_TURNS = 100;

/**
 * Let pending promise callbacks run: one macrotask turn (which first drains every queued microtask,
 * including those queued while draining), or, on a platform without any timer function,
 * `MICROTASK_TURNS` microtask turns — enough for promise chains that deep.
 */
async function settle(): Promise<void> {
  if (macrotask) {
    await new Promise<void>((resolve) => {
      macrotask(resolve);
    });
    return;
  }
  for (let i = 0; i < MICROTASK_TURNS; i++) await Promise.resolve();
}

/**
 * A `Clock` whose time moves only when told to.
 *
 * ```ts
 * const clock = new FakeClock();
 * const lb = createLoadBalancer({ backends, clock });
 * await clock.advance(5_000); // runs every timer due in the next 5 s, in order
 * ```
 */
export class FakeClock implements Clock {
  #now: number;
  #nextId = 1;
  /** Kept sorted by (dueAt, id): ids grow with scheduling order, so ties fire first-scheduled first. */
  #timers: ScheduledTimer[] = [];

  /** @param start The initial value of `now()`, in ms. Default 0. */
  constructor(start = 0) {
    if (typeof start !== 'number' || !Number.isFinite(start)) {
      throw new RangeError(`FakeClock: start must be a finite number of ms, got ${String(start)}`);
    }
    this.#now = start;
  }

  /** The current fake time in ms. */
  now(): number {
    return this.#now;
  }

  /**
   * Schedule `fn` to run `ms` after `now()`. A delay that is negative, `NaN` or not a number counts as
   * 0, as it does for the platform's `setTimeout`. Returns an opaque handle for `clearTimeout`.
   */
  setTimeout(fn: () => void, ms: number): Timer {
    const delay = typeof ms === 'number' && ms > 0 ? ms : 0;
    const timer: ScheduledTimer = { id: this.#nextId++, dueAt: this.#now + delay, fn };
    // Insert after every timer due at the same time or earlier: ties keep scheduling order.
    let index = this.#timers.length;
    while (index > 0 && (this.#timers[index - 1] as ScheduledTimer).dueAt > timer.dueAt) index--;
    this.#timers.splice(index, 0, timer);
    return timer.id;
  }

  /** Cancel a timer. Unknown, fired or already cleared handles are ignored, like the platform's. */
  clearTimeout(timer: Timer): void {
    const index = this.#timers.findIndex((t) => t.id === timer);
    if (index !== -1) this.#timers.splice(index, 1);
  }

  /** How many timers are scheduled and not yet fired or cleared. */
  get pending(): number {
    return this.#timers.length;
  }

  /** When the next timer is due, or `undefined` when none is scheduled. */
  get nextDueAt(): number | undefined {
    return this.#timers[0]?.dueAt;
  }

  /**
   * Move time forward by `ms`, running every timer due up to `now() + ms` — including timers that
   * those timers schedule inside the window — in due-time order (ties in scheduling order). Each
   * timer runs with `now()` set to its due time, and pending promises settle before the next timer
   * fires and before `advance` resolves. Ends with `now()` at the old `now() + ms`.
   *
   * If a timer throws, `advance` rejects with that error and leaves `now()` at that timer's due time;
   * the timers after it stay scheduled.
   */
  async advance(ms: number): Promise<void> {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
      throw new RangeError(`FakeClock.advance: ms must be a finite number ≥ 0, got ${String(ms)}`);
    }
    const until = this.#now + ms;
    await settle();
    for (;;) {
      const next = this.#timers[0];
      if (next === undefined || next.dueAt > until) break;
      this.#timers.shift();
      this.#now = next.dueAt;
      next.fn();
      await settle();
    }
    this.#now = until;
  }

  /**
   * Run timers until none is left — including the ones they schedule — moving `now()` to each one's
   * due time. Throws a `RangeError` after `maxTimers` timers (default 10,000), so a timer that always
   * reschedules itself (a health checker's interval) fails the test instead of hanging it.
   */
  async runAll(maxTimers = 10_000): Promise<void> {
    await settle();
    for (let fired = 0; ; fired++) {
      const next = this.#timers[0];
      if (next === undefined) return;
      if (fired >= maxTimers) {
        throw new RangeError(`FakeClock.runAll: still ${this.#timers.length} timer(s) pending after ${maxTimers}; a timer keeps rescheduling itself`);
      }
      this.#timers.shift();
      this.#now = next.dueAt;
      next.fn();
      await settle();
    }
  }
}
