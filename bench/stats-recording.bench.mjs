#!/usr/bin/env node
/**
 * What recording the stats costs per request: `acquire()` + `release()` of a lease alone, and with
 * the three calls both engines make per request through `ProxyEngine` (`started`, `attemptEnded`,
 * `ended` on the pool's traffic counters, see packages/http/src/stats/traffic.ts). Interleaved in one
 * process, `--rounds` rounds of `--requests` iterations each, sorted by the difference.
 *
 *   node bench/stats-recording.bench.mjs [--rounds 5] [--requests 1000000]
 *
 * `@fulcrum/http` and `@fulcrum/core` are loaded from their BUILT dist (`npx -y pnpm@10.34.9 build`).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';

const here = new URL('.', import.meta.url).pathname;
const HTTP_DIST = join(here, '..', 'packages', 'http', 'dist', 'index.js');
const CORE_DIST = join(here, '..', 'packages', 'core', 'dist', 'index.js');
for (const file of [HTTP_DIST, CORE_DIST]) {
  if (!existsSync(file)) {
    console.error(`stats-recording.bench: ${file} is missing: build first (npx -y pnpm@10.34.9 build)`);
    process.exit(2);
  }
}
const { trafficOf } = await import(pathToFileURL(HTTP_DIST).href);
const { LoadBalancer } = await import(pathToFileURL(CORE_DIST).href);
const { values } = parseArgs({ options: { rounds: { type: 'string', default: '5' }, requests: { type: 'string', default: '1000000' } } });

const lb = new LoadBalancer({
  name: 'bench',
  backends: [
    { id: 'a', address: 'http://10.0.0.1:80' },
    { id: 'b', address: 'http://10.0.0.2:80' },
  ],
});
const outcome = { ok: true, status: 200, durationMs: 12 };

function recorded(n) {
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    trafficOf(lb).started();
    const lease = lb.acquire();
    lease.release(outcome);
    trafficOf(lb).attemptEnded(lease.backend, outcome, lease.backend.inflight + 1, lease.startedAt, undefined);
    trafficOf(lb).ended(lease.backend, 'ok', 200, 0, 512, 14, 0);
  }
  return Number(process.hrtime.bigint() - started) / n;
}
function bare(n) {
  const started = process.hrtime.bigint();
  for (let i = 0; i < n; i++) lb.acquire().release(outcome);
  return Number(process.hrtime.bigint() - started) / n;
}

for (let i = 0; i < 3; i++) {
  bare(200_000);
  recorded(200_000);
}
const rows = [];
for (let round = 0; round < Number(values.rounds); round++) {
  const n = Number(values.requests);
  rows.push([bare(n), recorded(n)]);
}
rows.sort((x, y) => x[1] - x[0] - (y[1] - y[0]));
for (const [b, r] of rows) console.log(`acquire+release ${b.toFixed(0)} ns; with the stats calls ${r.toFixed(0)} ns (+${(r - b).toFixed(0)} ns)`);
lb.close();
