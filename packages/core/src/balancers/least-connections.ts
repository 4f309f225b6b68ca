/**
 * Weighted least connections, after HAProxy's `leastconn` (lb_fwlc.c): the backend with the lowest
 * `(inflight + 1) / effectiveWeight` wins.
 *
 * Why `inflight + 1`: it is the load the backend would carry *with* this request. With plain
 * `inflight / weight` every idle backend scores 0 and a weight-1 server ties with a weight-10 one;
 * with `+ 1` the idle heavy server scores 0.1 against 1 and wins, and under load the ratio still
 * converges to inflight proportional to weight. HAProxy's fwlc key is the same quantity
 * (`(served + 1) · SRV_EWGHT_MAX / eweight`).
 *
 * Ties rotate: every time a backend's load changes it goes behind the backends of equal load, as a
 * server requeued in HAProxy's tree goes after its duplicates. Two idle equal backends therefore
 * alternate instead of the first one taking every request of a lightly loaded service.
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
import type { Balancer, Outcome } from './balancer';
import { selectableBackends } from './weights';

export class LeastConnections implements Balancer {
  readonly name = 'least-connections';
  /** Slot → backend; slots are the order given to `update`. */
  private members: Backend[] = [];
  private slotOf = new Map<Backend, number>();
  /** Slot → `(inflight + 1) / effectiveWeight`. */
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
      load[slot] = (backend.inflight + 1) / backend.effectiveWeight;
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
    let position = attempt % n | 0;
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
    this.load[slot] = (backend.inflight + 1) / backend.effectiveWeight;
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
