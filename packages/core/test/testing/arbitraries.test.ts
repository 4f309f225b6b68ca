import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BACKEND_ID_PATTERN } from '../../src/backend';
import { applyMembershipChange, arbitraries, createBackends, DEFAULT_TEST_IDS } from '@fulcrum/core/testing';

const sample = <T>(arbitrary: fc.Arbitrary<T>, numRuns = 300): T[] => fc.sample(arbitrary, { seed: 1, numRuns });

describe('arbitraries', () => {
  it('generates valid backend ids of 1–64 characters', () => {
    for (const id of sample(arbitraries.backendId())) expect(id).toMatch(BACKEND_ID_PATTERN);
  });

  it('generates spec lists that createBackends accepts, with unique ids, zero and fractional weights, backups', () => {
    const lists = sample(arbitraries.backendSpecs({ minLength: 1, maxLength: 6 }));
    const weights = lists.flat().map((s) => s.weight);
    for (const specs of lists) {
      expect(specs.length).toBeGreaterThanOrEqual(1);
      expect(specs.length).toBeLessThanOrEqual(6);
      expect(createBackends(specs)).toHaveLength(specs.length);
    }
    expect(weights).toContain(0);
    expect(weights.some((w) => w !== undefined && !Number.isInteger(w))).toBe(true);
    expect(weights).toContain(undefined);
    expect(lists.flat().some((s) => s.backup === true)).toBe(true);
  });

  it('honours withZeroWeights: false and withBackups: false', () => {
    for (const spec of sample(arbitraries.backendSpecs({ withZeroWeights: false, withBackups: false })).flat()) {
      expect(spec.weight === undefined || spec.weight > 0).toBe(true);
      expect(spec.backup).toBeUndefined();
    }
  });

  it('generates keys beyond ASCII', () => {
    const keys = sample(arbitraries.keys({ minLength: 1 }), 100).flat();
    expect(keys.some((k) => /[^\x00-\x7f]/.test(k))).toBe(true);
    expect(keys.some((k) => /^[\x20-\x7e]+$/.test(k))).toBe(true);
  });

  it('generates health events in time order over the given ids', () => {
    for (const events of sample(arbitraries.healthEvents({ ids: ['x', 'y'], start: 100, maxGapMs: 50 }))) {
      let last = 100;
      for (const event of events) {
        expect(['x', 'y']).toContain(event.backendId);
        expect(event.at).toBeGreaterThanOrEqual(last);
        expect(event.at - last).toBeLessThanOrEqual(50);
        expect(typeof event.pass).toBe('boolean');
        last = event.at;
      }
    }
  });

  it('generates membership changes that keep a spec list valid when applied', () => {
    for (const changes of sample(arbitraries.membershipChanges({ minLength: 1 }))) {
      let specs = [{ id: 'b0', address: 'b0:80' }] as Parameters<typeof applyMembershipChange>[0];
      for (const change of changes) {
        specs = applyMembershipChange(specs, change);
        expect(() => createBackends(specs)).not.toThrow();
        const id = change.op === 'add' ? change.spec.id : change.id;
        expect(DEFAULT_TEST_IDS).toContain(id);
        if (change.op === 'remove') expect(specs.some((s) => s.id === change.id)).toBe(false);
      }
    }
  });

  it('applies changes without modifying the input', () => {
    const specs = [{ id: 'a', address: 'a:80', weight: 1 }];
    expect(applyMembershipChange(specs, { op: 'setWeight', id: 'a', weight: 5 })).toEqual([{ id: 'a', address: 'a:80', weight: 5 }]);
    expect(applyMembershipChange(specs, { op: 'add', spec: { id: 'a', address: 'z:80' } })).toEqual(specs);
    expect(applyMembershipChange(specs, { op: 'remove', id: 'missing' })).toEqual(specs);
    expect(specs).toEqual([{ id: 'a', address: 'a:80', weight: 1 }]);
  });
});
