import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import express from 'express';
import session from 'express-session';
import Fastify from 'fastify';
import fastifyCookie from '@fastify/cookie';
import fastifySession from '@fastify/session';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeClock, checkStore, type StoreUnderTest } from '@fulcrum/core/testing';
import { isInvalidOptionError } from '@fulcrum/core';
import { MAX_SESSION_ID_LENGTH } from '@fulcrum/core/session';
import { RedisStore } from '@fulcrum/session-redis';
import { closeClients, newClient, redisReachable, REDIS_URL, sessionData, skipUnless, uniquePrefix } from './helpers';

const skip = skipUnless(await redisReachable(), `Redis at ${REDIS_URL}`);

describe.skipIf(skip)('RedisStore on a standalone Redis', () => {
  const prefix = uniquePrefix('store');
  const client = newClient();

  afterAll(async () => {
    const keys = await client.keys(`${prefix}*`);
    if (keys.length > 0) await client.del(keys);
    await closeClients();
  });

  it('passes the checkStore conformance suite', async () => {
    await checkStore(() => new RedisStore({ client, prefix: `${prefix}chk:` }) as unknown as StoreUnderTest, {
      ttlMs: 300,
      expiryGraceMs: 150,
      maxIdLength: MAX_SESSION_ID_LENGTH,
    });
  });

  it('refuses invalid options with errors naming the option and the value', () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ client: {} }, 'redisStore.client'],
      [{ client, prefix: 'a\nb' }, 'redisStore.prefix'],
      [{ client, ttlSeconds: 0 }, 'redisStore.ttlSeconds'],
      [{ client, touchAfterSeconds: -1 }, 'redisStore.touchAfterSeconds'],
      [{ client, scanCount: 1.5 }, 'redisStore.scanCount'],
      [{ client, commandTimeoutMs: Number.NaN }, 'redisStore.commandTimeoutMs'],
      [{ client, serializer: { stringify: JSON.stringify } }, 'redisStore.serializer'],
      [{ client, optimistic: 'yes' }, 'redisStore.optimistic'],
      [{ client, optimistic: { versionField: '1v' } }, 'redisStore.optimistic.versionField'],
      [{ client, optimistic: true, serializer: { stringify: JSON.stringify, parse: JSON.parse } }, 'redisStore.serializer'],
    ];
    for (const [options, path] of cases) {
      let caught: unknown;
      try {
        new RedisStore(options as never);
      } catch (error) {
        caught = error;
      }
      expect(isInvalidOptionError(caught), path).toBe(true);
      expect((caught as { path: string }).path).toBe(path);
    }
    expect(new RedisStore({ client }).config).toEqual({
      prefix: 'sess:',
      ttlSeconds: 86_400,
      touchAfterSeconds: 60,
      scanCount: 100,
      commandTimeoutMs: 2000,
      versionField: undefined,
    });
  });

  it('sends the expiry with every write, taken from the cookie or else ttlSeconds', async () => {
    const store = new RedisStore({ client, prefix, ttlSeconds: 600 });
    await store.set('exp1', sessionData(60_000, { n: 1 }));
    const first = await client.pttl(`${prefix}exp1`);
    expect(first).toBeGreaterThan(50_000);
    expect(first).toBeLessThanOrEqual(60_000);
    await store.set('exp1', sessionData(120_000, { n: 2 }));
    expect(await client.pttl(`${prefix}exp1`)).toBeGreaterThan(110_000);
    await store.set('exp2', { n: 3 } as never);
    const fallback = await client.pttl(`${prefix}exp2`);
    expect(fallback).toBeGreaterThan(590_000);
    expect(fallback).toBeLessThanOrEqual(600_000);
  });

  it('computes the TTL it sends from its clock option, not the wall clock', async () => {
    // Years before the wall clock: a store that read Date.now() would delete the session instead.
    const clock = new FakeClock(Date.UTC(2020, 0, 1));
    const store = new RedisStore({ client, prefix, clock });
    const cookie = sessionData(60_000, { n: 1 }, clock.now());
    await store.set('clock', cookie);
    const first = await client.pttl(`${prefix}clock`);
    expect(first).toBeGreaterThan(55_000);
    expect(first).toBeLessThanOrEqual(60_000);
    // 30 s later on the store's clock, the same cookie has 30 s left.
    await clock.advance(30_000);
    await store.set('clock', cookie);
    const second = await client.pttl(`${prefix}clock`);
    expect(second).toBeGreaterThan(25_000);
    expect(second).toBeLessThanOrEqual(30_000);
    await clock.advance(30_000);
    await store.set('clock', cookie);
    expect(await client.exists(`${prefix}clock`)).toBe(0);
  });

  it('deletes a session instead of writing it when its cookie has already expired', async () => {
    const store = new RedisStore({ client, prefix });
    await store.set('past', sessionData(60_000));
    await store.set('past', sessionData(-1000));
    expect(await client.exists(`${prefix}past`)).toBe(0);
    await store.set('past', sessionData(60_000));
    await store.touch('past', sessionData(-1));
    expect(await client.exists(`${prefix}past`)).toBe(0);
  });

  it('extends the expiry on touch only past touchAfterSeconds', async () => {
    const store = new RedisStore({ client, prefix, touchAfterSeconds: 60 });
    const hour = 3_600_000;
    await store.set('thr', sessionData(hour));
    await client.pexpire(`${prefix}thr`, hour - 30_000); // as if stored 30 s ago
    await store.touch('thr', sessionData(hour)); // extends by ~30 s: below the throttle
    expect(await client.pttl(`${prefix}thr`)).toBeLessThanOrEqual(hour - 30_000);
    await client.pexpire(`${prefix}thr`, hour - 120_000); // stored 2 min ago
    await store.touch('thr', sessionData(hour)); // extends by ~2 min: written
    expect(await client.pttl(`${prefix}thr`)).toBeGreaterThan(hour - 10_000);
  });

  it('caps the touch throttle at half the TTL so that short rolling sessions still roll', async () => {
    const store = new RedisStore({ client, prefix, touchAfterSeconds: 3600 });
    await store.set('short', sessionData(10_000));
    await client.pexpire(`${prefix}short`, 4000);
    await store.touch('short', sessionData(10_000)); // extends by 6 s ≥ 10 s / 2
    expect(await client.pttl(`${prefix}short`)).toBeGreaterThan(8000);
  });

  it('never recreates a destroyed session through touch, even racing the destroy', async () => {
    for (const touchAfterSeconds of [0, 60]) {
      const store = new RedisStore({ client, prefix, touchAfterSeconds });
      const ids = Array.from({ length: 50 }, (_, i) => `race-${touchAfterSeconds}-${i}`);
      await Promise.all(ids.map((id) => store.set(id, sessionData(60_000))));
      await Promise.all(ids.flatMap((id) => [store.touch(id, sessionData(3_600_000)), store.destroy(id), store.touch(id, sessionData(3_600_000))]));
      expect(await client.exists(ids.map((id) => prefix + id))).toBe(0);
      await store.touch('never-existed', sessionData(60_000));
      expect(await client.exists(`${prefix}never-existed`)).toBe(0);
    }
  });

  it('reads corrupt data as no session and reports it as an error event', async () => {
    const store = new RedisStore({ client, prefix: `${prefix}corrupt:` });
    await client.set(`${prefix}corrupt:bad`, '{"cookie": {', 'PX', 60_000);
    await client.set(`${prefix}corrupt:scalar`, '42', 'PX', 60_000);
    await store.set('good', sessionData(60_000, { ok: true }));
    const errors: Error[] = [];
    store.on('error', (error: Error) => errors.push(error));
    expect(await store.get('bad')).toBeNull();
    expect(await store.get('scalar')).toBeNull();
    expect(errors.map((e) => e.message)).toEqual([expect.stringContaining('session bad'), expect.stringContaining('session scalar')]);
    const all = (await store.all()) as Record<string, unknown>;
    expect(Object.keys(all)).toEqual(['good']);
    expect(await store.length()).toBe(3);
  });

  it('turns corrupt data into a process warning, not a crash, when nobody listens for errors', async () => {
    const store = new RedisStore({ client, prefix: `${prefix}corrupt2:` });
    await client.set(`${prefix}corrupt2:bad`, 'not json', 'PX', 60_000);
    const warned = once(process, 'warning');
    expect(await store.get('bad')).toBeNull();
    const [warning] = (await warned) as [Error & { code?: string }];
    expect(warning.code).toBe('FULCRUM_SESSION_CORRUPT');
  });

  it('keeps any id express-session can make under exactly prefix + id, and refuses ids over 1024 characters', async () => {
    const base = `${prefix}anyid:`;
    const store = new RedisStore({ client, prefix: base });
    const ids = ['a b', '../x', '/foo', '%', '*', 'é', '{tag}x', 'x'.repeat(MAX_SESSION_ID_LENGTH)];
    for (const id of ids) await store.set(id, sessionData(60_000, { id }));
    expect((await client.keys(`${base}*`)).sort()).toEqual(ids.map((id) => base + id).sort());
    for (const id of ids) expect(JSON.parse((await client.get(base + id))!)).toMatchObject({ id });
    expect(await store.ids()).toEqual([...ids].sort());
    for (const id of ['x'.repeat(MAX_SESSION_ID_LENGTH + 1), '', 'a\udc00']) {
      await expect(store.set(id, sessionData(60_000)), JSON.stringify(id.slice(0, 10))).rejects.toSatisfy(isInvalidOptionError);
      expect(await store.get(id)).toBeNull();
    }
    expect((await client.keys(`${base}*`)).length).toBe(ids.length);
    await store.clear();
  });

  it('treats glob characters in the prefix literally in all, ids, length and clear', async () => {
    const base = `${prefix}glob:`;
    const starred = new RedisStore({ client, prefix: `${base}[a]*` });
    const plain = new RedisStore({ client, prefix: `${base}a` });
    await starred.set('one', sessionData(60_000));
    await plain.set('two', sessionData(60_000));
    expect(await starred.ids()).toEqual(['one']);
    expect(await starred.length()).toBe(1);
    await starred.clear();
    expect(await plain.ids()).toEqual(['two']);
  });

  it('answers through callbacks as well as promises', async () => {
    const store = new RedisStore({ client, prefix: `${prefix}cb:` });
    await new Promise<void>((resolve, reject) => store.set('c1', sessionData(60_000, { via: 'callback' }), (e) => (e ? reject(e) : resolve())));
    const got = await new Promise((resolve, reject) => store.get('c1', (e, s) => (e ? reject(e) : resolve(s))));
    expect(got).toMatchObject({ via: 'callback' });
    const ids = await new Promise((resolve, reject) => store.ids((e, s) => (e ? reject(e) : resolve(s))));
    expect(ids).toEqual(['c1']);
  });

  describe('behind express-session', () => {
    let server: ReturnType<ReturnType<typeof express>['listen']>;
    let base = '';
    beforeAll(async () => {
      const app = express();
      app.use(session({ store: new RedisStore({ client, prefix: `${prefix}express:` }), secret: 'test secret', resave: false, saveUninitialized: false }));
      app.get('/visit', (req, res) => {
        const data = req.session as unknown as { visits?: number };
        data.visits = (data.visits ?? 0) + 1;
        res.json({ visits: data.visits });
      });
      server = app.listen(0, '127.0.0.1');
      await once(server, 'listening');
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('keeps a session across requests', async () => {
      const first = await fetch(`${base}/visit`);
      const cookie = first.headers.get('set-cookie')!.split(';')[0]!;
      expect(await first.json()).toEqual({ visits: 1 });
      const second = await fetch(`${base}/visit`, { headers: { cookie } });
      expect(await second.json()).toEqual({ visits: 2 });
      const sid = decodeURIComponent(cookie.split('=')[1]!).slice(2).split('.')[0]!;
      expect(JSON.parse((await client.get(`${prefix}express:${sid}`))!)).toMatchObject({ visits: 2 });
    });
  });

  describe('behind @fastify/session', () => {
    const app = Fastify();
    let base = '';
    beforeAll(async () => {
      await app.register(fastifyCookie);
      await app.register(fastifySession, {
        secret: 'a secret with minimum length of 32 characters',
        store: new RedisStore({ client, prefix: `${prefix}fastify:` }) as never,
        cookie: { secure: false },
        saveUninitialized: false,
      });
      app.get('/visit', async (request) => {
        const visits = ((request.session.get('visits' as never) as number | undefined) ?? 0) + 1;
        request.session.set('visits' as never, visits as never);
        return { visits };
      });
      base = await app.listen({ port: 0, host: '127.0.0.1' });
    });
    afterAll(() => app.close());

    it('keeps a session across requests', async () => {
      const first = await fetch(`${base}/visit`);
      const cookie = first.headers.get('set-cookie')!.split(';')[0]!;
      expect(await first.json()).toEqual({ visits: 1 });
      const second = await fetch(`${base}/visit`, { headers: { cookie } });
      expect(await second.json()).toEqual({ visits: 2 });
      const keys = await client.keys(`${prefix}fastify:*`);
      expect(keys).toHaveLength(1);
      expect(JSON.parse((await client.get(keys[0]!))!)).toMatchObject({ visits: 2 });
    });
  });
});
