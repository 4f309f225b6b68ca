/**
 * Synchronisation for tests, in place of sleeps: `deferred()` is a signal a test fires from the
 * event it waits for (a backend received the request, a message arrived); `waitFor()` polls a
 * condition that has no event to hook, with a bounded wait and an error that says what never
 * happened — never a fixed sleep that is too short on a loaded machine and too long on an idle one.
 */
import { inspect } from 'node:util';

/** A promise with its `resolve`/`reject` outside: fire it from the event the test waits for. */
export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(reason: unknown): void;
  /** Whether `resolve` or `reject` was called. */
  readonly settled: boolean;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  let settled = false;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return {
    promise,
    resolve: (value) => {
      settled = true;
      resolve(value);
    },
    reject: (reason) => {
      settled = true;
      reject(reason);
    },
    get settled() {
      return settled;
    },
  };
}

export interface WaitForOptions {
  /** Give up after this long, in ms. Default 10000: far above any healthy wait, below vitest's 30 s. */
  timeoutMs?: number;
  /** Delay between checks, in ms. Default 5. */
  intervalMs?: number;
  /** What is awaited, for the error: `waitFor(…, { what: 'the backend to be ejected' })`. */
  what?: string;
}

/**
 * Resolve with the first truthy value `check` returns (it may be async), checking every `intervalMs`;
 * reject after `timeoutMs` naming `what` and the last value seen. An exception thrown by `check`
 * counts as "not yet" until the deadline, then becomes the cause, so `waitFor(() => expect(…))`
 * works too.
 */
export async function waitFor<T>(check: () => T | Promise<T>, options: WaitForOptions = {}): Promise<Exclude<T, false | 0 | '' | null | undefined>> {
  const { timeoutMs = 10_000, intervalMs = 5, what = 'the condition' } = options;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  let lastError: unknown;
  for (;;) {
    try {
      last = await check();
      lastError = undefined;
      if (last) return last as Exclude<T, false | 0 | '' | null | undefined>;
    } catch (error) {
      lastError = error;
    }
    if (Date.now() >= deadline) {
      const detail =
        lastError === undefined ? `last value: ${inspect(last)}` : `last error: ${lastError instanceof Error ? lastError.message : inspect(lastError)}`;
      throw new Error(`waitFor: ${what} did not happen within ${timeoutMs} ms (${detail})`, lastError === undefined ? undefined : { cause: lastError });
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
