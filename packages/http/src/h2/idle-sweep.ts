/**
 * The body idle timeout (`timeouts.idleMs`) of an engine's streams, kept by one timer instead of one
 * per stream: a timer per response costs a `Timeout` object, a timer-list insertion and a clock
 * read, then a re-insertion and another clock read per chunk. Here a stream whose response body
 * runs is on the sweep's set, a chunk only zeroes its count of silent ticks, and a tick every fifth
 * of `idleMs` counts one more for each. The first tick after a chunk may come at once, so it is the
 * sixth in a row (`IDLE_TICKS` + 1) that cuts: between `idleMs` and 1.2 × `idleMs` after the last
 * chunk, never before. The timer stops at the first tick that finds no stream to watch, not when the
 * last one leaves: a unary call is usually watched and let go within one read (its head, message and
 * trailers come together), and a timer started and stopped per call would cost what the per-stream
 * timers did. It does not hold the process open (the watched streams' sockets do).
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

  /** Whether the timer runs. */
  get ticking(): boolean {
    return this.#timer !== undefined;
  }

  watch(stream: IdleWatched): void {
    stream.idleTicks = 0;
    this.#watched.add(stream);
    this.#timer ??= setInterval(this.#tick, this.#tickMs).unref();
  }

  unwatch(stream: IdleWatched): void {
    this.#watched.delete(stream);
  }

  /** Stop the timer (the engine closed); a stream watched later starts it again. */
  close(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  // A stream cut here leaves the set while it is iterated: a Set's iteration allows that.
  readonly #tick = (): void => {
    if (this.#watched.size === 0) return this.close();
    for (const stream of this.#watched) {
      if (++stream.idleTicks <= IDLE_TICKS) continue;
      this.#watched.delete(stream);
      stream.idleTimedOut();
    }
  };
}
