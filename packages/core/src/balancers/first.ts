/**
 * First available, HAProxy's `balance first`: backends are filled in the order given to `update` —
 * the first one with a free connection slot (`inflight < maxConnections`) takes the request. It
 * keeps the fewest backends busy, so the rest can be scaled down or kept cold; without any
 * `maxConnections` every request goes to the first backend, as in HAProxy. A backend whose
 * effective weight is 0 takes no new traffic and is skipped.
 *
 * When every backend is full the least loaded one relative to its cap (lowest
 * `inflight / maxConnections`, the earliest on a tie) is returned and the runtime queues the request
 * there — HAProxy queues instead of refusing too.
 *
 * A cursor marks the first backend that is not full; every backend before it is. `pick` moves it
 * forward past backends that have filled up (it has to read the backend under the cursor anyway, so
 * no `acquired` hook is needed), and the `released` hook moves it back when an earlier backend frees
 * a slot (HAProxy's drop conn). Each backend is passed over once per filling, so `pick` is amortised
 * O(1) while any backend has room. Only the all-full case scans (O(n)), and then the request is going
 * to wait in a queue anyway; that scan also notices a slot freed without a hook. Releases of backends
 * outside the current set are ignored.
 *
 * A retry (`attempt > 0`) takes the first backend with room at or after position `cursor + attempt`
 * (wrapping), so successive attempts reach further down the list; when every backend is full, the
 * one `attempt` places after the least loaded, so a retry queues somewhere other than where it failed.
 */
import type { Backend } from '../backend';
import type { Balancer, Outcome, ShareContract } from './balancer';
import { selectableBackends } from './weights';

export class FirstAvailable implements Balancer {
  readonly name = 'first';
  /** Fills backends in order: no share promise, by design. */
  readonly shares: ShareContract = Object.freeze({ serial: 'none', loaded: 'none', exact: false });
  private members: Backend[] = [];
  private indexOf = new Map<Backend, number>();
  /** Every member before this index is full; `members.length` when all are. */
  private cursor = 0;

  /** Takes no options; the parameter exists so that every balancer has the same constructor shape. */
  constructor(_options?: unknown) {}

  update(backends: readonly Backend[]): void {
    const members = selectableBackends(backends);
    const indexOf = new Map<Backend, number>();
    for (let i = 0; i < members.length; i++) indexOf.set(members[i]!, i);
    this.members = members;
    this.indexOf = indexOf;
    this.cursor = 0;
    this.advance();
  }

  pick(_key?: string, attempt?: number): Backend | undefined {
    const members = this.members;
    const n = members.length;
    if (n === 0) return undefined;
    let cursor = this.cursor;
    if (cursor < n && !hasRoom(members[cursor]!)) cursor = this.advance();
    const retry = attempt !== undefined && attempt > 0;
    if (cursor >= n) {
      const least = this.leastLoaded();
      if (least >= 0) {
        // Every backend is full: a retry queues on another one rather than on the one that failed.
        return members[retry ? ((least + attempt) % n) | 0 : least];
      }
      cursor = this.cursor;
    }
    if (!retry) return members[cursor];
    const start = ((cursor + attempt) % n) | 0;
    for (let step = 0; step < n; step++) {
      const i = start + step < n ? start + step : start + step - n;
      const backend = members[i]!;
      if (hasRoom(backend)) return backend;
    }
    return members[cursor];
  }

  released(backend: Backend, _outcome: Outcome): void {
    const i = this.indexOf.get(backend);
    if (i !== undefined && i < this.cursor && hasRoom(backend)) this.cursor = i;
  }

  /** Moves the cursor past full backends; returns it. */
  private advance(): number {
    const members = this.members;
    let cursor = this.cursor;
    while (cursor < members.length && !hasRoom(members[cursor]!)) cursor++;
    this.cursor = cursor;
    return cursor;
  }

  /**
   * With the cursor past the end: the index of the least loaded backend relative to its cap, or -1
   * after moving the cursor to the first backend found with room (a slot freed without a `released`
   * hook, e.g. a load balancer that does not call hooks).
   */
  private leastLoaded(): number {
    const members = this.members;
    let best = 0;
    let bestLoad = Infinity;
    for (let i = 0; i < members.length; i++) {
      const backend = members[i]!;
      if (hasRoom(backend)) {
        this.cursor = i;
        return -1;
      }
      const load = backend.inflight / backend.maxConnections;
      if (load < bestLoad) {
        best = i;
        bestLoad = load;
      }
    }
    return best;
  }
}

function hasRoom(backend: Backend): boolean {
  return backend.inflight < backend.maxConnections;
}
