/**
 * xxHash32 (Yann Collet, https://github.com/Cyan4973/xxHash, XXH32 in its specification) of the UTF-8
 * encoding of a JavaScript string.
 *
 * Why this hash: every hashing balancer must map a key to the same backend in every process and on
 * every platform, so the hash is a published, fixed function of the key's UTF-8 bytes — not of
 * UTF-16 code units, not of anything engine-specific. XXH32 is fast on short inputs, passes SMHasher,
 * has reference implementations in every language (a Go or Rust sidecar can reproduce our choices),
 * and needs only 32-bit multiplies, which `Math.imul` gives us without BigInt.
 *
 * Why no `TextEncoder`: `pick(key)` is on the hot path and must not allocate. The UTF-8 bytes are
 * produced on the fly from `charCodeAt`, exactly as `TextEncoder` would produce them: surrogate
 * pairs become one 4-byte sequence, and a lone surrogate becomes U+FFFD (EF BF BD), as the WHATWG
 * Encoding standard requires. XXH32 needs the byte length up front (it branches on length ≥ 16 and
 * mixes the length in); for ASCII that is the string's length, so ASCII keys are hashed in one pass,
 * and other strings are measured first, then hashed.
 *
 * The default seed is 0, the reference default, so `xxhash32(s)` equals `XXH32(utf8(s), len, 0)`.
 */

const PRIME1 = 0x9e3779b1 | 0;
const PRIME2 = 0x85ebca77 | 0;
const PRIME3 = 0xc2b2ae3d | 0;
const PRIME4 = 0x27d4eb2f | 0;
const PRIME5 = 0x165667b1 | 0;

// Hashing state lives at module level rather than in a closure or an object so that hashing
// allocates nothing. JavaScript runs one `xxhash32` call to completion before the next, so the state
// is never shared by two calls at once.

/** The UTF-8 reader's input and position. */
let source = '';
let charIndex = 0;
/** Continuation bytes of the current character not yet read, lowest byte first. */
let pendingBytes = 0;
let pendingCount = 0;

/** xxHash32 of the UTF-8 bytes of `input`, as an unsigned 32-bit integer. */
export function xxhash32(input: string, seed = 0): number {
  return hash32(input, seed) >>> 0;
}

/**
 * xxHash32 as a signed 32-bit integer (the same bits as `xxhash32`). Balancers use this form: an
 * int32 travels through calls unboxed, while half of all uint32 results exceed the small-integer
 * range and would be boxed on the heap at every return.
 *
 * The pass assumes ASCII, where each char code is its UTF-8 byte, and ORs every code it reads into
 * `seen`; only when that shows a code of 0x80 or more is the result discarded and the string hashed
 * again through the UTF-8 reader. Everything is written out in this one function — no helper per
 * word, no branch per word — because for the short keys balancers see (session and user ids), the
 * call and branch overhead cost as much as the multiplies themselves.
 */
export function hash32(input: string, seed = 0): number {
  const s = seed | 0;
  const length = input.length;
  let seen = 0;
  let index = 0;
  let hash: number;
  if (length >= 16) {
    hash = asciiStripes(input, s);
    seen = stripesSeen;
    index = length - (length & 15);
  } else {
    hash = (s + PRIME5) | 0;
  }
  hash = (hash + length) | 0;
  while (index + 4 <= length) {
    const c0 = input.charCodeAt(index);
    const c1 = input.charCodeAt(index + 1);
    const c2 = input.charCodeAt(index + 2);
    const c3 = input.charCodeAt(index + 3);
    seen |= c0 | c1 | c2 | c3;
    hash = (hash + Math.imul(c0 | (c1 << 8) | (c2 << 16) | (c3 << 24), PRIME3)) | 0;
    hash = Math.imul((hash << 17) | (hash >>> 15), PRIME4);
    index += 4;
  }
  while (index < length) {
    const code = input.charCodeAt(index);
    seen |= code;
    hash = (hash + Math.imul(code, PRIME5)) | 0;
    hash = Math.imul((hash << 11) | (hash >>> 21), PRIME1);
    index += 1;
  }
  if (seen >= 0x80) return hashUtf8(input, utf8Length(input), s);
  return avalanche(hash);
}

/** The OR of the char codes `asciiStripes` read (≥ 0x80 means not ASCII). */
let stripesSeen = 0;

/**
 * XXH32's four-lane pass over the 16-byte stripes of an input of 16 or more chars, assumed ASCII
 * (see `hash32`), merged into one accumulator; the OR of the codes read is left in `stripesSeen`.
 * Kept out of `hash32` so that the short-key path stays small enough to be inlined into a pick.
 */
function asciiStripes(input: string, seed: number): number {
  let v1 = (seed + PRIME1 + PRIME2) | 0;
  let v2 = (seed + PRIME2) | 0;
  let v3 = seed;
  let v4 = (seed - PRIME1) | 0;
  let seen = 0;
  const limit = input.length - 16;
  for (let index = 0; index <= limit; index += 16) {
    let c0 = input.charCodeAt(index);
    let c1 = input.charCodeAt(index + 1);
    let c2 = input.charCodeAt(index + 2);
    let c3 = input.charCodeAt(index + 3);
    seen |= c0 | c1 | c2 | c3;
    v1 = round(v1, c0 | (c1 << 8) | (c2 << 16) | (c3 << 24));
    c0 = input.charCodeAt(index + 4);
    c1 = input.charCodeAt(index + 5);
    c2 = input.charCodeAt(index + 6);
    c3 = input.charCodeAt(index + 7);
    seen |= c0 | c1 | c2 | c3;
    v2 = round(v2, c0 | (c1 << 8) | (c2 << 16) | (c3 << 24));
    c0 = input.charCodeAt(index + 8);
    c1 = input.charCodeAt(index + 9);
    c2 = input.charCodeAt(index + 10);
    c3 = input.charCodeAt(index + 11);
    seen |= c0 | c1 | c2 | c3;
    v3 = round(v3, c0 | (c1 << 8) | (c2 << 16) | (c3 << 24));
    c0 = input.charCodeAt(index + 12);
    c1 = input.charCodeAt(index + 13);
    c2 = input.charCodeAt(index + 14);
    c3 = input.charCodeAt(index + 15);
    seen |= c0 | c1 | c2 | c3;
    v4 = round(v4, c0 | (c1 << 8) | (c2 << 16) | (c3 << 24));
  }
  stripesSeen = seen;
  return (rotateLeft(v1, 1) + rotateLeft(v2, 7) + rotateLeft(v3, 12) + rotateLeft(v4, 18)) | 0;
}

function hashUtf8(input: string, length: number, seed: number): number {
  source = input;
  charIndex = 0;
  pendingCount = 0;
  let remaining = length;
  let hash: number;
  if (length >= 16) {
    let v1 = (seed + PRIME1 + PRIME2) | 0;
    let v2 = (seed + PRIME2) | 0;
    let v3 = seed;
    let v4 = (seed - PRIME1) | 0;
    while (remaining >= 16) {
      v1 = round(v1, readWord());
      v2 = round(v2, readWord());
      v3 = round(v3, readWord());
      v4 = round(v4, readWord());
      remaining -= 16;
    }
    hash = (rotateLeft(v1, 1) + rotateLeft(v2, 7) + rotateLeft(v3, 12) + rotateLeft(v4, 18)) | 0;
  } else {
    hash = (seed + PRIME5) | 0;
  }
  hash = (hash + length) | 0;
  while (remaining >= 4) {
    hash = Math.imul(rotateLeft((hash + Math.imul(readWord(), PRIME3)) | 0, 17), PRIME4);
    remaining -= 4;
  }
  while (remaining > 0) {
    hash = Math.imul(rotateLeft((hash + Math.imul(readByte(), PRIME5)) | 0, 11), PRIME1);
    remaining -= 1;
  }
  // Drop the reference so a long key is not kept alive until the next call.
  source = '';
  return avalanche(hash);
}

function avalanche(value: number): number {
  let hash = value;
  hash ^= hash >>> 15;
  hash = Math.imul(hash, PRIME2);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, PRIME3);
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
        pendingBytes =
          (0x80 | ((codePoint >>> 12) & 0x3f)) |
          ((0x80 | ((codePoint >>> 6) & 0x3f)) << 8) |
          ((0x80 | (codePoint & 0x3f)) << 16);
        pendingCount = 3;
        return 0xf0 | (codePoint >>> 18);
      }
    }
    code = 0xfffd;
  }
  pendingBytes = (0x80 | ((code >>> 6) & 0x3f)) | ((0x80 | (code & 0x3f)) << 8);
  pendingCount = 2;
  return 0xe0 | (code >>> 12);
}

function round(accumulator: number, lane: number): number {
  return Math.imul(rotateLeft((accumulator + Math.imul(lane, PRIME2)) | 0, 13), PRIME1);
}

function rotateLeft(value: number, bits: number): number {
  return (value << bits) | (value >>> (32 - bits));
}
