/**
 * Consistent hashing with bounded loads (Mirrokni, Thorup & Zadimoghaddam, "Consistent Hashing with
 * Bounded Loads", SODA 2018 / arXiv 2016; deployed by Google Cloud Pub/Sub and by Vimeo in HAProxy's
 * `hash-balance-factor`).
 *
 * A wrapper around any hashing balancer: a key goes to the first backend in its preference order
 * (`inner.pick(key, 0)`, `inner.pick(key, 1)`, …) whose inflight count is below the capacity
 * `⌈factor × (total inflight + 1) / n⌉`, n being the number of eligible backends. The `+ 1` counts
 * the request being placed, so the capacity is always above the average and some backend is always
 * below it: the walk ends within n candidates. Keys keep their backend while it is not overloaded,
 * and spill, in a stable order, to the next ones when it is. A retry (`attempt` = k) takes the k-th
 * backend with room, then — when fewer have room — the full ones in preference order, so retries
 * always reach a different backend while one is left (the bound applies to first attempts).
 *
 * `factor` defaults to 1.25, the paper's and HAProxy's usual choice (Vimeo's write-up uses 1.25 too):
 * no backend exceeds 125 % of the average load, while keys overflow only from backends past that
 * line, so cache affinity stays high. It must be ≥ 1 (below 1 the capacities could not hold every
 * request). Larger factors trade balance for affinity.
 *
 * The total inflight is kept up to date by the `acquired`/`released` hooks (the load balancer
 * changes `backend.inflight` before calling them) and recomputed from the backends on `update`, so
 * `pick` is O(1) beyond the inner picks: O(k · inner pick) for the k candidates it looks at, k ≤ n.
 * Hooks for backends outside the current set are ignored; every hook is forwarded to `inner`.
 */
import type { Backend } from '../backend';
import { InvalidOptionError } from '../errors';
import { optionalNumber } from '../validate/checks';
import type { Balancer, Outcome } from './balancer';
import { WEIGHTED_SHARES } from './weights';

export const DEFAULT_BOUNDED_LOAD_FACTOR = 1.25;

export interface BoundedLoadConfig {
  readonly factor: number;
}

export class BoundedLoad implements Balancer {
  readonly name = 'bounded-load';
  /** Keys spread in proportion to weight. */
  readonly shares = WEIGHTED_SHARES;
  readonly hashing = true;
  readonly inner: Balancer;
  readonly config: BoundedLoadConfig;

  private members = new Set<Backend>();
  private totalInflight = 0;

  constructor(inner: Balancer, options: { factor?: number } = {}) {
    if (typeof inner !== 'object' || inner === null || typeof inner.pick !== 'function' || typeof inner.update !== 'function') {
      throw new InvalidOptionError('inner', inner, 'must be a Balancer (an object with update and pick)');
    }
    const factor = optionalNumber('factor', options.factor, DEFAULT_BOUNDED_LOAD_FACTOR, { min: 1 });
    this.inner = inner;
    this.config = Object.freeze({ factor });
  }

  /** The most requests a backend may hold once the next request is placed. */
  get capacity(): number {
    const count = this.members.size;
    if (count === 0) return 0;
    return Math.ceil((this.config.factor * (this.totalInflight + 1)) / count);
  }

  update(backends: readonly Backend[]): void {
    this.inner.update(backends);
    const members = new Set<Backend>();
    let total = 0;
    for (const backend of backends) {
      // Only backends the inner balancer may return share the load; a zero-weight one takes no
      // new requests, so its inflight would only inflate everyone's capacity.
      if (backend.effectiveWeight > 0 && !members.has(backend)) {
        members.add(backend);
        total += backend.inflight;
      }
    }
    this.members = members;
    this.totalInflight = total;
  }

  pick(key?: string, attempt = 0): Backend | undefined {
    const count = this.members.size;
    if (count === 0) return undefined;
    const capacity = this.capacity;
    // Preference order for retries: the backends with room, in the key's order, then the full ones
    // in the same order. A retry thus goes to another backend with room while one exists, and to
    // another backend at all while one is left, even over the line: a retry must leave the backend
    // that just failed.
    const wanted = attempt > 0 ? Math.floor(attempt) % count : 0;
    let withRoom = 0;
    for (let i = 0; i < count; i++) {
      const candidate = this.inner.pick(key, i);
      if (candidate !== undefined && candidate.inflight < capacity) {
        if (withRoom === wanted) return candidate;
        withRoom++;
      }
    }
    let full = withRoom;
    for (let i = 0; i < count; i++) {
      const candidate = this.inner.pick(key, i);
      if (candidate !== undefined && !(candidate.inflight < capacity)) {
        if (full === wanted) return candidate;
        full++;
      }
    }
    // Only reachable when the inner balancer's set differs from ours: defer to it.
    return this.inner.pick(key, attempt);
  }

  acquired(backend: Backend): void {
    if (this.members.has(backend)) this.totalInflight++;
    this.inner.acquired?.(backend);
  }

  released(backend: Backend, outcome: Outcome): void {
    if (this.members.has(backend) && this.totalInflight > 0) this.totalInflight--;
    this.inner.released?.(backend, outcome);
  }
}
