/**
 * MurmurHash3 (Austin Appleby, SMHasher; the 32-bit x86 variant, `MurmurHash3_x86_32`) of the UTF-8
 * encoding of a JavaScript string.
 *
 * Why this hash: every hashing balancer must map a key to the same backend in every process and on
 * every platform, so the hash is a published, fixed function of the key's UTF-8 bytes — not of
 * UTF-16 code units, not of anything engine-specific. MurmurHash3_x86_32 passes SMHasher, has
 * implementations in every language (Python's `mmh3.hash`, Guava's `Hashing.murmur3_32_fixed`, Go's
 * `murmur3.Sum32`), so a sidecar in another language can reproduce our choices, and needs only
 * 32-bit multiplies, which `Math.imul` gives us without BigInt.
 *
 * Why not XXH32, which Fulcrum used before 0.1.0 was released: in JavaScript, hashing a short key
 * costs its `charCodeAt` reads plus the serial chain of multiplies. XXH32 runs each of the last one
 * to three bytes through a multiply–rotate–multiply round of its own; MurmurHash3 folds them into one
 * block, and its chain per block (xor, rotate, multiply-add) is shorter. For the 11-char keys of the
 * balancer benchmark that took the hash from the cost of the chain down to the cost of the reads
 * (bench/README.md has the numbers).
 *
 * Why no `TextEncoder`: `pick(key)` is on the hot path and must not allocate. The UTF-8 bytes are
 * produced on the fly from `charCodeAt`, exactly as `TextEncoder` would produce them: surrogate
 * pairs become one 4-byte sequence, and a lone surrogate becomes U+FFFD (EF BF BD), as the WHATWG
 * Encoding standard requires. The hash needs the byte length (it splits the input into 4-byte blocks
 * and a tail, and mixes the length in); for ASCII that is the string's length, so ASCII keys are
 * hashed in one pass, and other strings are measured first, then hashed.
 *
 * The default seed is 0, so `murmur3(s)` equals `MurmurHash3_x86_32(utf8(s), len, 0)`.
 */

/**
 * MurmurHash3's constants. A `const enum`, so the build writes each as a literal where it is used: as
 * module constants they would be bundled as module-level `var`s, which V8 cannot fold and loads from
 * the module context at every use, and that cost about 4.5 ns of a 26 ns hash (bench/README.md).
 */
const enum M {
  C1 = 0xcc9e2d51 | 0,
  C2 = 0x1b873593 | 0,
  /** Added to the hash after each 4-byte block. */
  BlockAdd = 0xe6546b64 | 0,
  /** fmix32's two multipliers. */
  Final1 = 0x85ebca6b | 0,
  Final2 = 0xc2b2ae35 | 0,
}

// Hashing state lives at module level rather than in a closure or an object so that hashing
// allocates nothing. JavaScript runs one call to completion before the next, so the state is never
// shared by two calls at once.

/** The UTF-8 reader's input and position. */
let source = '';
let charIndex = 0;
/** Continuation bytes of the current character not yet read, lowest byte first. */
let pendingBytes = 0;
let pendingCount = 0;

/** MurmurHash3_x86_32 of the UTF-8 bytes of `input`, as an unsigned 32-bit integer. */
export function murmur3(input: string, seed = 0): number {
  const s = seed | 0;
  return (s === 0 ? hash32(input) : hashUtf8(input, utf8Length(input), s)) >>> 0;
}

/**
 * `murmur3(input)` with seed 0 as a signed 32-bit integer (the same bits): the hash of a request's
 * key. Balancers use this form: an int32 travels through calls unboxed, while half of all uint32
 * results exceed the small-integer range and would be boxed on the heap at every return. It takes no
 * seed because keys always hash with seed 0, and a default parameter cost about 2 ns a call (seeded
 * hashes of backend ids run once per membership change, through `murmur3`).
 *
 * The pass assumes ASCII, where each char code is its UTF-8 byte, and ORs every code it reads into
 * `seen`; only when that shows a code of 0x80 or more is the result discarded and the string hashed
 * again through the UTF-8 reader. Everything is written out in this one function — no helper per
 * block — because for the short keys balancers see (session and user ids), call overhead costs as
 * much as the multiplies themselves.
 */
export function hash32(input: string): number {
  const length = input.length;
  const blocksEnd = length - (length & 3);
  let hash = 0;
  let seen = 0;
  let index = 0;
  while (index < blocksEnd) {
    const c0 = input.charCodeAt(index);
    const c1 = input.charCodeAt(index + 1);
    const c2 = input.charCodeAt(index + 2);
    const c3 = input.charCodeAt(index + 3);
    seen |= c0 | c1 | c2 | c3;
    const k = Math.imul(c0 | (c1 << 8) | (c2 << 16) | (c3 << 24), M.C1);
    hash ^= Math.imul((k << 15) | (k >>> 17), M.C2);
    hash = (hash << 13) | (hash >>> 19);
    hash = (Math.imul(hash, 5) + M.BlockAdd) | 0;
    index += 4;
  }
  if (index < length) {
    // The tail: one to three bytes, little-endian, in one block without the block's rotate and add.
    const c0 = input.charCodeAt(index);
    const c1 = index + 1 < length ? input.charCodeAt(index + 1) : 0;
    const c2 = index + 2 < length ? input.charCodeAt(index + 2) : 0;
    seen |= c0 | c1 | c2;
    const k = Math.imul(c0 | (c1 << 8) | (c2 << 16), M.C1);
    hash ^= Math.imul((k << 15) | (k >>> 17), M.C2);
  }
  if (seen >= 0x80) return hashUtf8(input, utf8Length(input), 0);
  return finalize(hash, length);
}

/**
 * MurmurHash3_x86_32 (seed 0) of the 8 bytes `first ‖ second`, each little-endian, as an unsigned
 * 32-bit integer: two blocks and the finalizer. Rendezvous hashing scores a (key, backend) pair with
 * it from the key's hash and the backend id's hash, without building a string per pair.
 */
export function hashPair(first: number, second: number): number {
  return finalize(block(block(0, first), second), 8) >>> 0;
}

function hashUtf8(input: string, length: number, seed: number): number {
  source = input;
  charIndex = 0;
  pendingCount = 0;
  let hash = seed;
  let remaining = length;
  while (remaining >= 4) {
    hash = block(hash, readWord());
    remaining -= 4;
  }
  if (remaining > 0) {
    let tail = readByte();
    if (remaining > 1) tail |= readByte() << 8;
    if (remaining > 2) tail |= readByte() << 16;
    hash ^= scramble(tail);
  }
  // Drop the reference so a long key is not kept alive until the next call.
  source = '';
  return finalize(hash, length);
}

/** One 4-byte block mixed into the hash. */
function block(hash: number, word: number): number {
  const mixed = hash ^ scramble(word);
  return (Math.imul((mixed << 13) | (mixed >>> 19), 5) + M.BlockAdd) | 0;
}

/** A block's (or the tail's) own mix before it is xored into the hash. */
function scramble(word: number): number {
  const k = Math.imul(word, M.C1);
  return Math.imul((k << 15) | (k >>> 17), M.C2);
}

/** The length, then `fmix32`: every input bit affects every output bit. */
function finalize(value: number, length: number): number {
  let hash = value ^ length;
  hash ^= hash >>> 16;
  hash = Math.imul(hash, M.Final1);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, M.Final2);
  hash ^= hash >>> 16;
  return hash;
}

/** The number of bytes `TextEncoder` would produce for `input`. */
function utf8Length(input: string): number {
  const count = input.length;
  let length = count;
  for (let i = 0; i < count; i++) {
    const code = input.charCodeAt(i);
    if (code < 0x80) continue;
    if (code < 0x800) {
      length += 1;
    } else if (code >= 0xd800 && code <= 0xdbff && i + 1 < count && isLowSurrogate(input.charCodeAt(i + 1))) {
      // Two UTF-16 units, four bytes: two more than the units already counted.
      length += 2;
      i++;
    } else {
      // Includes lone surrogates, which encode as U+FFFD (three bytes).
      length += 2;
    }
  }
  return length;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

function readWord(): number {
  // Operands are evaluated left to right, so the bytes are read in little-endian order.
  return readByte() | (readByte() << 8) | (readByte() << 16) | (readByte() << 24);
}

function readByte(): number {
  if (pendingCount > 0) {
    const byte = pendingBytes & 0xff;
    pendingBytes >>>= 8;
    pendingCount -= 1;
    return byte;
  }
  let code = source.charCodeAt(charIndex++);
  if (code < 0x80) return code;
  if (code < 0x800) {
    pendingBytes = 0x80 | (code & 0x3f);
    pendingCount = 1;
    return 0xc0 | (code >>> 6);
  }
  if (code >= 0xd800 && code <= 0xdfff) {
    if (code <= 0xdbff && charIndex < source.length) {
      const low = source.charCodeAt(charIndex);
      if (isLowSurrogate(low)) {
        charIndex++;
        const codePoint = 0x10000 + ((code - 0xd800) << 10) + (low - 0xdc00);
        pendingBytes = 0x80 | ((codePoint >>> 12) & 0x3f) | ((0x80 | ((codePoint >>> 6) & 0x3f)) << 8) | ((0x80 | (codePoint & 0x3f)) << 16);
        pendingCount = 3;
        return 0xf0 | (codePoint >>> 18);
      }
    }
    code = 0xfffd;
  }
  pendingBytes = 0x80 | ((code >>> 6) & 0x3f) | ((0x80 | (code & 0x3f)) << 8);
  pendingCount = 2;
  return 0xe0 | (code >>> 12);
}
