/**
 * The simulator's event queue: a binary min-heap of (time, sequence) keys with three integer payload
 * words per event, held in typed arrays that double when full — so pushing and popping allocate
 * nothing on the hot path, and the queue's memory follows the number of events pending at once (the
 * requests in flight), never the length of the run.
 *
 * Ties in time pop in push order (the sequence number breaks them), as timers do on a real event loop;
 * that makes a run a pure function of its inputs, the basis of "same seed, same run, bit for bit".
 */
export class EventQueue {
  #times = new Float64Array(1024);
  #seqs = new Float64Array(1024);
  #kinds = new Int32Array(1024);
  #a = new Int32Array(1024);
  #b = new Int32Array(1024);
  #c = new Int32Array(1024);
  #size = 0;
  #nextSeq = 0;

  /** The popped event's fields (valid until the next `pop`). */
  time = 0;
  kind = 0;
  a = 0;
  b = 0;
  c = 0;

  get size(): number {
    return this.#size;
  }

  /** When the next event is due, or `Infinity` when the queue is empty. */
  peekTime(): number {
    return this.#size === 0 ? Infinity : this.#times[0]!;
  }

  push(time: number, kind: number, a: number, b: number, c: number): void {
    if (this.#size === this.#times.length) this.#grow();
    const seq = this.#nextSeq++;
    const times = this.#times;
    const seqs = this.#seqs;
    // Sift up: move parents down until the slot fits, then write once.
    let i = this.#size++;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const pt = times[parent]!;
      if (pt < time || (pt === time && seqs[parent]! < seq)) break;
      this.#move(parent, i);
      i = parent;
    }
    times[i] = time;
    seqs[i] = seq;
    this.#kinds[i] = kind;
    this.#a[i] = a;
    this.#b[i] = b;
    this.#c[i] = c;
  }

  /** Remove the earliest event into `time`, `kind`, `a`, `b`, `c`. Returns false when empty. */
  pop(): boolean {
    const size = this.#size;
    if (size === 0) return false;
    this.time = this.#times[0]!;
    this.kind = this.#kinds[0]!;
    this.a = this.#a[0]!;
    this.b = this.#b[0]!;
    this.c = this.#c[0]!;
    const last = size - 1;
    this.#size = last;
    if (last === 0) return true;
    const times = this.#times;
    const seqs = this.#seqs;
    const time = times[last]!;
    const seq = seqs[last]!;
    // Sift the last event down from the root.
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= last) break;
      let child = left;
      const right = left + 1;
      if (right < last) {
        const lt = times[left]!;
        const rt = times[right]!;
        if (rt < lt || (rt === lt && seqs[right]! < seqs[left]!)) child = right;
      }
      const ct = times[child]!;
      if (time < ct || (time === ct && seq < seqs[child]!)) break;
      this.#move(child, i);
      i = child;
    }
    if (i !== last) this.#move(last, i);
    return true;
  }

  clear(): void {
    this.#size = 0;
  }

  #move(from: number, to: number): void {
    this.#times[to] = this.#times[from]!;
    this.#seqs[to] = this.#seqs[from]!;
    this.#kinds[to] = this.#kinds[from]!;
    this.#a[to] = this.#a[from]!;
    this.#b[to] = this.#b[from]!;
    this.#c[to] = this.#c[from]!;
  }

  #grow(): void {
    const n = this.#times.length * 2;
    const grow = <T extends Float64Array | Int32Array>(old: T, make: (n: number) => T): T => {
      const next = make(n);
      next.set(old);
      return next;
    };
    this.#times = grow(this.#times, (k) => new Float64Array(k));
    this.#seqs = grow(this.#seqs, (k) => new Float64Array(k));
    this.#kinds = grow(this.#kinds, (k) => new Int32Array(k));
    this.#a = grow(this.#a, (k) => new Int32Array(k));
    this.#b = grow(this.#b, (k) => new Int32Array(k));
    this.#c = grow(this.#c, (k) => new Int32Array(k));
  }
}
