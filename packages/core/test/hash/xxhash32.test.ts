import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { xxhash32 } from '../../src/hash';

/**
 * A deliberately plain XXH32 over a byte array, written from the specification
 * (https://github.com/Cyan4973/xxHash/blob/dev/doc/xxhash_spec.md) with no shared code, so that the
 * allocation-free, char-code-driven implementation can be checked against it.
 */
function referenceXxhash32(bytes: Uint8Array, seed: number): number {
  const P1 = 2654435761n;
  const P2 = 2246822519n;
  const P3 = 3266489917n;
  const P4 = 668265263n;
  const P5 = 374761393n;
  const MASK = 0xffffffffn;
  const rotl = (x: bigint, r: bigint) => ((x << r) | (x >> (32n - r))) & MASK;
  const lane = (i: number) =>
    BigInt(bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16)) + (BigInt(bytes[i + 3]!) << 24n);
  const round = (acc: bigint, input: bigint) => (rotl((acc + input * P2) & MASK, 13n) * P1) & MASK;
  const s = BigInt(seed >>> 0);
  let offset = 0;
  let acc: bigint;
  if (bytes.length >= 16) {
    let v1 = (s + P1 + P2) & MASK;
    let v2 = (s + P2) & MASK;
    let v3 = s;
    let v4 = (s - P1 + (1n << 32n)) & MASK;
    for (; offset + 16 <= bytes.length; offset += 16) {
      v1 = round(v1, lane(offset));
      v2 = round(v2, lane(offset + 4));
      v3 = round(v3, lane(offset + 8));
      v4 = round(v4, lane(offset + 12));
    }
    acc = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & MASK;
  } else {
    acc = (s + P5) & MASK;
  }
  acc = (acc + BigInt(bytes.length)) & MASK;
  for (; offset + 4 <= bytes.length; offset += 4) acc = (rotl((acc + lane(offset) * P3) & MASK, 17n) * P4) & MASK;
  for (; offset < bytes.length; offset++) acc = (rotl((acc + BigInt(bytes[offset]!) * P5) & MASK, 11n) * P1) & MASK;
  acc ^= acc >> 15n;
  acc = (acc * P2) & MASK;
  acc ^= acc >> 13n;
  acc = (acc * P3) & MASK;
  acc ^= acc >> 16n;
  return Number(acc);
}

const encoder = new TextEncoder();
const reference = (input: string, seed = 0) => referenceXxhash32(encoder.encode(input), seed);

describe('xxhash32', () => {
  it.each([
    ['', 0, 0x02cc5d05],
    ['a', 0, 0x550d7456],
    ['abc', 0, 0x32d153ff],
    // From python-xxhash's README: xxh32('Nobody inspects the spammish repetition').
    ['Nobody inspects the spammish repetition', 0, 0xe2293b2f],
  ])('hashes %j with seed %i to the published value %i', (input, seed, expected) => {
    expect(xxhash32(input, seed)).toBe(expected);
  });

  it('agrees with the byte-array reference on the published vectors, so the reference is trustworthy', () => {
    expect(reference('')).toBe(0x02cc5d05);
    expect(reference('a')).toBe(0x550d7456);
    expect(reference('abc')).toBe(0x32d153ff);
    expect(reference('Nobody inspects the spammish repetition')).toBe(0xe2293b2f);
  });

  it('returns an unsigned 32-bit integer', () => {
    fc.assert(
      fc.property(fc.string(), fc.integer(), (input, seed) => {
        const hash = xxhash32(input, seed);
        expect(Number.isInteger(hash) && hash >= 0 && hash <= 0xffffffff).toBe(true);
      }),
      { seed: 4242, numRuns: 300 },
    );
  });

  it('equals the reference over TextEncoder bytes for arbitrary unicode strings and seeds', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 80 }), fc.nat(), (input, seed) => {
        expect(xxhash32(input, seed)).toBe(reference(input, seed));
      }),
      { seed: 4242, numRuns: 500 },
    );
  });

  it('equals the reference for ASCII strings of every length (the one-pass path)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary-ascii', maxLength: 100 }), fc.nat(), (input, seed) => {
        expect(xxhash32(input, seed)).toBe(reference(input, seed));
      }),
      { seed: 4243, numRuns: 500 },
    );
    for (let length = 0; length <= 70; length++) {
      const input = 'k'.repeat(length);
      expect(xxhash32(input)).toBe(reference(input, 0));
      // U+0080, the first code that is not ASCII, at the end: the one-pass result must be discarded.
      expect(xxhash32(`${input}\u0080`)).toBe(reference(`${input}\u0080`, 0));
    }
  });

  it('encodes lone surrogates as U+FFFD, as TextEncoder does', () => {
    const surrogate = fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c));
    const unit = fc.oneof(fc.string({ unit: 'binary', maxLength: 3 }), surrogate);
    fc.assert(
      fc.property(fc.array(unit, { maxLength: 24 }), fc.nat(), (parts, seed) => {
        const input = parts.join('');
        expect(xxhash32(input, seed)).toBe(reference(input, seed));
      }),
      { seed: 4242, numRuns: 500 },
    );
    expect(xxhash32('\ud800')).toBe(xxhash32('\ufffd'));
    expect(xxhash32('x\udc00y\ud83d')).toBe(xxhash32('x\ufffdy\ufffd'));
  });

  it('handles every UTF-8 sequence length across the 16-byte stripe boundary', () => {
    // One-, two-, three- and four-byte characters placed at every offset around 16 and 32 bytes.
    for (const char of ['z', 'é', '€', '😀']) {
      for (let prefix = 0; prefix < 36; prefix++) {
        const input = `${'p'.repeat(prefix)}${char}${'s'.repeat(36 - prefix)}`;
        expect(xxhash32(input, 7)).toBe(reference(input, 7));
      }
    }
  });

  it('changes with the seed', () => {
    expect(xxhash32('abc', 1)).not.toBe(xxhash32('abc', 0));
    expect(xxhash32('abc', 1)).toBe(reference('abc', 1));
    expect(xxhash32('abc', 0xffffffff)).toBe(reference('abc', 0xffffffff));
  });

  it('gives the same result after hashing a non-ASCII string, so no reader state leaks between calls', () => {
    const before = xxhash32('the same key, twice over');
    xxhash32('ünïcödé 😀 and a lone \ud800');
    expect(xxhash32('the same key, twice over')).toBe(before);
  });
});

describe('hash32', () => {
  it('has the same bits as xxhash32, as a signed integer', async () => {
    const { hash32, xxhash32: unsigned } = await import('../../src/hash');
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 40 }), fc.integer(), (input, seed) => {
        const signed = hash32(input, seed);
        expect(signed | 0).toBe(signed);
        expect(signed >>> 0).toBe(unsigned(input, seed));
      }),
      { seed: 99, numRuns: 300 },
    );
  });
});
