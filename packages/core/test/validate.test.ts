// @fulcrum/core/validate: the one set of option checks every package uses, and its wordings.
import { InvalidOptionError, isInvalidOptionError } from '@fulcrum/core';
import {
  MAX_TIMER_MS,
  checkKnownKeys,
  describeBounds,
  finiteNumber,
  isPlainObject,
  optionalInteger,
  optionalNumber,
  optionalTimerMs,
  optionsObject,
  plainObject,
  timerMs,
} from '@fulcrum/core/validate';
import { describe, expect, it } from 'vitest';

function messageOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(isInvalidOptionError(error)).toBe(true);
    return (error as InvalidOptionError).message;
  }
  throw new Error('did not throw');
}

describe('@fulcrum/core/validate', () => {
  it('words every range one way', () => {
    expect(describeBounds({ min: 1, max: 10, integer: true })).toBe('must be an integer ≥ 1 and ≤ 10');
    expect(describeBounds({ min: 0, minExclusive: true })).toBe('must be a finite number > 0');
    expect(describeBounds({ max: 5 })).toBe('must be a finite number ≤ 5');
    expect(describeBounds()).toBe('must be a finite number');
    expect(messageOf(() => optionalInteger('attempts', 0, 3, 1, 10))).toBe('attempts: must be an integer ≥ 1 and ≤ 10, got 0');
    expect(messageOf(() => timerMs('timeoutMs', -1))).toBe(`timeoutMs: must be a finite number > 0 and ≤ ${MAX_TIMER_MS}, got -1`);
  });

  it('holds each bound exactly: inclusive min and max, exclusive min, integers, finiteness', () => {
    expect(finiteNumber('x', 1, { min: 1, max: 2 })).toBe(1);
    expect(finiteNumber('x', 2, { min: 1, max: 2 })).toBe(2);
    expect(() => finiteNumber('x', 0.999, { min: 1 })).toThrow(InvalidOptionError);
    expect(() => finiteNumber('x', 2.001, { max: 2 })).toThrow(InvalidOptionError);
    expect(() => finiteNumber('x', 0, { min: 0, minExclusive: true })).toThrow(InvalidOptionError);
    expect(finiteNumber('x', Number.MIN_VALUE, { min: 0, minExclusive: true })).toBe(Number.MIN_VALUE);
    expect(() => finiteNumber('x', 1.5, { integer: true })).toThrow(InvalidOptionError);
    for (const bad of [Number.NaN, Infinity, -Infinity, '1', null, undefined, 1n]) expect(() => finiteNumber('x', bad)).toThrow(InvalidOptionError);
  });

  it('caps timers at MAX_TIMER_MS (2^31 − 1), above which a timer fires at once', () => {
    expect(MAX_TIMER_MS).toBe(2 ** 31 - 1);
    expect(timerMs('t', MAX_TIMER_MS)).toBe(MAX_TIMER_MS);
    expect(() => timerMs('t', MAX_TIMER_MS + 1)).toThrow(InvalidOptionError);
    expect(timerMs('t', 0, 0)).toBe(0);
    expect(optionalTimerMs('t', undefined, 5)).toBe(5);
    expect(optionalTimerMs('t', undefined, undefined)).toBeUndefined();
    expect(optionalNumber('n', undefined, 7, { min: 10 })).toBe(7);
  });

  it('refuses unknown keys naming the known ones, or the hint for another library’s option', () => {
    expect(messageOf(() => checkKnownKeys('timeouts', { connect: 5 }, ['connectMs', 'idleMs']))).toBe(
      'timeouts.connect: is not an option (known: connectMs, idleMs), got 5',
    );
    expect(messageOf(() => checkKnownKeys('', { balancr: 1 }, ['balancer']))).toBe('balancr: is not an option (known: balancer), got 1');
    expect(messageOf(() => checkKnownKeys('store', { ttl: 60 }, ['ttlSeconds'], { ttl: '`ttl` is `ttlSeconds` here' }))).toBe(
      'store.ttl: is not an option: `ttl` is `ttlSeconds` here, got 60',
    );
    // An inherited name is not a hint: only the hints object's own keys are.
    expect(messageOf(() => checkKnownKeys('o', { toString: 1 }, ['a'], {}))).toBe('o.toString: is not an option (known: a), got 1');
  });

  it('takes plain objects only, and an absent options object as {}', () => {
    expect(isPlainObject({})).toBe(true);
    expect(isPlainObject(Object.create(null))).toBe(true);
    for (const bad of [[], null, new Date(), new Map(), 'x', () => ({})]) expect(isPlainObject(bad)).toBe(false);
    expect(optionsObject('o', undefined, ['a'])).toEqual({});
    expect(() => optionsObject('o', undefined, ['a'], { allowMissing: false })).toThrow(InvalidOptionError);
    expect(messageOf(() => plainObject('o', [], 'must be { a }'))).toBe('o: must be { a }, got an array of 0');
    expect(messageOf(() => optionsObject('o', { a: 1, b: 2 }, ['a']))).toBe('o.b: is not an option (known: a), got 2');
  });
});
