/**
 * Helpers shared by the `checkBalancer` properties: deterministic shuffles, synthetic keys, the share
 * each backend should get, and the eligibility check every pick goes through. Internal to the
 * testing kit.
 */
import type { Backend } from '../backend';
import type { Balancer } from '../balancers/balancer';
import { ErrorCodes, FulcrumError } from '../errors';
import { createSeededRandom } from '../random';

/** A property failed; the message says which rule, with what, and what was expected. */
export class InvariantViolation extends FulcrumError {
  readonly code = ErrorCodes.INVARIANT_VIOLATION;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'InvariantViolation';
  }
}

/** Throw an `InvariantViolation`: the predicate failed for the current case. */
export function fail(message: string): never {
  throw new InvariantViolation(message);
}

/** A copy of `items` in a pseudo-random order fixed by `seed` (Fisher–Yates over sfc32). */
export function shuffled<T>(items: readonly T[], seed: number): T[] {
  const copy = items.slice();
  const random = createSeededRandom(seed);
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const tmp = copy[i] as T;
    copy[i] = copy[j] as T;
    copy[j] = tmp;
  }
  return copy;
}

/**
 * `count` distinct keys shaped like real ones — user ids, client IPs, session tokens — varied by
 * `salt`. Generated rather than drawn from fast-check so that statistics over hundreds of keys cost
 * nothing to shrink; arbitrary Unicode keys come from `arbitraries.key()` alongside them.
 */
export function syntheticKeys(salt: number, count: number): string[] {
  const out = new Array<string>(count);
  for (let i = 0; i < count; i++) {
    switch (i % 3) {
      case 0:
        out[i] = `user-${salt}-${i}`;
        break;
      case 1:
        out[i] = `10.${salt % 256}.${(i >>> 8) & 255}.${i & 255}`;
        break;
      default:
        out[i] = `sess:${(Math.imul(salt ^ 0x5bd1e995, 2654435761) + i * 40503) >>> 0}`.concat(i.toString(36));
    }
  }
  return out;
}

/** How many backends of `set` have a positive effective weight (the eligible ones). */
export function countPositive(set: readonly Backend[]): number {
  let n = 0;
  for (const b of set) if (b.effectiveWeight > 0) n++;
  return n;
}

/**
 * The share of traffic each backend should get: `effectiveWeight / Σ effectiveWeight`, or
 * `1 / (number of positive-weight backends)` when the balancer is unweighted; 0 for weight 0.
 */
export function expectedShare(backend: Backend, set: readonly Backend[], weighted: boolean): number {
  if (!(backend.effectiveWeight > 0)) return 0;
  if (!weighted) return 1 / countPositive(set);
  let total = 0;
  for (const b of set) if (b.effectiveWeight > 0) total += b.effectiveWeight;
  return backend.effectiveWeight / total;
}

/** `"id"` or `undefined`, for messages. */
export function describeBackend(backend: Backend | undefined): string {
  return backend === undefined ? 'undefined' : JSON.stringify(backend.id);
}

/** `[a (w=1), b (w=0)]`, truncated for large sets. */
export function describeSet(set: readonly Backend[]): string {
  const shown = set.slice(0, 12).map((b) => `${JSON.stringify(b.id)} (w=${b.effectiveWeight})`);
  if (set.length > shown.length) shown.push(`… ${set.length - shown.length} more`);
  return `[${shown.join(', ')}]`;
}

/** `pick("key", 1)` as the caller wrote it, for messages. */
export function describeCall(key: string | undefined, attempt: number | undefined): string {
  const args =
    key === undefined
      ? attempt === undefined
        ? ''
        : `undefined, ${attempt}`
      : attempt === undefined
        ? JSON.stringify(key)
        : `${JSON.stringify(key)}, ${attempt}`;
  return `pick(${args})`;
}

/**
 * Invariants 1 and 2 for one pick: `result` is `undefined` exactly when `set` has no backend with a
 * positive effective weight, and otherwise is one of the very `Backend` objects of `set` (identity,
 * not id: a stale object of a removed-and-re-added backend is not in the set) with a positive weight.
 */
export function checkEligible(result: Backend | undefined, set: readonly Backend[], call: string): void {
  const positives = countPositive(set);
  if (positives === 0) {
    if (result !== undefined) {
      fail(
        `${call} returned ${describeBackend(result)}, but no backend in the set has a positive effectiveWeight (set ${describeSet(set)}); it must return undefined`,
      );
    }
    return;
  }
  if (result === undefined) {
    fail(`${call} returned undefined, but ${positives} backend(s) in the set have a positive effectiveWeight (set ${describeSet(set)})`);
  }
  if (!set.includes(result)) {
    const sameId = set.some((b) => b.id === result.id);
    fail(
      `${call} returned ${describeBackend(result)}, which is not in the set last passed to update() (set ${describeSet(set)})` +
        (sameId ? '; a backend with that id is, but it is a different object: the balancer kept a stale one' : ''),
    );
  }
  if (!(result.effectiveWeight > 0)) {
    fail(
      `${call} returned ${describeBackend(result)}, whose effectiveWeight is ${result.effectiveWeight}; weight-0 backends take no new traffic (set ${describeSet(set)})`,
    );
  }
}

/**
 * Invariant 5 for hashing balancers: `pick(key, 0..attempts-1)` are all eligible and pairwise
 * distinct while fewer attempts than eligible backends are asked for. Returns the chain.
 */
export function checkAttemptChain(balancer: Balancer, set: readonly Backend[], key: string, attempts: number): (Backend | undefined)[] {
  const positives = countPositive(set);
  const chain: (Backend | undefined)[] = [];
  for (let attempt = 0; attempt < attempts; attempt++) {
    const result = balancer.pick(key, attempt);
    checkEligible(result, set, describeCall(key, attempt));
    if (attempt > 0 && attempt < positives && result !== undefined) {
      const earlier = chain.indexOf(result);
      if (earlier !== -1) {
        fail(
          `${describeCall(key, attempt)} returned ${describeBackend(result)}, the same backend as ${describeCall(key, earlier)}, ` +
            `although ${positives} backends are eligible; a retry must go to another backend while one is left (set ${describeSet(set)})`,
        );
      }
    }
    chain.push(result);
  }
  return chain;
}
