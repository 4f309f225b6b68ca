import fc from 'fast-check';
import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInvalidOptionError } from '@fulcrum/core';
import { clientAddress, forwardedFor, MAX_FORWARDED_HOPS, parseForwardedHop, TrustedProxies } from '../../src/affinity/client-address';
import { formatIp } from '../../src/affinity/ip';
import { fakeRequest, get, startServer, type TestServer } from './helpers';

/** A server that answers with the client address it resolves, and the raw socket address. */
async function addressServer(trusted: TrustedProxies | undefined, host: string): Promise<TestServer> {
  return startServer((req: IncomingMessage, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ client: clientAddress(req, trusted), socket: req.socket.remoteAddress }));
  }, host);
}

async function resolve(server: TestServer, connectTo: string, xff?: string | string[]): Promise<{ client: string; socket: string }> {
  const response = await get(connectTo, server.port, '/', xff === undefined ? {} : { 'x-forwarded-for': xff });
  return JSON.parse(response.body) as { client: string; socket: string };
}

describe('TrustedProxies', () => {
  it('accepts CIDRs, single addresses and named groups of both families', () => {
    const trusted = new TrustedProxies(['10.0.0.0/8', '192.0.2.7', '2001:db8::/32', '::1', 'loopback', 'private', 'linklocal']);
    expect(trusted.contains('10.1.2.3')).toBe(true);
    expect(trusted.contains('192.0.2.7')).toBe(true);
    expect(trusted.contains('192.0.2.8')).toBe(false);
    expect(trusted.contains('2001:db8:1::5')).toBe(true);
    expect(trusted.contains('127.9.9.9')).toBe(true);
    expect(trusted.contains('fd12::1')).toBe(true);
    expect(trusted.contains('169.254.1.1')).toBe(true);
    expect(trusted.contains('fe80::1%eth0')).toBe(true);
    expect(trusted.contains('8.8.8.8')).toBe(false);
    expect(trusted.contains('garbage')).toBe(false);
  });

  it('normalises IPv4-mapped IPv6 before matching', () => {
    const trusted = new TrustedProxies(['10.0.0.1']);
    expect(trusted.contains('::ffff:10.0.0.1')).toBe(true);
    expect(trusted.contains('::ffff:a00:1')).toBe(true);
    expect(trusted.contains('::ffff:10.0.0.2')).toBe(false);
  });

  it('throws an InvalidOptionError naming the bad entry', () => {
    for (const [list, path] of [
      [['10.0.0.0/8', '10.0.0.1/8'], 'proxies[1]'],
      [['nonsense'], 'proxies[0]'],
      [['10.0.0.0/8', '::1', '1.2.3.4/40'], 'proxies[2]'],
    ] as const) {
      let caught: unknown;
      try {
        new TrustedProxies(list, 'proxies');
      } catch (error) {
        caught = error;
      }
      expect(isInvalidOptionError(caught)).toBe(true);
      expect((caught as Error).message).toContain(path);
    }
    expect(() => new TrustedProxies('10.0.0.0/8' as unknown as string[])).toThrow(/trustedProxies/);
    expect(() => new TrustedProxies([42 as unknown as string])).toThrow(/trustedProxies\[0\]/);
  });
});

describe('parseForwardedHop', () => {
  it.each([
    ['203.0.113.9', '203.0.113.9'],
    ['  203.0.113.9\t', '203.0.113.9'],
    ['203.0.113.9:51234', '203.0.113.9'],
    ['2001:db8::7', '2001:db8::7'],
    ['[2001:db8::7]', '2001:db8::7'],
    ['[2001:db8::7]:443', '2001:db8::7'],
    ['::ffff:203.0.113.9', '203.0.113.9'],
  ])('reads %j as %s', (hop, expected) => {
    const parsed = parseForwardedHop(hop);
    expect(parsed && formatIp(parsed)).toBe(expected);
  });

  it.each([
    'unknown',
    '_hidden',
    '203.0.113.9:99999',
    '203.0.113.9:',
    '[2001:db8::7',
    '[10.0.0.1]',
    '2001:db8::7]:443',
    '1.2.3.4:80:80',
    'example.com',
    '1.2.3.4 5.6.7.8',
    '',
  ])('refuses %j', (hop) => {
    expect(parseForwardedHop(hop)).toBeUndefined();
  });
});

describe('clientAddress over real sockets', () => {
  let direct: TestServer;
  let behindProxy: TestServer;
  let v6: TestServer;
  let dualStack: TestServer;

  beforeAll(async () => {
    // Only 10.0.0.0/8 is trusted: a loopback client is an ordinary, untrusted client.
    direct = await addressServer(new TrustedProxies(['10.0.0.0/8']), '127.0.0.1');
    // Loopback is our load balancer; 10/8 are further proxies of ours.
    behindProxy = await addressServer(new TrustedProxies(['loopback', '10.0.0.0/8', '2001:db8:ffff::/48']), '127.0.0.1');
    v6 = await addressServer(new TrustedProxies(['::1']), '::1');
    dualStack = await addressServer(new TrustedProxies(['127.0.0.1/32']), '::');
  });

  afterAll(async () => {
    await Promise.all([direct.close(), behindProxy.close(), v6.close(), dualStack.close()]);
  });

  it('ignores X-Forwarded-For entirely when the client connects directly', async () => {
    expect(await resolve(direct, '127.0.0.1')).toEqual({ client: '127.0.0.1', socket: '127.0.0.1' });
    expect((await resolve(direct, '127.0.0.1', '10.0.0.5')).client).toBe('127.0.0.1');
    expect((await resolve(direct, '127.0.0.1', ['6.6.6.6', '10.0.0.5, 7.7.7.7'])).client).toBe('127.0.0.1');
  });

  it('never lets spoofed left-most entries change the result of a direct client (property)', async () => {
    const hop = fc.oneof(fc.ipV4(), fc.ipV6(), fc.constantFrom('10.0.0.1', 'unknown', '127.0.0.1'), fc.string({ maxLength: 20 }));
    await fc.assert(
      fc.asyncProperty(fc.array(hop, { minLength: 1, maxLength: 6 }), async (hops) => {
        const header = hops.join(', ').replace(/[\r\n\0]/g, '');
        // A header value Node refuses to send is no attack on the server; skip those.
        if (/[^\t\x20-\x7e]/.test(header)) return;
        expect((await resolve(direct, '127.0.0.1', header)).client).toBe('127.0.0.1');
        // The same through a trusted proxy: whatever the client wrote, the proxy's appended hop decides.
        expect((await resolve(behindProxy, '127.0.0.1', `${header}, 198.51.100.23`)).client).toBe('198.51.100.23');
      }),
      { seed: 1234, numRuns: 25 },
    );
  });

  it('walks a trusted chain from the right to the first untrusted hop', async () => {
    expect((await resolve(behindProxy, '127.0.0.1', '6.6.6.6, 203.0.113.9, 10.1.1.1, 10.2.2.2')).client).toBe('203.0.113.9');
    // Several header lines form one list, in order.
    expect((await resolve(behindProxy, '127.0.0.1', ['6.6.6.6, 203.0.113.9', '10.1.1.1', '10.2.2.2'])).client).toBe('203.0.113.9');
    // Ports and brackets are stripped; IPv6 is canonicalised.
    expect((await resolve(behindProxy, '127.0.0.1', '[2001:DB8::0:7]:443, 10.1.1.1:80')).client).toBe('2001:db8::7');
    expect((await resolve(behindProxy, '127.0.0.1', '2001:db8:1::9, [2001:db8:ffff::1]')).client).toBe('2001:db8:1::9');
    // No header: the trusted peer itself is all we know.
    expect((await resolve(behindProxy, '127.0.0.1')).client).toBe('127.0.0.1');
    // Every hop trusted: the left-most one is the furthest we can see.
    expect((await resolve(behindProxy, '127.0.0.1', '10.3.3.3, 10.2.2.2')).client).toBe('10.3.3.3');
    // Empty list elements are ignored.
    expect((await resolve(behindProxy, '127.0.0.1', '203.0.113.9, , 10.2.2.2,')).client).toBe('203.0.113.9');
  });

  it('falls back to the last address it can vouch for when a hop is garbage', async () => {
    expect((await resolve(behindProxy, '127.0.0.1', 'garbage')).client).toBe('127.0.0.1');
    expect((await resolve(behindProxy, '127.0.0.1', '203.0.113.9, unknown')).client).toBe('127.0.0.1');
    expect((await resolve(behindProxy, '127.0.0.1', '203.0.113.9, not-an-ip, 10.2.2.2')).client).toBe('10.2.2.2');
    expect((await resolve(behindProxy, '127.0.0.1', '203.0.113.9, 1.2.3.4:99999')).client).toBe('127.0.0.1');
  });

  it('reads IPv6 peers and their forwarded chains', async () => {
    expect(await resolve(v6, '::1')).toEqual({ client: '::1', socket: '::1' });
    expect((await resolve(v6, '::1', '2001:db8::42')).client).toBe('2001:db8::42');
  });

  it('normalises an IPv4-mapped socket address on a dual-stack listener', async () => {
    const result = await resolve(dualStack, '127.0.0.1', '203.0.113.77');
    expect(result.socket).toBe('::ffff:127.0.0.1');
    // 127.0.0.1/32 is trusted, so the mapped peer was recognised as that address.
    expect(result.client).toBe('203.0.113.77');
  });
});

describe('clientAddress edge cases', () => {
  it('returns an empty string when the socket is gone', () => {
    expect(clientAddress(fakeRequest(undefined))).toBe('');
  });

  it('stops after MAX_FORWARDED_HOPS trusted hops', () => {
    const trusted = new TrustedProxies(['10.0.0.0/8']);
    const chain = ['203.0.113.9', ...Array.from({ length: MAX_FORWARDED_HOPS + 5 }, (_, i) => `10.0.${i >> 8}.${i & 255}`)];
    const result = clientAddress(fakeRequest('10.9.9.9', { 'x-forwarded-for': chain.join(', ') }), trusted);
    expect(result).not.toBe('203.0.113.9');
    expect(trusted.contains(result)).toBe(true);
  });

  it('never throws and always answers an address for arbitrary headers (property)', () => {
    const trusted = new TrustedProxies(['loopback', 'private']);
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.array(fc.string({ unit: 'grapheme' }), { maxLength: 4 })), (header) => {
        const result = clientAddress(fakeRequest('::ffff:127.0.0.1', { 'x-forwarded-for': header }), trusted);
        expect(result).not.toBe('');
        expect(parseForwardedHop(result)).toBeDefined();
      }),
      { seed: 99, numRuns: 1000 },
    );
  });
});

describe('forwardedFor', () => {
  it('appends the socket address to what the request carried', () => {
    expect(forwardedFor(undefined, '::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(forwardedFor('203.0.113.9', '10.0.0.1')).toBe('203.0.113.9, 10.0.0.1');
    expect(forwardedFor(['1.1.1.1', ' 2.2.2.2 '], '::1')).toBe('1.1.1.1, 2.2.2.2, ::1');
    expect(forwardedFor(['1.1.1.1\r\nX-Evil: 1', '2.2.2.2'], '10.0.0.1')).toBe('2.2.2.2, 10.0.0.1');
  });
});
