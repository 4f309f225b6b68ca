/**
 * The load the session stores' fault tests cut a link under: writes one session after another until
 * stopped, recording which ids the store acknowledged (they must all be there after the fault) and
 * what every failed write threw (it must be a `StoreUnavailableError`).
 */

export interface StoreLoad {
  /** Ids whose write the store acknowledged, in order. */
  readonly acknowledged: string[];
  /** What each failed write threw, in order. */
  readonly failures: unknown[];
  /** Ends the loop and waits for the write in flight. */
  stop(): Promise<void>;
}

/**
 * Calls `write(id, n)` for ids `<prefix>-0`, `<prefix>-1`… until `stop()`. After a failure it pauses
 * `pauseMs` before the next write: pacing, not synchronisation — a store that fails fast would
 * otherwise spin the loop through microtasks alone and starve the timers and sockets of its own
 * recovery. Nothing waits on the pause; tests wait on the counts (`waitFor`).
 */
export function writeUntilStopped(write: (id: string, n: number) => Promise<unknown>, prefix: string, pauseMs: number): StoreLoad {
  const acknowledged: string[] = [];
  const failures: unknown[] = [];
  let stopped = false;
  const done = (async () => {
    for (let n = 0; !stopped; n++) {
      const id = `${prefix}-${n}`;
      try {
        await write(id, n);
        acknowledged.push(id);
      } catch (error) {
        failures.push(error);
        await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    }
  })();
  return {
    acknowledged,
    failures,
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}
