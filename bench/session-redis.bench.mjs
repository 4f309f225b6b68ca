#!/usr/bin/env node
/**
 * Session stores on Redis: set+get pairs per second of a 1 KB session, at concurrency 1 and 50, for
 *   - raw ioredis: JSON.stringify + SET key value EX ttl, then GET + JSON.parse (what a hand-written
 *     store does at least; the floor every store is measured against),
 *   - @fulcrum/session-redis `RedisStore` on the same ioredis client options (promise API),
 *   - the same two on clients with ioredis's opt-in `enableAutoPipelining` (node-redis pipelines by default),
 *   - connect-redis 9 `RedisStore` on node-redis 5 (its only supported client).
 * Same Redis (REDIS_URL, default redis://127.0.0.1:6379), same run, cases interleaved round-robin and
 * repeated (`--rounds=N`, default 3); each case runs `--ms` (default 2000) after a 300 ms warm-up and
 * the table reports the median round. Keys live under `bench:sess:*` and are deleted at the end.
 *
 *   node bench/session-redis.bench.mjs [--ms=2000] [--rounds=3]
 *
 * Needs packages/session-redis/dist (build: cd packages/session-redis && ../../node_modules/.bin/tsup --config ../../tsup.config.ts).
 */
import { Redis } from 'ioredis';
import { createClient } from 'redis';
import { RedisStore as ConnectRedisStore } from 'connect-redis';
import { RedisStore } from '@fulcrum/session-redis';

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')));
const MS = Number(args.ms ?? 2000);
const ROUNDS = Number(args.rounds ?? 3);
const URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const TTL = 86_400;

/** A 1 KB express-session-shaped session. */
function makeSession() {
  const session = {
    cookie: { originalMaxAge: TTL * 1000, expires: new Date(Date.now() + TTL * 1000).toISOString(), httpOnly: true, path: '/' },
    user: { id: 123456, name: 'Zoë Example', roles: ['reader', 'writer'] },
    cart: [],
  };
  while (JSON.stringify(session).length < 1024) session.cart.push({ sku: `SKU-${session.cart.length}`, qty: 1 });
  return session;
}
const SESSION = makeSession();

async function run(name, concurrency, pair) {
  let pairs = 0;
  let stop = false;
  const worker = async (w) => {
    const sid = `w${w}-${Math.random().toString(36).slice(2)}`;
    while (!stop) {
      await pair(sid);
      pairs++;
    }
  };
  const warm = Array.from({ length: concurrency }, (_, w) => worker(w));
  await new Promise((r) => setTimeout(r, 300));
  stop = true;
  await Promise.all(warm);
  stop = false;
  pairs = 0;
  const started = performance.now();
  const workers = Array.from({ length: concurrency }, (_, w) => worker(w));
  await new Promise((r) => setTimeout(r, MS));
  stop = true;
  await Promise.all(workers);
  return (pairs * 1000) / (performance.now() - started);
}

const ioredisRaw = new Redis(URL);
const ioredisStoreClient = new Redis(URL);
// ioredis does not pipeline by default; node-redis 5 does. The same pair with ioredis's opt-in
// auto-pipelining shows how much of any gap is the client, not the store.
const ioredisRawPipelined = new Redis(URL, { enableAutoPipelining: true });
const ioredisStorePipelined = new Redis(URL, { enableAutoPipelining: true });
const nodeRedis = createClient({ url: URL });
await nodeRedis.connect();
await Promise.all([ioredisRaw.ping(), ioredisStoreClient.ping(), ioredisRawPipelined.ping(), ioredisStorePipelined.ping()]);

const fulcrum = new RedisStore({ client: ioredisStoreClient, prefix: 'bench:sess:fulcrum:' });
const fulcrumPipelined = new RedisStore({ client: ioredisStorePipelined, prefix: 'bench:sess:fulcrum-ap:' });
const connectRedis = new ConnectRedisStore({ client: nodeRedis, prefix: 'bench:sess:connect:', ttl: TTL });
const connectSet = (sid, s) => new Promise((res, rej) => connectRedis.set(sid, s, (e) => (e ? rej(e) : res())));
const connectGet = (sid) => new Promise((res, rej) => connectRedis.get(sid, (e, s) => (e ? rej(e) : res(s))));

const subjects = {
  'raw ioredis SET EX + GET': async (sid) => {
    await ioredisRaw.set(`bench:sess:raw:${sid}`, JSON.stringify(SESSION), 'EX', TTL);
    JSON.parse(await ioredisRaw.get(`bench:sess:raw:${sid}`));
  },
  '@fulcrum/session-redis': async (sid) => {
    await fulcrum.set(sid, SESSION);
    await fulcrum.get(sid);
  },
  'raw ioredis, enableAutoPipelining': async (sid) => {
    await ioredisRawPipelined.set(`bench:sess:raw-ap:${sid}`, JSON.stringify(SESSION), 'EX', TTL);
    JSON.parse(await ioredisRawPipelined.get(`bench:sess:raw-ap:${sid}`));
  },
  '@fulcrum/session-redis, enableAutoPipelining client': async (sid) => {
    await fulcrumPipelined.set(sid, SESSION);
    await fulcrumPipelined.get(sid);
  },
  'connect-redis 9 (node-redis 5)': async (sid) => {
    await connectSet(sid, SESSION);
    await connectGet(sid);
  },
};

const results = {};
for (let round = 0; round < ROUNDS; round++) {
  for (const concurrency of [1, 50]) {
    for (const [name, pair] of Object.entries(subjects)) {
      const rate = await run(name, concurrency, pair);
      (results[`${name}|${concurrency}`] ??= []).push(rate);
      console.log(`round ${round + 1} c=${concurrency} ${name}: ${Math.round(rate)} pairs/s`);
    }
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`\nsession size ${JSON.stringify(SESSION).length} B, ${ROUNDS} rounds of ${MS} ms, median pairs/s`);
console.log('| store | c=1 | c=50 | c=50 vs raw ioredis |');
console.log('|---|---|---|---|');
const raw50 = median(results['raw ioredis SET EX + GET|50']);
for (const name of Object.keys(subjects)) {
  const c1 = median(results[`${name}|1`]);
  const c50 = median(results[`${name}|50`]);
  console.log(`| ${name} | ${Math.round(c1)} | ${Math.round(c50)} | ${(c50 / raw50).toFixed(2)}× |`);
}
const ratio = median(results['@fulcrum/session-redis|50']) / raw50;
console.log(`\ngoal: @fulcrum/session-redis ≥ 0.9× raw ioredis at c=50 → ${ratio.toFixed(2)}× ${ratio >= 0.9 ? 'PASS' : 'FAIL'}`);

let cursor = '0';
do {
  const [next, keys] = await ioredisRaw.scan(cursor, 'MATCH', 'bench:sess:*', 'COUNT', 1000);
  cursor = next;
  if (keys.length) await ioredisRaw.unlink(keys);
} while (cursor !== '0');
fulcrum.close();
fulcrumPipelined.close();
await Promise.all([ioredisRaw.quit(), ioredisStoreClient.quit(), ioredisRawPipelined.quit(), ioredisStorePipelined.quit(), nodeRedis.quit()]);
