// MariaDB behind Fulcrum's layer-4 proxy: `createTcpProxy` relays the MySQL protocol untouched, so any
// client (mysql2 here, the `mariadb` CLI, an ORM) connects to the proxy as if it were the server.
//
//   node run.mjs [--mysql-url mysql://root@127.0.0.1:3306/test] [--port 0] [--seconds N]
//
// One real MariaDB plays a two-node cluster: it is listed twice, as `db-a` and `db-b` (same address,
// two ids) — the load balancer cannot tell, so distribution and failover show exactly as with two
// servers (point the two entries at two Galera nodes and nothing else changes). The script runs:
//
//   1. distribution  six connections through the proxy: least-connections puts three on each node;
//                    the server sees the PROXY's address as the client (why PROXY protocol exists)
//   2. maintenance   `lb.maintain('db-b')`: its open connections live on (layer 4 cannot move a
//                    session), every NEW connection goes to db-a; `lb.ready('db-b')` brings it back
//   3. failover      a third node `db-c` whose port is closed: connects to it fail and are retried
//                    on another node before the client notices (nothing was sent yet, so it is safe)
//   4. a transaction through the proxy: a temporary table, parameterised inserts, a sum, a commit
//   5. PROXY protocol v1: what a backend that speaks it receives before the client's first byte
//
// then keeps the proxy open for your own client (`mariadb -h 127.0.0.1 -P <port> -u root test`)
// until Ctrl-C, or for `--seconds N`. Exits 0 when every check passed, 1 otherwise. Started with an
// IPC channel (by the test) it reports { type: 'result', … } and leaves when that channel closes.
// MYSQL_URL in the environment is the default of --mysql-url.
import { once } from 'node:events';
import net from 'node:net';
import { parseArgs } from 'node:util';
import { createLoadBalancer } from '@fulcrum/core';
import { createTcpProxy } from '@fulcrum/http';
import mysql from 'mysql2/promise';

const { values } = parseArgs({
  options: {
    'mysql-url': { type: 'string', default: process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test' },
    port: { type: 'string', default: '0' },
    seconds: { type: 'string' },
  },
});
const log = (line) => console.log(`[tcp] ${line}`);
const fail = (line) => {
  console.error(`[tcp] ${line}`);
  process.exit(2);
};

let url;
try {
  url = new URL(values['mysql-url']);
} catch {
  fail(`--mysql-url is not a URL: ${values['mysql-url']}`);
}
const listenPort = Number(values.port);
if (!Number.isInteger(listenPort) || listenPort < 0 || listenPort > 65535) fail(`--port must be a port number, got ${values.port}`);
const seconds = values.seconds === undefined ? undefined : Number(values.seconds);
if (seconds !== undefined && !(seconds >= 0 && seconds <= 86_400)) fail(`--seconds must be a number from 0 to 86400, got ${values.seconds}`);

const database = {
  host: url.hostname,
  port: Number(url.port || 3306),
  user: decodeURIComponent(url.username || 'root'),
  password: decodeURIComponent(url.password),
  database: url.pathname.slice(1) || 'test',
};
const dbAddress = `${database.host}:${database.port}`;

/**
 * An active check that speaks MySQL: connect, `SELECT 1`, quit — HAProxy's `option mysql-check`. A
 * bare TCP probe (connect, close) would work, but MySQL counts every connection closed before the
 * handshake as an aborted connect, and after `max_connect_errors` of them it blocks the proxy's
 * host: a health check must finish the protocol properly.
 */
function mysqlProbe() {
  return async (backend, signal) => {
    const [host, port] = [backend.address.slice(0, backend.address.lastIndexOf(':')), Number(backend.address.slice(backend.address.lastIndexOf(':') + 1))];
    const connection = await mysql.createConnection({ ...database, host, port, connectTimeout: 1000 });
    const abort = () => connection.destroy();
    signal.addEventListener('abort', abort, { once: true });
    try {
      const [rows] = await connection.query('SELECT 1 AS ok');
      return rows[0]?.ok === 1;
    } finally {
      signal.removeEventListener('abort', abort);
      await connection.end().catch(() => connection.destroy());
    }
  };
}

const lb = createLoadBalancer({
  // Least-connections is the layer-4 default of HAProxy's docs for long sessions (databases): the
  // count of open connections is the load.
  algorithm: 'least-connections',
  backends: [
    { id: 'db-a', address: dbAddress },
    { id: 'db-b', address: dbAddress },
  ],
  health: { probe: mysqlProbe(), intervalMs: 2000, timeoutMs: 1500 },
});
const failedConnects = new Map();
const proxy = createTcpProxy({
  balancer: lb,
  // A dead node should cost a client a second, not HAProxy's customary 5.
  timeouts: { connectMs: 1000 },
  onError: (error, { phase, backendId }) => {
    if (phase === 'connect' && backendId !== undefined) failedConnects.set(backendId, (failedConnects.get(backendId) ?? 0) + 1);
  },
});
// allowHalfOpen: a client's FIN is passed on while the server may still answer (see createTcpProxy).
const server = net.createServer({ allowHalfOpen: true }, proxy);

const openByNode = () => Object.fromEntries(lb.snapshot().backends.map((b) => [b.id, b.inflight]));
const fmt = (counts) =>
  Object.entries(counts)
    .map(([id, n]) => `${id}=${n}`)
    .join(' ');
const checks = [];
function check(name, ok, detail) {
  checks.push({ name, ok });
  log(`${ok ? 'ok  ' : 'FAIL'} ${name}${detail ? ` — ${detail}` : ''}`);
}

function poolThroughProxy(port, connectionLimit) {
  return mysql.createPool({ ...database, host: '127.0.0.1', port, connectionLimit, maxIdle: connectionLimit, connectTimeout: 5000 });
}

/** `n` queries at once on a pool of `n`: forces `n` connections open. */
async function openConnections(pool, n) {
  const rows = await Promise.all(Array.from({ length: n }, () => pool.query('SELECT CONNECTION_ID() AS id, SLEEP(0.05) AS slept').then(([r]) => r[0])));
  return rows.map((r) => r.id);
}

async function scenario(port) {
  // 1. distribution
  const first = poolThroughProxy(port, 6);
  const ids = await openConnections(first, 6);
  const [[me]] = await first.query('SELECT HOST AS host, @@version AS version FROM information_schema.PROCESSLIST WHERE ID = CONNECTION_ID()');
  const spread = openByNode();
  log(`MariaDB ${me.version} at ${dbAddress}; proxy on 127.0.0.1:${port}`);
  log(`six connections (server connection ids ${ids.join(', ')}): open per node ${fmt(spread)}`);
  log(`the server sees this client as ${me.host} — the proxy's own address (see step 5)`);
  check('least-connections spreads six connections 3 / 3', spread['db-a'] === 3 && spread['db-b'] === 3, fmt(spread));

  // 2. maintenance
  lb.maintain('db-b');
  const second = poolThroughProxy(port, 4);
  await openConnections(second, 4);
  const during = openByNode();
  log(`db-b in maintenance; four new connections: open per node ${fmt(during)} (db-b keeps its 3 old ones)`);
  check('a node in maintenance gets no new connection and keeps its open ones', during['db-a'] === 7 && during['db-b'] === 3, fmt(during));
  await Promise.all([first.end(), second.end()]);
  await waitFor(() => lb.snapshot().backends.every((b) => b.inflight === 0));
  lb.ready('db-b');

  // 3. failover on connect failure
  const deadPort = await closedPort();
  lb.add({ id: 'db-c', address: `127.0.0.1:${deadPort}` });
  const third = poolThroughProxy(port, 4);
  let served = 0;
  for (let i = 0; i < 4; i++) {
    // One connection at a time, each new one: least-connections prefers db-c (0 open) every time.
    const connection = await third.getConnection();
    const [[row]] = await connection.query('SELECT 1 AS ok');
    served += row.ok;
  }
  const dbc = lb.snapshot().backends.find((b) => b.id === 'db-c');
  log(
    `db-c (127.0.0.1:${deadPort}, closed) added: ${served}/4 new connections answered; ` +
      `${failedConnects.get('db-c') ?? 0} connect(s) to db-c failed and were retried on another node; db-c is ${dbc.state}`,
  );
  check('connections to a dead node are retried on a live one', served === 4 && openByNode()['db-c'] === 0, fmt(openByNode()));
  await third.end();
  await lb.remove('db-c');

  // 4. a transaction
  const fourth = poolThroughProxy(port, 1);
  const connection = await fourth.getConnection();
  try {
    await connection.query('CREATE TEMPORARY TABLE fulcrum_tcp_example (id INT PRIMARY KEY, amount DECIMAL(10,2))');
    await connection.beginTransaction();
    for (const [id, amount] of [
      [1, 9.5],
      [2, 20.25],
      [3, 70.25],
    ]) {
      await connection.execute('INSERT INTO fulcrum_tcp_example (id, amount) VALUES (?, ?)', [id, amount]);
    }
    await connection.commit();
    const [[sum]] = await connection.query('SELECT COUNT(*) AS n, SUM(amount) AS total FROM fulcrum_tcp_example');
    log(`transaction through the proxy: ${sum.n} rows inserted with prepared statements, sum ${sum.total}`);
    check('a transaction with prepared statements commits through the proxy', Number(sum.n) === 3 && Number(sum.total) === 100);
  } finally {
    connection.release();
    await fourth.end();
  }

  // 5. PROXY protocol
  await proxyProtocolDemo();
}

/**
 * What a backend configured for the PROXY protocol receives: a second proxy with
 * `proxyProtocol: 'v1'` in front of a tiny TCP server that reads the header line and answers with it.
 * (MariaDB itself accepts the header from the addresses in its `proxy_protocol_networks` variable; the
 * shared server here is not reconfigured — see the README.)
 */
async function proxyProtocolDemo() {
  const backend = net.createServer((socket) => {
    let received = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk) => {
      received += chunk;
      const end = received.indexOf('\r\n');
      if (end !== -1) socket.end(`${received.slice(0, end)}\n`);
    });
    socket.on('error', () => undefined);
  });
  await listen(backend, 0);
  const handler = createTcpProxy({ balancer: { backends: [{ id: 'reader', address: `127.0.0.1:${backend.address().port}` }] }, proxyProtocol: 'v1' });
  const front = net.createServer({ allowHalfOpen: true }, handler);
  await listen(front, 0);
  try {
    const client = net.connect(front.address().port, '127.0.0.1');
    await once(client, 'connect');
    const clientPort = client.localPort;
    client.end('hello');
    let line = '';
    client.setEncoding('latin1');
    for await (const chunk of client) line += chunk;
    line = line.trim();
    log(`PROXY protocol v1: the backend read "${line}" before the client's bytes — the client's real address and port`);
    check('the PROXY v1 header names the client', line === `PROXY TCP4 127.0.0.1 127.0.0.1 ${clientPort} ${front.address().port}`, line);
  } finally {
    await handler.close();
    await Promise.all([close(front), close(backend)]);
  }
}

function listen(srv, port) {
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(port, '127.0.0.1', () => {
      srv.off('error', reject);
      resolve();
    });
  });
}

function close(srv) {
  return new Promise((resolve) => srv.close(() => resolve()));
}

/** A port on 127.0.0.1 with nothing listening (bound, then released). */
async function closedPort() {
  const probe = net.createServer();
  await listen(probe, 0);
  const { port } = probe.address();
  await close(probe);
  return port;
}

async function waitFor(condition, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the connections to close');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// ------------------------------------------------------------------------------ run, then serve

let stopping;
let stopTimer;
function stop(reason) {
  stopping ??= (async () => {
    clearTimeout(stopTimer);
    log(`stopping (${reason})`);
    server.close();
    await proxy.close(); // ends every relayed connection
    lb.close();
    await new Promise((resolve) => (server.listening ? server.once('close', resolve) : resolve()));
    process.channel?.unref();
  })();
  return stopping;
}
process.once('SIGINT', () => void stop('SIGINT'));
process.once('SIGTERM', () => void stop('SIGTERM'));
process.once('disconnect', () => void stop('parent gone'));

let ok = false;
try {
  await listen(server, listenPort);
  await scenario(server.address().port);
  ok = checks.every((c) => c.ok);
  log(ok ? `PASS: ${checks.length} checks` : `FAIL: ${checks.filter((c) => !c.ok).length} of ${checks.length} checks failed`);
} catch (error) {
  const unreachable = ['ECONNREFUSED', 'ETIMEDOUT', 'EHOSTUNREACH'].includes(error?.code) || error?.code === 'PROTOCOL_CONNECTION_LOST';
  log(`FAIL: ${error?.message ?? error}${unreachable ? ` — is MariaDB running at ${dbAddress}? (--mysql-url or MYSQL_URL)` : ''}`);
}
process.exitCode = ok ? 0 : 1;
process.send?.({ type: 'result', ok, port: server.address()?.port, checks });

if (stopping === undefined) {
  if (!ok || seconds === 0) await stop(ok ? '--seconds 0' : 'a check failed');
  else {
    log(`the proxy stays open: mariadb -h 127.0.0.1 -P ${server.address().port} -u ${database.user} ${database.database}`);
    log(seconds === undefined ? 'Ctrl-C to stop' : `stopping in ${seconds} s`);
    if (seconds !== undefined) stopTimer = setTimeout(() => void stop('--seconds elapsed'), seconds * 1000);
  }
}
