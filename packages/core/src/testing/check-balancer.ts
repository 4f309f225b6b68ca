/**
 * `checkBalancer`: the invariant suite every `Balancer` must pass — the built-ins and users' own.
 * It runs fast-check properties (see `balancer-properties.ts`) and throws an `Error` whose message
 * names the broken invariant, shows the shrunk counterexample and gives the seed and path that replay
 * it. Plain functions that throw, so it works in vitest, jest, `node:test` or a script:
 *
 * ```ts
 * it('passes the balancer invariants', () => {
 *   checkBalancer(() => new MyBalancer(), { weighted: true, share: 'statistical' });
 * });
 * ```
 *
 * What to expect of shares comes from the options, else from the balancer's own `shares`
 * declaration (every built-in has one, so `checkBalancer(() => createBalancer('round-robin'))`
 * checks even shares), else the default: weights followed at every load, within sampling noise.
 *
 * The invariants (numbers as in the design notes):
 * 1. `pick` never returns a backend outside the set last passed to `update()` (by identity) or one
 *    with `effectiveWeight` 0 — across any sequence of adds, removes and weight changes;
 * 2. it returns `undefined` exactly when no backend in the set has a positive effective weight;
 * 3. traffic converges to `effectiveWeight / Σ effectiveWeight` (or evenly with `weighted: false`)
 *    under steady overlapping traffic (`concurrency` requests in flight, invariant "share") and with
 *    one request at a time (acquire → release → acquire, invariant "serial-share", as `serial`
 *    says): within a few picks for deterministic algorithms (`share: 'exact'`), within 5σ for random
 *    and load-aware ones, and over keys for hashing ones (`'statistical'`). Released requests post
 *    equal latencies, as the load balancer records them, so latency-aware balancers are held to the
 *    same shares when backends are equally fast — a balancer that never tries an unmeasured backend,
 *    or whose tie-break always favours the heaviest idle one, fails here;
 * 4. hashing balancers map a key to the same backend whatever the order of `update()`'s input and on
 *    any instance, and when one backend leaves, only its keys move (`onlyFromLeaving`) and about its
 *    share of them (`maxMovedFraction`);
 * 5. `pick(key, attempt > 0)` returns an eligible backend, and for hashing balancers one not returned
 *    by the earlier attempts while another is eligible;
 * 6. all of the above hold while requests are in flight, simulated as the load balancer does it
 *    (`inflight` incremented before `acquired`, decremented before `released`); with
 *    `boundedLoadFactor`, no first-attempt pick places a request above ⌈factor × average⌉ (a retry
 *    may, since it must leave the backend that just failed).
 */
import fc from 'fast-check';
import type { Balancer, ShareContract, ShareRule } from '../balancers/balancer';
import { InvalidOptionError } from '../errors';
import { finiteNumber, isPlainObject, optionalBoolean } from '../validate/checks';
import { createBackends } from './backends';
import { determinismProperty, membershipProperty, removalProperty, shareProperty, type ResolvedCheckOptions } from './balancer-properties';
import { checkEligible, InvariantViolation } from './check-support';

/** How `checkBalancer` checks traffic shares (invariant 3). */
export type ShareCheck = 'exact' | 'statistical' | 'none';

/** The invariant families `checkBalancer` runs, by name (used in error messages and `invariants`). */
export type InvariantName = 'membership' | 'share' | 'serial-share' | 'hashing-determinism' | 'hashing-removal';

/** A backend leaving a hashing balancer, as passed to a `maxMovedFraction` function. */
export interface KeyRemoval {
  /** Backends with a positive effective weight before the removal. */
  backends: number;
  /** The share of keys the leaving backend should have held: w / Σw (or 1 / backends, unweighted). */
  leavingShare: number;
  /** Keys that were mapped. */
  keys: number;
}

export interface CheckBalancerOptions {
  /** fast-check seed: the same seed replays the same cases. Default 20240611. */
  seed?: number;
  /** fast-check replay path, printed with a failure; use with `seed` and `invariants` to replay it. */
  path?: string;
  /** Cases per invariant family. Default 60. */
  numRuns?: number;
  /**
   * Whether traffic should follow weights under load (invariant "share"), and also one request at a
   * time unless `serial` says otherwise. With `false` (round-robin, …) every backend with a positive
   * weight should get an equal share; weight-0 backends must still get nothing. Default: what the
   * balancer declares in `shares.loaded` (`'even'` → false), else true.
   */
  weighted?: boolean;
  /**
   * What shares should look like with one request at a time (invariant "serial-share"):
   * `'weighted'`, `'even'` (HAProxy's leastconn rotates through idle backends whatever their
   * weights), `'served'` (no backend starved: each gets at least half its weighted share — peak
   * EWMA, whose decaying estimates favour the backend used longest ago) or `'none'` (not checked).
   * Default: from `weighted` when given, else the balancer's `shares.serial`, else `'weighted'`;
   * `'none'` when `share` is `'none'`. Hashing balancers map keys on an idle set already, so for
   * them only "share" runs.
   */
  serial?: ShareRule;
  /**
   * How shares are checked (invariant 3). Default `'statistical'`, right for every share-balanced
   * algorithm: each backend within 5σ of its share over `picksPerRun` picks (over `keysPerRun` keys
   * for hashing balancers, allowing also the imbalance of a 1024-point hash ring). `'exact'` is for
   * deterministic algorithms (round-robin, smooth WRR): within (eligible backends + 1) picks of the
   * exact share; hashing balancers are always checked statistically. `'none'` skips the check, for
   * algorithms that do not balance shares by design (`'first'` fills backends in order). Default: from
   * the balancer's `shares` declaration (`exact` → 'exact', `loaded: 'none'` → 'none'), else
   * `'statistical'`.
   */
  share?: ShareCheck;
  /** Extra slack on every share check, as a fraction of the picks (or keys). Default 0. */
  shareTolerance?: number;
  /** Picks per share check for non-hashing balancers. Default 1000. */
  picksPerRun?: number;
  /** Keys per case for hashing balancers' share and removal checks. Default 256. */
  keysPerRun?: number;
  /**
   * Requests kept in flight while shares are measured (each pick is acquired; the oldest request is
   * released once this many are open). Load-aware balancers need overlapping requests to spread by
   * weight; with 1, requests never overlap. Default 100.
   */
  concurrency?: number;
  /**
   * The largest fraction of keys that may move when one backend leaves a hashing balancer: a
   * number, or a function of the removal. Default `defaultMaxMovedFraction` (the leaving backend's
   * share plus sampling slack). Maglev moves up to about twice that:
   * `maxMovedFraction: (r) => defaultMaxMovedFraction(r, 2)`.
   */
  maxMovedFraction?: number | ((removal: KeyRemoval) => number);
  /**
   * Whether only keys of the backend that left may move. Default true (ring hash, rendezvous);
   * Maglev's table refill moves a few other keys, so pass false for it.
   */
  onlyFromLeaving?: boolean;
  /**
   * For bounded-load balancers: check that no first attempt (`attempt` 0) places a request on a
   * backend above ⌈factor × in-flight total / eligible backends⌉, counting the new request (checked
   * when eligible backends have equal weights). Default: not checked.
   */
  boundedLoadFactor?: number;
  /** Which invariant families to run. Default all that apply (the hashing ones only to hashing balancers). */
  invariants?: readonly InvariantName[];
}

/** Default fast-check seed: fixed, so a suite is reproducible run to run. */
const DEFAULT_SEED = 20240611;

/**
 * The default bound on keys moved when one backend leaves: `multiplier × leavingShare` plus 5σ of
 * slack for the sampled keys and the imbalance of a 1024-point ring. `multiplier` defaults to 1 (a
 * perfect consistent hash moves exactly the leaving backend's keys); Maglev needs 2.
 */
export function defaultMaxMovedFraction(removal: KeyRemoval, multiplier = 1): number {
  const s = removal.leavingShare;
  return multiplier * s + 5 * Math.sqrt((s * (1 - s)) / Math.max(1, removal.keys) + s / 1024);
}

const ALL_INVARIANTS: readonly InvariantName[] = ['membership', 'share', 'serial-share', 'hashing-determinism', 'hashing-removal'];
const SHARE_RULES: readonly ShareRule[] = ['weighted', 'even', 'served', 'none'];

/**
 * Run the invariant suite on the balancers `factory` makes (a fresh one per call — it is called
 * several times per case). Returns normally when every invariant holds; otherwise throws an `Error`
 * whose message names the invariant, the counterexample, and the seed and path that replay it.
 * Invalid options throw an `InvalidOptionError`.
 */
export function checkBalancer(factory: () => Balancer, options: CheckBalancerOptions = {}): void {
  if (typeof factory !== 'function') throw new InvalidOptionError('factory', factory, 'must be a function returning a new Balancer');
  if (!isPlainObject(options as unknown)) throw new InvalidOptionError('options', options, 'must be an object');
  const seed = options.seed === undefined ? DEFAULT_SEED : finiteNumber('options.seed', options.seed, { integer: true });
  const numRuns = options.numRuns === undefined ? 60 : finiteNumber('options.numRuns', options.numRuns, { min: 1, integer: true });
  if (options.path !== undefined && typeof options.path !== 'string') throw new InvalidOptionError('options.path', options.path, 'must be a string');
  if (options.share !== undefined && options.share !== 'exact' && options.share !== 'statistical' && options.share !== 'none') {
    throw new InvalidOptionError('options.share', options.share, "must be 'exact', 'statistical' or 'none'");
  }
  if (options.serial !== undefined && !SHARE_RULES.includes(options.serial)) {
    throw new InvalidOptionError('options.serial', options.serial, "must be 'weighted', 'even', 'served' or 'none'");
  }
  const weightedOption = options.weighted === undefined ? undefined : optionalBoolean('options.weighted', options.weighted, true);
  const sample = makeBalancer(factory);
  const declared = declaredShares(sample);
  const share: ShareCheck =
    options.share ?? (declared === undefined ? 'statistical' : declared.loaded === 'none' ? 'none' : declared.exact ? 'exact' : 'statistical');
  const loaded: ShareRule =
    weightedOption !== undefined ? (weightedOption ? 'weighted' : 'even') : declared === undefined || declared.loaded === 'none' ? 'weighted' : declared.loaded;
  const weighted = loaded !== 'even';
  const serial: ShareRule =
    options.serial ??
    (options.share === 'none'
      ? 'none'
      : weightedOption !== undefined
        ? weightedOption
          ? 'weighted'
          : 'even'
        : (declared?.serial ?? (share === 'none' ? 'none' : 'weighted')));
  const maxMoved = options.maxMovedFraction;
  if (maxMoved !== undefined && typeof maxMoved !== 'function') finiteNumber('options.maxMovedFraction', maxMoved, { min: 0, max: 1 });
  const invariants = options.invariants ?? ALL_INVARIANTS;
  for (const name of invariants) {
    if (!ALL_INVARIANTS.includes(name)) throw new InvalidOptionError('options.invariants', name, `must list some of ${ALL_INVARIANTS.join(', ')}`);
  }
  const resolved: ResolvedCheckOptions = Object.freeze({
    weighted,
    serial,
    share,
    shareTolerance: options.shareTolerance === undefined ? 0 : finiteNumber('options.shareTolerance', options.shareTolerance, { min: 0, max: 1 }),
    picksPerRun: options.picksPerRun === undefined ? 1000 : finiteNumber('options.picksPerRun', options.picksPerRun, { min: 1, integer: true }),
    keysPerRun: options.keysPerRun === undefined ? 256 : finiteNumber('options.keysPerRun', options.keysPerRun, { min: 8, integer: true }),
    concurrency: options.concurrency === undefined ? 100 : finiteNumber('options.concurrency', options.concurrency, { min: 1, integer: true }),
    maxMovedFraction: maxMoved === undefined ? (r: KeyRemoval) => defaultMaxMovedFraction(r) : typeof maxMoved === 'number' ? () => maxMoved : maxMoved,
    onlyFromLeaving: optionalBoolean('options.onlyFromLeaving', options.onlyFromLeaving, true),
    boundedLoadFactor: options.boundedLoadFactor === undefined ? undefined : finiteNumber('options.boundedLoadFactor', options.boundedLoadFactor, { min: 1 }),
  });

  const name = sample.name;
  const hashing = sample.hashing === true;
  const make = () => makeBalancer(factory);
  const parameters: fc.Parameters<[unknown]> = { seed, numRuns, ...(options.path !== undefined ? { path: options.path } : {}) };
  const runs: [InvariantName, () => fc.RunDetails<[unknown]>][] = [];
  if (invariants.includes('membership')) {
    runFixedCases(make, name, seed);
    runs.push(['membership', () => fc.check(membershipProperty(make, resolved), parameters)]);
  }
  if (invariants.includes('share') && share !== 'none') {
    runs.push(['share', () => fc.check(shareProperty(make, resolved, resolved.concurrency, loaded), parameters)]);
  }
  if (!hashing && invariants.includes('serial-share') && serial !== 'none') {
    runs.push(['serial-share', () => fc.check(shareProperty(make, resolved, 1, serial), parameters)]);
  }
  if (hashing && invariants.includes('hashing-determinism')) {
    runs.push(['hashing-determinism', () => fc.check(determinismProperty(make, resolved), parameters)]);
  }
  if (hashing && invariants.includes('hashing-removal')) {
    runs.push(['hashing-removal', () => fc.check(removalProperty(make, resolved), parameters)]);
  }

  for (const [invariant, run] of runs) {
    const details = run();
    if (details.failed) throw new Error(failureMessage(name, invariant, details, seed), { cause: details.errorInstance });
  }
}

/** The balancer's `shares` declaration, if it has a well-formed one. */
function declaredShares(balancer: Balancer): ShareContract | undefined {
  const shares = (balancer as { shares?: unknown }).shares;
  if (shares === undefined) return undefined;
  const s = shares as Partial<ShareContract> | null;
  if (
    typeof s !== 'object' ||
    s === null ||
    !SHARE_RULES.includes(s.serial as ShareRule) ||
    !SHARE_RULES.includes(s.loaded as ShareRule) ||
    typeof s.exact !== 'boolean'
  ) {
    throw new InvalidOptionError(`${balancer.name}.shares`, shares, "must be { serial, loaded: 'weighted' | 'even' | 'served' | 'none', exact: boolean }");
  }
  return s as ShareContract;
}

function makeBalancer(factory: () => Balancer): Balancer {
  const balancer = factory();
  if (typeof balancer !== 'object' || balancer === null || typeof balancer.update !== 'function' || typeof balancer.pick !== 'function') {
    throw new InvalidOptionError('factory', balancer, 'must return a Balancer (an object with update and pick)');
  }
  return balancer;
}

/** Edge cases every balancer must get right, checked directly so their failure reads plainly. */
function runFixedCases(factory: () => Balancer, name: string, seed: number): void {
  const cases: [string, () => void][] = [
    [
      'an empty set',
      () => {
        const balancer = factory();
        balancer.update([]);
        for (const [k, attempt] of CALLS) checkEligible(balancer.pick(k, attempt), [], `pick(${callArgs(k, attempt)}) after update([])`);
      },
    ],
    [
      'a set whose only backend has weight 0',
      () => {
        const balancer = factory();
        const set = createBackends([{ id: 'zero', address: 'zero:80', weight: 0 }]);
        balancer.update(set);
        for (const [k, attempt] of CALLS) checkEligible(balancer.pick(k, attempt), set, `pick(${callArgs(k, attempt)})`);
      },
    ],
    [
      'a set of one backend',
      () => {
        const balancer = factory();
        const set = createBackends([{ id: 'only', address: 'only:80' }]);
        balancer.update(set);
        for (const [k, attempt] of CALLS) checkEligible(balancer.pick(k, attempt), set, `pick(${callArgs(k, attempt)})`);
        balancer.update([]);
        checkEligible(balancer.pick(), [], 'pick() after the only backend was removed');
      },
    ],
  ];
  for (const [title, run] of cases) {
    try {
      run();
    } catch (error) {
      if (!(error instanceof InvariantViolation)) throw error;
      throw new Error(
        `checkBalancer(${name}): invariant "membership" failed on ${title}: ${error.message}\n` + `(a fixed case, the same for every seed; seed: ${seed})`,
        { cause: error },
      );
    }
  }
}

const CALLS: readonly [string | undefined, number | undefined][] = [
  [undefined, undefined],
  ['user-1', undefined],
  ['user-1', 0],
  ['user-1', 1],
  ['user-1', 2],
];

function callArgs(k: string | undefined, attempt: number | undefined): string {
  if (k === undefined) return attempt === undefined ? '' : `undefined, ${attempt}`;
  return attempt === undefined ? JSON.stringify(k) : `${JSON.stringify(k)}, ${attempt}`;
}

const MAX_COUNTEREXAMPLE_CHARS = 4000;

function failureMessage(name: string, invariant: InvariantName, details: fc.RunDetails<[unknown]>, seed: number): string {
  const error = details.errorInstance;
  const reason =
    error instanceof InvariantViolation ? error.message : `the balancer threw: ${error instanceof Error ? `${error.name}: ${error.message}` : String(error)}`;
  let counterexample = details.counterexample === null ? '(none)' : fc.stringify(details.counterexample[0]);
  if (counterexample.length > MAX_COUNTEREXAMPLE_CHARS) counterexample = `${counterexample.slice(0, MAX_COUNTEREXAMPLE_CHARS)}…`;
  const path = details.counterexamplePath ?? '';
  return (
    `checkBalancer(${name}): invariant "${invariant}" failed: ${reason}\n` +
    `Counterexample: ${counterexample}\n` +
    `Failed after ${details.numRuns} case(s), shrunk ${details.numShrinks} time(s). seed: ${details.seed}, path: ${JSON.stringify(path)}\n` +
    `Replay: checkBalancer(factory, { seed: ${seed}, path: ${JSON.stringify(path)}, invariants: ['${invariant}'] })`
  );
}
