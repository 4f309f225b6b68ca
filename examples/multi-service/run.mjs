// Two services and a static site behind ONE entry point, as a production edge would put them:
// HTTPS with a certificate chosen by SNI, HTTP redirected to HTTPS, forwarding rules by host and path
// prefix, and a sticky canary split of `orders` (v1 90 % / v2 10 %) ramped while it runs.
//
//   node run.mjs [--https-port 8443] [--http-port 8080] [--ramp] [--ramp-every 3] [--ramp-step 10]
//                [--seconds N] [--log]
//
// What it starts (all on 127.0.0.1, every one a child process it stops on exit):
//   catalog    catalog-1, catalog-2            the catalog API          (pool `catalog`)
//   orders v1  orders-v1-1, orders-v1-2        the current orders API   (pool `orders-v1`)
//   orders v2  orders-v2-1                     the canary               (pool `orders-v2`)
//   site       site-1                          static files from ./site (pool `site`)
// and, in this process, the entry point: `createProxy({ router })` on an `https` server whose
// certificates come from `createTlsContext` (a throwaway self-signed certificate made with `openssl`
// in a temp dir at start, deleted at exit — never a file in the repository), and `redirectToHttps`
// on the http port.
//
// The routes (first match wins, exact and anchored):
//   api.example.test  /catalog/…      → catalog
//   api.example.test  /orders/…       → split orders-v1 : orders-v2 (90 : 10), sticky per client
//   www.example.test  /api/catalog/…  → catalog, the prefix rewritten to /catalog/…
//   www.example.test  anything else   → site
//   example.test      anything        → site
//   anything else                     → 404 from the proxy
//
// `--ramp` moves `--ramp-step` % of new clients from v1 to v2 every `--ramp-every` seconds with
// `router.setSplit` — no restart; clients already assigned stay where they are (a ramp moves new
// clients; a weight of 0 moves everyone off a pool: at 100 % the v1 clients follow). `kill -USR2 <pid>`
// takes one step by hand, with or without `--ramp`. `--seconds N` stops by itself after N
// seconds (the test uses it); otherwise Ctrl-C. Started with an IPC channel (by the test), it reports
// { type: 'ready', … } and { type: 'split', … } messages, and stops when that channel closes.
import { execFileSync, fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createProxy, createRouter, createTlsContext, httpProbe, redirectToHttps } from '@fulcrum/http';

const { values } = parseArgs({
  options: {
    'https-port': { type: 'string', default: '8443' },
    'http-port': { type: 'string', default: '8080' },
    ramp: { type: 'boolean', default: false },
    'ramp-every': { type: 'string', default: '3' },
    'ramp-step': { type: 'string', default: '10' },
    seconds: { type: 'string', default: '0' },
    log: { type: 'boolean', default: false },
  },
});

function option(name, min, max) {
  const value = Number(values[name]);
  if (!Number.isFinite(value) || value < min || value > max) {
    console.error(`run.mjs: --${name} must be a number from ${min} to ${max}, got ${JSON.stringify(values[name])}`);
    process.exit(2);
  }
  return value;
}
const httpsPort = option('https-port', 0, 65535);
const httpPort = option('http-port', 0, 65535);
const rampEverySeconds = option('ramp-every', 0.1, 3600);
const rampStep = option('ramp-step', 1, 100);
const seconds = option('seconds', 0, 86_400);

const here = (file) => fileURLToPath(new URL(file, import.meta.url));
const log = (line) => console.log(`[multi-service] ${line}`);
const DOMAIN = 'example.test'; // RFC 6761: reserved for testing, never a real site.

// ------------------------------------------------------------------------------ the certificate

/**
 * A self-signed certificate for example.test and *.example.test, valid for one day, in a fresh temp
 * directory. P-256: a fast handshake, and every TLS client accepts it.
 */
function makeCertificate() {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-multi-service-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        `/CN=${DOMAIN}`,
        '-addext',
        `subjectAltName=DNS:${DOMAIN},DNS:*.${DOMAIN}`,
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], timeout: 15_000 },
    );
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    const reason = error.code === 'ENOENT' ? 'openssl is not installed' : (error.stderr?.toString().trim() ?? error.message);
    throw new Error(`could not generate the throwaway certificate: ${reason}`, { cause: error });
  }
  return { dir, cert: readFileSync(join(dir, 'cert.pem')), key: readFileSync(join(dir, 'key.pem')) };
}

// ------------------------------------------------------------------------------ the instances

const children = new Set();

function startInstance(args) {
  const child = fork(here('service.mjs'), args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  void child.exited.then(() => children.delete(child));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${args.join(' ')}: not listening after 10 s`)), 10_000);
    child.once('message', (message) => {
      clearTimeout(timer);
      if (message?.type === 'listening') resolve({ child, port: message.port });
      else reject(new Error(`unexpected message ${JSON.stringify(message)}`));
    });
    void child.exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`${args.join(' ')} exited before listening (code ${code}, signal ${signal})`));
    });
  });
}

const INSTANCES = [
  { pool: 'catalog', instance: 'catalog-1', args: ['--service', 'catalog', '--version', 'v1'] },
  { pool: 'catalog', instance: 'catalog-2', args: ['--service', 'catalog', '--version', 'v1'] },
  { pool: 'orders-v1', instance: 'orders-v1-1', args: ['--service', 'orders', '--version', 'v1'] },
  { pool: 'orders-v1', instance: 'orders-v1-2', args: ['--service', 'orders', '--version', 'v1'] },
  { pool: 'orders-v2', instance: 'orders-v2-1', args: ['--service', 'orders', '--version', 'v2'] },
  { pool: 'site', instance: 'site-1', args: ['--service', 'site', '--static', here('site')] },
];

// ------------------------------------------------------------------------------ the entry point

let certificate;
let router;
let proxy;
let https;
let http;
let rampTimer;
let stopTimer;
let stopping;

async function start() {
  certificate = makeCertificate();
  const started = await Promise.all(INSTANCES.map((spec) => startInstance([...spec.args, '--instance', spec.instance, '--port', '0'])));
  const pools = {};
  INSTANCES.forEach((spec, i) => {
    pools[spec.pool] ??= {
      algorithm: 'round-robin',
      backends: [],
      // HAProxy's defaults (rise 2, fall 3) at a 2 s interval: an instance that dies leaves its pool
      // within ~6 s; until then a refused connection is retried on the other instance.
      health: { probe: httpProbe({ path: '/health' }), intervalMs: 2000 },
    };
    pools[spec.pool].backends.push({ id: spec.instance, address: `http://127.0.0.1:${started[i].port}` });
  });

  // Secrets of the split cookie: from the environment in production (several instances of the
  // entry point must share them); a random one here, so every run re-assigns clients.
  const secret = process.env.FULCRUM_SPLIT_SECRET ?? randomBytes(32).toString('base64url');
  router = createRouter({
    pools,
    routes: [
      { name: 'catalog', match: { host: `api.${DOMAIN}`, pathPrefix: '/catalog' }, pool: 'catalog' },
      {
        name: 'orders',
        match: { host: `api.${DOMAIN}`, pathPrefix: '/orders' },
        split: [
          { pool: 'orders-v1', weight: 90 },
          { pool: 'orders-v2', weight: 10 },
        ],
      },
      { name: 'site-api', match: { host: `www.${DOMAIN}`, pathPrefix: '/api/catalog' }, pool: 'catalog', rewritePrefix: '/catalog' },
      { name: 'site', match: { host: `www.${DOMAIN}` }, pool: 'site' },
      { name: 'apex', match: { host: DOMAIN }, pool: 'site' },
    ],
    // The tester override is on in this example so `-H 'x-fulcrum-pool: orders-v2'` can try the
    // canary; it only ever picks a pool of the matched split.
    split: { cookie: { secrets: [secret] }, headerOverride: 'x-fulcrum-pool' },
  });

  proxy = createProxy({
    router,
    accessLog: values.log
      ? (e) =>
          log(
            `${e.method} ${e.path} → ${e.pool === '' ? '(no route)' : e.pool}${e.backendId ? `/${e.backendId}` : ''} ${e.status} ${e.termination} ${e.timings.totalMs.toFixed(1)} ms`,
          )
      : undefined,
    onError: (error, { phase, backendId }) => log(`proxy ${phase} error${backendId ? ` (${backendId})` : ''}: ${error?.message ?? error}`),
  });

  const tls = createTlsContext({ certs: [{ cert: certificate.cert, key: certificate.key }] });
  https = tls.attach(createHttpsServer(tls.serverOptions, proxy));
  https.headersTimeout = 20_000;
  await listen(https, httpsPort);
  const boundHttps = https.address().port;

  http = createHttpServer(redirectToHttps({ port: boundHttps, hosts: [DOMAIN, `*.${DOMAIN}`] }));
  http.headersTimeout = 20_000;
  await listen(http, httpPort);
  const boundHttp = http.address().port;

  printGuide(boundHttps, boundHttp, started);
  process.send?.({
    type: 'ready',
    httpsPort: boundHttps,
    httpPort: boundHttp,
    certificateDir: certificate.dir,
    instances: INSTANCES.map((spec, i) => ({ pool: spec.pool, instance: spec.instance, port: started[i].port, pid: started[i].child.pid })),
  });

  if (values.ramp) {
    rampTimer = setInterval(rampOnce, rampEverySeconds * 1000);
    log(`ramping orders-v2 by ${rampStep} % every ${rampEverySeconds} s`);
  }
  if (seconds > 0) stopTimer = setTimeout(() => void stop('--seconds elapsed'), seconds * 1000);
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** One step of the canary ramp: `--ramp-step` % more of NEW clients to orders-v2. */
function rampOnce() {
  const weights = router.splitOf('orders');
  if ((weights['orders-v2'] ?? 0) >= 100) return;
  const canary = Math.min(100, (weights['orders-v2'] ?? 0) + rampStep);
  router.setSplit('orders', { 'orders-v1': 100 - canary, 'orders-v2': canary });
  process.send?.({ type: 'split', weights: router.splitOf('orders') });
  if (canary < 100) {
    log(`canary ramp: orders-v1 ${100 - canary} % / orders-v2 ${canary} % of new clients (assigned clients stay)`);
    return;
  }
  clearInterval(rampTimer);
  rampTimer = undefined;
  // Weight 0 is the router's "move everyone off": the promotion is complete for old clients too.
  log('canary ramp complete: orders-v1 0 % / orders-v2 100 % — v1 is out of the split, so its clients move to v2 as well');
}

function printGuide(portS, portH, started) {
  const curl = (name, path, flags = '') => `curl -k ${flags}--resolve ${name}.${DOMAIN}:${portS}:127.0.0.1 https://${name}.${DOMAIN}:${portS}${path}`;
  const lines = [
    `entry point: https://127.0.0.1:${portS} (TLS, self-signed for ${DOMAIN} and *.${DOMAIN}), http://127.0.0.1:${portH} (redirects to https)`,
    `instances: ${INSTANCES.map((spec, i) => `${spec.instance}:${started[i].port}`).join(' ')}`,
    `certificate: ${certificate.dir} (deleted at exit)   pid ${process.pid} (kill -USR2 ${process.pid}: one ramp step)`,
    '',
    'try it (-k: the certificate is self-signed; --resolve: the names point at 127.0.0.1):',
    `  ${curl('api', '/catalog/items')}`,
    '      catalog-1, then catalog-2 (round robin)',
    `  ${curl('www', '/api/catalog/items')}`,
    '      catalog again, its path rewritten to /catalog/items',
    `  ${curl('www', '/')}`,
    '      the static site',
    `  ${curl('api', '/orders/1', '-c jar -b jar ')}`,
    '      orders v1 or v2 (90:10) for a new client, then always the same (the signed cookie in ./jar)',
    `  ${curl('api', '/orders/1', "-H 'x-fulcrum-pool: orders-v2' ")}`,
    '      testers pick the canary with a header',
    `  ${curl('api', '/admin')}`,
    '      no route: 404',
    `  curl -i --resolve www.${DOMAIN}:${portH}:127.0.0.1 'http://www.${DOMAIN}:${portH}/x?y=1'`,
    '      301 to https, path and query kept',
  ];
  if (!values.ramp) lines.push('', 'start with --ramp to move the canary from 10 % to 100 % while it runs');
  for (const line of lines) console.log(line);
}

// ------------------------------------------------------------------------------ shutdown

/** Stop everything this process started, in order: no new connections, proxy, pools, instances, certificate. */
function stop(reason) {
  stopping ??= (async () => {
    log(`stopping (${reason})`);
    clearInterval(rampTimer);
    clearTimeout(stopTimer);
    if (router !== undefined) {
      const counts = [];
      for (const [name, lb] of router.pools) {
        for (const b of lb.snapshot().backends) counts.push(`${name}/${b.id}=${b.requests}`);
      }
      log(`requests served: ${counts.join(' ')}`);
    }
    const closing = [https, http].filter(Boolean).map(
      (server) =>
        new Promise((resolve) => {
          server.close(() => resolve());
          server.closeIdleConnections();
          // Keep-alive clients (browsers) would hold the server open; a second is enough for requests in flight.
          setTimeout(() => server.closeAllConnections(), 1000).unref();
        }),
    );
    await Promise.all(closing);
    await proxy?.close();
    router?.close();
    for (const child of children) child.kill('SIGTERM');
    const killer = setTimeout(() => {
      for (const child of children) child.kill('SIGKILL');
    }, 3000);
    await Promise.all([...children].map((child) => child.exited));
    clearTimeout(killer);
    if (certificate !== undefined) rmSync(certificate.dir, { recursive: true, force: true });
    process.channel?.unref();
    log('stopped: every instance has exited, the certificate is deleted');
  })();
  return stopping;
}

process.once('SIGINT', () => void stop('SIGINT'));
// A manual ramp (`kill -USR2 <pid>`): one step, whether or not --ramp runs by itself.
process.on('SIGUSR2', () => {
  if (router !== undefined && stopping === undefined) rampOnce();
});
process.once('SIGTERM', () => void stop('SIGTERM'));
// Started by a parent (the test) that went away: leave rather than serve forever.
process.once('disconnect', () => void stop('parent gone'));

try {
  await start();
} catch (error) {
  log(`failed to start: ${error?.message ?? error}`);
  process.exitCode = 1;
  await stop('start failed');
}
