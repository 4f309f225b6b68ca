/**
 * The `Balancer` contract: the slow path (`update`, on membership/state/weight change) precomputes;
 * the hot path (`pick`) reads what was precomputed and allocates nothing. "No backend" is a value
 * (`undefined`), not an exception.
 */
import type { Backend } from '../backend';
import type { Clock } from '../clock';
import type { FailureKind } from '../errors';
import type { Random } from '../random';

export type { FailureKind };

/** How a request on a backend ended. Fed to `Lease.release` and to `Balancer.released`. */
export interface Outcome {
  ok: boolean;
  status?: number;
  error?: FailureKind;
  durationMs?: number;
}

export interface Balancer {
  /** The algorithm's registry name (`'maglev'`), or the user's name for a custom one. */
  readonly name: string;
  /** True for balancers that map a `key` to a backend (ring-hash, maglev, rendezvous, bounded load). */
  readonly hashing?: boolean;
  /**
   * How this balancer's traffic shares relate to weights, one request at a time and under load.
   * Optional: `checkBalancer` reads it to know what to check (its options override it), and a user's
   * policy may declare it the same way. Every built-in declares it.
   */
  readonly shares?: ShareContract;
  /**
   * The eligible backends changed (membership, state, weight). Precompute here. The set is every
   * backend the balancer may return; those whose `effectiveWeight` is 0 take no new traffic and are
   * never returned.
   */
  update(backends: readonly Backend[]): void;
  /**
   * Choose one. Allocation-free. `key` is used by hashing balancers (others ignore it; a hashing
   * balancer without a key spreads requests like round-robin). `attempt` > 0 asks for the next
   * choice for the same key (retries): the attempt-th distinct backend in the key's preference order,
   * falling back to an earlier one when fewer backends exist. Returns `undefined` only when no backend
   * in the set has a positive `effectiveWeight`.
   */
  pick(key?: string, attempt?: number): Backend | undefined;
  /** A request was started on `backend` (its `inflight` has been incremented). */
  acquired?(backend: Backend): void;
  /** A request on `backend` ended (its `inflight` has been decremented). */
  released?(backend: Backend, outcome: Outcome): void;
}

/**
 * What a balancer promises about traffic shares in one regime: `'weighted'` — each backend gets
 * `effectiveWeight / Σ effectiveWeight` of the requests; `'even'` — every backend with a positive
 * weight gets the same share; `'served'` — no backend with a positive weight is starved: each gets
 * at least half its weighted share, while the balancer weighs other signals too (peak EWMA's
 * latency); `'none'` — no promise (`first` fills backends in order).
 */
export type ShareRule = 'weighted' | 'even' | 'served' | 'none';

/** A balancer's promise about traffic shares; see `Balancer.shares`. */
export interface ShareContract {
  /** Shares with one request at a time (acquire → release → acquire: every backend idle at each pick). */
  readonly serial: ShareRule;
  /** Shares with many requests in flight (a closed loop of equal requests). */
  readonly loaded: ShareRule;
  /**
   * True for deterministic balancers whose every prefix of picks is within a pick or so per backend
   * of the exact share (round robin, smooth WRR); false for random and load-aware ones, whose shares
   * hold within sampling noise.
   */
  readonly exact: boolean;
}

/** Options every built-in balancer accepts; each validates the ones it uses. */
export interface BalancerOptions {
  /** Source of randomness for random, p2c and peak-ewma. Default `defaultRandom` (unseeded; see random.ts). */
  random?: Random;
  /** Time source for peak-ewma's decay. Default the real clock. */
  clock?: Clock;
  /** maglev: lookup table size, a prime. Default 65537 (the Maglev paper's small table). */
  tableSize?: number;
  /** ring-hash: minimum number of points on the ring. Default 1024 (Envoy). */
  minRingSize?: number;
  /** ring-hash: maximum number of points on the ring. Default 8,388,608 (Envoy). */
  maxRingSize?: number;
  /**
   * peak-ewma: latency assumed for a backend with no sample yet while its first requests are pending,
   * in ms (an idle unmeasured backend costs 0, so it is tried at once). Default 1000 (tower).
   */
  defaultRttMs?: number;
  /** peak-ewma: decay time of a latency estimate when no new sample arrives, in ms. Default 10000. */
  decayMs?: number;
  /** bounded load: the hashing balancer to wrap, by name. Default 'ring-hash'. */
  inner?: HashingAlgorithmName;
  /** bounded load: no backend above ⌈factor × average⌉ inflight. ≥ 1, default 1.25. */
  factor?: number;
}

export type HashingAlgorithmName = 'ring-hash' | 'maglev' | 'rendezvous';

export type AlgorithmName =
  'round-robin' | 'weighted-round-robin' | 'least-connections' | 'p2c' | 'peak-ewma' | 'random' | 'first' | HashingAlgorithmName | 'bounded-load';

export type BalancerFactory = (options: BalancerOptions) => Balancer;
