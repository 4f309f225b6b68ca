import { describe, expect, it } from 'vitest';
import { MemoryReplicator } from '@fulcrum/core';
import { FakeClock } from '@fulcrum/core/testing';
import { RateLimiter } from '../../src/ratelimit';

describe('RateLimiter', () => {
  it('admits up to the rate limit per key, then refuses with 429 and Retry-After', async () => {
    const clock = new FakeClock(1_000_000);
    const limiter = new RateLimiter({ requests: 3, windowMs: 10_000 }, { clock });
    const verdicts = Array.from({ length: 5 }, () => limiter.check('ip:10.0.0.1'));
    expect(verdicts.map((v) => v.admit)).toEqual([true, true, true, false, false]);
    expect(verdicts[3]).toMatchObject({ admit: false, status: 429, message: 'Too Many Requests', headers: { 'retry-after': '10' } });
    expect(limiter.check('ip:10.0.0.2').admit).toBe(true);
    await clock.advance(25_000);
    expect(limiter.check('ip:10.0.0.1').admit).toBe(true);
    void limiter.close();
  });

  it('counts concurrency up on admission and down once per done()', () => {
    const limiter = new RateLimiter({ concurrent: 2 });
    const a = limiter.check('k');
    const b = limiter.check('k');
    expect(limiter.check('k')).toMatchObject({ admit: false, status: 429 });
    expect(limiter.concurrentOf('k')).toBe(2);
    if (!a.admit) throw new Error('a was admitted');
    a.done!();
    a.done!();
    expect(limiter.concurrentOf('k')).toBe(1);
    expect(limiter.check('k').admit).toBe(true);
    expect(b.admit).toBe(true);
    void limiter.close();
  });

  it('keys by a header when asked, and by address when the header is absent', () => {
    const limiter = new RateLimiter({ requests: 1, by: { header: 'X-Api-Key' } });
    const req = (key?: string) => ({ headers: key === undefined ? {} : { 'x-api-key': key } }) as never;
    expect(limiter.keyOf(req('abc'), '10.0.0.1')).toBe('h:abc');
    expect(limiter.keyOf(req(), '10.0.0.1')).toBe('ip:10.0.0.1');
    expect(limiter.admission(req('abc'), { clientIp: '1.1.1.1' }).admit).toBe(true);
    expect(limiter.admission(req('abc'), { clientIp: '2.2.2.2' }).admit).toBe(false);
    void limiter.close();
  });

  it('counts header values over 128 characters under their SHA-256, so long tokens sharing a prefix stay apart', () => {
    const limiter = new RateLimiter({ requests: 1, by: { header: 'X-Api-Key' } });
    const req = (key: string) => ({ headers: { 'x-api-key': key } }) as never;
    const prefix = 'eyJhbGciOiJIUzI1NiJ9.'.padEnd(300, 'x');
    const a = limiter.keyOf(req(`${prefix}a`), '10.0.0.1');
    expect(a).toMatch(/^h:#[A-Za-z0-9_-]{43}$/);
    expect(limiter.keyOf(req(`${prefix}b`), '10.0.0.1')).not.toBe(a);
    expect(limiter.keyOf(req('k'.repeat(128)), '10.0.0.1')).toBe(`h:${'k'.repeat(128)}`);
    expect(limiter.keyOf(req('k'.repeat(129)), '10.0.0.1')).toMatch(/^h:#[A-Za-z0-9_-]{43}$/);
    // A huge value costs the table a 46-character key, never its own size.
    expect(limiter.keyOf(req('k'.repeat(1 << 20)), '10.0.0.1')).toHaveLength(46);
    expect(limiter.admission(req(`${prefix}a`), { clientIp: '1.1.1.1' }).admit).toBe(true);
    expect(limiter.admission(req(`${prefix}b`), { clientIp: '1.1.1.1' }).admit).toBe(true);
    expect(limiter.admission(req(`${prefix}a`), { clientIp: '2.2.2.2' }).admit).toBe(false);
    void limiter.close();
  });

  it('adds the rates peers published when shared through a replicator', async () => {
    const bus = new MemoryReplicator<number>();
    const a = new RateLimiter({ requests: 4, shared: true }, { nodeId: 'a', replicator: bus });
    const b = new RateLimiter({ requests: 4, shared: true }, { nodeId: 'b', replicator: bus });
    await Promise.all([a.table.ready, b.table.ready]);
    // The signal that a's batch reached the bus's subscribers (b subscribed first, so it has it too).
    const delivered = new Promise<void>((resolve) => {
      const unsubscribe = bus.subscribe((entries) => {
        if (entries.some((entry) => entry.origin === 'a')) {
          unsubscribe();
          resolve();
        }
      });
    });
    for (let i = 0; i < 3; i++) expect(a.check('ip:1').admit).toBe(true);
    await a.table.flush();
    await delivered;
    expect(b.rateOf('ip:1')).toBeGreaterThanOrEqual(3);
    expect(b.check('ip:1').admit).toBe(true);
    expect(b.check('ip:1').admit).toBe(false);
    await Promise.all([a.close(), b.close()]);
  });

  it('refuses a shared limit without a replicator', () => {
    expect(() => new RateLimiter({ requests: 1, shared: true })).toThrow('rateLimit.shared: needs a replicator');
  });
});
