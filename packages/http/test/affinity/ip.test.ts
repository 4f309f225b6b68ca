import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cidrContains, formatIp, normalizeIp, parseCidr, parseIp } from '../../src/affinity/ip';

describe('IP parsing and canonical form', () => {
  it.each([
    ['127.0.0.1', '127.0.0.1'],
    ['::ffff:10.0.0.1', '10.0.0.1'],
    ['::FFFF:0a00:0001', '10.0.0.1'],
    ['0:0:0:0:0:ffff:c000:0207', '192.0.2.7'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8:0000:0001:0:0:0:1', '2001:db8:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:0db8:0001:0000:0001:0001:0001:0001', '2001:db8:1:0:1:1:1:1'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['::', '::'],
    ['fe80::1%eth0', 'fe80::1'],
    ['::1.2.3.4', '::102:304'],
  ])('writes %s canonically as %s', (input, expected) => {
    expect(normalizeIp(input)).toBe(expected);
  });

  it.each([
    '',
    ' 1.2.3.4',
    '1.2.3.4 ',
    '010.0.0.1',
    '1.2.3',
    '256.1.1.1',
    '1::2::3',
    'fe80::1%',
    'fe80::1%a b',
    'localhost',
    '[::1]',
    '1.2.3.4:80',
    'unknown',
    '::ffff:01.2.3.4',
    '2001:db8::1::',
  ])('refuses %j', (input) => {
    expect(parseIp(input)).toBeUndefined();
  });

  it('round-trips any 16 bytes through the canonical text form', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (bytes) => {
        const text = formatIp({ family: 6, bytes });
        const parsed = parseIp(text);
        expect(parsed).toBeDefined();
        const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
        if (mapped) {
          // Canonical text of a mapped address is already the IPv4 one.
          expect(parsed!.family).toBe(4);
          expect([...parsed!.bytes]).toEqual([...bytes.slice(12)]);
        } else {
          expect(parsed!.family).toBe(6);
          expect([...parsed!.bytes]).toEqual([...bytes]);
          expect(normalizeIp(text)).toBe(text);
        }
      }),
      { seed: 42, numRuns: 500 },
    );
  });
});

describe('CIDR ranges', () => {
  it('matches by prefix, for IPv4 and IPv6', () => {
    const v4 = parseCidr('172.16.0.0/12');
    const v6 = parseCidr('2001:db8::/32');
    if (typeof v4 === 'string' || typeof v6 === 'string') throw new Error('parse failed');
    expect(cidrContains(v4, parseIp('172.31.255.255')!)).toBe(true);
    expect(cidrContains(v4, parseIp('172.32.0.0')!)).toBe(false);
    expect(cidrContains(v4, parseIp('::ffff:172.20.1.1')!)).toBe(true);
    expect(cidrContains(v6, parseIp('2001:db8:ffff::1')!)).toBe(true);
    expect(cidrContains(v6, parseIp('2001:db9::1')!)).toBe(false);
    expect(cidrContains(v6, parseIp('172.20.1.1')!)).toBe(false);
  });

  it('treats a mapped IPv6 range as the IPv4 range it carries', () => {
    const range = parseCidr('::ffff:10.0.0.0/104');
    if (typeof range === 'string') throw new Error(range);
    expect(range).toMatchObject({ family: 4, prefix: 8 });
    expect(cidrContains(range, parseIp('10.200.0.1')!)).toBe(true);
  });

  it('refuses host bits beyond the prefix and says what was probably meant', () => {
    expect(parseCidr('10.0.0.1/8')).toMatch(/did you mean 10\.0\.0\.0\/8 or 10\.0\.0\.1\/32/);
    expect(parseCidr('10.0.0.0/33')).toMatch(/prefix length above 32/);
    expect(parseCidr('10.0.0.0/08')).toMatch(/invalid prefix/);
    expect(parseCidr('fe80::1%eth0/64')).toMatch(/zone/);
    expect(parseCidr('example.com')).toMatch(/IPv4 or IPv6/);
  });

  it('agrees with a bit-by-bit reference on random ranges and addresses', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.uint8Array({ minLength: 4, maxLength: 4 }),
        fc.integer({ min: 0, max: 32 }),
        (net, addr, prefix) => {
          const asNumber = (b: Uint8Array) => ((b[0]! << 24) | (b[1]! << 16) | (b[2]! << 8) | b[3]!) >>> 0;
          const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
          const network = (asNumber(net) & mask) >>> 0;
          const networkText = [network >>> 24, (network >>> 16) & 255, (network >>> 8) & 255, network & 255].join('.');
          const range = parseCidr(`${networkText}/${prefix}`);
          if (typeof range === 'string') throw new Error(range);
          const expected = (asNumber(addr) & mask) >>> 0 === network;
          expect(cidrContains(range, { family: 4, bytes: addr })).toBe(expected);
        },
      ),
      { seed: 7, numRuns: 500 },
    );
  });
});
