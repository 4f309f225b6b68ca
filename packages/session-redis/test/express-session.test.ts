// express-session's store-facing behaviours, through real express-session over real HTTP, against
// the shared Redis — once per ioredis major the package supports.
import express from 'express';
import session from 'express-session';
import { afterAll, describe } from 'vitest';
import { RedisStore } from '@fulcrum/session-redis';
import { describeExpressSessionConformance } from '../../../test-support/express-session-conformance';
import { REDIS_CLIENTS, closeClients, redisReachable, REDIS_URL, skipUnless, uniquePrefix } from './helpers';

const skip = skipUnless(await redisReachable(), `Redis at ${REDIS_URL}`);

for (const major of [5, 6] as const) {
  describe.skipIf(skip)(`ioredis ${major}`, () => {
    const client = new REDIS_CLIENTS[major](REDIS_URL);
    client.on('error', () => undefined);
    let n = 0;
    afterAll(async () => {
      await closeClients();
      await client.quit();
    });

    describeExpressSessionConformance({
      name: `RedisStore (ioredis ${major})`,
      express: express as never,
      session: session as never,
      makeStore: (touchAfterSeconds) =>
        new RedisStore({ client, prefix: uniquePrefix(`es${major}-${n++}`), ...(touchAfterSeconds === undefined ? {} : { touchAfterSeconds }) }),
      closeStore: async (store) => {
        await store.clear();
        store.close();
      },
      // Redis keeps TTLs on its own clock: move every key of the store as far as `Date` moved.
      advance: async (store, ms) => {
        for (const sid of await store.ids()) {
          const key = store.config.prefix + sid;
          const left = await client.pttl(key);
          if (left < 0) continue;
          if (left - ms <= 0) await client.del(key);
          else await client.pexpire(key, left - ms);
        }
      },
    });
  });
}
