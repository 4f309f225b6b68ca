/**
 * The stick-table (issue 4): bytes per entry at 300k entries with 16-character keys (goal ≤ 200 B;
 * lru-cache alone with a TTL is the reference), and get/set time, against a bare `lru-cache` with TTL
 * and a plain `Map` in the same run.
 *
 * Memory method: under `--expose-gc`, `gc()` twice, read `used_heap_size`, build the structure with
 * 300k entries, `gc()` twice, read again; bytes/entry = delta / 300k. Keys are created before the
 * first reading (they belong to the requests that bring them), so the number is the structure's own
 * cost; the cost of the key string itself (a flat 16-character one-byte string) is measured the same
 * way and reported beside it, and the "with key" column adds it. Values are backend ids taken from
 * a shared list of 1000, as in a load balancer, so they cost nothing per entry.
 *
 * A second section measures keys made the way the proxy makes them — cut from 1–4 KB headers by the
 * BUILT `@fulcrum/http`'s `Stickiness` and `RateLimiter` — and the heap each entry retains (goal
 * < 600 B, the bound `packages/http/test/affinity/flat-keys.test.ts` asserts).
 *
 * `StickTable` is imported from the BUILT `@fulcrum/core`. While the package does not export it yet,
 * this suite measures the references only and says so; it needs no change once StickTable ships.
 */
import { bench, do_not_optimize, group, run, summary } from 'mitata';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import v8 from 'node:v8';
import { CORE_DIR, loadCore, makeSpecs, mitataStats, prng, report, row } from './run.mjs';

if (typeof globalThis.gc !== 'function') {
  console.error('stick-table.bench.mjs needs --expose-gc (node run.mjs stick passes it)');
  process.exit(2);
}

const core = await loadCore();
const { StickTable, createLoadBalancer } = core;
// lru-cache is core's dependency (the table is built on it); resolve the very copy core uses.
const { LRUCache } = createRequire(join(CORE_DIR, 'package.json'))('lru-cache');

const ENTRIES = 300_000;
const TTL_MS = 60 * 60 * 1000;
const GOAL_BYTES = 200;

const backendIds = makeSpecs(1000).map((s) => s.id);

/** `count` distinct flat 16-character keys (`s-` + 14 hex digits), like a session cookie value. */
function makeFlatKeys(count, seed) {
  const random = prng(seed);
  const keys = new Array(count);
  for (let i = 0; i < count; i++) {
    const high = Math.floor(random() * 0x1000000)
      .toString(16)
      .padStart(6, '0');
    const low = (i + seed * count).toString(16).padStart(8, '0');
    // Decoding from bytes yields a flat (sequential) string, as a parsed cookie or header value is;
    // a concatenation would leave a rope (ConsString) that costs more than the key would in practice.
    keys[i] = Buffer.from(`s-${high}${low}`, 'latin1').toString('latin1');
  }
  return keys;
}

function heapAfterGc() {
  globalThis.gc();
  globalThis.gc();
  return v8.getHeapStatistics().used_heap_size;
}

/** Heap bytes per entry retained by `build(keys)` (the structure it returns is kept alive until read). */
function bytesPerEntry(build, keys) {
  const before = heapAfterGc();
  let structure = build(keys);
  const after = heapAfterGc();
  const size = structure.size;
  // Dropped so that the next measurement's GC can reclaim it.
  // eslint-disable-next-line no-useless-assignment
  structure = null;
  if (size !== keys.length) throw new Error(`expected ${keys.length} entries, found ${size}`);
  return (after - before) / keys.length;
}

const builders = {
  Map: (keys) => {
    const map = new Map();
    for (let i = 0; i < keys.length; i++) map.set(keys[i], backendIds[i % 1000]);
    return map;
  },
  'lru-cache (max, ttl)': (keys) => {
    const lru = new LRUCache({ max: ENTRIES, ttl: TTL_MS });
    for (let i = 0; i < keys.length; i++) lru.set(keys[i], backendIds[i % 1000]);
    return lru;
  },
};
if (StickTable) {
  builders.StickTable = (keys) => {
    const table = new StickTable({ capacity: ENTRIES, ttlMs: TTL_MS, nodeId: 'bench', sweepMs: 0 });
    for (let i = 0; i < keys.length; i++) table.set(keys[i], backendIds[i % 1000]);
    return table;
  };
} else {
  console.log('\nStickTable is not exported by the built @fulcrum/core yet: measuring the references only.\n');
}

// ------------------------------------------------------------------ memory

const keyBytes = (() => {
  const before = heapAfterGc();
  let keys = makeFlatKeys(ENTRIES, 7);
  const after = heapAfterGc();
  // The array holding them costs 8 B per element; take it off.
  const perKey = (after - before) / ENTRIES - 8;
  // Dropped so that the next measurement's GC can reclaim it.
  // eslint-disable-next-line no-unused-vars
  keys = null;
  return perKey;
})();

const memory = {};
for (const [name, build] of Object.entries(builders)) {
  const keys = makeFlatKeys(ENTRIES, 11);
  const samples = [bytesPerEntry(build, keys), bytesPerEntry(build, keys), bytesPerEntry(build, keys)];
  samples.sort((a, b) => a - b);
  memory[name] = samples[1];
  console.log(
    `${name.padEnd(22)} ${samples[1].toFixed(1)} B/entry (structure), ${(samples[1] + keyBytes).toFixed(1)} B/entry with its key` +
      `  [3 builds: ${samples.map((s) => s.toFixed(1)).join(', ')}]`,
  );
}
console.log(`16-char key string      ${keyBytes.toFixed(1)} B`);

// ------------------------------------------------------------------ keys as the proxy makes them

/*
 * The table above measures keys that are flat by construction. A proxy cuts its keys out of longer
 * strings — a session id out of a `Set-Cookie` line, an address out of `X-Forwarded-For`, an API
 * key out of a header — and in V8 a slice or a concatenation of ≥ 13 characters can keep that
 * whole parent alive. So this section drives the BUILT `@fulcrum/http` (`Stickiness.commit` and
 * `RateLimiter.admission`, as the proxy calls them) with requests whose headers are padded to
 * 1–4 KB, and reports the heap each entry retains, key included. The reference row stores
 * `'ck:' + line.slice(…)` in a Map: what an entry costs when its key keeps its line.
 */
const HTTP_DIST = join(CORE_DIR, '..', 'http', 'dist', 'index.js');
const PROXY_KEY_ENTRIES = 50_000;
const proxyKeyBytes = {};
if (existsSync(HTTP_DIST)) {
  const http = await import(pathToFileURL(HTTP_DIST).href);
  const trusted = new http.TrustedProxies(['loopback', 'private'], 'trustedProxies');
  const wire = (text) => Buffer.from(text, 'latin1').toString('latin1');
  const padding = (i, unit) => unit.repeat(Math.ceil((1024 + ((i * 733) % 3072)) / unit.length));
  const sessionId = (i) => `s-${i.toString(36).padStart(8, '0')}-${'abcdef0123456789'.slice(i % 8)}-session`;
  const ipv6 = (i) => `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::beef`;
  const request = (i, headers) => {
    const rawHeaders = [];
    const parsed = {};
    for (const [name, value] of Object.entries({ ...headers, 'X-Padding': padding(i, 'p') })) {
      const v = wire(value);
      rawHeaders.push(wire(name), v);
      parsed[name.toLowerCase()] = v;
    }
    return { rawHeaders, headers: parsed, socket: { remoteAddress: '127.0.0.1', encrypted: false }, url: '/' };
  };
  const forwarded = (i) => request(i, { 'X-Forwarded-For': `${padding(i, '198.51.100.7, ')}${ipv6(i)}, 10.0.0.1` });
  const clock = { now: () => 0, setTimeout: () => 0, clearTimeout: () => {} };
  const sticky = (options, requestOf, setCookieOf) => () => {
    const s = new http.Stickiness(options, { clock, trustedProxies: trusted, nodeId: 'bench' });
    return {
      record: (i) => {
        const req = requestOf(i);
        s.commit(req, http.clientAddress(req, trusted), backendIds[i % 1000], setCookieOf?.(i), false, 0);
      },
      close: () => s.close(),
    };
  };
  const limiter = (by, requestOf) => () => {
    const l = new http.RateLimiter({ requests: 1000, by, capacity: PROXY_KEY_ENTRIES * 2 }, { clock });
    return {
      record: (i) => {
        const req = requestOf(i);
        l.admission(req, { clientIp: http.clientAddress(req, trusted) });
      },
      close: () => l.close(),
    };
  };
  const modes = {
    'sourceIp (X-Forwarded-For 1–4 KB)': sticky({ sourceIp: {} }, forwarded),
    'header (1–4 KB of other headers)': sticky({ header: 'x-session' }, (i) => request(i, { 'X-Session': sessionId(i) })),
    'learnCookie (Set-Cookie 1–4 KB)': sticky(
      { learnCookie: 'JSESSIONID' },
      (i) => request(i, {}),
      (i) => [wire(`JSESSIONID=${sessionId(i)}; Path=/; HttpOnly; ${padding(i, 'x-ext=1; ')}SameSite=Lax`)],
    ),
    'rate limiter by source-ip (XFF 1–4 KB)': limiter('source-ip', forwarded),
    'rate limiter by header (value 1–4 KB)': limiter({ header: 'x-api-key' }, (i) => request(i, { 'X-Api-Key': `${sessionId(i)}${padding(i, 'k')}` })),
    'reference: Map of sliced keys (Set-Cookie 1–4 KB)': () => {
      const map = new Map();
      return {
        record: (i) => {
          const line = wire(`JSESSIONID=${sessionId(i)}; Path=/; ${padding(i, 'x-ext=1; ')}`);
          map.set(`ck:${line.slice(11, 11 + sessionId(i).length)}`, backendIds[i % 1000]);
        },
        close: () => map.clear(),
      };
    },
  };
  console.log(`\nKeys as the proxy makes them (${PROXY_KEY_ENTRIES / 1000}k entries, headers padded to 1–4 KB):`);
  for (const [name, make] of Object.entries(modes)) {
    const warm = make();
    for (let i = 0; i < 1000; i++) warm.record(10_000_000 + i);
    await warm.close();
    const subject = make();
    const before = heapAfterGc();
    for (let i = 0; i < PROXY_KEY_ENTRIES; i++) subject.record(i);
    const after = heapAfterGc();
    proxyKeyBytes[name] = (after - before) / PROXY_KEY_ENTRIES;
    await subject.close();
    console.log(`${name.padEnd(50)} ${proxyKeyBytes[name].toFixed(1)} B/entry incl. key`);
  }
} else {
  console.log(`\n${HTTP_DIST} is missing: the keys-as-the-proxy-makes-them section needs the built @fulcrum/http.\n`);
}

// ------------------------------------------------------------------ time

const keys = makeFlatKeys(ENTRIES, 11);
const freshKeys = makeFlatKeys(ENTRIES, 13);
const OUTCOME = Object.freeze({ ok: true, durationMs: 5 });

/** A structure with 300k entries, and a cursor over keys that cycles. */
function filled(name) {
  return builders[name](keys);
}

group(`get (hit) · ${ENTRIES / 1000}k entries`, () => {
  summary(() => {
    for (const name of Object.keys(builders)) {
      bench(`${name} get`, function* () {
        const s = filled(name);
        let i = 0;
        yield () => {
          const key = keys[i];
          if (++i === ENTRIES) i = 0;
          return do_not_optimize(s.get(key));
        };
      }).baseline(name === 'Map');
    }
  });
});

group(`set (existing key) · ${ENTRIES / 1000}k entries`, () => {
  summary(() => {
    for (const name of Object.keys(builders)) {
      bench(`${name} set existing`, function* () {
        const s = filled(name);
        let i = 0;
        yield () => {
          const key = keys[i];
          if (++i === ENTRIES) i = 0;
          return do_not_optimize(s.set(key, backendIds[i % 1000]));
        };
      }).baseline(name === 'Map');
    }
  });
});

group(`set (new key, evicts the LRU entry) · full at ${ENTRIES / 1000}k`, () => {
  summary(() => {
    for (const name of Object.keys(builders)) {
      if (name === 'Map') continue; // a Map has no capacity to evict at
      bench(`${name} set new + evict`, function* () {
        const s = filled(name);
        // Alternate between two key sets of 300k each: every set is a miss that evicts.
        let i = 0;
        let current = freshKeys;
        yield () => {
          const key = current[i];
          if (++i === ENTRIES) {
            i = 0;
            current = current === keys ? freshKeys : keys;
          }
          return do_not_optimize(s.set(key, backendIds[i % 1000]));
        };
      }).baseline(name === 'lru-cache (max, ttl)');
    }
  });
});

if (StickTable) {
  group('lb.acquire({ affinityKey }) + release() · 1000 backends, 300k sticky clients', () => {
    bench('sticky hit: acquire({ affinityKey }) + release()', function* () {
      const stickTable = filled('StickTable');
      const lb = createLoadBalancer({ backends: makeSpecs(1000), stickTable });
      const contexts = keys.map((affinityKey) => ({ affinityKey }));
      let i = 0;
      yield () => {
        const lease = lb.acquire(contexts[i]);
        if (++i === ENTRIES) i = 0;
        lease.release(OUTCOME);
        return do_not_optimize(lease);
      };
    });
  });
}

const stats = mitataStats(await run());
const p50 = (name) => stats.get(name)?.p50;

const rows = [];
rows.push(row('stick', '16-char key string (flat)', keyBytes, 'B'));
for (const name of Object.keys(builders)) {
  const isTable = name === 'StickTable';
  rows.push(
    row(
      'stick',
      `${name}: bytes/entry @300k incl. key`,
      memory[name] + keyBytes,
      'B',
      isTable ? GOAL_BYTES : undefined,
      `structure alone ${memory[name].toFixed(1)} B`,
    ),
  );
}
if (!StickTable)
  rows.push(
    row(
      'stick',
      'StickTable: bytes/entry @300k incl. key',
      NaN,
      'B',
      undefined,
      `pending (goal ≤ ${GOAL_BYTES} B): not exported by the built @fulcrum/core yet`,
    ),
  );
for (const name of Object.keys(builders)) {
  rows.push(row('stick', `${name} get (hit)`, p50(`${name} get`), 'ns'));
  rows.push(row('stick', `${name} set (existing)`, p50(`${name} set existing`), 'ns'));
  if (name !== 'Map') rows.push(row('stick', `${name} set (new, evicting)`, p50(`${name} set new + evict`), 'ns'));
}
for (const [name, bytes] of Object.entries(proxyKeyBytes)) {
  const isReference = name.startsWith('reference');
  rows.push(
    row(
      'stick',
      `proxy-made keys: ${name}`,
      bytes,
      'B',
      isReference ? undefined : 600,
      isReference ? 'a key that keeps its line alive' : 'bytes/entry incl. key, 50k entries',
    ),
  );
}
if (StickTable) rows.push(row('stick', 'lb acquire({affinityKey})+release (sticky hit)', p50('sticky hit: acquire({ affinityKey }) + release()'), 'ns'));
report('stick', rows);
