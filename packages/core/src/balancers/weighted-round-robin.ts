/**
 * Smooth weighted round robin, as in nginx (`ngx_http_upstream_get_peer` in
 * ngx_http_upstream_round_robin.c): at every step each backend's `current` grows by its weight, the
 * backend with the largest `current` is chosen (the first one on a tie) and loses the total weight.
 * Weights 5, 1, 1 give `a a b a c a a`: the heavy backend's turns are spread through the cycle rather
 * than bunched, and after any prefix of the sequence every backend is within one pick of its exact
 * share (that is what "smooth" buys over classic WRR's `a a a a a b c`).
 *
 * nginx scans every backend on every pick (O(n), ~2.8 µs at 1000 backends in JavaScript). Here the
 * whole cycle is computed once in `update()` and `pick()` reads the next entry of a table.
 *
 * Building the cycle. With integer weights w_i (total W) the key of backend i at step t is
 * `t·w_i − W·k_i`, k_i being its picks so far: a line in t that drops by W when i is picked. The
 * maximum of n such lines is kept in a kinetic tournament tree — each internal node caches the winner
 * of its subtree and the first step at which the loser overtakes it — so each step costs O(log n)
 * plus the overtakes that fall due (a handful per step in practice), instead of nginx's O(n). The result is nginx's sequence exactly (a test
 * compares it with a literal transcription of nginx's loop).
 *
 * Turning weights into integers (the approximations, all applied in `update()`):
 * - Integer effective weights are used as they are, divided by their greatest common divisor, so
 *   5, 1, 1 is a cycle of 7 and ten backends of weight 3 a cycle of 10.
 * - Fractional weights (slow start scales weights, e.g. to 0.37) are counted in hundredths of a
 *   weight unit — `FRACTION_RESOLUTION` — or in hundredths of the largest weight when every weight is
 *   below 1. A hundredth is finer than any slow-start step matters and keeps cycles short (1000
 *   backends of weight 1 during a ramp: a cycle of at most 100,000 entries, built in milliseconds).
 *   A positive weight never rounds to 0: it gets at least one slot.
 * - Cycles are capped at `MAX_CYCLE` = 2^18 entries by scaling every weight by the same factor and
 *   rounding, again with at least one slot each. A backend's share is then off, relative to itself,
 *   by at most 0.5/s (s: its unrounded slots) plus n/(2^18 − n) for the rounding of the whole set —
 *   under 0.6% with 1000 backends of similar weight, and typically far less since roundings cancel.
 *   Within the cap, integer weights are exact. The cap bounds the slow path: building costs
 *   O((W + n) log n), about 0.5 µs per entry at 1000 backends of distinct weights, so a full-length
 *   cycle takes ~150 ms and 1 MB of references; 2^20 would make a single `update()` block for over
 *   half a second.
 *
 * A set with the same backends and the same integer weights keeps its place in the cycle; any other
 * change starts the new cycle from its beginning (nginx likewise resets `current` on reconfiguration).
 * Smoothness makes that cheap: every prefix of a cycle is already within one pick per backend of the
 * exact shares.
 */
import type { Backend } from '../backend';
import type { Balancer } from './balancer';
import { EXACT_WEIGHTED_SHARES, gcd, selectableBackends } from './weights';

/** The longest cycle `update()` builds; longer ones are scaled down (see the header). */
export const MAX_CYCLE = 1 << 18;
/** Fractional weights are counted in 1/FRACTION_RESOLUTION of a weight unit (see the header). */
export const FRACTION_RESOLUTION = 100;

export class SmoothWeightedRoundRobin implements Balancer {
  readonly name = 'weighted-round-robin';
  /** nginx's smooth WRR: weighted shares, every prefix within a pick per backend, at any load. */
  readonly shares = EXACT_WEIGHTED_SHARES;
  private cycle: Backend[] = [];
  private position = 0;
  private members: Backend[] = [];
  private slots: number[] = [];

  /** Takes no options; the parameter exists so that every balancer has the same constructor shape. */
  constructor(_options?: unknown) {}

  update(backends: readonly Backend[]): void {
    const members = selectableBackends(backends);
    const slots = integerWeights(
      members.map((b) => b.effectiveWeight),
      MAX_CYCLE,
    );
    if (sameList(members, this.members) && sameList(slots, this.slots)) return;
    const order = smoothWeightedSequence(slots);
    const cycle = new Array<Backend>(order.length);
    for (let i = 0; i < order.length; i++) cycle[i] = members[order[i]!]!;
    this.members = members;
    this.slots = slots;
    this.cycle = cycle;
    this.position = 0;
  }

  /** The next backend of the cycle; a retry (`attempt > 0`) simply takes the next entry. */
  pick(_key?: string, _attempt?: number): Backend | undefined {
    // `position` is always in [0, length) or 0 for an empty cycle, where the read yields undefined.
    const i = this.position;
    const next = i + 1;
    this.position = next >= this.cycle.length ? 0 : next;
    return this.cycle[i];
  }
}

/**
 * Positive integers proportional to `weights` (each > 0), reduced by their GCD, with a sum of at
 * most `maxTotal` (unless there are more weights than that: then one each). See the file header for
 * the resolution of fractional weights and the scaling past the cap.
 */
export function integerWeights(weights: readonly number[], maxTotal: number): number[] {
  const n = weights.length;
  if (n === 0) return [];
  let slots: number[];
  if (weights.every((w) => Number.isInteger(w))) {
    slots = weights.slice();
  } else {
    let largest = 0;
    for (const w of weights) if (w > largest) largest = w;
    const scale = FRACTION_RESOLUTION / Math.min(1, largest);
    slots = weights.map((w) => Math.max(1, Math.round(w * scale)));
  }
  slots = reduce(slots);
  let total = 0;
  for (const s of slots) total += s;
  if (total > maxTotal) {
    if (n >= maxTotal) return slots.map(() => 1);
    // Rounding and the minimum of one slot each add at most one per backend, hence `maxTotal − n`.
    const factor = (maxTotal - n) / total;
    slots = reduce(slots.map((s) => Math.max(1, Math.round(s * factor))));
  }
  return slots;
}

function reduce(slots: number[]): number[] {
  let divisor = 0;
  for (const s of slots) divisor = gcd(s, divisor);
  return divisor > 1 ? slots.map((s) => s / divisor) : slots;
}

/**
 * One full cycle of nginx's smooth weighted round robin over integer weights `slots` (each ≥ 1):
 * the index chosen at each step, `sum(slots)` steps long. O((W + n) log n) with the kinetic
 * tournament described in the file header.
 */
export function smoothWeightedSequence(slots: readonly number[]): Int32Array {
  const n = slots.length;
  let total = 0;
  for (const s of slots) total += s;
  const sequence = new Int32Array(total);
  if (n === 0) return sequence;

  let size = 1;
  while (size < n) size <<= 1;
  const winner = new Int32Array(2 * size).fill(-1);
  // The first step at which a node's cached winner may be wrong; leaves never change.
  const expiry = new Float64Array(2 * size);
  // W·k_i: what backend i has paid for its picks so far. Its key at step t is t·slots[i] − paid[i].
  const paid = new Float64Array(n);
  for (let node = size; node < 2 * size; node++) {
    expiry[node] = Infinity;
    if (node - size < n) winner[node] = node - size;
  }

  // Depth-first over the nodes whose cached winner has expired (a node expires no later than its
  // children, so a valid node's whole subtree is valid). An explicit stack: +node = visit its
  // children first, −node = recompute it. Three entries per level at most.
  const stack = new Int32Array(3 * 32 + 3);
  for (let t = 1; t <= total; t++) {
    let sp = 0;
    if (expiry[1]! <= t) stack[sp++] = 1;
    while (sp > 0) {
      const entry = stack[--sp]!;
      if (entry > 0) {
        stack[sp++] = -entry;
        const leftNode = 2 * entry;
        if (expiry[leftNode]! <= t) stack[sp++] = leftNode;
        if (expiry[leftNode + 1]! <= t) stack[sp++] = leftNode + 1;
        continue;
      }
      const node = -entry;
      const leftNode = 2 * node;
      const left = winner[leftNode]!;
      const right = winner[leftNode + 1]!;
      let until = Math.min(expiry[leftNode]!, expiry[leftNode + 1]!);
      let best = left;
      if (right >= 0) {
        // Both sides hold a backend (an empty right subtree only ever pads the end). The left side
        // has the lower indices, so it keeps a tie, as nginx keeps the first maximum.
        let holder = left;
        let loser = right;
        if (t * slots[left]! - paid[left]! < t * slots[right]! - paid[right]!) {
          holder = right;
          loser = left;
        }
        best = holder;
        // The first step at which the loser overtakes: gain·τ > gap, or ≥ gap when the loser has
        // the lower index. Keys are integers below 2^41, so this is exact.
        const gain = slots[loser]! - slots[holder]!;
        if (gain > 0) {
          const gap = paid[loser]! - paid[holder]!;
          let step = loser < holder ? -floorDiv(-gap, gain) : floorDiv(gap, gain) + 1;
          if (step <= t) step = t + 1;
          if (step < until) until = step;
        }
      }
      winner[node] = best;
      expiry[node] = until;
    }
    const chosen = winner[1]!;
    sequence[t - 1] = chosen;
    paid[chosen]! += total;
    for (let node = (size + chosen) >> 1; node >= 1; node >>= 1) expiry[node] = 0;
  }
  return sequence;
}

/** ⌊a / b⌋ for integers a and b > 0, exact even where the float quotient rounds across an integer. */
function floorDiv(a: number, b: number): number {
  let q = Math.floor(a / b);
  if (q * b > a) q--;
  else if ((q + 1) * b <= a) q++;
  return q;
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
