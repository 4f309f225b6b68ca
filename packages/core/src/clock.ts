/**
 * Time, injected. Core never reads the real clock directly: every component that needs time takes a
 * `Clock`, so a test can replay any behaviour on a fake one (`FakeClock` in `@fulcrum/core/testing`).
 *
 * `now()` is wall-clock milliseconds (like `Date.now()`): stick-table entries carry it across
 * instances, so it must mean the same thing on every host. Latency is measured by the runtime with a
 * monotonic timer and handed to `Lease.release({ durationMs })`.
 */

/** An opaque handle returned by `Clock.setTimeout`. */
export type Timer = unknown;

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(timer: Timer): void;
}

interface Unrefable {
  unref?: () => unknown;
}

/**
 * The real clock. Its timers are unref'd where the platform supports it (Node, Bun, Deno), so a
 * load balancer's background work never keeps a process alive on its own.
 */
export const realClock: Clock = Object.freeze({
  now: () => Date.now(),
  setTimeout(fn: () => void, ms: number): Timer {
    const timer = globalThis.setTimeout(fn, ms) as unknown as Unrefable;
    if (typeof timer === 'object' && timer !== null && typeof timer.unref === 'function') timer.unref();
    return timer;
  },
  clearTimeout(timer: Timer): void {
    globalThis.clearTimeout(timer as Parameters<typeof globalThis.clearTimeout>[0]);
  },
});
