/**
 * Every built-in balancer passes the invariant suite, built the way users build them
 * (`createBalancer(name, options)`) with seeded randomness and a fake clock so each run replays.
 * The options per algorithm say what it promises: exact or statistical shares, weights or not,
 * and how much a removal may disturb a hashing balancer.
 */
import { describe, expect, it } from 'vitest';
import type { AlgorithmName } from '../../src/balancers/balancer';
import { ALGORITHM_NAMES, createBalancer } from '../../src/balancers/registry';
import { checkBalancer, defaultMaxMovedFraction, FakeClock, seededRandom, type CheckBalancerOptions } from '@fulcrum/core/testing';

/**
 * What each algorithm promises about shares comes from its own `shares` declaration; only what a
 * declaration cannot say — how far a hashing balancer may be disturbed by a removal, or a bound on
 * load — is passed here.
 */
const expectations: Record<AlgorithmName, CheckBalancerOptions> = {
  'round-robin': {},
  'weighted-round-robin': {},
  'least-connections': {},
  p2c: {},
  'peak-ewma': {},
  random: {},
  first: {},
  'ring-hash': {},
  // The Maglev table refill moves some keys between backends that stay (≤ 2/N in the paper's regime).
  maglev: { onlyFromLeaving: false, maxMovedFraction: (removal) => defaultMaxMovedFraction(removal, 2) },
  rendezvous: {},
  // Spills keys past ⌈factor × average⌉, so it must never place a request above that line.
  'bounded-load': { boundedLoadFactor: 1.25 },
};

/** What each built-in declares (and `checkBalancer` therefore checks): serial / loaded shares. */
const declared: Record<AlgorithmName, string> = {
  'round-robin': 'even / even, exact',
  'weighted-round-robin': 'weighted / weighted, exact',
  'least-connections': 'even / weighted',
  p2c: 'weighted / weighted',
  'peak-ewma': 'served / weighted',
  random: 'weighted / weighted',
  first: 'none / none',
  'ring-hash': 'weighted / weighted',
  maglev: 'weighted / weighted',
  rendezvous: 'weighted / weighted',
  'bounded-load': 'weighted / weighted',
};

describe('built-in balancers pass checkBalancer', () => {
  for (const name of ALGORITHM_NAMES) {
    it(`${name} keeps every invariant`, () => {
      checkBalancer(() => createBalancer(name, { random: seededRandom(1), clock: new FakeClock() }), expectations[name]);
    });
  }
});

describe('built-in balancers declare how their shares follow weights', () => {
  for (const name of ALGORITHM_NAMES) {
    it(`${name} declares ${declared[name]}`, () => {
      const shares = createBalancer(name).shares!;
      expect(`${shares.serial} / ${shares.loaded}${shares.exact ? ', exact' : ''}`).toBe(declared[name]);
      expect(Object.isFrozen(shares)).toBe(true);
    });
  }

  it('lets checkBalancer run on a built-in with default options', () => {
    // Before the declarations, this failed: the kit assumed weights, and round robin ignores them.
    checkBalancer(() => createBalancer('round-robin'));
    checkBalancer(() => createBalancer('least-connections'), { numRuns: 20 });
  });
});
