/**
 * The body idle timeout (`timeouts.idleMs`) of an engine's streams, kept by one timer instead of one
 * per stream: a timer per response costs a `Timeout` object, a timer-list insertion and a clock
 * read, then a re-insertion and another clock read per chunk. Here a stream whose response body
 * runs is on the sweep's set, a chunk only zeroes its count of silent ticks, and a tick every fifth
 * of `idleMs` counts one more for each. The first tick after a chunk may come at once, so it is the
 * sixth in a row (`IDLE_TICKS` + 1) that cuts: between `idleMs` and 1.2 × `idleMs` after the last
 * chunk, never before. The timer runs only while a stream is watched (as the per-stream timers did,
 * it keeps the process alive meanwhile).
 */

/** Ticks per `idleMs`: the cut comes at most a fifth of `idleMs` late. */
export const IDLE_TICKS = 5;

/** A stream the sweep watches. */
export interface IdleWatched {
  /** Ticks since its last chunk: zeroed by `watch` and by the stream at each chunk. */
  idleTicks: number;
  /** Past `IDLE_TICKS` silent ticks (no longer watched then). */
  idleTimedOut(): void;
}

export class IdleSweep {
  readonly #watched = new Set<IdleWatched>();
  readonly #tickMs: number;
  #timer: NodeJS.Timeout | undefined = undefined;

  constructor(idleMs: number) {
    // Rounded up: IDLE_TICKS ticks span at least `idleMs`.
    this.#tickMs = Math.max(1, Math.ceil(idleMs / IDLE_TICKS));
  }

  get size(): number {
    return this.#watched.size;
  }

  watch(stream: IdleWatched): void {
    stream.idleTicks = 0;
    this.#watched.add(stream);
    this.#timer ??= setInterval(this.#tick, this.#tickMs);
  }

  unwatch(stream: IdleWatched): void {
    if (!this.#watched.delete(stream) || this.#watched.size > 0 || this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  // A stream cut here leaves the set while it is iterated: a Set's iteration allows that.
  readonly #tick = (): void => {
    for (const stream of this.#watched) {
      if (++stream.idleTicks <= IDLE_TICKS) continue;
      this.unwatch(stream);
      stream.idleTimedOut();
    }
  };
}
