/**
 * Maglev hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load Balancer",
 * NSDI 2016, section 3.4), with the weighted fill of Envoy's `maglev_lb`.
 *
 * Each backend derives a permutation of the table's M slots from two hashes of its **id**
 * (`offset = h1 mod M`, `skip = h2 mod (M − 1) + 1`, slot j = `(offset + j·skip) mod M`; M prime makes
 * every skip a generator, so each permutation visits every slot). Backends take turns claiming their
 * next free slot until the table is full. A key's backend is `table[⌊murmur3(key) · M / 2³²⌋]`: one hash
 * and one array read, whatever the number of backends.
 *
 * Weighted fill (Envoy): a backend takes a turn only when `iteration × weight ≥ turns taken so far ×
 * max weight`, so over the fill it claims slots in proportion to its weight, and every backend still
 * gets a turn in the first iteration (at least one slot; the table must be larger than the set).
 *
 * Turns go in id order, never listing order, so every instance builds the same table from the same
 * (id, weight) set. Unlike a ring, Maglev trades a little stability for even spread: when a backend
 * leaves, some slots also change hands between backends that stayed (the fill order shifts), and
 * this collateral grows with N/M. We measure at most 2/N of keys moving (1/N of them the removed
 * backend's) while M ≥ ~650·N — about 100 backends for the default table; past that, choose a larger
 * prime (655373 keeps the bound to ~400 backends).
 *
 * `tableSize` defaults to 65537, the paper's small table (and Envoy's default): the paper keeps M
 * above 100·N so that each backend's share is within about 1 % of its weight, and 65537 does that for
 * up to ~650 backends in 256 KiB. It must be a prime (so permutations cover the table), at least 101
 * (smaller tables cannot give even one backend a 1 %-accurate share), at most 5,000,011 (Envoy's
 * limit; 20 MB), and larger than the number of backends — `update` throws rather than drop one.
 *
 * Cost: `update` is O(M log M) expected probes (the paper); `pick(key)` is O(1); `pick(key, attempt)`
 * walks the table forward to the next distinct backends (bounded by M). Nothing is allocated per pick.
 */
import type { Backend } from '../backend';
import { InvalidOptionError } from '../errors';
import { hash32, murmur3 } from '../hash';
import { optionalNumber } from '../validate/checks';
import { KeylessRoundRobin, eligibleById } from './hashed-members';
import type { Balancer, BalancerOptions } from './balancer';
import { OwnerWalk } from './owner-walk';
import { WEIGHTED_SHARES } from './weights';

export const DEFAULT_TABLE_SIZE = 65537;
export const MIN_TABLE_SIZE = 101;
export const MAX_TABLE_SIZE = 5_000_011;

const TWO_POW_MINUS_32 = 2 ** -32;

// Two fixed, unrelated seeds so that offset and skip are independent hashes of the id.
const OFFSET_SEED = 0x6d61676c; // "magl"
const SKIP_SEED = 0x65762121; // "ev!!"

export interface MaglevConfig {
  readonly tableSize: number;
}

export class Maglev implements Balancer {
  readonly name = 'maglev';
  /** Keys spread in proportion to weight. */
  readonly shares = WEIGHTED_SHARES;
  readonly hashing = true;
  readonly config: MaglevConfig;

  /** Eligible backends (positive `effectiveWeight`) sorted by id; the table stores indices into it. */
  private backends: readonly Backend[] = [];
  private table: Int32Array;
  /** Finds retries' next distinct backends. */
  private readonly walker = new OwnerWalk();
  /** Key-less picks spread round-robin. */
  private readonly keyless = new KeylessRoundRobin();
  /** `config.tableSize` as a plain field. */
  private readonly tableSize: number;
  /** tableSize / 2^32: a key's slot is ⌊uint32 hash × this⌋ (see `pick`). */
  private readonly slotScale: number;

  constructor(options: BalancerOptions = {}) {
    const tableSize = optionalNumber('tableSize', options.tableSize, DEFAULT_TABLE_SIZE, {
      min: MIN_TABLE_SIZE,
      max: MAX_TABLE_SIZE,
      integer: true,
    });
    if (!isPrime(tableSize)) {
      throw new InvalidOptionError('tableSize', tableSize, 'must be a prime number (for example 65537 or 655373)');
    }
    this.config = Object.freeze({ tableSize });
    this.tableSize = tableSize;
    this.slotScale = tableSize * TWO_POW_MINUS_32;
    this.table = new Int32Array(0);
  }

  update(backends: readonly Backend[]): void {
    const size = this.config.tableSize;
    const eligible = eligibleById(backends);
    const count = eligible.length;
    if (count >= size) {
      throw new InvalidOptionError('tableSize', size, `must be larger than the number of backends (${count})`);
    }
    const table = new Int32Array(count === 0 ? 0 : size);
    if (count > 0) fill(table, eligible);
    this.backends = eligible;
    this.table = table;
    this.walker.reset(count);
    this.keyless.reset();
  }

  pick(key?: string, attempt = 0): Backend | undefined {
    const count = this.backends.length;
    if (count === 0) return undefined;
    if (key === undefined) return this.keyless.next(this.backends);
    // Lemire's multiply-shift range reduction: floor(h · M / 2^32), a multiply where `h % M` would be
    // an integer division (tens of cycles). M / 2^32 is exact, so this is h·M/2^32 rounded once, as
    // before; the product stays below M, so `>>> 0` is the floor.
    const slot = ((hash32(key) >>> 0) * this.slotScale) >>> 0;
    const wanted = attempt > 0 ? Math.floor(attempt) % count : 0;
    if (wanted === 0) return this.backends[this.table[slot] as number];
    return this.backends[this.walker.find(this.table, slot, wanted)];
  }
}

/** The paper's population loop (Pseudocode 1), with Envoy's weighted turns. */
function fill(table: Int32Array, backends: readonly Backend[]): void {
  const size = table.length;
  const count = backends.length;
  const next = new Float64Array(count);
  const skip = new Float64Array(count);
  const weight = new Float64Array(count);
  const turnsTaken = new Float64Array(count);
  let maxWeight = 0;
  for (let i = 0; i < count; i++) {
    const backend = backends[i] as Backend;
    next[i] = murmur3(backend.id, OFFSET_SEED) % size;
    skip[i] = (murmur3(backend.id, SKIP_SEED) % (size - 1)) + 1;
    weight[i] = backend.effectiveWeight;
    if (backend.effectiveWeight > maxWeight) maxWeight = backend.effectiveWeight;
  }
  table.fill(-1);
  let filled = 0;
  // The heaviest backend takes a turn every iteration, so this ends within `size` iterations.
  for (let iteration = 1; filled < size; iteration++) {
    for (let i = 0; i < count && filled < size; i++) {
      if (iteration * (weight[i] as number) < (turnsTaken[i] as number) * maxWeight) continue;
      turnsTaken[i] = (turnsTaken[i] as number) + 1;
      let slot = next[i] as number;
      const step = skip[i] as number;
      while (table[slot] !== -1) {
        slot += step;
        if (slot >= size) slot -= size;
      }
      table[slot] = i;
      slot += step;
      next[i] = slot >= size ? slot - size : slot;
      filled++;
    }
  }
}

function isPrime(value: number): boolean {
  if (value < 2) return false;
  if (value % 2 === 0) return value === 2;
  for (let divisor = 3; divisor * divisor <= value; divisor += 2) if (value % divisor === 0) return false;
  return true;
}
