/**
 * Every built-in balancer passes the invariant suite, built the way users build them
 * (`createBalancer(name, options)`) with seeded randomness and a fake clock so each run replays.
 * The options per algorithm say what it promises: exact or statistical shares, weights or not,
 * and how much a removal may disturb a hashing balancer.
 */
import { describe, it } from 'vitest';
import type { AlgorithmName } from '../../src/balancers/balancer';
import { ALGORITHM_NAMES, createBalancer } from '../../src/balancers/registry';
import { checkBalancer, defaultMaxMovedFraction, FakeClock, seededRandom, type CheckBalancerOptions } from '@fulcrum/core/testing';

const expectations: Record<AlgorithmName, CheckBalancerOptions> = {
  // Each backend in turn, whatever its weight (weight 0 still means no traffic).
  'round-robin': { weighted: false, share: 'exact' },
  // nginx's smooth WRR: every prefix of the cycle is within one pick per backend of the exact share.
  'weighted-round-robin': { share: 'exact' },
  // (inflight + 1) / weight, ties rotating: with requests that do not overlap, it is a weighted rotation.
  'least-connections': { share: 'statistical' },
  p2c: { share: 'statistical' },
  'peak-ewma': { share: 'statistical' },
  random: { share: 'statistical' },
  // Fills backends in order: by design not share-balanced.
  first: { share: 'none' },
  'ring-hash': {},
  // The Maglev table refill moves some keys between backends that stay (≤ 2/N in the paper's regime).
  maglev: { onlyFromLeaving: false, maxMovedFraction: (removal) => defaultMaxMovedFraction(removal, 2) },
  rendezvous: {},
  // Spills keys past ⌈factor × average⌉, so it must never place a request above that line.
  'bounded-load': { boundedLoadFactor: 1.25 },
};

describe('built-in balancers pass checkBalancer', () => {
  for (const name of ALGORITHM_NAMES) {
    it(`${name} keeps every invariant`, () => {
      checkBalancer(() => createBalancer(name, { random: seededRandom(1), clock: new FakeClock() }), expectations[name]);
    });
  }
});
