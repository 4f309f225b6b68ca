import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import express from 'express';
import session from 'express-session';
import { afterAll, describe, expect, it } from 'vitest';
import { RedisStore, isSessionConflictError, type SessionConflictError } from '@fulcrum/session-redis';
import { closeClients, newClient, redisReachable, REDIS_URL, sessionData, skipUnless, uniquePrefix } from './helpers';

const skip = skipUnless(await redisReachable(), `Redis at ${REDIS_URL}`);

/** Resolves every waiter once `parties` have arrived: forces requests to interleave. */
function barrier(parties: number) {
  let arrived = 0;
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return () => {
    if (++arrived >= parties) open();
    return opened;
  };
}

interface App {
  base: string;
  close(): Promise<void>;
  /** Install the barrier the next requests wait on between reading and writing the session. */
  setBarrier(wait: (() => Promise<void>) | undefined): void;
}

/** An express 5 app whose /incr reads the counter, waits (maybe), writes it and saves explicitly. */
async function startApp(store: RedisStore): Promise<App> {
  let wait: (() => Promise<void>) | undefined;
  const app = express();
  app.use(session({ store, secret: 'race secret', resave: false, saveUninitialized: true }));
  app.get('/start', (req, res) => {
    (req.session as unknown as { count: number }).count = 0;
    res.json({ ok: true });
  });
  app.get('/incr', async (req, res) => {
    const data = req.session as unknown as { count: number };
    const seen = data.count;
    if (wait) await wait();
    data.count = seen + 1;
    req.session.save((error) => {
      if (isSessionConflictError(error)) res.status(409).json({ conflict: (error as SessionConflictError).reason });
      else if (error) res.status(500).json({ error: String(error) });
      else res.json({ count: data.count });
    });
  });
  app.get('/count', (req, res) => res.json({ count: (req.session as unknown as { count: number }).count }));
  app.get('/logout', (req, res) => req.session.destroy(() => res.json({ ok: true })));
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
    setBarrier: (b) => (wait = b),
  };
}

async function startSession(app: App): Promise<string> {
  const response = await fetch(`${app.base}/start`);
  return response.headers.get('set-cookie')!.split(';')[0]!;
}

describe.skipIf(skip)('RedisStore optimistic mode', () => {
  const prefix = uniquePrefix('optimistic');
  const client = newClient();

  afterAll(async () => {
    const keys = await client.keys(`${prefix}*`);
    if (keys.length > 0) await client.del(keys);
    await closeClients();
  });

  it('loses an update in the default mode when two requests interleave (the race it prevents)', async () => {
    const app = await startApp(new RedisStore({ client, prefix: `${prefix}lww:` }));
    try {
      const cookie = await startSession(app);
      app.setBarrier(barrier(2));
      const responses = await Promise.all([1, 2].map(() => fetch(`${app.base}/incr`, { headers: { cookie } })));
      app.setBarrier(undefined);
      expect(responses.map((r) => r.status)).toEqual([200, 200]);
      const { count } = (await (await fetch(`${app.base}/count`, { headers: { cookie } })).json()) as { count: number };
      expect(count).toBe(1); // two successful increments, one survived
    } finally {
      await app.close();
    }
  });

  it('lets exactly one of two interleaved requests commit and answers the other with a conflict', async () => {
    const app = await startApp(new RedisStore({ client, prefix: `${prefix}occ:`, optimistic: true }));
    try {
      const cookie = await startSession(app);
      app.setBarrier(barrier(2));
      const responses = await Promise.all([1, 2].map(() => fetch(`${app.base}/incr`, { headers: { cookie } })));
      app.setBarrier(undefined);
      expect(responses.map((r) => r.status).sort()).toEqual([200, 409]);
      const { count } = (await (await fetch(`${app.base}/count`, { headers: { cookie } })).json()) as { count: number };
      expect(count).toBe(1);
    } finally {
      await app.close();
    }
  });

  it('keeps every committed increment under many parallel requests', async () => {
    const app = await startApp(new RedisStore({ client, prefix: `${prefix}par:`, optimistic: true }));
    try {
      const cookie = await startSession(app);
      const rounds = await Promise.all(
        Array.from({ length: 3 }, async () => {
          let committed = 0;
          for (let round = 0; round < 5; round++) {
            const responses = await Promise.all(Array.from({ length: 8 }, () => fetch(`${app.base}/incr`, { headers: { cookie } })));
            for (const response of responses) {
              expect([200, 409]).toContain(response.status);
              if (response.status === 200) committed++;
              await response.arrayBuffer();
            }
          }
          return committed;
        }),
      );
      const committed = rounds.reduce((a, b) => a + b, 0);
      expect(committed).toBeGreaterThan(0);
      const { count } = (await (await fetch(`${app.base}/count`, { headers: { cookie } })).json()) as { count: number };
      expect(count).toBe(committed);
    } finally {
      await app.close();
    }
  });

  it('does not bring back a session destroyed while a request that read it was running', async () => {
    const app = await startApp(new RedisStore({ client, prefix: `${prefix}gone:`, optimistic: true }));
    try {
      const cookie = await startSession(app);
      let reached!: () => void;
      const reachedBarrier = new Promise<void>((resolve) => (reached = resolve));
      let release!: () => void;
      const released = new Promise<void>((resolve) => (release = resolve));
      app.setBarrier(async () => {
        reached();
        await released;
      });
      const incr = fetch(`${app.base}/incr`, { headers: { cookie } });
      await reachedBarrier; // the request has read the session and waits before writing it
      app.setBarrier(undefined);
      const logout = await fetch(`${app.base}/logout`, { headers: { cookie } });
      expect(logout.status).toBe(200);
      release();
      const response = await incr;
      expect(response.status).toBe(409);
      expect(await response.json()).toEqual({ conflict: 'destroyed' });
      expect(await client.keys(`${prefix}gone:*`)).toEqual([]);
    } finally {
      await app.close();
    }
  });

  it('checks the version atomically in the store API', async () => {
    const store = new RedisStore({ client, prefix: `${prefix}api:`, optimistic: { versionField: 'rev' } });
    await store.set('s1', sessionData(60_000, { n: 0 }));
    const a = (await store.get('s1')) as unknown as Record<string, unknown>;
    const b = (await store.get('s1')) as unknown as Record<string, unknown>;
    expect(a.rev).toBe(1);
    a.n = 1;
    await store.set('s1', a as never);
    await store.set('s1', a as never); // the same object again: continues from what it wrote
    b.n = 2;
    const conflict = await store.set('s1', b as never).catch((error: unknown) => error);
    expect(isSessionConflictError(conflict)).toBe(true);
    expect(conflict).toMatchObject({ reason: 'changed', expectedVersion: 1, storedVersion: 3 });
    expect(await store.get('s1')).toMatchObject({ n: 1, rev: 3 });
    expect((await client.get(`${prefix}api:s1`))!.startsWith('{"rev":3,')).toBe(true);
    await store.destroy('s1');
    const destroyed = await store.set('s1', b as never).catch((error: unknown) => error);
    expect(destroyed).toMatchObject({ reason: 'destroyed' });
    expect(await client.exists(`${prefix}api:s1`)).toBe(0);
  });
});
