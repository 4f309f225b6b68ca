/**
 * Retries on a hashing table: the `wanted`-th distinct owner met walking a circular table of owner
 * indices forward from a key's position. Maglev walks its lookup table, ring hash walks its ring; both
 * need the same allocation-free walk. A backend already met is marked with the walk's epoch rather
 * than cleared per walk, so a retry costs only the slots it visits.
 */
export class OwnerWalk {
  #seen = new Uint32Array(0);
  #epoch = 0;

  /** Prepare for tables whose owners are `0 … owners − 1` (call on every `update`). */
  reset(owners: number): void {
    this.#seen = new Uint32Array(owners);
    this.#epoch = 0;
  }

  /**
   * The owner of the `wanted`-th distinct owner walking `table` from `start` (0 = `table[start]`).
   * Every owner holds at least one slot, so one full turn meets all of them; when fewer than
   * `wanted + 1` exist, the owner of `start` is returned.
   */
  find(table: Int32Array, start: number, wanted: number): number {
    if (this.#epoch === 0xffffffff) {
      this.#seen.fill(0);
      this.#epoch = 0;
    }
    const epoch = ++this.#epoch;
    const seen = this.#seen;
    const size = table.length;
    let met = 0;
    let slot = start;
    for (let step = 0; step < size; step++) {
      const owner = table[slot] as number;
      if (seen[owner] !== epoch) {
        if (met === wanted) return owner;
        seen[owner] = epoch;
        met++;
      }
      slot = slot + 1 === size ? 0 : slot + 1;
    }
    return table[start] as number;
  }
}
