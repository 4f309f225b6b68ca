// What someone coming from connect-redis meets: their option names refused with the Fulcrum
// equivalent, a throttle that can be 0, one readiness wait shared by every early call, and errors
// that say which call failed, why, and what the store does next.
import { afterAll, describe, expect, it } from 'vitest';
import { isInvalidOptionError, isStoreUnavailableError } from '@fulcrum/core';
import { RedisStore, redisClientOptions } from '@fulcrum/session-redis';
import { REDIS_CLIENTS, closeClients, freePort, newClient, redisReachable, REDIS_URL, skipUnless, uniquePrefix } from './helpers';

const skip = skipUnless(await redisReachable(), `Redis at ${REDIS_URL}`);

function refusal(options: Record<string, unknown>): { path: string; message: string } {
  try {
    new RedisStore(options as never);
  } catch (error) {
    expect(isInvalidOptionError(error)).toBe(true);
    return { path: (error as { path: string }).path, message: (error as Error).message };
  }
  throw new Error(`accepted ${JSON.stringify(Object.keys(options))}`);
}

describe.skipIf(skip)('RedisStore for connect-redis users', () => {
  const client = newClient();
  afterAll(() => closeClients());

  it('refuses connect-redis option names and names the Fulcrum equivalent', () => {
    const cases: [string, unknown, RegExp][] = [
      ['ttl', 600, /`ttlSeconds`/],
      ['disableTTL', true, /always writes an expiry/],
      ['disableTouch', true, /`touchAfterSeconds`/],
      ['touchAfter', 60, /`touchAfterSeconds`/],
      ['url', 'redis://127.0.0.1', /pass it as `client`/],
    ];
    for (const [key, value, hint] of cases) {
      const { path, message } = refusal({ client, [key]: value });
      expect(path).toBe(`redisStore.${key}`);
      expect(message).toMatch(hint);
    }
  });

  it('refuses an unknown option and lists the known ones', () => {
    const { path, message } = refusal({ client, ttlSecond: 600 });
    expect(path).toBe('redisStore.ttlSecond');
    expect(message).toMatch(/is not an option \(known: client, prefix, ttlSeconds, touchAfterSeconds/);
  });

  it('takes a touch throttle of 0 and then stores every touch', async () => {
    const prefix = uniquePrefix('throttle0');
    const store = new RedisStore({ client, prefix, touchAfterSeconds: 0 });
    expect(store.config.touchAfterSeconds).toBe(0);
    const base = Date.now();
    const cookie = (ms: number) => ({ originalMaxAge: 600_000, expires: new Date(base + ms).toISOString() });
    await store.set('t0', { cookie: cookie(600_000), n: 1 } as never);
    // One millisecond later: with the throttle at 0 even that is written.
    await store.touch('t0', { cookie: cookie(600_001), n: 1 } as never);
    expect(await store.get('t0')).toEqual({ cookie: cookie(600_001), n: 1 });
    await store.clear();
  });

  for (const major of [5, 6] as const) {
    const Client = REDIS_CLIENTS[major];

    it(`answers twenty gets made before the first connection with one shared wait, and no listener warning (ioredis ${major})`, async () => {
      const lazy = new Client(REDIS_URL, redisClientOptions({ lazyConnect: true }));
      lazy.on('error', () => undefined);
      const warnings: Error[] = [];
      const onWarning = (warning: Error) => warnings.push(warning);
      process.on('warning', onWarning);
      try {
        const store = new RedisStore({ client: lazy, prefix: uniquePrefix('ready') });
        const gets = Array.from({ length: 20 }, (_, i) => store.get(`early-${i}`));
        // The store's own two listeners plus one shared wait, whatever the number of calls.
        expect(lazy.listenerCount('ready')).toBeLessThanOrEqual(2);
        expect(await Promise.all(gets)).toEqual(Array.from({ length: 20 }, () => null));
        await new Promise((resolve) => setImmediate(resolve));
        expect(warnings.map((w) => w.name)).not.toContain('MaxListenersExceededWarning');
        store.close();
      } finally {
        process.off('warning', onWarning);
        lazy.disconnect();
      }
    });

    it(`says which call failed, why, and what it does next — never just "(Stream)" (ioredis ${major})`, async () => {
      const port = await freePort(); // nothing listens there
      const down = new Client(port, '127.0.0.1', redisClientOptions({ lazyConnect: true, retryStrategy: () => 1000 }));
      down.on('error', () => undefined);
      try {
        const store = new RedisStore({ client: down, commandTimeoutMs: 200 });
        const error = await store.get('any').then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(isStoreUnavailableError(error)).toBe(true);
        const message = (error as Error).message;
        expect(message).toMatch(/^RedisStore\.get failed: /);
        expect(message).toMatch(/(no open connection|connection was refused|not connected)/);
        expect(message).toMatch(/this call fails without a retry|fails calls at once/);
        expect(message).not.toMatch(/\(Stream\)|127\.0\.0\.1|\d{4,5}\)/);
        store.close();
      } finally {
        down.disconnect();
      }
    });
  }
});
