import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  MAX_SESSION_ID_LENGTH,
  assertSessionId,
  isValidSessionId,
  sessionExpiresAt,
  sessionTtlSeconds,
  settle,
  shouldTouch,
} from '@fulcrum/core/session';

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
    'accepts %j, as express-session\'s MemoryStore does',
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
    const viaCallback = await new Promise((resolve) => settle(async () => 8, (error, value) => resolve([error, value])));
    expect(viaCallback).toEqual([null, 8]);
    const failure = await new Promise((resolve) => settle(() => { throw new Error('boom'); }, (error) => resolve((error as Error).message)));
    expect(failure).toBe('boom');
  });
});
