import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  KeyedLock,
  MAX_SESSION_ID_LENGTH,
  assertSessionId,
  isValidSessionId,
  sessionExpiresAt,
  sessionStoreClock,
  sessionTtlSeconds,
  settle,
  shouldTouch,
  withDeadline,
} from '@fulcrum/core/session';
import { realClock } from '@fulcrum/core';
import { FakeClock } from '@fulcrum/core/testing';
import { deferred } from '../../../test-support/wait-for';

describe('session store rules', () => {
  it('takes the expiry from the cookie, else maxAge, else the default TTL', () => {
    expect(sessionExpiresAt({ cookie: { expires: new Date(5000) } }, 1000)).toBe(5000);
    expect(sessionExpiresAt({ cookie: { expires: '1970-01-01T00:00:05.000Z' } }, 1000)).toBe(5000);
    expect(sessionExpiresAt({ cookie: { maxAge: 2000 } }, 1000)).toBe(3000);
    expect(sessionExpiresAt({}, 1000, 10)).toBe(11_000);
    expect(sessionExpiresAt({ cookie: { expires: 'garbage' } }, 1000, 10)).toBe(11_000);
  });

  it('gives an expired cookie a TTL of zero or less, so the store destroys instead of writing', () => {
    expect(sessionTtlSeconds({ cookie: { expires: new Date(500) } }, 1000)).toBeLessThanOrEqual(0);
    expect(sessionTtlSeconds({ cookie: { expires: new Date(1001) } }, 1000)).toBe(1);
  });

  it('throttles touch to once per touchAfterSeconds', () => {
    expect(shouldTouch(10_000, 10_500, 1)).toBe(false);
    expect(shouldTouch(10_000, 11_000, 1)).toBe(true);
    expect(shouldTouch(10_000, 10_000, 0)).toBe(true);
  });

  it('accepts the ids express-session and UUIDs produce', () => {
    expect(isValidSessionId('Zq3v_-xYp2Jk8sQ0aBcDeFgHiJkLmNo')).toBe(true);
    expect(isValidSessionId('0b5c1c8e-3f1a-4d8e-9a4e-6b9b1d2a7c11')).toBe(true);
  });

  it.each(['%', '/foo', '../x', '../../etc/passwd', 'a b', 'a\u0000b', '.hidden', "' OR 1=1 --", '*', 'é', '日本語', '😀', 'x'.repeat(MAX_SESSION_ID_LENGTH)])(
    "accepts %j, as express-session's MemoryStore does",
    (id) => {
      expect(isValidSessionId(id)).toBe(true);
      expect(assertSessionId(id)).toBe(id);
    },
  );

  it.each(['', 'x'.repeat(MAX_SESSION_ID_LENGTH + 1), 'a\ud800', '\udc00b', 'a\ud800\ud800b', 42, null, undefined, {}])(
    'refuses %j: empty, too long, a lone surrogate or not a string',
    (id) => {
      expect(isValidSessionId(id)).toBe(false);
      expect(() => assertSessionId(id)).toThrow(/sid/);
    },
  );

  it('accepts exactly the non-empty well-formed strings up to the cap', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 1100 }), (id) => {
        const wellFormed = Buffer.from(id, 'utf8').toString('utf8') === id;
        expect(isValidSessionId(id)).toBe(id.length > 0 && id.length <= MAX_SESSION_ID_LENGTH && wellFormed);
      }),
      { seed: 11, numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.string({ unit: fc.integer({ min: 0xd7f0, max: 0xe010 }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 8 }), (id) => {
        const wellFormed = Buffer.from(id, 'utf8').toString('utf8') === id;
        expect(isValidSessionId(id)).toBe(wellFormed);
      }),
      { seed: 12, numRuns: 2000 },
    );
  });

  it('names a long refused id shortened in its error', () => {
    const id = `${'y'.repeat(MAX_SESSION_ID_LENGTH)}z`;
    expect(() => assertSessionId(id)).toThrow(/1025 characters/);
  });

  it('reports to a callback when given one, else returns a promise', async () => {
    await expect(settle(async () => 7)).resolves.toBe(7);
    const viaCallback = await new Promise((resolve) =>
      settle(
        async () => 8,
        (error, value) => resolve([error, value]),
      ),
    );
    expect(viaCallback).toEqual([null, 8]);
    const failure = await new Promise((resolve) =>
      settle(
        () => {
          throw new Error('boom');
        },
        (error) => resolve((error as Error).message),
      ),
    );
    expect(failure).toBe('boom');
  });
});

describe('the stores’ shared helpers', () => {
  it('KeyedLock runs one key’s tasks in order, other keys’ at once, and forgets idle keys', async () => {
    const lock = new KeyedLock();
    const order: string[] = [];
    const gate = deferred<void>();
    const first = lock.run('a', async () => {
      await gate.promise;
      order.push('a1');
    });
    const second = lock.run('a', async () => {
      order.push('a2');
    });
    await lock.run('b', async () => {
      order.push('b1');
    });
    expect(order).toEqual(['b1']);
    expect(lock.settled('a')).toBeDefined();
    expect(lock.settled('c')).toBeUndefined();
    gate.resolve();
    await Promise.all([first, second]);
    expect(order).toEqual(['b1', 'a1', 'a2']);
    await lock.idle();
    expect(lock.size).toBe(0);
  });

  it('KeyedLock runs the next task after a failed one', async () => {
    const lock = new KeyedLock();
    const failed = lock.run('a', () => Promise.reject(new Error('boom')));
    const next = lock.run('a', async () => 'ran');
    await expect(failed).rejects.toThrow('boom');
    await expect(next).resolves.toBe('ran');
  });

  it('withDeadline rejects with the caller’s error once the clock passes the deadline, and clears its timer on an answer', async () => {
    const clock = new FakeClock();
    const never = new Promise<string>(() => undefined);
    const late = withDeadline(never, 100, clock, () => new Error('too slow'));
    const outcome = late.then(
      () => 'answered',
      (error: Error) => error.message,
    );
    await clock.advance(99);
    expect(clock.pending).toBe(1);
    await clock.advance(1);
    expect(await outcome).toBe('too slow');
    await expect(withDeadline(Promise.resolve('yes'), 100, clock, () => new Error('too slow'))).resolves.toBe('yes');
    expect(clock.pending).toBe(0);
  });

  it('sessionStoreClock defaults to realClock and refuses what is not a Clock, naming the option', () => {
    expect(sessionStoreClock('x.clock', undefined)).toBe(realClock);
    const clock = new FakeClock();
    expect(sessionStoreClock('x.clock', clock)).toBe(clock);
    for (const bad of [null, 5, {}, { now: () => 0 }, { now: () => 0, setTimeout: () => 0 }]) {
      expect(() => sessionStoreClock('x.clock', bad)).toThrow(/^x\.clock: must be a Clock/);
    }
  });
});
