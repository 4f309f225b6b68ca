/**
 * The properties behind `checkBalancer`, one per invariant family. Each takes the user's factory and
 * the resolved options and returns a fast-check property over plain data (specs, membership changes,
 * pick scripts); the `Backend` objects are built inside, so counterexamples print as data and shrink.
 *
 * - membership: any sequence of adds, removes, weight changes, slow-start weights and latencies,
 *   each followed by `update()` with the set in a random order and a script of picks (with and
 *   without keys, retries) and of requests held and released through the hooks. Every pick must be
 *   eligible (invariants 1, 2, 6), hashing retries must be distinct (5), bounded load must hold.
 * - share: traffic per backend against `w / Σw` or an even split (3), at a given concurrency — the
 *   configured one ("share") and 1 ("serial-share").
 * - hashing-determinism: same key → same backend whatever the order of `update()`'s input and
 *   whichever instance is asked (4).
 * - hashing-removal: when one backend leaves, few keys move, and only its own (4).
 */
import fc from 'fast-check';
import type { Backend, BackendSpec } from '../backend';
import { mutable, recordLatency } from '../backend';
import type { Balancer, Outcome, ShareRule } from '../balancers/balancer';
import { backendId, backendSpecs, key as keyArbitrary, keys as keysArbitrary, membershipChange, type MembershipOp } from './arbitraries';
import { createBackends, setBackendLoad, simulateAcquire, simulateRelease } from './backends';
import {
  checkAttemptChain,
  checkEligible,
  countPositive,
  describeBackend,
  describeCall,
  describeSet,
  expectedShare,
  fail,
  shuffled,
  syntheticKeys,
} from './check-support';

/** What `checkBalancer` resolved its options to; see `CheckBalancerOptions` for the meaning. */
export interface ResolvedCheckOptions {
  readonly weighted: boolean;
  readonly serial: ShareRule;
  readonly share: 'exact' | 'statistical' | 'none';
  readonly shareTolerance: number;
  readonly picksPerRun: number;
  readonly keysPerRun: number;
  readonly concurrency: number;
  readonly maxMovedFraction: (removal: { backends: number; leavingShare: number; keys: number }) => number;
  readonly onlyFromLeaving: boolean;
  readonly boundedLoadFactor: number | undefined;
}

/**
 * How many standard deviations a statistical share may stray before the check fails. At 5σ a
 * correct balancer fails a given comparison with probability below 10⁻⁶, so a suite of hundreds of
 * runs × backends stays reliable, while a balancer that ignores weights is still far outside.
 */
const SIGMAS = 5;
/**
 * The ring size whose imbalance hashing shares are allowed on top of sampling noise: a backend owning
 * a fraction s of a ring of R random points has a share with variance ≈ s/R. 1024 is Envoy's minimum
 * ring size; table- and score-based hashes (Maglev, rendezvous) are more even than that.
 */
const HASH_POINTS = 1024;
/** Requests held at once in the membership property (enough to make loads differ). */
const MAX_HELD = 32;
const RECURRING_KEYS: readonly string[] = ['user-1', 'user-2', '198.51.100.7'];

const OUTCOMES: readonly Outcome[] = [
  { ok: true, status: 200, durationMs: 12 },
  { ok: true, status: 204, durationMs: 250 },
  { ok: false, error: 'timeout', durationMs: 1000 },
  { ok: false, status: 503, error: 'status', durationMs: 40 },
  { ok: false, error: 'connect' },
];

// ---------------------------------------------------------------------------------------------
// membership: invariants 1, 2, 5, 6 and bounded load under arbitrary changes

interface PickStep {
  key: string | undefined;
  attempt: number;
  hold: boolean;
  release: number | undefined;
}

interface MembershipStep {
  change: MembershipOp | undefined;
  order: number;
  slowStart: [number, number] | undefined;
  latency: [number, number] | undefined;
  picks: PickStep[];
}

/** Invariants 1, 2, 5 and 6 (and bounded load) across arbitrary membership changes and load. */
export function membershipProperty(
  factory: () => Balancer,
  options: ResolvedCheckOptions,
): fc.IProperty<[{ initial: BackendSpec[]; steps: MembershipStep[] }]> {
  const pickStep: fc.Arbitrary<PickStep> = fc.record({
    // Some keys recur, as real clients do: that is what piles load on one backend of a hashing balancer.
    key: fc.oneof(fc.constant(undefined), keyArbitrary(), fc.constantFrom(...RECURRING_KEYS)),
    attempt: fc.oneof({ arbitrary: fc.constant(0), weight: 3 }, { arbitrary: fc.integer({ min: 1, max: 3 }), weight: 1 }),
    // Holding more often than releasing lets in-flight counts build up (to MAX_HELD).
    hold: fc.oneof({ arbitrary: fc.constant(true), weight: 2 }, { arbitrary: fc.constant(false), weight: 1 }),
    release: fc.option(fc.nat(), { nil: undefined, freq: 2 }),
  });
  const scenario = fc.uniqueArray(backendId(), { minLength: 1, maxLength: 10 }).chain((universe) =>
    fc.record({
      initial: backendSpecs({ id: fc.constantFrom(...universe), maxLength: 8, withBackups: false }),
      steps: fc.array(
        fc.record({
          change: fc.option(membershipChange({ ids: universe }), { nil: undefined, freq: 4 }),
          order: fc.nat(),
          slowStart: fc.option(fc.tuple(fc.nat(), fc.constantFrom(0, 0.1, 0.5)), { nil: undefined }),
          latency: fc.option(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 2000 })), { nil: undefined }),
          picks: fc.array(pickStep, { minLength: 1, maxLength: 12 }),
        }),
        { minLength: 1, maxLength: 8 },
      ),
    }),
  );

  return fc.property(scenario, ({ initial, steps }) => {
    const balancer = factory();
    const hashing = balancer.hashing === true;
    const live = new Map<string, Backend>();
    for (const backend of createBackends(initial)) live.set(backend.id, backend);
    const held: Backend[] = [];
    let set: Backend[] = [...live.values()];
    balancer.update(set);
    checkEligible(balancer.pick(), set, 'pick() after the first update()');

    for (const step of steps) {
      if (step.change) applyChange(step.change, live, held, balancer);
      const members = [...live.values()];
      if (step.slowStart && members.length > 0) {
        const [index, factor] = step.slowStart;
        const target = members[index % members.length] as Backend;
        // Two decimals, like the weights generated: keeps weight arithmetic exact for exact shares.
        setBackendLoad(target, { effectiveWeight: Math.round(target.weight * factor * 100) / 100 });
      }
      if (step.latency && members.length > 0) {
        const [index, ms] = step.latency;
        setBackendLoad(members[index % members.length] as Backend, { latencyEwma: ms, latencyUpdatedAt: 0 });
      }
      set = shuffled(members, step.order);
      balancer.update(set);

      for (const pick of step.picks) {
        let result: Backend | undefined;
        if (hashing && pick.key !== undefined && pick.attempt > 0) {
          result = checkAttemptChain(balancer, set, pick.key, pick.attempt + 1)[pick.attempt];
        } else {
          result = balancer.pick(pick.key, pick.attempt);
          checkEligible(result, set, describeCall(pick.key, pick.attempt));
        }
        if (result !== undefined && pick.hold && held.length < MAX_HELD) {
          simulateAcquire(balancer, result);
          held.push(result);
          // Retries are exempt: a retry should leave the backend that just failed even if that puts
          // another one over the line (the contract asks for a different backend while one is left).
          if (options.boundedLoadFactor !== undefined && pick.attempt === 0) checkBoundedLoad(result, set, options.boundedLoadFactor, pick);
        }
        if (pick.release !== undefined && held.length > 0) {
          const [done] = held.splice(pick.release % held.length, 1) as [Backend];
          simulateRelease(balancer, done, OUTCOMES[pick.release % OUTCOMES.length]);
        }
      }
    }
  });
}

function applyChange(change: MembershipOp, live: Map<string, Backend>, held: Backend[], balancer: Balancer): void {
  switch (change.op) {
    case 'add':
      // A re-added id is a new Backend object: a balancer that kept the old one returns a stale object.
      if (!live.has(change.spec.id)) live.set(change.spec.id, createBackends([change.spec])[0] as Backend);
      return;
    case 'remove': {
      const leaving = live.get(change.id);
      if (!leaving) return;
      // The load balancer lets a removed backend's requests finish before it forgets it.
      for (let i = held.length - 1; i >= 0; i--) {
        if (held[i] === leaving) {
          held.splice(i, 1);
          simulateRelease(balancer, leaving);
        }
      }
      live.delete(change.id);
      return;
    }
    case 'setWeight': {
      const target = live.get(change.id);
      if (!target) return;
      (target as { weight: number }).weight = change.weight;
      setBackendLoad(target, { effectiveWeight: change.weight });
      return;
    }
  }
}

/**
 * Bounded load (Mirrokni et al., "Consistent Hashing with Bounded Loads"): after the request is
 * placed, no backend carries more than ⌈factor × total / n⌉ — n eligible backends, total the
 * requests in flight on them. Checked when every eligible backend has the same effective weight
 * (with unequal weights, implementations differ in how capacity is shared).
 */
function checkBoundedLoad(chosen: Backend, set: readonly Backend[], factor: number, pick: PickStep): void {
  let total = 0;
  let n = 0;
  let firstWeight: number | undefined;
  for (const b of set) {
    if (!(b.effectiveWeight > 0)) continue;
    if (firstWeight === undefined) firstWeight = b.effectiveWeight;
    else if (b.effectiveWeight !== firstWeight) return;
    total += b.inflight;
    n++;
  }
  const capacity = Math.ceil((factor * total) / n);
  if (chosen.inflight > capacity) {
    fail(
      `${describeCall(pick.key, pick.attempt)} put a request on ${describeBackend(chosen)}, which now has ${chosen.inflight} in flight, ` +
        `above the bound ⌈${factor} × ${total} / ${n}⌉ = ${capacity} (inflight: ${set.map((b) => `${b.id}=${b.inflight}`).join(', ')})`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// share: invariant 3

interface ShareScenario {
  specs: BackendSpec[];
  order: number;
  slowStart: [number, number] | undefined;
  previous: { mask: number; picks: number } | undefined;
  salt: number;
}

/**
 * Invariant 3: each backend's share of picks (or of keys, for hashing balancers) with `concurrency`
 * requests in flight, against `rule` (`'weighted'` or `'even'`).
 */
export function shareProperty(factory: () => Balancer, options: ResolvedCheckOptions, concurrency: number, rule: ShareRule): fc.IProperty<[ShareScenario]> {
  // 'served' is measured against the weighted share, with only a floor.
  const weighted = rule !== 'even';
  const floorOnly = rule === 'served';
  const scenario: fc.Arbitrary<ShareScenario> = fc.record({
    specs: backendSpecs({ minLength: 1, maxLength: 8, withBackups: false }),
    order: fc.nat(),
    slowStart: fc.option(fc.tuple(fc.nat(), fc.constantFrom(0, 0.25, 0.5)), { nil: undefined }),
    previous: fc.option(fc.record({ mask: fc.nat(), picks: fc.nat(20) }), { nil: undefined }),
    salt: fc.nat(),
  });

  return fc.property(scenario, ({ specs, order, slowStart, previous, salt }) => {
    const balancer = factory();
    const hashing = balancer.hashing === true;
    const backends = createBackends(specs);
    if (slowStart) {
      const target = backends[slowStart[0] % backends.length] as Backend;
      setBackendLoad(target, { effectiveWeight: Math.round(target.weight * slowStart[1] * 100) / 100 });
    }
    const traffic = new ClosedLoop(balancer, concurrency);
    // The balancer must converge to the new shares after a change, not only from a fresh start.
    if (previous) {
      const before = backends.filter((_, i) => (previous.mask >>> i) & 1);
      balancer.update(before);
      for (let i = 0; i < previous.picks; i++) traffic.request(before);
    }
    const set = shuffled(backends, order);
    balancer.update(set);
    if (countPositive(set) === 0) return;

    const counts = new Map<Backend, number>();
    let trials: number;
    if (hashing) {
      // Keys are mapped on an idle set: under load a bounded-load balancer spills keys on purpose.
      traffic.drain();
      const keyList = syntheticKeys(salt, options.keysPerRun);
      trials = keyList.length;
      for (const k of keyList) {
        const result = balancer.pick(k);
        checkEligible(result, set, describeCall(k, undefined));
        counts.set(result as Backend, (counts.get(result as Backend) ?? 0) + 1);
      }
    } else {
      trials = options.picksPerRun;
      for (let i = 0; i < trials; i++) {
        const result = traffic.request(set) as Backend;
        counts.set(result, (counts.get(result) ?? 0) + 1);
      }
    }

    const n = countPositive(set);
    const exact = options.share === 'exact' && !hashing;
    for (const backend of set) {
      const share = expectedShare(backend, set, weighted);
      const count = counts.get(backend) ?? 0;
      const expected = trials * share;
      const variance = trials * share * (1 - share) + (hashing ? (trials * trials * share) / HASH_POINTS : 0);
      const bound = (exact ? n + 1 : SIGMAS * Math.sqrt(variance) + 1) + options.shareTolerance * trials;
      if (floorOnly) {
        const floor = SERVED_FRACTION * expected - bound;
        if (count < floor) {
          fail(
            `${describeBackend(backend)} got ${count} of ${trials} picks ${concurrency === 1 ? 'made one at a time (each released before the next)' : `with ${concurrency} in flight`} ` +
              `(${percent(count / trials)}), below ${floor.toFixed(1)}: a backend must get at least ${SERVED_FRACTION} × its weighted share ` +
              `(${percent(share)} = effectiveWeight / Σ effectiveWeight) − ${bound.toFixed(1)} (${SIGMAS}σ) — it is being starved; set ${describeSet(set)}`,
          );
        }
        continue;
      }
      if (Math.abs(count - expected) > bound) {
        const what = hashing
          ? `${trials} keys`
          : `${trials} picks ${concurrency === 1 ? 'made one at a time (each released before the next)' : `with ${concurrency} in flight`}`;
        fail(
          `${describeBackend(backend)} got ${count} of ${what} (${percent(count / trials)}), expected ${expected.toFixed(1)} ` +
            `(${percent(share)} = ${weighted ? 'effectiveWeight / Σ effectiveWeight' : '1 / eligible backends, even shares'}) ` +
            `± ${bound.toFixed(1)} (${exact ? 'exact: eligible backends + 1' : `${SIGMAS}σ`}); set ${describeSet(set)}`,
        );
      }
    }
  });
}

/**
 * Under the `'served'` rule every backend must get at least this fraction of its weighted share (less
 * sampling noise): it is not starved, though the balancer may weigh other signals (latency).
 */
const SERVED_FRACTION = 0.5;

/** The service time every simulated request takes, in ms, recorded as its latency. */
const SERVICE_MS = 10;
/** The load balancer's default latency decay (`latencyDecayMs`). */
const LATENCY_DECAY_MS = 10_000;

/**
 * Steady traffic: at most `concurrency` requests in flight — before each pick the oldest is released
 * once the window is full, so with 1 every pick sees every backend idle — each new one placed by
 * `pick()` and acquired. Requests are equal: each takes `SERVICE_MS`, recorded on release as the load
 * balancer records a successful request's latency (`inflight` decremented, latency recorded, then
 * the `released` hook), on a virtual clock that advances 1 ms per request.
 */
class ClosedLoop {
  private readonly inflight: Backend[] = [];
  private head = 0;
  private now = 0;

  constructor(
    private readonly balancer: Balancer,
    private readonly concurrency: number,
  ) {}

  request(set: readonly Backend[]): Backend | undefined {
    this.now += 1;
    if (this.inflight.length - this.head >= this.concurrency) this.release(this.inflight[this.head++] as Backend);
    const result = this.balancer.pick();
    checkEligible(result, set, 'pick()');
    if (result === undefined) return undefined;
    simulateAcquire(this.balancer, result);
    this.inflight.push(result);
    return result;
  }

  /** Release every request still in flight. */
  drain(): void {
    while (this.head < this.inflight.length) this.release(this.inflight[this.head++] as Backend);
  }

  private release(backend: Backend): void {
    const target = mutable(backend);
    target.inflight = Math.max(0, target.inflight - 1);
    recordLatency(backend, SERVICE_MS, this.now, LATENCY_DECAY_MS);
    this.balancer.released?.(backend, RELEASED_OK);
  }
}

const RELEASED_OK: Outcome = { ok: true, status: 200, durationMs: SERVICE_MS };

function percent(fraction: number): string {
  return `${(fraction * 100).toFixed(1)}%`;
}

// ---------------------------------------------------------------------------------------------
// hashing-determinism: invariant 4 (and 5 on the same data)

interface DeterminismScenario {
  specs: BackendSpec[];
  orderA: number;
  orderB: number;
  keys: string[];
  salt: number;
}

/** Invariant 4: a key's backends depend on the set of ids and weights only, not on order or instance. */
export function determinismProperty(factory: () => Balancer, options: ResolvedCheckOptions): fc.IProperty<[DeterminismScenario]> {
  const scenario: fc.Arbitrary<DeterminismScenario> = fc.record({
    specs: backendSpecs({ minLength: 1, maxLength: 10, withBackups: false }),
    orderA: fc.nat(),
    orderB: fc.nat(),
    keys: keysArbitrary({ maxLength: 16 }),
    salt: fc.nat(),
  });

  return fc.property(scenario, ({ specs, orderA, orderB, keys, salt }) => {
    const first = factory();
    const second = factory();
    // Two instances, two sets of Backend objects: like two load balancers on two hosts.
    const backendsA = createBackends(specs);
    const backendsB = createBackends(specs);
    const setA = shuffled(backendsA, orderA);
    const setB = shuffled(backendsB, orderB);
    first.update(setA);
    second.update(setB);
    const attempts = Math.max(1, Math.min(3, countPositive(setA)));
    const keyList = [...keys, ...syntheticKeys(salt, Math.max(8, options.keysPerRun >> 2))];

    const chains = new Map<string, (Backend | undefined)[]>();
    for (const k of keyList) {
      const chainA = checkAttemptChain(first, setA, k, attempts);
      const chainB = checkAttemptChain(second, setB, k, attempts);
      for (let attempt = 0; attempt < attempts; attempt++) {
        const a = chainA[attempt];
        const b = chainB[attempt];
        if (a?.id !== b?.id) {
          fail(
            `${describeCall(k, attempt)} returned ${describeBackend(a)} on one instance and ${describeBackend(b)} on another ` +
              `given the same backends in a different order (${describeSet(setA)} vs ${describeSet(setB)}): hashing must depend on ids, not positions`,
          );
        }
        const again = first.pick(k, attempt);
        if (again !== a) {
          fail(`${describeCall(k, attempt)} returned ${describeBackend(a)}, then ${describeBackend(again)} with nothing changed in between`);
        }
      }
      chains.set(k, chainA);
    }

    // The same instance, updated again with the same set in another order, maps every key the same.
    const reordered = shuffled(backendsA, orderB);
    first.update(reordered);
    for (const [k, chain] of chains) {
      for (let attempt = 0; attempt < attempts; attempt++) {
        const result = first.pick(k, attempt);
        if (result !== chain[attempt]) {
          fail(
            `${describeCall(k, attempt)} returned ${describeBackend(chain[attempt])}, then ${describeBackend(result)} after update() ` +
              `with the same backends in another order (${describeSet(setA)} then ${describeSet(reordered)})`,
          );
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------
// hashing-removal: invariant 4 — minimal disruption

interface RemovalScenario {
  specs: BackendSpec[];
  leaving: number;
  orderBefore: number;
  orderAfter: number;
  salt: number;
}

/** Invariant 4: when one backend leaves, only its keys move (or a bounded fraction of all keys). */
export function removalProperty(factory: () => Balancer, options: ResolvedCheckOptions): fc.IProperty<[RemovalScenario]> {
  const scenario: fc.Arbitrary<RemovalScenario> = fc.record({
    specs: backendSpecs({ minLength: 3, maxLength: 10, withBackups: false, withMaxConnections: false }),
    leaving: fc.nat(),
    orderBefore: fc.nat(),
    orderAfter: fc.nat(),
    salt: fc.nat(),
  });

  return fc.property(scenario, ({ specs, leaving, orderBefore, orderAfter, salt }) => {
    const balancer = factory();
    const backends = createBackends(specs);
    const before = shuffled(backends, orderBefore);
    const gone = backends[leaving % backends.length] as Backend;
    const after = shuffled(
      backends.filter((b) => b !== gone),
      orderAfter,
    );
    const positivesBefore = countPositive(before);
    if (countPositive(after) === 0) return;

    const keyList = syntheticKeys(salt, options.keysPerRun);
    balancer.update(before);
    const owners = keyList.map((k) => {
      const owner = balancer.pick(k);
      checkEligible(owner, before, describeCall(k, undefined));
      return owner as Backend;
    });
    balancer.update(after);
    // A fresh instance that only ever saw the new set: two hosts, one restarted, must agree.
    const fresh = factory();
    fresh.update(shuffled(after, orderBefore));

    let moved = 0;
    for (let i = 0; i < keyList.length; i++) {
      const k = keyList[i] as string;
      const owner = owners[i] as Backend;
      const now = balancer.pick(k);
      checkEligible(now, after, describeCall(k, undefined));
      const freshOwner = fresh.pick(k);
      if (freshOwner?.id !== now?.id) {
        fail(
          `after ${describeBackend(gone)} left, ${describeCall(k, undefined)} returned ${describeBackend(now)} on the instance that saw the change ` +
            `and ${describeBackend(freshOwner)} on a fresh instance given the same set ${describeSet(after)}: the mapping must depend only on the current set`,
        );
      }
      if (now === owner) continue;
      moved++;
      if (options.onlyFromLeaving && owner !== gone) {
        fail(
          `when ${describeBackend(gone)} left ${describeSet(before)}, key ${JSON.stringify(k)} moved from ${describeBackend(owner)} to ${describeBackend(now)}; ` +
            `only keys of the backend that left may move (pass onlyFromLeaving: false for algorithms without this guarantee, such as Maglev)`,
        );
      }
    }

    const leavingShare = expectedShare(gone, before, options.weighted);
    const bound = options.maxMovedFraction({ backends: positivesBefore, leavingShare, keys: keyList.length });
    const fraction = moved / keyList.length;
    if (fraction > bound) {
      fail(
        `when ${describeBackend(gone)} (share ${percent(leavingShare)}) left ${describeSet(before)}, ${moved} of ${keyList.length} keys moved ` +
          `(${percent(fraction)}), more than the bound ${percent(bound)} (maxMovedFraction)`,
      );
    }
  });
}
