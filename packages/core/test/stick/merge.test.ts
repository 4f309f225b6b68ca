import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareStickEntries, isExpired, isStickEntry, mergeStickEntry, mergeStickStates, type StickEntry } from '../../src/stick';

// Few distinct stamps and origins, so ties (the hard cases) are frequent.
const entryOf = (key: fc.Arbitrary<string>): fc.Arbitrary<StickEntry<unknown>> =>
  fc
    .record({
      key,
      updatedAt: fc.integer({ min: 0, max: 4 }),
      expiresAt: fc.integer({ min: 0, max: 3 }),
      origin: fc.constantFrom('a', 'b', 'node-c'),
      deleted: fc.boolean(),
      value: fc.constantFrom<unknown>('x', 'y', { backend: 'b1' }, { backend: 'b2' }, [1, 2]),
    })
    .map(({ deleted, value, ...stamp }) => (deleted ? { ...stamp, deleted: true as const } : { ...stamp, value }));

const entry = entryOf(fc.constant('k'));
const state = fc
  .array(entryOf(fc.constantFrom('k1', 'k2', 'k3')), { maxLength: 6 })
  .map((entries) => mergeStickStates(new Map(), new Map(entries.map((e) => [e.key, e]))));

const settings = { seed: 7, numRuns: 500 };

describe('the last-writer-wins merge', () => {
  it('lets the later updatedAt win', () => {
    const older: StickEntry<string> = { key: 'k', value: 'old', updatedAt: 1, expiresAt: 9, origin: 'z' };
    const newer: StickEntry<string> = { key: 'k', value: 'new', updatedAt: 2, expiresAt: 5, origin: 'a' };
    expect(mergeStickEntry(older, newer)).toBe(newer);
    expect(mergeStickEntry(newer, older)).toBe(newer);
  });

  it('breaks a tie on updatedAt by the larger origin', () => {
    const fromA: StickEntry<string> = { key: 'k', value: 'a', updatedAt: 1, expiresAt: 9, origin: 'a' };
    const fromB: StickEntry<string> = { key: 'k', value: 'b', updatedAt: 1, expiresAt: 9, origin: 'b' };
    expect(mergeStickEntry(fromA, fromB)).toBe(fromB);
    expect(mergeStickEntry(fromB, fromA)).toBe(fromB);
  });

  it('lets a tombstone beat a value written with the same stamp', () => {
    const value: StickEntry<string> = { key: 'k', value: 'v', updatedAt: 1, expiresAt: 9, origin: 'a' };
    const tombstone: StickEntry<string> = { key: 'k', updatedAt: 1, expiresAt: 9, origin: 'a', deleted: true };
    expect(mergeStickEntry(value, tombstone)).toBe(tombstone);
    expect(mergeStickEntry(tombstone, value)).toBe(tombstone);
  });

  it('is commutative', () => {
    fc.assert(
      fc.property(entry, entry, (a, b) => {
        expect(mergeStickEntry(a, b)).toEqual(mergeStickEntry(b, a));
      }),
      settings,
    );
  });

  it('is associative', () => {
    fc.assert(
      fc.property(entry, entry, entry, (a, b, c) => {
        expect(mergeStickEntry(mergeStickEntry(a, b), c)).toEqual(mergeStickEntry(a, mergeStickEntry(b, c)));
      }),
      settings,
    );
  });

  it('is idempotent', () => {
    fc.assert(
      fc.property(entry, entry, (a, b) => {
        expect(mergeStickEntry(a, a)).toBe(a);
        const ab = mergeStickEntry(a, b);
        expect(mergeStickEntry(ab, b)).toBe(ab);
        expect(mergeStickEntry(ab, a)).toBe(ab);
      }),
      settings,
    );
  });

  it('orders writes totally: compare is antisymmetric and 0 only for the same write', () => {
    fc.assert(
      fc.property(entry, entry, (a, b) => {
        const ab = compareStickEntries(a, b);
        expect(Math.sign(compareStickEntries(b, a))).toBe(-Math.sign(ab) || 0);
        if (ab === 0) expect(JSON.stringify(a)).toBe(JSON.stringify(b));
      }),
      settings,
    );
  });

  it('gives the same result whatever order a list of writes arrives in, with duplicates', () => {
    fc.assert(
      fc.property(
        fc
          .array(entry, { minLength: 1, maxLength: 8 })
          .chain((entries) => fc.tuple(fc.constant(entries), fc.shuffledSubarray([...entries, ...entries], { minLength: 2 * entries.length }))),
        ([entries, shuffled]) => {
          const reduce = (list: StickEntry<unknown>[]) => list.reduce<StickEntry<unknown> | undefined>((acc, e) => mergeStickEntry(acc, e), undefined);
          expect(reduce(shuffled)).toEqual(reduce(entries));
        },
      ),
      settings,
    );
  });

  it('merges whole replica states commutatively, associatively and idempotently', () => {
    fc.assert(
      fc.property(state, state, state, (a, b, c) => {
        expect(mergeStickStates(a, b)).toEqual(mergeStickStates(b, a));
        expect(mergeStickStates(mergeStickStates(a, b), c)).toEqual(mergeStickStates(a, mergeStickStates(b, c)));
        expect(mergeStickStates(a, a)).toEqual(a);
      }),
      settings,
    );
  });

  it('treats an entry as expired from the moment now reaches expiresAt', () => {
    expect(isExpired({ expiresAt: 10 }, 9)).toBe(false);
    expect(isExpired({ expiresAt: 10 }, 10)).toBe(true);
  });

  it('recognises well-formed entries and rejects malformed ones from the wire', () => {
    expect(isStickEntry({ key: 'k', value: 'b1', updatedAt: 1, expiresAt: 2, origin: 'n1' })).toBe(true);
    expect(isStickEntry({ key: 'k', updatedAt: 1, expiresAt: 2, origin: 'n1', deleted: true })).toBe(true);
    expect(isStickEntry({ key: 'k', updatedAt: 1, expiresAt: 2, origin: 'n1' })).toBe(false);
    expect(isStickEntry({ key: 'k', value: 'b1', updatedAt: Number.NaN, expiresAt: 2, origin: 'n1' })).toBe(false);
    expect(isStickEntry({ key: 'k', value: 'b1', updatedAt: 1, expiresAt: '2', origin: 'n1' })).toBe(false);
    expect(isStickEntry({ key: 'k', value: 'b1', updatedAt: 1, expiresAt: 2, origin: 'bad origin!' })).toBe(false);
    expect(isStickEntry({ key: 1, value: 'b1', updatedAt: 1, expiresAt: 2, origin: 'n1' })).toBe(false);
    expect(isStickEntry({ key: 'k', value: 'b1', updatedAt: 1, expiresAt: 2, origin: 'n1', deleted: false })).toBe(false);
    expect(isStickEntry(null)).toBe(false);
  });
});
