/**
 * Session stores on a directory (issue 9): set + get pairs per second of `@fulcrum/session-fs`'s
 * `FileStore` (its BUILT dist), against `session-file-store` (the express-session file store a user
 * would otherwise install) and a naive store that does `fs.writeFile` / `fs.readFile` of
 * `<dir>/<id>.json` — no id check, no atomic rename, no fsync — all in the same run, on the same
 * disk (a fresh directory under os.tmpdir() per subject, removed afterwards).
 *
 * Each measurement runs `workers` concurrent loops of `await set(id, session); await get(id)` over
 * 1000 ids for a fixed time (default 2 s after a 0.3 s warm-up), so the whole suite is bounded
 * (~20 s) whatever the disk does. Concurrency 1 is a single request's latency; 16 is a busy server,
 * where FileStore's grouped directory fsyncs matter. The session is ~400 bytes of JSON, a typical
 * express-session payload (cookie + user + a few flags).
 *
 *   node bench/session-fs.bench.mjs                 # 2 s per measurement
 *   BENCH_MS=5000 node bench/session-fs.bench.mjs   # longer runs
 *
 * Needs packages/session-fs/dist (cd packages/session-fs && ../../node_modules/.bin/tsup --config ../../tsup.config.ts)
 * and packages/core/dist.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BENCH_DIR, report, row } from './run.mjs';

const require = createRequire(import.meta.url);
const DIST = join(BENCH_DIR, '..', 'packages', 'session-fs', 'dist', 'index.js');
if (!existsSync(DIST)) {
  console.error(`@fulcrum/session-fs is not built (${DIST} is missing): cd packages/session-fs && ../../node_modules/.bin/tsup --config ../../tsup.config.ts`);
  process.exit(2);
}
const { FileStore } = await import('@fulcrum/session-fs');
const session = require('express-session');
const SessionFileStore = require('session-file-store')(session);

const MEASURE_MS = Number(process.env.BENCH_MS ?? 2000);
const WARMUP_MS = 300;
const IDS = Array.from({ length: 1000 }, (_, i) => `bench${String(i).padStart(4, '0')}-Hq3xZr8VbN2mLp0TcYw4Ks`);

function makeSession(n) {
  return {
    cookie: { originalMaxAge: 86_400_000, expires: new Date(Date.now() + 86_400_000).toISOString(), httpOnly: true, path: '/', secure: false },
    user: { id: n, name: `User Number ${n}`, email: `user${n}@example.test`, roles: ['reader', 'writer'] },
    cart: [
      { sku: 'A-1001', qty: 2 },
      { sku: 'B-2002', qty: 1 },
    ],
    csrf: 'k3J9f0aQm2Zx7Vb1Nc4Lp8Ts6Wy5Rd0E',
    flash: [],
    visits: n,
  };
}

const promisified = (store) => ({
  set: (id, value) => new Promise((resolve, reject) => store.set(id, value, (error) => (error ? reject(error) : resolve()))),
  get: (id) => new Promise((resolve, reject) => store.get(id, (error, value) => (error ? reject(error) : resolve(value)))),
});

const subjects = {
  'FileStore (fsync: true, default)': async (dir) => {
    const store = new FileStore({ dir, cleanupIntervalMs: 0 });
    await store.ready;
    return { ops: { set: (id, value) => store.set(id, value), get: (id) => store.get(id) }, close: () => store.close() };
  },
  'FileStore (fsync: false)': async (dir) => {
    const store = new FileStore({ dir, cleanupIntervalMs: 0, fsync: false });
    await store.ready;
    return { ops: { set: (id, value) => store.set(id, value), get: (id) => store.get(id) }, close: () => store.close() };
  },
  'session-file-store (defaults)': async (dir) => {
    const store = new SessionFileStore({ path: dir, reapInterval: -1, logFn: () => undefined });
    return { ops: promisified(store), close: async () => undefined };
  },
  'naive writeFile/readFile': async (dir) => ({
    ops: {
      set: (id, value) => writeFile(join(dir, `${id}.json`), JSON.stringify(value)),
      get: async (id) => JSON.parse(await readFile(join(dir, `${id}.json`), 'utf8')),
    },
    close: async () => undefined,
  }),
};

/** Runs `workers` set+get loops for `ms`; answers pairs per second. */
async function measure(ops, workers, ms) {
  let pairs = 0;
  let next = 0;
  const deadline = Date.now() + ms;
  const loop = async () => {
    while (Date.now() < deadline) {
      const n = next++;
      const id = IDS[n % IDS.length];
      await ops.set(id, makeSession(n));
      const got = await ops.get(id);
      if (got == null) throw new Error(`get(${id}) found nothing right after set()`);
      pairs++;
    }
  };
  const started = Date.now();
  await Promise.all(Array.from({ length: workers }, loop));
  return pairs / ((Date.now() - started) / 1000);
}

const rows = [];
const results = {};
for (const workers of [1, 16]) {
  for (const [name, create] of Object.entries(subjects)) {
    const dir = await mkdtemp(join(tmpdir(), 'fulcrum-bench-fs-'));
    const subject = await create(dir);
    try {
      await measure(subject.ops, workers, WARMUP_MS);
      const rate = await measure(subject.ops, workers, MEASURE_MS);
      results[`${name} @${workers}`] = rate;
      console.log(`${name.padEnd(36)} workers=${String(workers).padStart(2)}  ${rate.toFixed(0).padStart(7)} set+get pairs/s`);
      rows.push(row(`session-fs @${workers}`, name, rate, 'pairs/s'));
    } finally {
      await subject.close();
      await rm(dir, { recursive: true, force: true });
    }
  }
}
for (const workers of [1, 16]) {
  const ours = results[`FileStore (fsync: true, default) @${workers}`];
  const theirs = results[`session-file-store (defaults) @${workers}`];
  rows.push(row(`session-fs @${workers}`, 'FileStore (fsync) / session-file-store', ours / theirs, 'x'));
}
report('session-fs', rows);
