import fc from 'fast-check';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createLoadBalancer, isInvalidOptionError } from '@fulcrum/core';
import { StickyCookie, DEFAULT_COOKIE_MAX_AGE_MS } from '../../src/affinity/cookie';
import { readCookie, readSetCookie, DUPLICATE_COOKIE } from '../../src/affinity/cookie-header';

const SECRET_A = 'c3VwZXItc2VjcmV0LWtleS1udW1iZXItb25lLTAxMjM0NTY3';
const SECRET_B = randomBytes(32);
const NOW = Date.UTC(2025, 0, 15, 12, 0, 0);
const idArbitrary = fc.stringMatching(/^[A-Za-z0-9._:-]{1,64}$/);

/** The `name=value` pair of a Set-Cookie string, as a browser would send it back. */
function pairOf(setCookie: string): string {
  return setCookie.slice(0, setCookie.indexOf(';'));
}
function valueOf(setCookie: string): string {
  const pair = pairOf(setCookie);
  return pair.slice(pair.indexOf('=') + 1);
}
function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a throw');
}

describe('StickyCookie round trip', () => {
  const cookie = new StickyCookie({ secrets: [SECRET_A] });

  it('reads back the backend id it signed', () => {
    const setCookie = cookie.serialize('app-2', NOW, false);
    expect(cookie.read(pairOf(setCookie), NOW + 1000)).toBe('app-2');
    expect(cookie.read(`theme=dark; ${pairOf(setCookie)}; lang=en`, NOW)).toBe('app-2');
    expect(cookie.verify(pairOf(setCookie), NOW)).toEqual({ backendId: 'app-2', issuedAt: NOW });
  });

  it('round-trips every valid backend id (property)', () => {
    fc.assert(
      fc.property(idArbitrary, fc.integer({ min: 0, max: 2 ** 32 - 1 }), (id, seconds) => {
        const now = seconds * 1000;
        expect(cookie.read(pairOf(cookie.serialize(id, now, true)), now)).toBe(id);
      }),
      { seed: 3, numRuns: 300 },
    );
  });

  it('writes the documented attributes, with Secure only over TLS by default', () => {
    const plain = cookie.serialize('a', NOW, false);
    expect(plain).toMatch(/^fulcrum_srv=[A-Za-z0-9_-]+; Max-Age=86400; Path=\/; HttpOnly; SameSite=Lax$/);
    expect(cookie.serialize('a', NOW, true)).toMatch(/; SameSite=Lax; Secure$/);
    // Kept per backend and second, with and without Secure: the same answer again, never the other's.
    expect(cookie.serialize('a', NOW + 10, false)).toBe(plain);
    expect(cookie.serialize('a', NOW + 20, true)).toBe(`${plain}; Secure`);
    expect(cookie.serialize('a', NOW + 1000, false)).not.toBe(plain);
    const custom = new StickyCookie({
      secrets: [SECRET_A],
      name: 'srv',
      maxAgeMs: 60_000,
      path: '/app',
      domain: 'example.com',
      sameSite: 'strict',
      httpOnly: false,
      secure: false,
    });
    expect(custom.serialize('a', NOW, true)).toMatch(/^srv=[A-Za-z0-9_-]+; Max-Age=60; Path=\/app; Domain=example.com; SameSite=Strict$/);
    expect(new StickyCookie({ secrets: [SECRET_A], secure: true }).serialize('a', NOW, false)).toMatch(/; Secure$/);
    // Browsers drop SameSite=None and prefixed cookies without Secure, so those always carry it.
    expect(new StickyCookie({ secrets: [SECRET_A], sameSite: 'None' }).serialize('a', NOW, false)).toMatch(/SameSite=None; Secure$/);
    expect(new StickyCookie({ secrets: [SECRET_A], name: '__Host-srv' }).serialize('a', NOW, false)).toMatch(/; Secure$/);
    expect(cookie.serializeClear(false)).toBe('fulcrum_srv=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax');
  });

  it('puts no backend address in the cookie', () => {
    const lb = createLoadBalancer({
      backends: [
        { id: 'web-1', address: 'http://10.20.30.40:8081' },
        { id: 'web-2', address: 'http://[2001:db8::5]:9090' },
        { id: 'web-3', address: 'backend.internal:7000' },
      ],
      algorithm: 'round-robin',
    });
    for (const backend of lb.backends) {
      const setCookie = cookie.serialize(backend.id, NOW, true);
      const decoded = Buffer.from(valueOf(setCookie), 'base64url').toString('latin1');
      for (const fragment of [backend.address, '10.20.30.40', '8081', '2001:db8', '9090', 'backend.internal', '7000']) {
        expect(setCookie).not.toContain(fragment);
        expect(decoded).not.toContain(fragment);
      }
      expect(decoded).toContain(backend.id);
    }
    void lb.close();
  });
});

describe('StickyCookie key rotation', () => {
  const oldOnly = new StickyCookie({ secrets: [SECRET_A] });
  const rotating = new StickyCookie({ secrets: [SECRET_B, SECRET_A] });
  const newOnly = new StickyCookie({ secrets: [SECRET_B] });

  it('still verifies cookies signed with an older secret', () => {
    expect(rotating.read(pairOf(oldOnly.serialize('app-1', NOW, false)), NOW)).toBe('app-1');
  });

  it('signs with the first secret only', () => {
    const fresh = pairOf(rotating.serialize('app-1', NOW, false));
    expect(newOnly.read(fresh, NOW)).toBe('app-1');
    expect(oldOnly.read(fresh, NOW)).toBeUndefined();
  });

  it('stops verifying a secret once it is removed', () => {
    expect(newOnly.read(pairOf(oldOnly.serialize('app-1', NOW, false)), NOW)).toBeUndefined();
  });
});

describe('StickyCookie rejects what it did not issue, without throwing', () => {
  const cookie = new StickyCookie({ secrets: [SECRET_A], maxAgeMs: 3_600_000 });
  const setCookie = cookie.serialize('app-1', NOW, false);
  const valid = pairOf(setCookie);
  const value = valueOf(setCookie);

  it('starts from a value that verifies', () => {
    expect(cookie.read(`fulcrum_srv=${value}`, NOW)).toBe('app-1');
  });

  it('rejects a cookie forged with another secret', () => {
    const forger = new StickyCookie({ secrets: [randomBytes(32)] });
    expect(cookie.read(pairOf(forger.serialize('app-1', NOW, false)), NOW)).toBeUndefined();
  });

  it('rejects a value minted for another cookie name with the same secret', () => {
    const sibling = new StickyCookie({ secrets: [SECRET_A], name: 'other' });
    expect(cookie.read(`fulcrum_srv=${valueOf(sibling.serialize('app-1', NOW, false))}`, NOW)).toBeUndefined();
  });

  it('rejects every truncation', () => {
    for (let length = 0; length < value.length; length++) {
      expect(cookie.read(`fulcrum_srv=${value.slice(0, length)}`, NOW)).toBeUndefined();
    }
  });

  it('rejects an expired cookie and one issued implausibly far in the future', () => {
    expect(cookie.read(valid, NOW + 3_600_000 - 1000)).toBe('app-1');
    expect(cookie.read(valid, NOW + 3_600_000)).toBeUndefined();
    // Shortening maxAgeMs applies to cookies already issued.
    const shorter = new StickyCookie({ secrets: [SECRET_A], maxAgeMs: 60_000 });
    expect(shorter.read(valid, NOW + 61_000)).toBeUndefined();
    expect(cookie.read(valid, NOW - 4 * 60_000)).toBe('app-1');
    expect(cookie.read(valid, NOW - 6 * 60_000)).toBeUndefined();
  });

  it('rejects oversized values and oversized pairs', () => {
    expect(cookie.read(`fulcrum_srv=${value}${'A'.repeat(200)}`, NOW)).toBeUndefined();
    expect(cookie.read(`fulcrum_srv=${value}${' '.repeat(5000)}`, NOW)).toBeUndefined();
    // A long header full of other cookies is fine: the limit is per cookie (RFC 6265 §6.1).
    const others = Array.from({ length: 200 }, (_, i) => `c${i}=${'x'.repeat(50)}`).join('; ');
    expect(cookie.read(`${others}; ${valid}`, NOW)).toBe('app-1');
  });

  it('rejects duplicated cookies, even when one of them is valid', () => {
    expect(cookie.read(`${valid}; ${valid}`, NOW)).toBeUndefined();
    expect(cookie.read(`fulcrum_srv=; ${valid}`, NOW)).toBeUndefined();
    expect(cookie.read([valid, valid], NOW)).toBeUndefined();
    expect(cookie.read([valid, 'a=b'], NOW)).toBe('app-1');
  });

  it('ignores cookies of other names', () => {
    expect(cookie.read(`other=${value}`, NOW)).toBeUndefined();
    expect(cookie.read(`fulcrum_srvx=${value}`, NOW)).toBeUndefined();
    expect(cookie.read(`xfulcrum_srv=${value}`, NOW)).toBeUndefined();
    expect(cookie.read(`FULCRUM_SRV=${value}`, NOW)).toBeUndefined();
  });

  it('accepts a quoted value, as browsers may send one back', () => {
    expect(cookie.read(`fulcrum_srv="${value}"`, NOW)).toBe('app-1');
  });

  it('never verifies a value with any single bit flipped, in the text (property)', () => {
    fc.assert(
      fc.property(idArbitrary, fc.nat(), fc.integer({ min: 0, max: 15 }), (id, position, bit) => {
        const text = valueOf(cookie.serialize(id, NOW, false));
        const index = position % text.length;
        const flipped = text.slice(0, index) + String.fromCharCode(text.charCodeAt(index) ^ (1 << bit)) + text.slice(index + 1);
        expect(cookie.read(`fulcrum_srv=${flipped}`, NOW)).toBeUndefined();
      }),
      { seed: 2024, numRuns: 2000 },
    );
  });

  it('never verifies a value with any single bit flipped, in the signed bytes (property)', () => {
    fc.assert(
      fc.property(idArbitrary, fc.nat(), (id, position) => {
        const bytes = Buffer.from(valueOf(cookie.serialize(id, NOW, false)), 'base64url');
        const bitIndex = position % (bytes.length * 8);
        bytes[bitIndex >> 3]! ^= 1 << (bitIndex & 7);
        expect(cookie.read(`fulcrum_srv=${bytes.toString('base64url')}`, NOW)).toBeUndefined();
      }),
      { seed: 2025, numRuns: 2000 },
    );
  });

  it('returns undefined and never throws for arbitrary Cookie headers (property)', () => {
    const base64urlChars = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_');
    const header = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 300 }),
      fc.string({ unit: base64urlChars, minLength: 20, maxLength: 130 }).map((v) => `fulcrum_srv=${v}`),
      fc.array(fc.string({ maxLength: 80 }), { maxLength: 5 }),
      fc.constant(undefined),
    );
    fc.assert(
      fc.property(header, (h) => {
        expect(cookie.read(h, NOW)).toBeUndefined();
      }),
      { seed: 17, numRuns: 800 },
    );
    expect(cookie.read(42 as unknown as string, NOW)).toBeUndefined();
    expect(cookie.read([null, 5] as unknown as string[], NOW)).toBeUndefined();
  });
});

describe('StickyCookie options', () => {
  it('rejects short and placeholder secrets without echoing them', () => {
    const short = thrown(() => new StickyCookie({ secrets: [SECRET_A, 'too-short-secret'] }));
    expect(isInvalidOptionError(short)).toBe(true);
    expect(short.message).toContain('stickiness.cookie.secrets[1]');
    expect(short.message).toContain('at least 32 bytes');
    expect(short.message).not.toContain('too-short-secret');
    const placeholder = thrown(() => new StickyCookie({ secrets: ['a'.repeat(64)] }, 'pools.web.stickiness.cookie'));
    expect(placeholder.message).toContain('pools.web.stickiness.cookie.secrets[0]');
    expect(placeholder.message).not.toContain('aaaa');
    expect(thrown(() => new StickyCookie({ secrets: [] })).message).toContain('secrets');
    expect(thrown(() => new StickyCookie({} as never)).message).toContain('secrets');
    expect(thrown(() => new StickyCookie({ secrets: [42 as never] })).message).toContain('secrets[0]');
  });

  it('accepts Uint8Array secrets and copies them', () => {
    const key = randomBytes(32);
    const cookie = new StickyCookie({ secrets: [key] });
    const pair = pairOf(cookie.serialize('x', NOW, false));
    key.fill(0);
    expect(cookie.read(pair, NOW)).toBe('x');
  });

  it.each([
    [{ name: 'bad name' }, 'name'],
    [{ name: 'a;b' }, 'name'],
    [{ maxAgeMs: 999 }, 'maxAgeMs'],
    [{ maxAgeMs: Number.NaN }, 'maxAgeMs'],
    [{ maxAgeMs: 401 * 86_400_000 }, 'maxAgeMs'],
    [{ path: 'app' }, 'path'],
    [{ path: '/a;b' }, 'path'],
    [{ domain: 'exa mple.com' }, 'domain'],
    [{ sameSite: 'Sometimes' }, 'sameSite'],
    [{ httpOnly: 'yes' }, 'httpOnly'],
    [{ secure: 'always' }, 'secure'],
    [{ secure: false, sameSite: 'None' }, 'secure'],
    [{ name: '__Host-srv', domain: 'example.com' }, 'name'],
    [{ maxage: 10 }, 'maxage'],
  ])('rejects %j naming %s', (options, field) => {
    const error = thrown(() => new StickyCookie({ secrets: [SECRET_A], ...(options as object) }));
    expect(isInvalidOptionError(error)).toBe(true);
    expect(error.message).toContain(`stickiness.cookie.${field}`);
  });

  it('defaults to a 24-hour lifetime', () => {
    expect(new StickyCookie({ secrets: [SECRET_A] }).maxAgeMs).toBe(DEFAULT_COOKIE_MAX_AGE_MS);
    expect(DEFAULT_COOKIE_MAX_AGE_MS).toBe(86_400_000);
  });
});

describe('Cookie and Set-Cookie parsing', () => {
  it('finds a cookie among others, first or unique', () => {
    expect(readCookie('a=1; b=2;c=3', 'b', true)).toBe('2');
    expect(readCookie('a=1; b=2; b=3', 'b', false)).toBe('2');
    expect(readCookie('a=1; b=2; b=3', 'b', true)).toBe(DUPLICATE_COOKIE);
    expect(readCookie('a=1; bb=2', 'b', true)).toBeUndefined();
    expect(readCookie('b', 'b', true)).toBeUndefined();
    expect(readCookie(' b = "x" ', 'b', true)).toBe('x');
  });

  it('reads what a Set-Cookie does, including deletions', () => {
    const now = Date.UTC(2025, 0, 1);
    expect(readSetCookie(['sid=abc; Path=/; HttpOnly'], 'sid', now)).toEqual({ value: 'abc', deleted: false });
    expect(readSetCookie(['sid=abc; Max-Age=0'], 'sid', now)).toEqual({ value: 'abc', deleted: true });
    expect(readSetCookie(['sid=abc; Expires=Thu, 01 Jan 1970 00:00:00 GMT'], 'sid', now)?.deleted).toBe(true);
    // Max-Age wins over Expires.
    expect(readSetCookie(['sid=abc; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=60'], 'sid', now)?.deleted).toBe(false);
    expect(readSetCookie(['sid=; Path=/'], 'sid', now)?.deleted).toBe(true);
    expect(readSetCookie(['other=abc'], 'sid', now)).toBeUndefined();
    expect(readSetCookie(['sid=old; Max-Age=0', 'sid=new'], 'sid', now)).toEqual({ value: 'new', deleted: false });
  });
});

describe('StickyCookie caches', () => {
  it('still expires a value it verified before, once maxAgeMs has passed', () => {
    const cookie = new StickyCookie({ secrets: [SECRET_A], maxAgeMs: 60_000 });
    const value = cookie.sign('b1', 1_000_000);
    expect(cookie.verifyValue(value, 1_000_500)?.backendId).toBe('b1');
    expect(cookie.verifyValue(value, 1_000_500 + 30_000)?.backendId).toBe('b1');
    expect(cookie.verifyValue(value, 1_000_000 + 60_000)).toBeUndefined();
  });

  it('signs once per backend per second and issues a fresh value the next second', () => {
    const cookie = new StickyCookie({ secrets: [SECRET_A] });
    const a = cookie.sign('b1', 5_000_100);
    expect(cookie.sign('b1', 5_000_900)).toBe(a);
    const b = cookie.sign('b1', 5_001_000);
    expect(b).not.toBe(a);
    expect(cookie.verifyValue(b, 5_001_000)?.issuedAt).toBe(5_001_000);
    expect(cookie.sign('b2', 5_000_100)).not.toBe(a);
  });

  it('never caches a forged value: a value rejected once stays rejected', () => {
    const cookie = new StickyCookie({ secrets: [SECRET_A] });
    const forger = new StickyCookie({ secrets: [SECRET_B] });
    const forged = forger.sign('b1', 1_000_000);
    expect(cookie.verifyValue(forged, 1_000_000)).toBeUndefined();
    expect(cookie.verifyValue(forged, 1_000_000)).toBeUndefined();
  });
});
