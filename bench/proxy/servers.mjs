// The Node proxies of the proxy benchmark, one per process: `node servers.mjs <kind> <backend ports>`
// listens on a free port of 127.0.0.1 and prints `ready <port>`. Each is configured the way its
// documentation suggests for a keep-alive reverse proxy over three backends, round robin:
//
//   fulcrum           createProxy from @fulcrum/http's BUILT dist: round robin, signed-cookie
//                     stickiness on (the benchmark's clients send no cookie, so every response is
//                     balanced and carries a freshly signed Set-Cookie — the cost of a new visitor)
//   fulcrum-plain     the same without stickiness (what the cookie costs)
//   fulcrum-server    createProxyServer (the raw-socket engine) with the same balancer and cookie
//                     stickiness: Fulcrum's own HTTP/1.1 parser and backend pools, no node:http, no undici
//   fulcrum-server-plain  the same without stickiness
//   fulcrum-server-base   fulcrum-server from another build (FULCRUM_BASE_DIST: a copy of an older
//                     packages/http/dist, e.g. main's), for A/B runs interleaved with the current one
//   fulcrum-base      fulcrum (createProxy, cookie stickiness) from FULCRUM_BASE_DIST: e.g. the
//                     createProxy of a commit before the raw engine existed, next to today's
//   undici-minimal    the reference: ~30 lines, one undici Pool per backend, round robin, bodies
//                     streamed both ways, hop-by-hop headers dropped, 502 on error
//   reply-from        fastify 5 + @fastify/reply-from with `base` = the three origins (its documented
//                     multi-upstream mode: an undici BalancedPool)
//   http-proxy        http-proxy's `web()` with a keep-alive http.Agent, target chosen round robin
//   hpm               express 5 + http-proxy-middleware 3 with `router` choosing round robin over
//                     the same keep-alive http.Agent setup
//   node-l4           a reference, not a competitor: a layer-4 pipe (net.Socket ↔ net.Socket, the
//                     backend chosen round robin per client connection, no HTTP parsing at all) —
//                     the most a Node process can forward on this core, whatever its HTTP layer
//
// Every pool / agent gets 128 connections per backend (Fulcrum's default), more than the benchmark's
// 64 client connections, so no proxy queues where another would not. Nothing here listens anywhere
// but 127.0.0.1.
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { pathToFileURL } from 'node:url';

const [kind, portList] = process.argv.slice(2);
const ports = (portList ?? '').split(',').map(Number);
if (ports.length !== 3 || ports.some((p) => !Number.isInteger(p) || p <= 0)) {
  console.error('usage: node servers.mjs <kind> <port1,port2,port3>');
  process.exit(2);
}
const origins = ports.map((port) => `http://127.0.0.1:${port}`);
const CONNECTIONS = 128;

async function fulcrum(sticky, dist) {
  const { createProxy } = await import(dist ?? '@fulcrum/http');
  const proxy = createProxy({
    balancer: {
      algorithm: 'round-robin',
      backends: origins.map((address, i) => ({ id: `b${i + 1}`, address })),
    },
    connectionsPerBackend: CONNECTIONS,
    ...(sticky ? { stickiness: { cookie: { secrets: [randomBytes(32).toString('base64url')] } } } : {}),
  });
  return http.createServer(proxy);
}

/** The raw-socket engine; `listen` is its own (it is not a node:http server). */
async function fulcrumServer(sticky, dist) {
  const { createProxyServer } = await import(dist ?? '@fulcrum/http');
  return createProxyServer({
    balancer: {
      algorithm: 'round-robin',
      backends: origins.map((address, i) => ({ id: `b${i + 1}`, address })),
    },
    connectionsPerBackend: CONNECTIONS,
    // The idle-connection benchmark holds 10,000 keep-alive connections open for a while.
    keepAliveTimeoutMs: 65_000,
    ...(sticky ? { stickiness: { cookie: { secrets: [randomBytes(32).toString('base64url')] } } } : {}),
  });
}

// ---- the minimal undici proxy: the whole thing is this function ----
async function undiciMinimal() {
  const { Pool } = await import('undici');
  const { pipeline } = await import('node:stream');
  const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade']);
  const pools = origins.map((origin) => new Pool(origin, { connections: CONNECTIONS }));
  let next = 0;
  const strip = (headers) => {
    const out = {};
    for (const name in headers) if (!HOP.has(name)) out[name] = headers[name];
    return out;
  };
  return http.createServer((req, res) => {
    const pool = pools[next++ % pools.length];
    const body = req.method === 'GET' || req.method === 'HEAD' ? null : req;
    pool.request({ path: req.url, method: req.method, headers: strip(req.headers), body }).then(
      ({ statusCode, headers, body: upstream }) => {
        res.writeHead(statusCode, strip(headers));
        pipeline(upstream, res, () => {});
      },
      () => {
        res.statusCode = 502;
        res.end('Bad Gateway');
      },
    );
  });
}
// ---- end of the minimal undici proxy ----

async function replyFrom() {
  const { default: Fastify } = await import('fastify');
  const { default: From } = await import('@fastify/reply-from');
  const app = Fastify({ logger: false });
  await app.register(From, { base: origins, undici: { connections: CONNECTIONS, pipelining: 1 } });
  app.all('/*', (request, reply) => reply.from(request.url));
  await app.ready();
  return app.server;
}

async function httpProxy() {
  const { default: HttpProxy } = await import('http-proxy');
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS * 3 });
  const proxy = HttpProxy.createProxyServer({ agent });
  proxy.on('error', (_error, _req, res) => {
    if (res.writeHead && !res.headersSent) res.writeHead(502);
    res.end?.('Bad Gateway');
  });
  let next = 0;
  return http.createServer((req, res) => proxy.web(req, res, { target: origins[next++ % origins.length] }));
}

async function hpm() {
  const { default: express } = await import('express');
  const { createProxyMiddleware } = await import('http-proxy-middleware');
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS * 3 });
  let next = 0;
  const app = express();
  app.use(
    createProxyMiddleware({
      target: origins[0],
      router: () => origins[next++ % origins.length],
      agent,
      logger: undefined,
    }),
  );
  return http.createServer(app);
}

async function nodeL4() {
  const net = await import('node:net');
  let next = 0;
  return net.createServer((client) => {
    const upstream = net.connect(ports[next++ % ports.length], '127.0.0.1');
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
}

/** FULCRUM_BASE_DIST as an import specifier: the index.js of another build of packages/http. */
function baseDist(kind) {
  const dist = process.env.FULCRUM_BASE_DIST;
  if (dist === undefined) throw new Error(`${kind} needs FULCRUM_BASE_DIST (the index.js of another build)`);
  return pathToFileURL(dist).href;
}

const makers = {
  'node-l4': nodeL4,
  fulcrum: () => fulcrum(true),
  'fulcrum-plain': () => fulcrum(false),
  'fulcrum-server': () => fulcrumServer(true),
  'fulcrum-server-plain': () => fulcrumServer(false),
  'fulcrum-server-base': () => fulcrumServer(true, baseDist('fulcrum-server-base')),
  'fulcrum-base': () => fulcrum(true, baseDist('fulcrum-base')),
  'undici-minimal': undiciMinimal,
  'reply-from': replyFrom,
  'http-proxy': httpProxy,
  hpm,
};
const make = makers[kind];
if (make === undefined) {
  console.error(`unknown proxy kind ${JSON.stringify(kind)} (known: ${Object.keys(makers).join(', ')})`);
  process.exit(2);
}
const server = await make();
if ('keepAliveTimeout' in server) server.keepAliveTimeout = 65_000;
if (kind.startsWith('fulcrum-server')) {
  await server.listen(0, '127.0.0.1');
  console.log(`ready ${server.address().port}`);
} else {
  server.listen(0, '127.0.0.1', () => console.log(`ready ${server.address().port}`));
}
// Exit on SIGTERM through process.exit, so `--cpu-prof` writes its profile.
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
process.on('disconnect', () => process.exit(0));
