/**
 * Session stores on SQL: set+get pairs per second of a 1 KB session, at concurrency 1 and 50,
 * `@fulcrum/session-sql` (its built dist/) against express-mysql-session 3 — same MariaDB server,
 * same run, same pool settings (mysql2/promise, connectionLimit 10), each in a table of its own.
 * Each worker cycles over 100 session ids of its own: set(id, session) then get(id).
 *
 *   node bench/session-sql.bench.mjs [--seconds=3] [--rounds=2]
 *
 * MYSQL_URL (default mysql://root@127.0.0.1:3306/test). Bounded: 4 s of warm-up + rounds × 2 stores × 2 levels × seconds (~28 s by default).
 */
import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);
const session = require('express-session');
const MySQLStore = require('express-mysql-session')(session);
const mysql = require('mysql2/promise');
const { SqlStore } = await import('@fulcrum/session-sql');

const arg = (name, fallback) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback);
const seconds = arg('seconds', 3);
const rounds = arg('rounds', 2);
const url = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const suffix = `${process.pid}`;
const payload = 'x'.repeat(1024 - 120); // ~1 KB of JSON with the cookie

const fulcrumPool = mysql.createPool({ uri: url, connectionLimit: 10 });
const emsPool = mysql.createPool({ uri: url, connectionLimit: 10 });
const fulcrum = new SqlStore({ pool: fulcrumPool, table: `bench_fulcrum_${suffix}`, cleanupIntervalMs: 0 });
const ems = new MySQLStore({ schema: { tableName: `bench_ems_${suffix}` }, clearExpired: false }, emsPool);
await fulcrum.ready();
await ems.onReady();

const makeSession = () => ({
  cookie: { originalMaxAge: 3_600_000, expires: new Date(Date.now() + 3_600_000), httpOnly: true, path: '/' },
  user: { id: 42, name: 'bench' },
  payload,
});
if (JSON.stringify(makeSession()).length < 1000) throw new Error('session is not ~1 KB');

async function measure(store, concurrency, duration = seconds) {
  let pairs = 0;
  const end = Date.now() + duration * 1000;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      for (let i = 0; Date.now() < end; i++) {
        const sid = `w${worker}-${i % 100}`;
        await store.set(sid, makeSession());
        const got = await store.get(sid);
        if (!got || got.payload !== payload) throw new Error('set+get lost the session');
        pairs++;
      }
    }),
  );
  return pairs / duration;
}

// Warm-up, discarded: new tables, cold buffer pool, statement caches and the JIT would otherwise
// penalise whichever store is measured first.
for (const store of [fulcrum, ems]) for (const concurrency of [1, 50]) await measure(store, concurrency, 1);

const results = { fulcrum: { 1: [], 50: [] }, ems: { 1: [], 50: [] } };
for (let round = 0; round < rounds; round++) {
  // Alternate who goes first, so neither always runs on a warmer (or busier) server.
  const order = round % 2 === 0 ? ['fulcrum', 'ems'] : ['ems', 'fulcrum'];
  for (const concurrency of [1, 50]) {
    for (const name of order) results[name][concurrency].push(await measure(name === 'fulcrum' ? fulcrum : ems, concurrency));
  }
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const rows = [];
for (const concurrency of [1, 50]) {
  const f = median(results.fulcrum[concurrency]);
  const e = median(results.ems[concurrency]);
  rows.push({
    concurrency,
    '@fulcrum/session-sql pairs/s': Math.round(f),
    'express-mysql-session 3 pairs/s': Math.round(e),
    ratio: `${(f / e).toFixed(2)}×`,
    runs: `${results.fulcrum[concurrency].map(Math.round).join(', ')} vs ${results.ems[concurrency].map(Math.round).join(', ')}`,
  });
}
console.table(rows);
const ratio50 = median(results.fulcrum[50]) / median(results.ems[50]);
console.log(`target: ≥ 1.5× express-mysql-session at c=50 → ${ratio50.toFixed(2)}× ${ratio50 >= 1.5 ? 'PASS' : 'FAIL'}`);

await fulcrum.close();
await ems.close();
await fulcrumPool.query(`DROP TABLE IF EXISTS \`bench_fulcrum_${suffix}\``);
await emsPool.query(`DROP TABLE IF EXISTS \`bench_ems_${suffix}\``);
await Promise.all([fulcrumPool.end(), emsPool.end()]);
