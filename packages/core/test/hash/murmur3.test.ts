import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hash32, hashPair, murmur3 } from '../../src/hash';

/**
 * A deliberately plain MurmurHash3_x86_32 over a byte array, written from the algorithm as SMHasher
 * publishes it (MurmurHash3.cpp) with BigInt arithmetic and no shared code, so that the
 * allocation-free, char-code-driven implementation can be checked against it.
 */
function referenceMurmur3(bytes: Uint8Array, seed: number): number {
  const MASK = 0xffffffffn;
  const C1 = 0xcc9e2d51n;
  const C2 = 0x1b873593n;
  const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (32n - r))) & MASK;
  const mixK = (k: bigint) => (rotl((k * C1) & MASK, 15n) * C2) & MASK;
  let h = BigInt(seed >>> 0);
  const blocks = bytes.length - (bytes.length % 4);
  for (let i = 0; i < blocks; i += 4) {
    const k = BigInt(bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16)) + (BigInt(bytes[i + 3]!) << 24n);
    h ^= mixK(k);
    h = rotl(h, 13n);
    h = (h * 5n + 0xe6546b64n) & MASK;
  }
  let tail = 0n;
  for (let i = bytes.length - 1; i >= blocks; i--) tail = (tail << 8n) | BigInt(bytes[i]!);
  if (bytes.length > blocks) h ^= mixK(tail);
  h ^= BigInt(bytes.length);
  h ^= h >> 16n;
  h = (h * 0x85ebca6bn) & MASK;
  h ^= h >> 13n;
  h = (h * 0xc2b2ae35n) & MASK;
  h ^= h >> 16n;
  return Number(h);
}

const encoder = new TextEncoder();
const reference = (input: string, seed = 0) => referenceMurmur3(encoder.encode(input), seed);

// Published MurmurHash3_x86_32 vectors (the set circulated with SMHasher ports; each also checked
// against a C build of the algorithm): every tail length, a zero block, unsigned seeds, UTF-8.
const VECTORS: ReadonlyArray<readonly [string, number, number]> = [
  ['', 0, 0],
  ['', 1, 0x514e28b7],
  ['', 0xffffffff, 0x81f16f39],
  ['\0\0\0\0', 0, 0x2362f9de],
  ['aaaa', 0x9747b28c, 0x5a97808a],
  ['aaa', 0x9747b28c, 0x283e0130],
  ['aa', 0x9747b28c, 0x5d211726],
  ['a', 0x9747b28c, 0x7fa09ea6],
  ['abcd', 0x9747b28c, 0xf0478627],
  ['abc', 0x9747b28c, 0xc84a62dd],
  ['ab', 0x9747b28c, 0x74875592],
  ['Hello, world!', 0x9747b28c, 0x24884cba],
  ['ππππππππ', 0x9747b28c, 0xd58063c1],
  ['The quick brown fox jumps over the lazy dog', 0x9747b28c, 0x2fa826cd],
  ['hello', 0, 0x248bfa47],
  ['The quick brown fox jumps over the lazy dog', 0, 0x2e4ff723],
];

describe('murmur3', () => {
  it.each(VECTORS)('hashes %j with seed %i to the published value %i', (input, seed, expected) => {
    expect(murmur3(input, seed)).toBe(expected);
  });

  it('agrees with the byte-array reference on the published vectors, so the reference is trustworthy', () => {
    for (const [input, seed, expected] of VECTORS) expect(reference(input, seed)).toBe(expected);
  });

  it('returns an unsigned 32-bit integer', () => {
    fc.assert(
      fc.property(fc.string(), fc.integer(), (input, seed) => {
        const hash = murmur3(input, seed);
        expect(Number.isInteger(hash) && hash >= 0 && hash <= 0xffffffff).toBe(true);
      }),
      { seed: 4242, numRuns: 300 },
    );
  });

  it('equals the reference over TextEncoder bytes for arbitrary unicode strings and seeds', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 80 }), fc.nat(), (input, seed) => {
        expect(murmur3(input)).toBe(reference(input, 0));
        expect(murmur3(input, seed)).toBe(reference(input, seed));
      }),
      { seed: 4242, numRuns: 500 },
    );
  });

  it('equals the reference for ASCII strings of every length (seed 0: the one-pass path; other seeds: the UTF-8 reader)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary-ascii', maxLength: 100 }), fc.nat(), (input, seed) => {
        expect(murmur3(input)).toBe(reference(input, 0));
        expect(murmur3(input, seed)).toBe(reference(input, seed));
      }),
      { seed: 4243, numRuns: 500 },
    );
    for (let length = 0; length <= 70; length++) {
      const input = 'k'.repeat(length);
      expect(murmur3(input)).toBe(reference(input, 0));
      // U+0080, the first code that is not ASCII, at the end (in a block or in the tail): the
      // one-pass result must be discarded.
      expect(murmur3(`${input}\u0080`)).toBe(reference(`${input}\u0080`, 0));
      // Code 0x7f, the last ASCII one, keeps the one-pass result.
      expect(murmur3(`${input}\u007f`)).toBe(reference(`${input}\u007f`, 0));
    }
  });

  it('encodes lone surrogates as U+FFFD, as TextEncoder does', () => {
    const surrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
    const unit = fc.oneof(fc.string({ unit: 'binary', maxLength: 3 }), surrogate);
    fc.assert(
      fc.property(fc.array(unit, { maxLength: 24 }), fc.nat(), (parts, seed) => {
        const input = parts.join('');
        expect(murmur3(input, seed)).toBe(reference(input, seed));
      }),
      { seed: 4242, numRuns: 500 },
    );
    expect(murmur3('\ud800')).toBe(murmur3('\ufffd'));
    expect(murmur3('x\udc00y\ud83d')).toBe(murmur3('x\ufffdy\ufffd'));
  });

  it('handles every UTF-8 sequence length across block boundaries and into the tail', () => {
    // One-, two-, three- and four-byte characters placed at every offset of a 37-char string.
    for (const char of ['z', 'é', '€', '😀']) {
      for (let prefix = 0; prefix < 36; prefix++) {
        const input = `${'p'.repeat(prefix)}${char}${'s'.repeat(36 - prefix)}`;
        expect(murmur3(input, 7)).toBe(reference(input, 7));
      }
    }
  });

  it('changes with the seed', () => {
    expect(murmur3('abc', 1)).not.toBe(murmur3('abc', 0));
    expect(murmur3('abc', 1)).toBe(reference('abc', 1));
    expect(murmur3('abc', 0xffffffff)).toBe(reference('abc', 0xffffffff));
  });

  it('gives the same result after hashing a non-ASCII string, so no reader state leaks between calls', () => {
    const before = murmur3('the same key, twice over');
    murmur3('ünïcödé 😀 and a lone \ud800');
    expect(murmur3('the same key, twice over')).toBe(before);
  });
});

describe('hash32', () => {
  it('has the same bits as murmur3 with seed 0, as a signed integer', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), (input) => {
        const signed = hash32(input);
        expect(signed | 0).toBe(signed);
        expect(signed >>> 0).toBe(murmur3(input));
        expect(signed >>> 0).toBe(reference(input, 0));
      }),
      { seed: 99, numRuns: 300 },
    );
  });
});

describe('hashPair', () => {
  it('is MurmurHash3 (seed 0) of the 8 bytes first ‖ second, little-endian', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 0xffffffff }), (first, second) => {
        const bytes = new Uint8Array(8);
        const view = new DataView(bytes.buffer);
        view.setUint32(0, first, true);
        view.setUint32(4, second, true);
        expect(hashPair(first, second)).toBe(referenceMurmur3(bytes, 0));
        // Signed inputs (as hash32 returns them) carry the same bits.
        expect(hashPair(first | 0, second | 0)).toBe(referenceMurmur3(bytes, 0));
      }),
      { seed: 77, numRuns: 300 },
    );
  });
});
