/**
 * Time, injected. Core never reads the real clock directly: every component that needs time takes a
 * `Clock`, so a test can replay any behaviour on a fake one (`FakeClock` in `@fulcrum/core/testing`).
 *
 * `now()` is wall-clock milliseconds (like `Date.now()`): stick-table entries carry it across
 * instances, so it must mean the same thing on every host. Latency is measured by the runtime with a
 * monotonic timer and handed to `Lease.release({ durationMs })`.
 *
 * Two real clocks: `realClock` reads `Date.now()` on every call; `coarseClock`, the default of the load
 * balancer and the stick-table, caches it for about a millisecond (see there), because on the hot path
 * one `Date.now()` costs as much as the rest of `acquire()` + `release()`.
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

/** How many cached reads a coarse clock serves before it reads the time again regardless. */
const COARSE_MAX_READS = 256;
/** An expiry timer armed longer ago than this (ms) is taken as lost (see `createCoarseNow`). */
const COARSE_TIMER_LOST_MS = 100;

/**
 * @internal The caching behind `coarseClock`, with its time source, its timer and its bypass injected
 * so that tests can drive it. `read` gives the time; `arm(expire)` calls `expire` about 1 ms later;
 * while `bypass()` is true every call reads the time afresh.
 */
export function createCoarseNow(read: () => number, arm: (expire: () => void) => void, bypass: () => boolean): () => number {
  // [cached time or -1, reads left before a forced refresh, when the expiry was armed or -1]: typed,
  // so a store never allocates.
  const state = new Float64Array([-1, 0, -1]);
  const expire = (): void => {
    state[0] = -1;
    state[2] = -1;
  };
  return () => {
    if (bypass()) return read();
    if (state[0]! >= 0 && --state[1]! > 0) return state[0]!;
    const now = read();
    state[0] = now;
    state[1] = COARSE_MAX_READS;
    const armedAt = state[2]!;
    // Arm the expiry unless one is pending. One that has not fired long after its 1 ms was dropped
    // (the event loop was blocked, or a timer implementation was swapped): arm another.
    if (armedAt < 0 || now - armedAt > COARSE_TIMER_LOST_MS || now < armedAt) {
      state[2] = now;
      arm(expire);
    }
    return now;
  };
}

const nativeDateNow = Date.now;
const nativeSetTimeout = globalThis.setTimeout;

/**
 * The real clock with `now()` cached, as HAProxy (`now_ms`), nginx (`ngx_current_msec`) and Envoy
 * (`approximateMonotonicTime`) cache theirs once per event-loop turn. The first read takes
 * `Date.now()` and arms a 1 ms timer (unref'd) that drops the cached value; reads until then return
 * it. So, like theirs, the time is that of the start of the current turn of the event loop: at most
 * about a millisecond behind `Date.now()` while the loop turns freely, never ahead of it, and never
 * more than 256 reads old even when one synchronous run never yields (so a loop waiting on the clock
 * still sees it move). Under load that is one `Date.now()` and one timer per millisecond, shared by
 * every request in it, instead of one or two clock reads per request; idle, it is one read per call,
 * as before. Timers are `realClock`'s.
 *
 * When `Date.now` or `setTimeout` has been replaced — a test's fake timers or a spy — it reads
 * `Date.now()` on every call, so a test that moves the system time sees the move at once. Pass
 * `clock: realClock` where a reading must always be exact to the millisecond.
 */
export const coarseClock: Clock = Object.freeze({
  now: createCoarseNow(
    () => Date.now(),
    (expire) => realClock.setTimeout(expire, 1),
    () => Date.now !== nativeDateNow || globalThis.setTimeout !== nativeSetTimeout,
  ),
  setTimeout: (fn: () => void, ms: number) => realClock.setTimeout(fn, ms),
  clearTimeout: (timer: Timer) => realClock.clearTimeout(timer),
});
