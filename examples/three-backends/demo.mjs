#!/usr/bin/env node
// The Fulcrum demo: three real Node backends (child processes) behind a Fulcrum reverse proxy — the
// classic "3 Node apps + 1 HAProxy" docker-compose setup, with no Docker. The proxy is the standalone
// `fulcrum` runner on ./fulcrum.json (what `fulcrum --config fulcrum.json` deploys); the demo fills in
// the ports, the algorithm and a cookie secret for the run.
//
//   node demo.mjs [--port 8080] [--backend-ports 3001,3002,3003] [--algorithm weighted-round-robin]
//                 [--restart-delay 5] [--no-restart] [--seconds N] [--host 127.0.0.1]
//
// What it wires together, and why the numbers are what they are:
// - Sticky cookies (HAProxy `cookie SRV insert`): signed with a random secret made at start and never
//   written anywhere, so cookies from an earlier run are ignored and reissued — which is exactly
//   what a forged or stale cookie gets, and the demo shows it.
// - Active HTTP health checks (`httpProbe` on /health) every second, 500 ms while a backend is
//   changing state, 2 passes up / 2 failures down: HAProxy's defaults (inter 2 s, fall 3) are meant
//   for production; a demo should show a failover within a couple of seconds.
// - Outlier detection (Envoy's, consecutive failures 3, ejected for 5 s): passive, so a backend that
//   starts failing requests is out before the next health check even runs.
// - Slow start over 10 s: a backend that comes back (or is restarted) gets 10 % of its weight first
//   and ramps up; the stats page shows its effective weight climbing. It shows on weighted balancers,
//   hence the default algorithm (nginx's smooth weighted round robin) rather than plain round robin.
// - Retries (the proxy's defaults: 3 attempts for idempotent requests on connect errors, resets and
//   timeouts) and a 2 s response-head timeout, so a killed or SIGSTOPped backend costs GETs a short
//   wait, never an error.
// - Killed backends are restarted after 5 s (`--restart-delay`, `--no-restart`), so the stats page
//   shows the whole cycle: up → down → up with slow start.
//
// When run by another Node process through `child_process.fork`, the demo also reports over IPC:
// `{ type: 'ready', proxyPort, backends: [{ id, port, pid }] }`, then `{ type: 'backend', id, port,
// pid }` per restart and `{ type: 'exit', id, pid, code, signal }` per backend exit (its test uses them).
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startFulcrum } from '@fulcrum/cli';

const here = dirname(fileURLToPath(import.meta.url));
const BACKEND_IDS = ['app-1', 'app-2', 'app-3'];

// ------------------------------------------------------------------------------------- options

const usage = `usage: node demo.mjs [options]
  --port N               proxy port (default 8080; 0 = any free port; a taken port falls back to a free one)
  --host ADDRESS         address the proxy and backends listen on (default 127.0.0.1)
  --backend-ports A,B,C  the three backends' ports (default 3001,3002,3003; 0 = any free port)
  --algorithm NAME       balancer (default weighted-round-robin; e.g. round-robin, p2c, least-connections, maglev)
  --restart-delay S      restart a killed backend after S seconds (default 5)
  --no-restart           leave killed backends dead
  --seconds N            stop by itself after N seconds (default: run until Ctrl-C)
  --help                 this text`;

let values;
try {
  // `pnpm start -- --algorithm x` hands us the `--` too; after it parseArgs would take every option
  // for a positional ("Unexpected argument"), so a leading `--` is dropped.
  const argv = process.argv.slice(2);
  ({ values } = parseArgs({
    args: argv[0] === '--' ? argv.slice(1) : argv,
    options: {
      port: { type: 'string', default: '8080' },
      host: { type: 'string', default: '127.0.0.1' },
      'backend-ports': { type: 'string', default: '3001,3002,3003' },
      algorithm: { type: 'string', default: 'weighted-round-robin' },
      'restart-delay': { type: 'string', default: '5' },
      'no-restart': { type: 'boolean', default: false },
      seconds: { type: 'string', default: '0' },
      help: { type: 'boolean', default: false },
    },
  }));
} catch (error) {
  console.error(`${error.message}\n\n${usage}`);
  process.exit(2);
}
if (values.help) {
  console.log(usage);
  process.exit(0);
}

function fail(message) {
  console.error(`demo: ${message}\n\n${usage}`);
  process.exit(2);
}
function parsePort(name, text) {
  const port = Number(text);
  if (text.trim() === '' || !Number.isInteger(port) || port < 0 || port > 65535) fail(`${name} must be a port from 0 to 65535, got ${JSON.stringify(text)}`);
  return port;
}
const proxyPort = parsePort('--port', values.port);
const backendPorts = values['backend-ports'].split(',').map((text) => parsePort('--backend-ports', text));
if (backendPorts.length !== BACKEND_IDS.length) fail(`--backend-ports needs ${BACKEND_IDS.length} ports, got ${JSON.stringify(values['backend-ports'])}`);
const restartDelaySeconds = Number(values['restart-delay']);
if (!Number.isFinite(restartDelaySeconds) || restartDelaySeconds < 0 || restartDelaySeconds > 3600)
  fail(`--restart-delay must be 0–3600 seconds, got ${JSON.stringify(values['restart-delay'])}`);
const restart = !values['no-restart'];
const seconds = Number(values.seconds);
if (!Number.isFinite(seconds) || seconds < 0) fail(`--seconds must be a number ≥ 0, got ${JSON.stringify(values.seconds)}`);
const host = values.host;
// The URLs shown to a human: "localhost" reads better and works for both loopback families.
const shownHost = host === '127.0.0.1' || host === '::1' || host === '0.0.0.0' || host === '::' ? 'localhost' : host;

// ------------------------------------------------------------------------------------- console

const isTTY = process.stdout.isTTY;
const paint = (code) => (text) => (isTTY ? `\x1b[${code}m${text}\x1b[0m` : text);
const bold = paint('1');
const dim = paint('2');
const red = paint('31');
const green = paint('32');
const yellow = paint('33');
const time = () => new Date().toISOString().slice(11, 19);
const log = (line) => console.log(`${dim(time())} ${line}`);
const report = (message) => {
  if (process.connected) process.send(message);
};

// ------------------------------------------------------------------------------------- backends

let stopping = false;
let stopTimer;
/** id → { child, port, pid, restartTimer } */
const backends = new Map();

/** Fork one backend and resolve with its bound port once it listens. */
function startBackend(id, port) {
  return new Promise((resolve, reject) => {
    const child = fork(join(here, 'backend.mjs'), ['--id', id, '--port', String(port), '--host', host], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const entry = { id, child, port, pid: child.pid, restartTimer: undefined, alive: true };
    let listening = false;
    child.on('message', (message) => {
      if (message?.type === 'listening' && !listening) {
        listening = true;
        entry.port = message.port;
        backends.set(id, entry);
        resolve(entry);
      } else if (message?.type === 'admin') {
        log(message.failing ? red(`${id} was told to fail (its /health now answers 503)`) : green(`${id} was told to recover`));
      }
    });
    child.on('error', (error) => {
      if (!listening) reject(error);
    });
    child.on('exit', (code, signal) => {
      entry.alive = false;
      report({ type: 'exit', id, pid: entry.pid, code, signal });
      if (!listening) return reject(new Error(`${id} exited before listening (code ${code}, signal ${signal})`));
      if (stopping) return;
      const how = signal ? `killed by ${signal}` : `exited with code ${code}`;
      if (!restart) return log(red(`${id} (pid ${entry.pid}) ${how}; --no-restart: it stays down`));
      log(red(`${id} (pid ${entry.pid}) ${how}; restarting it in ${restartDelaySeconds} s`));
      entry.restartTimer = setTimeout(() => {
        entry.restartTimer = undefined;
        if (stopping) return;
        startBackend(id, entry.port).then(
          (next) => {
            if (stopping) return next.child.kill('SIGTERM');
            log(
              green(
                `${id} restarted: pid ${next.pid}, port ${next.port}${next.port === entry.port ? '' : ' (its old port was taken)'} — kill ${next.pid} to stop it again`,
              ),
            );
            if (next.port !== entry.port) lb.update(backendSpecs());
            report({ type: 'backend', id, port: next.port, pid: next.pid });
          },
          (error) => log(red(`${id} could not be restarted: ${error.message}`)),
        );
      }, restartDelaySeconds * 1000);
    });
  });
}

function backendSpecs() {
  return BACKEND_IDS.map((id) => ({ id, address: `http://${host.includes(':') ? `[${host}]` : host}:${backends.get(id).port}` }));
}

let started;
try {
  started = await Promise.all(BACKEND_IDS.map((id, i) => startBackend(id, backendPorts[i])));
} catch (error) {
  console.error(`demo: a backend did not start: ${error.message}`);
  for (const { child } of backends.values()) child.kill('SIGTERM');
  process.exit(1);
}

// ------------------------------------------------------------------------------------- the proxy

// The proxy is the standalone `fulcrum` runner on the config file next to this script — the shape
// you deploy (`fulcrum --config fulcrum.json`). The demo only fills in what it decides at run time:
// the backends' ports, the proxy port, the algorithm, and a cookie secret for this run.
process.env.FULCRUM_COOKIE_SECRET ??= randomBytes(32).toString('base64url');
const config = JSON.parse(readFileSync(new URL('./fulcrum.json', import.meta.url), 'utf8'));
config.pools.web.backends = backendSpecs();
config.pools.web.algorithm = values.algorithm;
// The file's frontend opts in to the stats page and metrics (`"stats": true`, on 127.0.0.1): this is
// a local demo. In production they belong on the admin listener or a port of their own.
config.frontends = [{ ...config.frontends[0], port: proxyPort, host }];

async function startProxy(port) {
  config.frontends[0].port = port;
  try {
    return await startFulcrum(config, { watch: false, logger: () => undefined });
  } catch (error) {
    if (error?.code === 'EADDRINUSE' && port !== 0) {
      console.error(yellow(`demo: port ${port} is taken; the proxy uses a free port instead (choose one with --port)`));
      return startProxy(0);
    }
    throw error;
  }
}

let fulcrum;
let lb;
async function listenProxy(port) {
  fulcrum = await startProxy(port);
  lb = fulcrum.pool('web');
  lb.on('state', (id, from, to, cause) => {
    if (stopping) return;
    const colour = to === 'up' ? green : to === 'down' ? red : yellow;
    log(colour(`${id}: ${from} → ${to} (${cause})`));
  });
  lb.on('ejected', (id, cause, until) => log(yellow(`${id}: ejected by outlier detection (${cause}) until ${new Date(until).toISOString().slice(11, 19)}`)));
  lb.on('restored', (id) => log(green(`${id}: back from ejection; slow start ramps its weight up`)));
  lb.on('panic', (active) => log(active ? red('panic mode: too few healthy backends, spreading load over all of them') : green('panic mode over')));
  return fulcrum.addresses().frontends[0].port;
}

let boundPort;
try {
  boundPort = await listenProxy(proxyPort);
} catch (error) {
  console.error(`demo: the proxy could not listen: ${error.message}`);
  await shutdown(1);
}

// ------------------------------------------------------------------------------------- the guide

const base = `http://${shownHost}:${boundPort}`;
const lines = [
  '',
  bold('Fulcrum demo — three Node backends behind one Fulcrum proxy'),
  '',
  `  site        ${bold(`${base}/`)}   (${values.algorithm}, sticky cookie "fulcrum_srv")`,
  `  proxy       the fulcrum runner on ${dim('examples/three-backends/fulcrum.json')} (ports and algorithm filled in for this run)`,
  `  stats page  ${bold(`${base}/fulcrum`)}   (JSON: ${base}/fulcrum?format=json · Prometheus: ${base}/metrics)`,
  '',
  ...started.map((b) => `  ${b.id}  http://${shownHost}:${b.port}/  pid ${b.pid}`),
  '',
  bold('Try:'),
  `  curl -s -b /tmp/fulcrum-demo.jar -c /tmp/fulcrum-demo.jar ${base}/`,
  dim('      run it again and again: same backend, the visit count goes up (cookies kept in the jar)'),
  `  curl -s ${base}/`,
  dim('      without cookies: each request is a new client, balanced over all three'),
  ...started.map(
    (b) =>
      `  kill ${b.pid}   ${dim(`# stop ${b.id}: watch the failover on the stats page${restart ? `; it restarts after ${restartDelaySeconds} s with slow start` : ''}`)}`,
  ),
  `  curl -s -X POST http://${shownHost}:${started[1].port}/admin/fail   ${dim(`# ${started[1].id} fails its health checks (/admin/recover heals it)`)}`,
  `  kill -STOP ${started[2].pid}   ${dim(`# freeze ${started[2].id}: requests time out after 2 s and are retried elsewhere (kill -CONT ${started[2].pid} thaws it)`)}`,
  '',
  dim('  The cookie secret was generated for this run and is not persisted: cookies from an earlier run are ignored and reissued.'),
  dim(`  Ctrl-C stops the proxy and the backends${seconds > 0 ? `; this run stops by itself after ${seconds} s` : ''}.`),
  '',
];
console.log(lines.join('\n'));
report({ type: 'ready', proxyPort: boundPort, backends: started.map(({ id, port, pid }) => ({ id, port, pid })) });

// ------------------------------------------------------------------------------------- stopping

if (seconds > 0) stopTimer = setTimeout(() => shutdown(0), seconds * 1000);

async function shutdown(code) {
  if (stopping) return;
  stopping = true;
  clearTimeout(stopTimer);
  for (const entry of backends.values()) clearTimeout(entry.restartTimer);
  // Bound the whole shutdown: whatever hangs after 5 s is killed and the demo exits anyway.
  const deadline = setTimeout(() => {
    for (const { child, alive } of backends.values()) if (alive) child.kill('SIGKILL');
    process.exit(code);
  }, 5000);
  deadline.unref();

  // The proxy first (no new requests; in-flight ones get a moment to finish), then the backends.
  await fulcrum?.close(1000).catch(() => undefined);
  await Promise.all(
    [...backends.values()].map(({ child, alive }) => {
      if (!alive || child.exitCode !== null || child.signalCode !== null) return undefined;
      return new Promise((resolve) => {
        child.once('exit', resolve);
        child.kill('SIGTERM');
        // A SIGSTOPped backend cannot act on SIGTERM until it is continued.
        child.kill('SIGCONT');
      });
    }),
  );
  clearTimeout(deadline);
  if (code === 0) log('stopped: proxy and backends are down');
  process.exitCode = code;
  // Anything still holding the loop (an idle keep-alive socket of a client) must not keep the demo up.
  setImmediate(() => process.exit(code));
}

process.on('SIGINT', () => {
  console.log('');
  shutdown(0);
});
process.on('SIGTERM', () => shutdown(0));
// Our parent (a test) went away: stop rather than linger as an orphan with three children.
process.on('disconnect', () => shutdown(0));
