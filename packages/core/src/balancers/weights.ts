/**
 * Weight arithmetic shared by the non-hashing balancers. Every balancer works on `effectiveWeight`
 * (the configured weight scaled by slow start and agent percentages, often fractional), never on
 * `weight`; a backend whose effective weight is 0 stays in the set for sticky traffic but takes no
 * new traffic, so it is left out of whatever `update()` precomputes.
 */
import type { Backend } from '../backend';
import type { ShareContract } from './balancer';

/**
 * True when `backend` may be returned by `pick`. Written as `> 0` so that NaN, which no validated
 * weight should ever be, also counts as "no traffic" rather than poisoning a table.
 */
export function isSelectable(backend: Backend): boolean {
  return backend.effectiveWeight > 0;
}

/** The backends that may take new traffic, in the order given. */
export function selectableBackends(backends: readonly Backend[]): Backend[] {
  const out: Backend[] = [];
  for (const backend of backends) if (isSelectable(backend)) out.push(backend);
  return out;
}

/** Greatest common divisor of two non-negative integers. */
export function gcd(a: number, b: number): number {
  while (b !== 0) {
    const t = a % b;
    a = b;
    b = t;
  }
  return a;
}

/** Traffic follows weights at any load, within sampling noise (random draws, load-aware choices, hashing over keys). */
export const WEIGHTED_SHARES: ShareContract = Object.freeze({ serial: 'weighted', loaded: 'weighted', exact: false });
/** Traffic follows weights at any load, every prefix within a pick or so per backend (smooth WRR). */
export const EXACT_WEIGHTED_SHARES: ShareContract = Object.freeze({ serial: 'weighted', loaded: 'weighted', exact: true });
/** Every backend with a positive weight gets the same share, exactly (round robin). */
export const EXACT_EVEN_SHARES: ShareContract = Object.freeze({ serial: 'even', loaded: 'even', exact: true });
