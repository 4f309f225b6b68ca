/**
 * Balls into bins: `balls` requests placed one after another on `bins` backends and held forever
 * (never released), the experiment behind the power of two choices (Azar, Broder, Karlin and Upfal,
 * 1994; surveyed in Mitzenmacher, Richa and Sitaraman, "The Power of Two Random Choices", 2001). With
 * n balls in n bins the fullest bin holds Θ(ln n / ln ln n) with one random choice, and
 * ln ln n / ln d + O(1) with the least loaded of d.
 *
 * Every placement is the real balancer's `pick()`. Up to `loadBalancerLimit` bins it goes through a
 * real `LoadBalancer` (`acquire()`, leases never released); above it — a million bins — building a
 * load balancer's membership costs seconds and a gigabyte, so the balancer is driven directly, with
 * exactly what `acquire()` does around `pick()`: increment the backend's `inflight`, then call the
 * balancer's `acquired` hook.
 */
import { Backend, createLoadBalancer, createSeededRandom, InvalidOptionError } from '@fulcrum/core';
import type { Balancer, Clock, Random } from '@fulcrum/core';
import { createBalancer } from '@fulcrum/core';
import { finiteNumber } from '@fulcrum/core/validate';

export interface BallsIntoBinsOptions {
  /** Backends. Integer 1..10⁷. */
  bins: number;
  /** Requests. Integer ≥ 0; default `bins`. */
  balls?: number;
  /** An algorithm name, or a factory given the run's seeded `random`. Default `'p2c'`. */
  policy?: string | ((options: { random: Random; clock: Clock }) => Balancer);
  /** Default 1. */
  seed?: number;
  /** The largest number of bins placed through a real `LoadBalancer`. Default 10,000. */
  loadBalancerLimit?: number;
}

export interface BallsIntoBinsResult {
  bins: number;
  balls: number;
  policy: string;
  /** The fullest bin's load. */
  maxLoad: number;
  /** `binsWithLoad[k]`: how many bins hold exactly k balls. */
  binsWithLoad: number[];
  /** Whether placement went through a `LoadBalancer` (else the balancer directly). */
  throughLoadBalancer: boolean;
}

const FIXED_CLOCK: Clock = Object.freeze({ now: () => 0, setTimeout: () => 0, clearTimeout: () => undefined });

function integer(path: string, value: unknown, min: number, max: number): number {
  return finiteNumber(path, value, { min, max, integer: true });
}

/**
 * The last direct-path bins, kept only as long as the collector allows: a reproduction runs several
 * policies and seeds over the same million bins, and building them is most of its time.
 */
let lastBins: WeakRef<Backend[]> | undefined;

function directBins(bins: number): Backend[] {
  const cached = lastBins?.deref();
  if (cached !== undefined && cached.length === bins) {
    for (const b of cached) (b as { inflight: number }).inflight = 0;
    return cached;
  }
  // One shared metadata object and address: a million bins are a million small objects already.
  const metadata = Object.freeze({});
  const list: Backend[] = [];
  for (let i = 0; i < bins; i++) {
    list.push(new Backend({ id: `bin-${i}`, address: '10.0.0.1:8080', weight: 1, backup: false, maxConnections: Infinity, zone: undefined, metadata }, 0));
  }
  lastBins = new WeakRef(list);
  return list;
}

export function ballsIntoBins(options: BallsIntoBinsOptions): BallsIntoBinsResult {
  const bins = integer('bins', options.bins, 1, 1e7);
  const balls = options.balls === undefined ? bins : integer('balls', options.balls, 0, 1e8);
  const seed = options.seed === undefined ? 1 : integer('seed', options.seed, -(2 ** 31), 2 ** 31 - 1);
  const limit = options.loadBalancerLimit === undefined ? 10_000 : integer('loadBalancerLimit', options.loadBalancerLimit, 0, 1e7);
  const random = createSeededRandom(seed);
  const policy = options.policy ?? 'p2c';
  const balancer =
    typeof policy === 'string'
      ? createBalancer(policy, { random, clock: FIXED_CLOCK })
      : typeof policy === 'function'
        ? policy({ random, clock: FIXED_CLOCK })
        : undefined;
  if (balancer === undefined) throw new InvalidOptionError('policy', policy, 'must be an algorithm name or a factory ({ random, clock }) => Balancer');
  const address = (i: number): string => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}:8080`;

  let backends: readonly Backend[];
  const throughLoadBalancer = bins <= limit;
  if (throughLoadBalancer) {
    const lb = createLoadBalancer({
      backends: Array.from({ length: bins }, (_, i) => ({ id: `bin-${i}`, address: address(i) })),
      algorithm: balancer,
      clock: FIXED_CLOCK,
      random,
    });
    for (let i = 0; i < balls; i++) lb.acquire();
    backends = lb.backends;
    lb.close();
  } else {
    const list = directBins(bins);
    balancer.update(list);
    const acquired = balancer.acquired?.bind(balancer);
    for (let i = 0; i < balls; i++) {
      const b = balancer.pick();
      if (b === undefined) break;
      (b as { inflight: number }).inflight++;
      acquired?.(b);
    }
    backends = list;
  }
  let maxLoad = 0;
  for (const b of backends) if (b.inflight > maxLoad) maxLoad = b.inflight;
  const binsWithLoad = new Array<number>(maxLoad + 1).fill(0);
  for (const b of backends) binsWithLoad[b.inflight]!++;
  return { bins, balls, policy: balancer.name, maxLoad, binsWithLoad, throughLoadBalancer };
}
