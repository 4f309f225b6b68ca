#!/usr/bin/env node
/**
 * Routing cost per request: `router.match(req)` over a table of 50 routes, the way a shared edge
 * proxy's table looks — exact hosts, `*.` wildcard hosts, segment-aware path prefixes, exact paths,
 * methods, header values and regexes, cookie presence — with the request that matches the LAST route
 * (every earlier route is tried and rejected) and a request that matches none (the 404 path: the
 * whole table is scanned). Goal: ≤ 1 µs per match at p50.
 *
 *   node bench/router.bench.mjs
 *
 * Also measured, for context: the first route matching (the floor: target normalisation and one
 * route), a match that needs the Host parsed and a header compared in the middle of the table, and a
 * sticky split route (cookie verification with HMAC-SHA256 — the price of stickiness, not of routing).
 *
 * `@fulcrum/http` is loaded from its BUILT dist (`npx -y pnpm@10.34.9 build` first). The requests are
 * plain objects with the fields the router reads (`url`, `method`, `headers`, `socket`), built once,
 * so only `match` is timed. Every result goes through mitata's `do_not_optimize`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { bench, do_not_optimize, run } from 'mitata';
import { BENCH_DIR, mitataStats, report, row } from './run.mjs';

const HTTP_DIST = join(BENCH_DIR, '..', 'packages', 'http', 'dist', 'index.js');
if (!existsSync(HTTP_DIST)) {
  console.error(`router.bench: ${HTTP_DIST} is missing: build first (npx -y pnpm@10.34.9 build)`);
  process.exit(2);
}
const { createRouter } = await import(pathToFileURL(HTTP_DIST).href);

const TARGET_NS = 1000;
const backends = (name) => ({ backends: [{ id: `${name}-1`, address: 'http://127.0.0.1:9' }] });
const pools = Object.fromEntries(
  ['web', 'api', 'api-v2', 'admin', 'static', 'blog', 'shop', 'tenant', 'beta', 'status', 'canary'].map((p) => [p, backends(p)]),
);

/** 50 routes: ten sites, each with the rules a real one accumulates. */
function routes() {
  const list = [];
  const sites = ['shop', 'blog', 'docs', 'help', 'pay', 'auth', 'cdn', 'mail'];
  for (const site of sites) {
    const host = `${site}.example.com`;
    list.push(
      { match: { host, pathPrefix: '/api/v2', header: { name: 'x-api-version', value: '2' } }, pool: 'api-v2' },
      { match: { host, pathPrefix: '/api' }, pool: 'api', rewritePrefix: '/' },
      { match: { host, pathPrefix: '/static/', method: ['GET', 'HEAD'] }, pool: 'static' },
      { match: { host, path: '/healthz' }, pool: 'status' },
      { match: { host, pathPrefix: '/admin', cookie: 'admin_session' }, pool: 'admin' },
    );
  }
  // 40 so far. Wildcards, header-only and prefix-only rules, as shared tables have them.
  list.push(
    { match: { host: '*.tenants.example.com', pathPrefix: '/api' }, pool: 'tenant' },
    { match: { host: '*.tenants.example.com' }, pool: 'tenant' },
    { match: { header: { name: 'x-beta', regex: '(?:on|1|true)' } }, pool: 'beta' },
    { match: { pathPrefix: '/.well-known/acme-challenge' }, pool: 'static' },
    { match: { host: 'www.example.com', pathPrefix: '/blog' }, pool: 'blog', rewritePrefix: '/' },
    { match: { host: 'www.example.com', pathPrefix: '/shop' }, pool: 'shop' },
    { match: { host: 'www.example.com', pathPrefix: '/account', cookie: 'session' }, pool: 'web' },
    { match: { host: 'www.example.com', method: ['POST', 'PUT', 'DELETE'], pathPrefix: '/forms' }, pool: 'web' },
    {
      name: 'www',
      match: { host: 'www.example.com' },
      split: [
        { pool: 'web', weight: 90 },
        { pool: 'canary', weight: 10 },
      ],
    },
    // The last route: a host, a prefix and a header, all of which must be compared.
    { match: { host: 'status.example.com', pathPrefix: '/v1/checks', header: { name: 'x-team', value: 'sre' } }, pool: 'status' },
  );
  return list;
}

const table = routes();
if (table.length !== 50) throw new Error(`expected 50 routes, built ${table.length}`);
const router = createRouter({ pools, routes: table, split: { cookie: { secrets: ['bench-secret-0123456789abcdefghijklmnop'] } } });

const req = (host, url, method = 'GET', headers = {}) => ({ url, method, headers: { host, 'user-agent': 'bench', accept: '*/*', ...headers }, socket: {} });
const requests = {
  first: req('shop.example.com', '/api/v2/orders/42?expand=items', 'GET', { 'x-api-version': '2' }),
  middle: req('a1.tenants.example.com', '/api/users/7'),
  last: req('status.example.com', '/v1/checks/db?verbose=1', 'GET', { 'x-team': 'sre' }),
  miss: req('unknown.example.org', '/nothing/here?x=1'),
  // A sticky client of the split: its cookie is verified (HMAC) on every request.
  split: req('www.example.com', '/products/9'),
};
// Give the split client its cookie, as a browser would after its first response.
const assigned = router.match(requests.split);
requests.split.headers.cookie = assigned.setCookie.split(';')[0];

// Correctness before speed: each request lands where it should.
const expect = (name, pool) => {
  const m = router.match(requests[name]);
  if ((m?.pool ?? 'none') !== pool) throw new Error(`${name}: expected ${pool}, got ${m?.pool ?? 'none'} (route ${m?.route})`);
  return m;
};
expect('first', 'api-v2');
expect('middle', 'tenant');
if (expect('last', 'status').route !== 49) throw new Error('the "last" request did not match route 49');
expect('miss', 'none');
expect('split', assigned.pool);

bench('match: first route (floor)', () => do_not_optimize(router.match(requests.first)));
bench('match: route 41 (wildcard host + prefix)', () => do_not_optimize(router.match(requests.middle)));
bench('match: last of 50 routes', () => do_not_optimize(router.match(requests.last)));
bench('match: miss (50 routes scanned, 404)', () => do_not_optimize(router.match(requests.miss)));
bench('match: sticky split (route 49, cookie HMAC verified)', () => do_not_optimize(router.match(requests.split)));

const stats = mitataStats(await run());
const p50 = (name) => stats.get(name)?.p50;
report('router', [
  row('router', 'match, last of 50 routes', p50('match: last of 50 routes'), 'ns', TARGET_NS),
  row('router', 'match, miss (404) over 50 routes', p50('match: miss (50 routes scanned, 404)'), 'ns', TARGET_NS),
  row('router', 'match, first route (floor)', p50('match: first route (floor)'), 'ns'),
  row('router', 'match, route 41 (wildcard host)', p50('match: route 41 (wildcard host + prefix)'), 'ns'),
  row('router', 'match, sticky split (cookie HMAC)', p50('match: sticky split (route 49, cookie HMAC verified)'), 'ns', undefined, 'stickiness, not routing'),
]);
