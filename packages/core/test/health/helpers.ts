/**
 * Shared helpers for the health tests: backends, a recorder for unhandled rejections, and a probe
 * whose every call is scripted and observable.
 */
import { Backend, normalizeBackendSpec } from '../../src/backend';
import type { ProbeResult } from '../../src/health';

export { FakeClock } from '../../src/testing/fake-clock';

/** The fast-check parameters every property in these tests uses: fixed, so failures replay. */
export const PROPERTY_RUNS = { seed: 3, numRuns: 200 } as const;

export function backend(id: string): Backend {
  return new Backend(normalizeBackendSpec({ id, address: '127.0.0.1:1' }));
}

export function backends(count: number): Backend[] {
  return Array.from({ length: count }, (_, i) => backend(`b${i}`));
}

/** A `Random` that returns the given values in turn, then repeats the last one. */
export function sequenceRandom(...values: number[]): () => number {
  let i = 0;
  return () => {
    const value = values[Math.min(i, values.length - 1)] ?? 0.5;
    i++;
    return value;
  };
}

/**
 * Collect `unhandledRejection` events while a test runs. Vitest fails a run on them too, but only
 * after the fact; this lets a test assert "none" at the point it matters.
 */
export function trackUnhandledRejections(): { readonly reasons: unknown[]; stop(): void } {
  const reasons: unknown[] = [];
  const listener = (reason: unknown): void => {
    reasons.push(reason);
  };
  process.on('unhandledRejection', listener);
  return {
    reasons,
    stop: () => {
      process.off('unhandledRejection', listener);
    },
  };
}

/** Let every pending promise callback and rejection-tracking pass run (real event loop, no timing). */
export async function flushEventLoop(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** How one scripted probe call behaves. */
export type ProbeBehaviour =
  | { kind: 'pass'; afterMs?: number }
  | { kind: 'fail'; afterMs?: number }
  | { kind: 'result'; value: unknown; afterMs?: number }
  | { kind: 'throw' }
  | { kind: 'reject'; afterMs?: number }
  | { kind: 'hang' };

export interface ProbeCall {
  readonly backend: Backend;
  readonly signal: AbortSignal;
  readonly startedAt: number;
}

/**
 * A probe that follows a script (the last behaviour repeats) using the fake clock for its delays, and
 * records each call. `inflight` counts calls whose promise has not settled and whose signal has not
 * aborted.
 */
export class ScriptedProbe {
  readonly calls: ProbeCall[] = [];
  inflight = 0;
  maxInflight = 0;
  #script: ProbeBehaviour[];
  #index = 0;
  readonly #clock: { now(): number; setTimeout(fn: () => void, ms: number): unknown };

  constructor(clock: { now(): number; setTimeout(fn: () => void, ms: number): unknown }, script: ProbeBehaviour[]) {
    this.#clock = clock;
    this.#script = script;
  }

  setScript(script: ProbeBehaviour[]): void {
    this.#script = script;
    this.#index = 0;
  }

  readonly probe = (target: Backend, signal: AbortSignal): Promise<boolean | ProbeResult> => {
    const behaviour = this.#script[Math.min(this.#index, this.#script.length - 1)] ?? { kind: 'pass' };
    this.#index++;
    this.calls.push({ backend: target, signal, startedAt: this.#clock.now() });
    if (behaviour.kind === 'throw') throw new Error('probe exploded');
    this.inflight++;
    this.maxInflight = Math.max(this.maxInflight, this.inflight);
    let done = false;
    const end = (): void => {
      if (!done) {
        done = true;
        this.inflight--;
      }
    };
    signal.addEventListener('abort', end, { once: true });
    return new Promise<boolean | ProbeResult>((resolve, reject) => {
      if (behaviour.kind === 'hang') return;
      const settle = (): void => {
        end();
        if (behaviour.kind === 'pass') resolve(true);
        else if (behaviour.kind === 'fail') resolve(false);
        else if (behaviour.kind === 'result') resolve(behaviour.value as ProbeResult);
        else reject(new Error('connection refused'));
      };
      const delay = behaviour.afterMs ?? 0;
      if (delay === 0) settle();
      else this.#clock.setTimeout(settle, delay);
    });
  };
}
