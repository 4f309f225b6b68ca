import { createLoadBalancer, isInvalidOptionError, StickTable, type LoadBalancer } from '@fulcrum/core';
import { FakeClock } from '@fulcrum/core/testing';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { clientAddress, TrustedProxies } from '../../src/affinity/client-address';
import { Stickiness, type StickinessOptions, type StickyVerification } from '../../src/affinity/stickiness';
import { fakeRequest, get, startServer, type TestServer } from './helpers';

const SECRET = 'bm90LWEtcmVhbC1zZWNyZXQtYnV0LWxvbmctZW5vdWdoLTEyMzQ1';
const T0 = Date.UTC(2025, 2, 1);
const open: Stickiness[] = [];

function make(options: StickinessOptions, clock = new FakeClock(T0), trustedProxies?: TrustedProxies): Stickiness {
  const stickiness = new Stickiness(options, { clock, nodeId: 'test-node', trustedProxies });
  open.push(stickiness);
  return stickiness;
}

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a throw');
}

afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});

describe('Stickiness options', () => {
  it.each([
    [{}, 'stickiness'],
    [{ cookie: { secrets: [SECRET] }, learnCookie: 'sid' }, 'stickiness'],
    [{ sourceIp: {}, header: 'x-user' }, 'stickiness'],
    [{ cookie: { secrets: [SECRET] }, ttlMs: 1000 }, 'stickiness.ttlMs'],
    [{ cookie: { secrets: [SECRET] }, table: {} }, 'stickiness.table'],
    [{ header: 'x user' }, 'stickiness.header'],
    [{ learnCookie: '' }, 'stickiness.learnCookie'],
    [{ sourceIp: true }, 'stickiness.sourceIp'],
    [{ sourceIp: { trusted: [] } }, 'stickiness.sourceIp.trusted'],
    [{ sourceIp: { trustedProxies: ['10.0.0.0/33'] } }, 'stickiness.sourceIp.trustedProxies[0]'],
    [{ header: 'x-user', ttlMs: 0 }, 'stickiness.ttlMs'],
    [{ header: 'x-user', table: { get() {} } }, 'stickiness.table'],
    [{ cookie: { secrets: ['short'] } }, 'stickiness.cookie.secrets[0]'],
    [{ cookies: {} }, 'stickiness.cookies'],
  ])('rejects %j naming %s', (options, path) => {
    const error = thrown(() => new Stickiness(options as StickinessOptions));
    expect(isInvalidOptionError(error)).toBe(true);
    expect(error.message.startsWith(`${path}:`)).toBe(true);
  });

  it('refuses ttlMs together with a table of its own', () => {
    const table = new StickTable<string>({ capacity: 10, ttlMs: 1000, nodeId: 'n', sweepMs: 0 });
    expect(thrown(() => new Stickiness({ header: 'x', table, ttlMs: 5 })).message).toMatch(/^stickiness\.ttlMs:/);
  });
});

describe('cookie stickiness', () => {
  const options = { cookie: { secrets: [SECRET], maxAgeMs: 3_600_000 } };

  it('issues a cookie to a new client and reads it back', () => {
    const sticky = make(options);
    const first = fakeRequest('10.0.0.1');
    expect(sticky.lookup(first, '10.0.0.1', T0)).toBeUndefined();
    const setCookie = sticky.commit(first, '10.0.0.1', 'app-2', undefined, false, T0);
    expect(setCookie).toMatch(/^fulcrum_srv=/);
    const next = fakeRequest('10.0.0.1', { cookie: setCookie!.split(';')[0]! });
    expect(sticky.lookup(next, '10.0.0.1', T0 + 1000)).toBe('app-2');
    // Same backend, young cookie: nothing to send.
    expect(sticky.commit(next, '10.0.0.1', 'app-2', undefined, false, T0 + 1000)).toBeUndefined();
  });

  it('carries the verification from lookup to commit in the object the caller passes, and clears it there', () => {
    const sticky = make(options);
    const carry: StickyVerification = { verified: undefined };
    const first = fakeRequest('10.0.0.1');
    expect(sticky.lookup(first, '10.0.0.1', T0, carry)).toBeUndefined();
    expect(carry.verified).toBeNull();
    const setCookie = sticky.commit(first, '10.0.0.1', 'app-2', undefined, false, T0, carry);
    expect(setCookie).toMatch(/^fulcrum_srv=/);
    expect(carry.verified).toBeUndefined();
    const next = fakeRequest('10.0.0.1', { cookie: setCookie!.split(';')[0]! });
    expect(sticky.lookup(next, '10.0.0.1', T0 + 1000, carry)).toBe('app-2');
    expect(carry.verified).toEqual({ backendId: 'app-2', issuedAt: T0 });
    expect(sticky.commit(next, '10.0.0.1', 'app-2', undefined, false, T0 + 1000, carry)).toBeUndefined();
    // Served by another backend than the cookie names: a new cookie, as without a carry.
    expect(sticky.lookup(next, '10.0.0.1', T0 + 2000, carry)).toBe('app-2');
    expect(sticky.cookie!.read(sticky.commit(next, '10.0.0.1', 'app-3', undefined, false, T0 + 2000, carry)!.split(';')[0], T0 + 2000)).toBe('app-3');
    // A carry that was never filled (no lookup with it): commit verifies the request itself.
    expect(sticky.commit(next, '10.0.0.1', 'app-2', undefined, false, T0 + 3000, { verified: undefined })).toBeUndefined();
  });

  it('reissues when the backend changed, when half the lifetime has passed, and for invalid cookies', () => {
    const sticky = make(options);
    const pair = sticky.commit(fakeRequest('1.1.1.1'), '', 'app-1', undefined, false, T0)!.split(';')[0]!;
    const moved = sticky.commit(fakeRequest('1.1.1.1', { cookie: pair }), '', 'app-3', undefined, true, T0);
    expect(moved).toMatch(/; Secure$/);
    expect(sticky.cookie!.read(moved!.split(';')[0], T0)).toBe('app-3');
    expect(sticky.commit(fakeRequest('1.1.1.1', { cookie: pair }), '', 'app-1', undefined, false, T0 + 1_799_000)).toBeUndefined();
    const refreshed = sticky.commit(fakeRequest('1.1.1.1', { cookie: pair }), '', 'app-1', undefined, false, T0 + 1_800_000);
    expect(sticky.cookie!.verify(refreshed!.split(';')[0], T0 + 1_800_000)).toEqual({ backendId: 'app-1', issuedAt: T0 + 1_800_000 });
    const forged = fakeRequest('1.1.1.1', { cookie: `fulcrum_srv=${'A'.repeat(40)}` });
    expect(sticky.lookup(forged, '', T0)).toBeUndefined();
    expect(sticky.commit(forged, '', 'app-1', undefined, false, T0)).toMatch(/^fulcrum_srv=/);
  });

  it('reads the cookie from the raw header lines, in any case and on any of several Cookie lines', () => {
    const sticky = make(options);
    const pair = sticky.commit(fakeRequest('1.1.1.1'), '', 'app-2', undefined, false, T0)!.split(';')[0]!;
    // What node:http hands over: rawHeaders as sent. `headers` is built lazily and never read here.
    const raw = (rawHeaders: string[]) =>
      ({
        socket: { remoteAddress: '1.1.1.1' },
        rawHeaders,
        get headers(): never {
          throw new Error('req.headers was read');
        },
      }) as unknown as IncomingMessage;
    expect(sticky.lookup(raw(['Host', 'x', 'COOKIE', pair]), '', T0 + 1)).toBe('app-2');
    expect(sticky.lookup(raw(['cookie', 'a=1; b=2', 'Cookie', `c=3; ${pair}`]), '', T0 + 1)).toBe('app-2');
    expect(sticky.lookup(raw(['Host', 'x']), '', T0 + 1)).toBeUndefined();
    // The same cookie on two lines is a duplicate: ignored, like a duplicate within one line.
    expect(sticky.lookup(raw(['Cookie', pair, 'Cookie', pair]), '', T0 + 1)).toBeUndefined();
    expect(sticky.commit(raw(['Cookie', pair]), '', 'app-2', undefined, false, T0 + 1)).toBeUndefined();
  });

  it('offers a load-balancer view keyed by the verified id', () => {
    const sticky = make(options);
    expect(sticky.affinityTable.get('app-1')).toBe('app-1');
    sticky.affinityTable.set('app-1', 'app-2');
    expect(sticky.affinityTable.get('app-1')).toBe('app-1');
  });
});

describe('sourceIp stickiness', () => {
  it('keeps one client on one backend until the entry expires', async () => {
    const clock = new FakeClock(T0);
    const sticky = make({ sourceIp: {}, ttlMs: 60_000 }, clock);
    const req = fakeRequest('203.0.113.9');
    expect(sticky.lookup(req, '203.0.113.9', clock.now())).toBeUndefined();
    expect(sticky.commit(req, '203.0.113.9', 'app-1', undefined, false, clock.now())).toBeUndefined();
    expect(sticky.lookup(req, '203.0.113.9', clock.now())).toBe('app-1');
    expect(sticky.lookup(fakeRequest('203.0.113.10'), '203.0.113.10', clock.now())).toBeUndefined();
    await clock.advance(60_000);
    expect(sticky.lookup(req, '203.0.113.9', clock.now())).toBeUndefined();
  });

  it('moves the entry when another backend served (a redispatch)', () => {
    const sticky = make({ sourceIp: {} });
    const req = fakeRequest('203.0.113.9');
    sticky.commit(req, '203.0.113.9', 'app-1', undefined, false, T0);
    sticky.commit(req, '203.0.113.9', 'app-2', undefined, false, T0);
    expect(sticky.lookup(req, '203.0.113.9', T0)).toBe('app-2');
  });

  it('resolves the address with its own trusted proxies, so spoofed X-Forwarded-For does not move it', () => {
    const sticky = make({ sourceIp: { trustedProxies: ['10.0.0.0/8'] } });
    const viaProxy = fakeRequest('10.0.0.2', { 'x-forwarded-for': '198.51.100.7' });
    sticky.commit(viaProxy, 'ignored', 'app-1', undefined, false, T0);
    expect(sticky.lookup(fakeRequest('10.0.0.3', { 'x-forwarded-for': '6.6.6.6, 198.51.100.7' }), 'ignored', T0)).toBe('app-1');
    // A direct client claiming to be 198.51.100.7 is itself, not the victim.
    expect(sticky.lookup(fakeRequest('192.0.2.50', { 'x-forwarded-for': '198.51.100.7' }), 'ignored', T0)).toBeUndefined();
  });

  it("falls back to the proxy's trusted proxies, then to the clientIp it is given", () => {
    const viaDeps = make({ sourceIp: {} }, new FakeClock(T0), new TrustedProxies(['10.0.0.0/8']));
    viaDeps.commit(fakeRequest('10.0.0.2', { 'x-forwarded-for': '198.51.100.7' }), 'unused', 'app-1', undefined, false, T0);
    expect(viaDeps.lookup(fakeRequest('10.0.0.9', { 'x-forwarded-for': '198.51.100.7' }), 'unused', T0)).toBe('app-1');
    const plain = make({ sourceIp: {} });
    plain.commit(fakeRequest('10.0.0.2'), '198.51.100.7', 'app-1', undefined, false, T0);
    expect(plain.lookup(fakeRequest('10.0.0.3'), '198.51.100.7', T0)).toBe('app-1');
    expect(plain.lookup(fakeRequest(undefined), '', T0)).toBeUndefined();
  });
});

describe('header stickiness', () => {
  it('sticks by the header value and stores long values as a digest', () => {
    const sticky = make({ header: 'Authorization' });
    const token = `Bearer ${'x'.repeat(4000)}`;
    const req = fakeRequest('1.1.1.1', { authorization: token });
    sticky.commit(req, '1.1.1.1', 'app-3', undefined, false, T0);
    expect(sticky.lookup(fakeRequest('2.2.2.2', { authorization: token }), '2.2.2.2', T0)).toBe('app-3');
    expect(sticky.lookup(fakeRequest('2.2.2.2', { authorization: `${token}y` }), '2.2.2.2', T0)).toBeUndefined();
    const keys = sticky.table!.entries().map((e) => e.key);
    expect(keys).toHaveLength(1);
    expect(keys[0]!.length).toBeLessThanOrEqual(64);
    // No header: no key, nothing recorded.
    sticky.commit(fakeRequest('1.1.1.1'), '1.1.1.1', 'app-1', undefined, false, T0);
    expect(sticky.table!.size).toBe(1);
  });
});

describe('learnCookie stickiness', () => {
  it('learns the session cookie from Set-Cookie and forgets it when deleted', () => {
    const sticky = make({ learnCookie: 'JSESSIONID' });
    const login = fakeRequest('1.1.1.1');
    expect(sticky.commit(login, '', 'app-2', ['theme=dark', 'JSESSIONID=s-123; Path=/; HttpOnly'], false, T0)).toBeUndefined();
    const later = fakeRequest('9.9.9.9', { cookie: 'theme=dark; JSESSIONID=s-123' });
    expect(sticky.lookup(later, '', T0)).toBe('app-2');
    sticky.commit(later, '', 'app-2', ['JSESSIONID=; Max-Age=0; Path=/'], false, T0);
    expect(sticky.lookup(later, '', T0)).toBeUndefined();
  });

  it('forgets on an Expires in the past', () => {
    const sticky = make({ learnCookie: 'sid' });
    sticky.commit(fakeRequest('1.1.1.1'), '', 'app-1', ['sid=abc'], false, T0);
    const req = fakeRequest('1.1.1.1', { cookie: 'sid=abc' });
    sticky.commit(req, '', 'app-1', ['sid=abc; Expires=Thu, 01 Jan 1970 00:00:00 GMT'], false, T0);
    expect(sticky.lookup(req, '', T0)).toBeUndefined();
  });

  it('never inserts a session id the backend did not issue', () => {
    const sticky = make({ learnCookie: 'sid' });
    const invented = fakeRequest('6.6.6.6', { cookie: 'sid=made-up' });
    sticky.commit(invented, '', 'app-1', undefined, false, T0);
    expect(sticky.lookup(invented, '', T0)).toBeUndefined();
    sticky.affinityTable.set('ck:made-up', 'app-1');
    expect(sticky.table!.size).toBe(0);
  });

  it('moves a known session to the backend that served it after a redispatch', () => {
    const sticky = make({ learnCookie: 'sid' });
    sticky.commit(fakeRequest('1.1.1.1'), '', 'app-1', ['sid=abc'], false, T0);
    const req = fakeRequest('1.1.1.1', { cookie: 'sid=abc' });
    sticky.commit(req, '', 'app-3', undefined, false, T0);
    expect(sticky.lookup(req, '', T0)).toBe('app-3');
    sticky.affinityTable.set(sticky.affinityKey(req, '', T0)!, 'app-2');
    expect(sticky.lookup(req, '', T0)).toBe('app-2');
  });
});

describe('Stickiness tables', () => {
  it('uses a table it is given and leaves it open on close', async () => {
    const table = new StickTable<string>({ capacity: 10, ttlMs: 1000, nodeId: 'n', clock: new FakeClock(T0), sweepMs: 0 });
    const sticky = new Stickiness({ header: 'x-user' }, { clock: new FakeClock(T0) });
    await sticky.close();
    const shared = new Stickiness({ header: 'x-user', table });
    shared.commit(fakeRequest('1.1.1.1', { 'x-user': 'u1' }), '', 'app-1', undefined, false, T0);
    expect(table.get('hdr:u1')).toBe('app-1');
    await shared.close();
    table.set('after', 'still-open');
    expect(table.get('after')).toBe('still-open');
    expect(shared.commit(fakeRequest('1.1.1.1', { 'x-user': 'u2' }), '', 'app-1', undefined, false, T0)).toBeUndefined();
    expect(table.get('hdr:u2')).toBeUndefined();
    await table.close();
  });
});

describe('stickiness over real sockets with the load balancer', () => {
  const backends = ['app-1', 'app-2', 'app-3'].map((id, i) => ({ id, address: `http://127.0.0.1:${9001 + i}` }));
  let server: TestServer;
  let lbForCookie: LoadBalancer;
  let lbForIp: LoadBalancer;
  let cookieSticky: Stickiness;
  let ipSticky: Stickiness;

  beforeAll(async () => {
    cookieSticky = new Stickiness({ cookie: { secrets: [SECRET] } });
    // Loopback is "our proxy"; the client address comes from X-Forwarded-For.
    ipSticky = new Stickiness({ sourceIp: { trustedProxies: ['loopback'] } });
    lbForCookie = createLoadBalancer({ backends, algorithm: 'round-robin', stickTable: cookieSticky.affinityTable });
    lbForIp = createLoadBalancer({ backends, algorithm: 'round-robin', stickTable: ipSticky.affinityTable });
    server = await startServer((req: IncomingMessage, res: ServerResponse) => {
      const now = Date.now();
      const useCookie = req.url === '/cookie';
      const sticky = useCookie ? cookieSticky : ipSticky;
      const lb = useCookie ? lbForCookie : lbForIp;
      const ip = clientAddress(req);
      const lease = lb.acquire({ affinityKey: sticky.affinityKey(req, ip, now) });
      if (lease === undefined) {
        res.statusCode = 503;
        res.end();
        return;
      }
      const setCookie = sticky.commit(req, ip, lease.backend.id, undefined, false, now);
      if (setCookie !== undefined) res.setHeader('set-cookie', setCookie);
      res.end(lease.backend.id);
      lease.release({ ok: true, status: 200 });
    });
  });

  afterAll(async () => {
    await server.close();
    await Promise.all([lbForCookie.close(), lbForIp.close(), cookieSticky.close(), ipSticky.close()]);
  });

  it('keeps a cookie-carrying client on one backend over many requests, and moves it when that backend goes', async () => {
    const first = await get('127.0.0.1', server.port, '/cookie');
    const cookie = (first.headers['set-cookie'] ?? [])[0]!.split(';')[0]!;
    const seen = new Set<string>();
    for (let i = 0; i < 30; i++) {
      const response = await get('127.0.0.1', server.port, '/cookie', { cookie });
      seen.add(response.body);
      expect(response.headers['set-cookie']).toBeUndefined();
    }
    expect([...seen]).toEqual([first.body]);
    // Without the cookie, round robin spreads requests over all three.
    const spread = new Set<string>();
    for (let i = 0; i < 6; i++) spread.add((await get('127.0.0.1', server.port, '/cookie')).body);
    expect(spread.size).toBe(3);
    // The sticky backend goes into maintenance: the client moves and gets a cookie for its new one.
    lbForCookie.maintain(first.body);
    const moved = await get('127.0.0.1', server.port, '/cookie', { cookie });
    expect(moved.body).not.toBe(first.body);
    expect(cookieSticky.cookie!.read((moved.headers['set-cookie'] ?? [])[0]!.split(';')[0], Date.now())).toBe(moved.body);
    lbForCookie.ready(first.body);
  });

  it('keeps one source address on one backend, and spoofed X-Forwarded-For does not move it', async () => {
    const client = '198.51.100.20';
    const first = (await get('127.0.0.1', server.port, '/ip', { 'x-forwarded-for': client })).body;
    for (let i = 0; i < 20; i++) {
      // Whatever the client writes on the left, our proxy's appended hop names the client.
      const spoof = `10.${i}.0.1, 203.0.113.${i}`;
      expect((await get('127.0.0.1', server.port, '/ip', { 'x-forwarded-for': `${spoof}, ${client}` })).body).toBe(first);
    }
    const others = new Set<string>();
    for (let i = 0; i < 6; i++) others.add((await get('127.0.0.1', server.port, '/ip', { 'x-forwarded-for': `198.51.100.${100 + i}` })).body);
    expect(others.size).toBeGreaterThan(1);
  });
});
