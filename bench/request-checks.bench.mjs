/**
 * The request-head check every request now passes before it is routed (`checkRequestHead`, issue
 * #19): time and heap bytes per call for a typical browser request (8 header lines), which must
 * allocate nothing. Imports the BUILT `@fulcrum/http` (build it first).
 *
 * Run: `node --expose-gc --min-semi-space-size=64 --max-semi-space-size=64 bench/request-checks.bench.mjs`
 * (the young generation is large enough that no scavenge falls inside the measured window).
 */
import v8 from 'node:v8';
import { checkRequestHead } from '@fulcrum/http';
const raw = [
  'Host',
  'example.com',
  'User-Agent',
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36',
  'Accept',
  'text/html,application/xhtml+xml',
  'Accept-Encoding',
  'gzip, deflate, br',
  'Accept-Language',
  'en-US,en;q=0.9',
  'Cookie',
  'fulcrum_srv=abc.def; session=xyz',
  'Connection',
  'keep-alive',
  'X-Forwarded-For',
  '10.0.0.1',
];
const req = { rawHeaders: raw, httpVersionMajor: 1, url: '/api/users/42?fields=name,email' };
let sink = 0;
const N = 2_000_000;
for (let r = 0; r < 3; r++) {
  for (let i = 0; i < N; i++) if (checkRequestHead(req, 100) !== undefined) sink++;
}
globalThis.gc();
const before = v8.getHeapStatistics().used_heap_size;
const t0 = process.hrtime.bigint();
for (let i = 0; i < N; i++) if (checkRequestHead(req, 100) !== undefined) sink++;
const t1 = process.hrtime.bigint();
const after = v8.getHeapStatistics().used_heap_size;
console.log(`checkRequestHead, 8 headers: ${(Number(t1 - t0) / N).toFixed(1)} ns/call, ${((after - before) / N).toFixed(2)} B/call (sink ${sink})`);
