/**
 * Backends for tests. `Backend` objects are owned by the load balancer and read-only to everyone else,
 * but a test of a balancer needs them in every state the load balancer could leave them in — loaded,
 * slow-starting, slow, draining. `createBackends` builds them from specs (validated exactly as
 * `createLoadBalancer` validates them) and `setBackendLoad` writes the fields the load balancer would.
 * `simulateAcquire` / `simulateRelease` replay what the load balancer does around a request, in the
 * same order, for balancers with `acquired`/`released` hooks.
 */
import { Backend, mutable, normalizeBackendSpecs, type BackendSpec, type BackendState } from '../backend';
import type { Balancer, Outcome } from '../balancers/balancer';
import { InvalidOptionError } from '../errors';
import { finiteNumber } from '../validate/checks';

/**
 * Build runtime `Backend` objects from specs. Specs are validated like `createLoadBalancer`'s
 * (ids unique and well-formed, addresses valid, weights finite and ≥ 0); an invalid one throws an
 * `InvalidOptionError` naming it. Each backend starts `up`, idle, with `effectiveWeight = weight`.
 *
 * @param now The clock time the backends joined at (`latencyUpdatedAt`). Default 0.
 */
export function createBackends(specs: readonly BackendSpec[], now = 0): Backend[] {
  return normalizeBackendSpecs(specs).map((spec) => new Backend(spec, now));
}

/** The fields of a `Backend` that the load balancer changes at run time; see `setBackendLoad`. */
export interface BackendLoad {
  /** Requests in flight: an integer ≥ 0. */
  inflight?: number;
  /** The weight balancers use (slow start, agent weights): finite, ≥ 0. */
  effectiveWeight?: number;
  /** Latency average in ms, ≥ 0; 0 means "no sample yet". */
  latencyEwma?: number;
  /** When `latencyEwma` was last updated, in clock ms. */
  latencyUpdatedAt?: number;
  state?: BackendState;
  /** Clock ms until which the backend is ejected; 0 when not ejected. */
  ejectedUntil?: number;
  /** Requests released so far: an integer ≥ 0. */
  requests?: number;
  /** Failed requests released so far: an integer ≥ 0. */
  failures?: number;
}

const STATES: readonly BackendState[] = ['up', 'down', 'draining', 'maintenance'];

/**
 * Put a backend in any run-time state, as the load balancer would, so a balancer can be tested against
 * it. Only the fields given change; values are validated (an `InvalidOptionError` names a bad one).
 * Remember to call the balancer's `update()` afterwards when the change is one the load balancer would
 * announce (weight, state); load fields (`inflight`, latency) are read live. Returns the backend.
 */
export function setBackendLoad(backend: Backend, load: BackendLoad): Backend {
  if (!(backend instanceof Backend)) throw new InvalidOptionError('backend', backend, 'must be a Backend from createBackends');
  const target = mutable(backend);
  const { inflight, effectiveWeight, latencyEwma, latencyUpdatedAt, state, ejectedUntil, requests, failures } = load;
  if (inflight !== undefined) target.inflight = finiteNumber('load.inflight', inflight, { min: 0, integer: true });
  if (effectiveWeight !== undefined) target.effectiveWeight = finiteNumber('load.effectiveWeight', effectiveWeight, { min: 0 });
  if (latencyEwma !== undefined) target.latencyEwma = finiteNumber('load.latencyEwma', latencyEwma, { min: 0 });
  if (latencyUpdatedAt !== undefined) target.latencyUpdatedAt = finiteNumber('load.latencyUpdatedAt', latencyUpdatedAt);
  if (state !== undefined) {
    if (!STATES.includes(state)) throw new InvalidOptionError('load.state', state, `must be one of ${STATES.join(', ')}`);
    target.state = state;
  }
  if (ejectedUntil !== undefined) target.ejectedUntil = finiteNumber('load.ejectedUntil', ejectedUntil, { min: 0 });
  if (requests !== undefined) target.requests = finiteNumber('load.requests', requests, { min: 0, integer: true });
  if (failures !== undefined) target.failures = finiteNumber('load.failures', failures, { min: 0, integer: true });
  return backend;
}

/**
 * Start a request on `backend` as the load balancer does: increment `inflight`, then call the
 * balancer's `acquired` hook (if it has one).
 */
export function simulateAcquire(balancer: Balancer, backend: Backend): void {
  mutable(backend).inflight += 1;
  balancer.acquired?.(backend);
}

/**
 * End a request on `backend` as the load balancer does: decrement `inflight` (never below 0), then
 * call the balancer's `released` hook (if it has one). `outcome` defaults to `{ ok: true }`.
 */
export function simulateRelease(balancer: Balancer, backend: Backend, outcome: Outcome = { ok: true }): void {
  const target = mutable(backend);
  target.inflight = Math.max(0, target.inflight - 1);
  balancer.released?.(backend, outcome);
}
