import { Resolver } from 'node:dns/promises';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { backendIdOf, createLoadBalancer, isInvalidOptionError, type LoadBalancer, type MembershipChange } from '@fulcrum/core';
import { request } from 'undici';
import { createBalancedDispatcher } from '../../src/dispatcher';
import { DnsDiscoveryError, dnsDiscovery, type DnsDiscovery, type DnsResolver } from '../../src/discovery';
import { send, startBackend, startProxy, type TestBackend } from '../proxy/helpers';
import { startDnsServer } from './dns-server';
import { deferred } from '../../../../test-support/wait-for';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

type Records = { address: string; ttl: number }[];
type Srv = { name: string; port: number; priority: number; weight: number }[];

/** An in-memory resolver: set `a`, `aaaa`, `srv` per name; `fail` makes every lookup throw that code. */
class FakeResolver implements DnsResolver {
  a = new Map<string, Records>();
  aaaa = new Map<string, Records>();
  srv = new Map<string, Srv>();
  fail: string | undefined;
  calls = 0;

  #answer<T>(map: Map<string, T>, name: string): Promise<T> {
    this.calls++;
    if (this.fail !== undefined) return Promise.reject(Object.assign(new Error(`query failed ${this.fail}`), { code: this.fail }));
    const value = map.get(name);
    return value === undefined ? Promise.reject(Object.assign(new Error('queryA ENOTFOUND'), { code: 'ENOTFOUND' })) : Promise.resolve(value);
  }

  resolve4(name: string): Promise<Records> {
    return this.#answer(this.a, name);
  }

  resolve6(name: string): Promise<Records> {
    return this.#answer(this.aaaa, name);
  }

  resolveSrv(name: string): Promise<Srv> {
    return this.#answer(this.srv, name);
  }
}

function lbWithCleanup(): LoadBalancer {
  const lb = createLoadBalancer({ backends: [], algorithm: 'round-robin' });
  cleanups.push(() => lb.close());
  return lb;
}

function start(...args: Parameters<typeof dnsDiscovery>): DnsDiscovery {
  const discovery = dnsDiscovery(...args);
  cleanups.push(() => discovery.stop());
  return discovery;
}

function nextUpdate(discovery: DnsDiscovery): Promise<MembershipChange> {
  return new Promise((resolve) => discovery.once('update', (change) => resolve(change)));
}

describe('dnsDiscovery', () => {
  it('refuses bad targets and options with the option named', () => {
    const lb = lbWithCleanup();
    const resolver = new FakeResolver();
    for (const [target, options, path] of [
      [{ hostname: 'users.internal', port: 0 }, { lb, resolver }, 'target.port'],
      [{ hostname: 'bad name!', port: 80 }, { lb, resolver }, 'target.hostname'],
      [{ srv: '_http._tcp.users', port: 80 }, { lb, resolver }, 'target'],
      [{ hostname: 'users', port: 80 }, { lb: {}, resolver }, 'options.lb'],
      [{ hostname: 'users', port: 80 }, { lb, resolver: {} }, 'options.resolver'],
      [{ hostname: 'users', port: 80 }, { lb, resolver, minTtlMs: 0 }, 'options.minTtlMs'],
      [{ hostname: 'users', port: 80 }, { lb, resolver, minTtlMs: 100, maxTtlMs: 50 }, 'options.maxTtlMs'],
      [{ hostname: 'users', port: 80 }, { lb, resolver, family: 4 }, 'options.family'],
      [{ hostname: 'users', port: 80 }, { lb, resolver, ttl: 5 }, 'options.ttl'],
    ] as const) {
      let caught: unknown;
      try {
        dnsDiscovery(target as never, options as never);
      } catch (error) {
        caught = error;
      }
      expect(isInvalidOptionError(caught), path).toBe(true);
      expect((caught as { path: string }).path).toBe(path);
    }
  });

  it('turns A records into instances with opaque ids derived from their addresses, and AAAA ones when the name has no A record', async () => {
    const resolver = new FakeResolver();
    resolver.a.set('users.internal', [
      { address: '10.0.0.6', ttl: 30 },
      { address: '10.0.0.5', ttl: 30 },
    ]);
    resolver.aaaa.set('users6.internal', [{ address: 'fd00::5', ttl: 30 }]);
    const lb4 = lbWithCleanup();
    const lb6 = lbWithCleanup();
    const d4 = start({ hostname: 'users.internal', port: 8080 }, { lb: lb4, resolver, backend: { weight: 2, zone: 'a' } });
    const d6 = start({ hostname: 'users6.internal', port: 8080 }, { lb: lb6, resolver });
    expect(await d4.ready).toBe(true);
    expect(await d6.ready).toBe(true);
    expect(lb4.backends.map((b) => [b.id, b.address, b.weight, b.zone])).toEqual([
      [backendIdOf('http://10.0.0.5:8080'), 'http://10.0.0.5:8080', 2, 'a'],
      [backendIdOf('http://10.0.0.6:8080'), 'http://10.0.0.6:8080', 2, 'a'],
    ]);
    expect(lb6.backends.map((b) => [b.id, b.address])).toEqual([[backendIdOf('http://[fd00::5]:8080'), 'http://[fd00::5]:8080']]);
    // Opaque: nothing of the address is readable in the id (`b-` and 16 hex digits of a hash).
    for (const b of [...lb4.backends, ...lb6.backends]) expect(b.id).toMatch(/^b-[0-9a-f]{16}$/);
    // Stable: another instance discovering the same addresses gives them the same ids.
    const again = lbWithCleanup();
    await start({ hostname: 'users.internal', port: 8080 }, { lb: again, resolver }).ready;
    expect(again.backends.map((b) => b.id)).toEqual(lb4.backends.map((b) => b.id));
  });

  it('maps SRV priorities to primaries and backups and weight 0 to a very small share', async () => {
    const resolver = new FakeResolver();
    resolver.srv.set('_http._tcp.users', [
      { name: 'n1.users', port: 9001, priority: 10, weight: 5 },
      { name: 'n2.users', port: 9002, priority: 10, weight: 0 },
      { name: 'n3.users', port: 9003, priority: 20, weight: 1 },
    ]);
    resolver.a.set('n1.users', [{ address: '10.0.0.1', ttl: 30 }]);
    resolver.a.set('n2.users', [{ address: '10.0.0.2', ttl: 30 }]);
    resolver.a.set('n3.users', [{ address: '10.0.0.3', ttl: 30 }]);
    const lb = lbWithCleanup();
    await start({ srv: '_http._tcp.users' }, { lb, resolver }).ready;
    expect(lb.backends.map((b) => [b.address, b.weight, b.backup])).toEqual([
      ['http://10.0.0.1:9001', 5, false],
      ['http://10.0.0.2:9002', 0.01, false],
      ['http://10.0.0.3:9003', 1, true],
    ]);
  });

  it('refreshes on the record TTL, bounded by minTtlMs and maxTtlMs', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const resolver = new FakeResolver();
    resolver.a.set('users', [{ address: '10.0.0.1', ttl: 30 }]);
    const lb = lbWithCleanup();
    const discovery = start({ hostname: 'users', port: 80 }, { lb, resolver, minTtlMs: 5000, maxTtlMs: 60_000 });
    await discovery.ready;
    expect(resolver.calls).toBe(1);
    await vi.advanceTimersByTimeAsync(29_999);
    expect(resolver.calls).toBe(1);
    resolver.a.set('users', [{ address: '10.0.0.1', ttl: 0 }]);
    await vi.advanceTimersByTimeAsync(1);
    expect(resolver.calls).toBe(2);
    // TTL 0 is held to minTtlMs.
    resolver.a.set('users', [{ address: '10.0.0.1', ttl: 86_400 }]);
    await vi.advanceTimersByTimeAsync(4999);
    expect(resolver.calls).toBe(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(resolver.calls).toBe(3);
    // A day-long TTL is held to maxTtlMs.
    await vi.advanceTimersByTimeAsync(59_999);
    expect(resolver.calls).toBe(3);
    await vi.advanceTimersByTimeAsync(1);
    expect(resolver.calls).toBe(4);
    discovery.stop();
    await vi.advanceTimersByTimeAsync(120_000);
    expect(resolver.calls).toBe(4);
  });

  it('keeps the last good set through a failed lookup or an empty answer, and says so', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const resolver = new FakeResolver();
    resolver.a.set('users', [
      { address: '10.0.0.1', ttl: 1 },
      { address: '10.0.0.2', ttl: 1 },
    ]);
    const lb = lbWithCleanup();
    const onError = vi.fn();
    const discovery = start({ hostname: 'users', port: 80 }, { lb, resolver, minTtlMs: 1000, onError });
    const events: Error[] = [];
    discovery.on('error', (error) => events.push(error));
    await discovery.ready;
    resolver.fail = 'ESERVFAIL';
    await vi.advanceTimersByTimeAsync(1000);
    resolver.fail = undefined;
    resolver.a.delete('users');
    await vi.advanceTimersByTimeAsync(1000);
    expect(lb.backends.map((b) => b.address)).toEqual(['http://10.0.0.1:80', 'http://10.0.0.2:80']);
    expect(events).toHaveLength(2);
    expect(events[0]).toBeInstanceOf(DnsDiscoveryError);
    expect((events[0]!.cause as { code: string }).code).toBe('ESERVFAIL');
    expect(events[1]!.message).toMatch(/no records/);
    expect(onError).toHaveBeenCalledTimes(2);
    // Recovery: the next good answer is applied.
    resolver.a.set('users', [{ address: '10.0.0.3', ttl: 1 }]);
    await vi.advanceTimersByTimeAsync(1000);
    const serving = lb.snapshot().backends.filter((b) => b.removing !== true);
    expect(serving.map((b) => b.address)).toEqual(['http://10.0.0.3:80']);
  });

  it('empties the set on an empty answer only with allowEmpty, and never throws without an error listener', async () => {
    const resolver = new FakeResolver();
    resolver.a.set('users', [{ address: '10.0.0.1', ttl: 1 }]);
    const lb = lbWithCleanup();
    const strict = start({ hostname: 'users', port: 80 }, { lb, resolver });
    await strict.ready;
    resolver.a.delete('users');
    await expect(strict.refresh()).rejects.toBeInstanceOf(DnsDiscoveryError);
    expect(lb.backends).toHaveLength(1);
    strict.stop();
    const lenient = start({ hostname: 'users', port: 80 }, { lb, resolver, allowEmpty: true });
    expect(await lenient.ready).toBe(true);
    expect(lb.backends).toHaveLength(0);
  });

  describe('with a dispatcher and real instances', () => {
    const instances: TestBackend[] = [];
    afterEach(async () => {
      for (const b of instances.splice(0)) await b.close();
    });

    it('sends traffic to added instances and drains removed ones, finishing their requests', async () => {
      // i0 holds a /slow request until the test releases it, and signals that it has one.
      const slowAtI0 = deferred();
      const releaseSlow = deferred();
      for (const id of ['i0', 'i1', 'i2']) {
        instances.push(
          await startBackend(id, (req, res) => {
            if (id !== 'i0' || req.url !== '/slow') return void res.end(id);
            slowAtI0.resolve();
            void releaseSlow.promise.then(() => res.end(id));
          }),
        );
      }
      const [i0, i1, i2] = instances as [TestBackend, TestBackend, TestBackend];
      const resolver = new FakeResolver();
      const srv = (list: TestBackend[]): Srv => list.map((b) => ({ name: 'node.test', port: b.port, priority: 0, weight: 1 }));
      resolver.srv.set('_http._tcp.users', srv([i0, i1]));
      resolver.a.set('node.test', [{ address: '127.0.0.1', ttl: 1 }]);
      const lb = lbWithCleanup();
      const discovery = start({ srv: '_http._tcp.users' }, { lb, resolver, minTtlMs: 20, maxTtlMs: 20 });
      const dispatcher = createBalancedDispatcher({ balancer: lb });
      cleanups.push(() => dispatcher.close());
      await discovery.ready;
      const body = async (path = '/'): Promise<string> => (await request(`http://users.internal${path}`, { dispatcher })).body.text();

      const before = await Promise.all(Array.from({ length: 10 }, () => body()));
      expect(new Set(before)).toEqual(new Set(['i0', 'i1']));

      // A slow request is on its way to i0 when i0 leaves DNS and i2 joins.
      const slow = (async () => {
        for (;;) {
          const answer = await (await request('http://users.internal/slow', { dispatcher })).body.text();
          if (answer === 'i0') return answer;
        }
      })();
      await slowAtI0.promise;
      resolver.srv.set('_http._tcp.users', srv([i1, i2]));
      const change = await nextUpdate(discovery);
      expect(change.added).toEqual([backendIdOf(i2.address)]);
      expect(change.removed).toEqual([backendIdOf(i0.address)]);
      const hitsOnI0 = i0.hits.length;
      const after = await Promise.all(Array.from({ length: 10 }, () => body()));
      expect(new Set(after)).toEqual(new Set(['i1', 'i2']));
      expect(i0.hits.length).toBe(hitsOnI0);
      // Removed from DNS and from the balancer, i0 still finishes the request it holds.
      releaseSlow.resolve();
      expect(await slow).toBe('i0');
      expect(lb.get(backendIdOf(i0.address))).toBeUndefined();
    });
  });

  describe('behind a proxy with sticky cookies', () => {
    const instances: TestBackend[] = [];
    afterEach(async () => {
      for (const b of instances.splice(0)) await b.close();
    });

    it('issues a sticky cookie for a discovered instance that names neither its IP nor its port, and still pins', async () => {
      for (const id of ['i0', 'i1', 'i2']) instances.push(await startBackend(id));
      const resolver = new FakeResolver();
      resolver.srv.set(
        '_http._tcp.users',
        instances.map((b) => ({ name: 'node.test', port: b.port, priority: 0, weight: 1 })),
      );
      resolver.a.set('node.test', [{ address: '127.0.0.1', ttl: 60 }]);
      const lb = createLoadBalancer({ backends: [], algorithm: 'round-robin' });
      const discovery = start({ srv: '_http._tcp.users' }, { lb, resolver });
      expect(await discovery.ready).toBe(true);
      const proxy = await startProxy({ balancer: lb, stickiness: { cookie: { secrets: ['a-test-secret-that-is-long-enough-0123456789'] } } });
      // The proxy does not own a load balancer it was given: closed after the proxy.
      cleanups.push(() => lb.close());
      cleanups.push(() => proxy.close());

      const first = await send(proxy.url);
      const setCookie = String(first.headers['set-cookie']);
      const cookie = setCookie.split(';')[0]!;
      expect(cookie).toMatch(/^fulcrum_srv=/);
      // The value is base64url(version | issuedAt | backend id | MAC): decoded, it holds the id in
      // clear (only the MAC protects it), so that is where an address would show.
      const decoded = Buffer.from(cookie.slice('fulcrum_srv='.length), 'base64url');
      const idInCookie = decoded.subarray(5, decoded.length - 16).toString('utf8');
      const served = instances.find((b) => b.id === first.body)!;
      expect(idInCookie).toBe(backendIdOf(served.address));
      expect(idInCookie).toMatch(/^b-[0-9a-f]{16}$/);
      const text = decoded.toString('latin1');
      expect(text).not.toContain('127.0.0.1');
      for (const b of instances) expect(text).not.toContain(String(b.port));

      // It pins: every request with the cookie goes to the same instance, across a DNS refresh too.
      for (let i = 0; i < 6; i++) expect((await send(proxy.url, { headers: { cookie } })).body).toBe(first.body);
      await discovery.refresh();
      for (let i = 0; i < 6; i++) expect((await send(proxy.url, { headers: { cookie } })).body).toBe(first.body);
      // Without it, round robin spreads the requests over all three.
      const spread = new Set<string>();
      for (let i = 0; i < 6; i++) spread.add((await send(proxy.url)).body);
      expect(spread).toEqual(new Set(['i0', 'i1', 'i2']));
    });
  });

  it('resolves SRV and A records with TTLs from a real DNS server on loopback', async () => {
    const dns = await startDnsServer();
    cleanups.push(() => dns.close());
    dns.zone.set('_http._tcp.users.internal', {
      SRV: [
        { priority: 1, weight: 3, port: 8081, target: 'a.users.internal', ttl: 60 },
        { priority: 1, weight: 1, port: 8082, target: 'b.users.internal', ttl: 60 },
      ],
    });
    dns.zone.set('a.users.internal', { A: [{ address: '127.0.0.11', ttl: 30 }] });
    dns.zone.set('b.users.internal', { A: [{ address: '127.0.0.12', ttl: 30 }] });
    const resolver = new Resolver({ timeout: 1000, tries: 2 });
    resolver.setServers([`127.0.0.1:${dns.port}`]);
    const lb = lbWithCleanup();
    const discovery = start({ srv: '_http._tcp.users.internal' }, { lb, resolver });
    expect(await discovery.ready).toBe(true);
    expect(lb.backends.map((b) => [b.id, b.address, b.weight])).toEqual([
      [backendIdOf('http://127.0.0.11:8081'), 'http://127.0.0.11:8081', 3],
      [backendIdOf('http://127.0.0.12:8082'), 'http://127.0.0.12:8082', 1],
    ]);
    expect(dns.queries).toEqual(expect.arrayContaining(['SRV _http._tcp.users.internal', 'A a.users.internal', 'A b.users.internal']));

    // One instance leaves the zone; a SERVFAIL afterwards changes nothing.
    dns.zone.set('_http._tcp.users.internal', { SRV: [{ priority: 1, weight: 3, port: 8081, target: 'a.users.internal', ttl: 60 }] });
    const change = await discovery.refresh();
    expect(change.removed).toEqual([backendIdOf('http://127.0.0.12:8082')]);
    dns.servfail = true;
    await expect(discovery.refresh()).rejects.toBeInstanceOf(DnsDiscoveryError);
    expect(lb.backends.map((b) => b.address)).toEqual(['http://127.0.0.11:8081']);
  });
});
