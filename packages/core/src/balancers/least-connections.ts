/**
 * Weighted least connections, HAProxy 2.6's `leastconn` (`lb_fwlc.c`). Each backend is keyed by
 *
 *     key = inflight === 0 ? 0 : (inflight + 1) / effectiveWeight
 *
 * — HAProxy's `fwlc_queue_srv`: `inflight ? (inflight + 1) * SRV_EWGHT_MAX / eweight : 0`, where its
 * `inflight` is `served + queued` — and the lowest key wins. Equal keys rotate: every time a backend's
 * key is recomputed (a request taken or dropped: HAProxy's take/drop conn) it goes behind the backends
 * of equal key, as a server reinserted in HAProxy's tree goes after its duplicates.
 *
 * What this means:
 * - An idle backend keys at 0 whatever its weight, so with one request at a time (acquire → release
 *   → acquire, a lightly loaded service) every backend takes its turn: weights 1, 2, 3 give a, b, c,
 *   a, b, c — exactly what HAProxy does (a differential test runs the real HAProxy and compares).
 *   Weights matter once requests overlap: a busy backend's key grows as `(inflight + 1) / weight`, so
 *   under load in-flight requests settle in proportion to weight.
 * - Counted load is `inflight`: the requests the load balancer has handed to the backend. Requests
 *   waiting for a slot wait in the runtime's pool queue (`maxConnections`), unassigned, like requests
 *   in HAProxy's backend queue, which `leastconn` does not count either; HAProxy's per-server queue
 *   holds requests already bound to one server, which in Fulcrum only a full sticky backend's
 *   clients do, and they are assigned when a slot frees.
 * - HAProxy's keys are integers (weights scaled to 1..4096, truncated); Fulcrum compares the exact
 *   ratio, so effective weights may be fractional (slow start). The two orders differ only where
 *   HAProxy's truncation makes two distinct ratios equal.
 *
 * The backends sit in an indexed binary min-heap keyed by (load, requeue order). `pick` reads the top
 * (O(1)); the `acquired` and `released` hooks — HAProxy's take/drop conn — recompute one backend's
 * load from its current `inflight` and move it, O(log n). Recomputing rather than counting means a
 * missed hook cannot leave a permanent error: the next hook or `update()` for that backend fixes it.
 * Hooks for a backend outside the current set (a sticky backend that is draining, or one with effective
 * weight 0) are ignored; `update()` reads every member's `inflight` afresh.
 *
 * A retry (`attempt > 0`) takes the entry at position `attempt mod n` of the heap, with positions 1
 * and 2 in load order, so attempt 1 is the exact second-least-loaded backend and consecutive attempts
 * visit distinct backends — which is what the load balancer needs to step past excluded ones.
 */
import type { Backend } from '../backend';
import type { Balancer, Outcome, ShareContract } from './balancer';
import { selectableBackends } from './weights';

/** HAProxy's fwlc key: 0 for an idle backend, else the load it would carry with one more request. */
function keyOf(backend: Backend): number {
  const inflight = backend.inflight;
  return inflight === 0 ? 0 : (inflight + 1) / backend.effectiveWeight;
}

export class LeastConnections implements Balancer {
  readonly name = 'least-connections';
  /**
   * HAProxy's leastconn: one request at a time rotates through the backends whatever their weights
   * (every idle backend keys at 0); once requests overlap, in-flight counts follow weights.
   */
  readonly shares: ShareContract = Object.freeze({ serial: 'even', loaded: 'weighted', exact: false });
  /** Slot → backend; slots are the order given to `update`. */
  private members: Backend[] = [];
  private slotOf = new Map<Backend, number>();
  /** Slot → its key: 0 when idle, else `(inflight + 1) / effectiveWeight` (see the header). */
  private load = new Float64Array(0);
  /** Slot → when it was last requeued; the lower wins a tie of loads. */
  private requeuedAt = new Float64Array(0);
  /** Heap position → slot. */
  private heap = new Int32Array(0);
  /** Slot → heap position. */
  private positionOf = new Int32Array(0);
  private requeues = 0;

  /** Takes no options; the parameter exists so that every balancer has the same constructor shape. */
  constructor(_options?: unknown) {}

  update(backends: readonly Backend[]): void {
    const members = selectableBackends(backends);
    const n = members.length;
    const previousSlotOf = this.slotOf;
    const previousRequeuedAt = this.requeuedAt;
    const slotOf = new Map<Backend, number>();
    const load = new Float64Array(n);
    const requeuedAt = new Float64Array(n);
    const heap = new Int32Array(n);
    for (let slot = 0; slot < n; slot++) {
      const backend = members[slot]!;
      slotOf.set(backend, slot);
      load[slot] = keyOf(backend);
      // Backends already known keep their place among ties; newcomers queue behind them.
      const previous = previousSlotOf.get(backend);
      requeuedAt[slot] = previous === undefined ? ++this.requeues : previousRequeuedAt[previous]!;
      heap[slot] = slot;
    }
    this.members = members;
    this.slotOf = slotOf;
    this.load = load;
    this.requeuedAt = requeuedAt;
    this.heap = heap;
    this.positionOf = new Int32Array(n);
    for (let slot = 0; slot < n; slot++) this.positionOf[slot] = slot;
    for (let position = (n >> 1) - 1; position >= 0; position--) this.siftDown(position);
  }

  pick(_key?: string, attempt?: number): Backend | undefined {
    const heap = this.heap;
    const n = heap.length;
    if (n === 0) return undefined;
    if (attempt === undefined || !(attempt > 0) || n === 1) return this.members[heap[0]!];
    let position = (attempt % n) | 0;
    if (n > 2 && (position === 1 || position === 2)) {
      // Positions 1 and 2 are both children of the top: order them so attempt 1 is the runner-up.
      const secondIsBetter = this.less(heap[2]!, heap[1]!);
      position = (position === 1) === secondIsBetter ? 2 : 1;
    }
    return this.members[heap[position]!];
  }

  acquired(backend: Backend): void {
    this.requeue(backend);
  }

  released(backend: Backend, _outcome: Outcome): void {
    this.requeue(backend);
  }

  private requeue(backend: Backend): void {
    const slot = this.slotOf.get(backend);
    if (slot === undefined) return;
    this.load[slot] = keyOf(backend);
    this.requeuedAt[slot] = ++this.requeues;
    // A change of load can move the backend either way; a requeue alone only moves it down.
    this.siftDown(this.siftUp(this.positionOf[slot]!));
  }

  private less(a: number, b: number): boolean {
    const loadA = this.load[a]!;
    const loadB = this.load[b]!;
    return loadA < loadB || (loadA === loadB && this.requeuedAt[a]! < this.requeuedAt[b]!);
  }

  /** Moves the slot at `position` up while it beats its parent; returns where it ends. */
  private siftUp(position: number): number {
    const heap = this.heap;
    const slot = heap[position]!;
    while (position > 0) {
      const parentPosition = (position - 1) >> 1;
      const parent = heap[parentPosition]!;
      if (!this.less(slot, parent)) break;
      heap[position] = parent;
      this.positionOf[parent] = position;
      position = parentPosition;
    }
    heap[position] = slot;
    this.positionOf[slot] = position;
    return position;
  }

  private siftDown(position: number): void {
    const heap = this.heap;
    const n = heap.length;
    const slot = heap[position]!;
    for (;;) {
      let child = 2 * position + 1;
      if (child >= n) break;
      const right = child + 1;
      if (right < n && this.less(heap[right]!, heap[child]!)) child = right;
      const childSlot = heap[child]!;
      if (!this.less(childSlot, slot)) break;
      heap[position] = childSlot;
      this.positionOf[childSlot] = position;
      position = child;
    }
    heap[position] = slot;
    this.positionOf[slot] = position;
  }
}
