/**
 * Round robin: each backend in turn, in the order given to `update`, whatever its weight — except
 * that a backend whose effective weight is 0 takes no new traffic and is skipped. Use
 * `SmoothWeightedRoundRobin` when weights should matter.
 *
 * Like nginx's and HAProxy's `roundrobin`, the rotation starts at the first backend; there is no
 * option because there is nothing to tune. `pick` is one bounds check and one array read, so the
 * algorithm costs about as much as the bare `list[i++ % n]` it is.
 *
 * When the set changes, the rotation resumes with the backend that would have come next, if it is
 * still there (else the next one after it that is), so a membership change neither restarts the
 * rotation at the top — which would overload the first backend when updates are frequent — nor skips
 * anyone.
 */
import type { Backend } from '../backend';
import type { Balancer } from './balancer';
import { EXACT_EVEN_SHARES, selectableBackends } from './weights';

export class RoundRobin implements Balancer {
  readonly name = 'round-robin';
  /** Each backend in turn: even shares, exactly, at any load. */
  readonly shares = EXACT_EVEN_SHARES;
  private list: Backend[] = [];
  /** Index in `list` of the next backend to return. */
  private cursor = 0;

  /** Takes no options; the parameter exists so that every balancer has the same constructor shape. */
  constructor(_options?: unknown) {}

  update(backends: readonly Backend[]): void {
    const previous = this.list;
    const next = selectableBackends(backends);
    let cursor = 0;
    if (previous.length > 0 && next.length > 0) {
      const position = new Map<Backend, number>();
      for (let i = 0; i < next.length; i++) position.set(next[i]!, i);
      const start = this.cursor % previous.length;
      for (let step = 0; step < previous.length; step++) {
        const found = position.get(previous[(start + step) % previous.length]!);
        if (found !== undefined) {
          cursor = found;
          break;
        }
      }
    }
    this.list = next;
    this.cursor = cursor;
  }

  /** The next backend in rotation; a retry (`attempt > 0`) simply takes the next one. */
  pick(_key?: string, _attempt?: number): Backend | undefined {
    // `cursor` is always in [0, length) or 0 for an empty list, where the read yields undefined.
    const i = this.cursor;
    const next = i + 1;
    this.cursor = next >= this.list.length ? 0 : next;
    return this.list[i];
  }
}
