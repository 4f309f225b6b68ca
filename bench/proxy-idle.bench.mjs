#!/usr/bin/env node
/**
 * Memory per idle keep-alive client connection: HAProxy, the raw engine (`createProxyServer`) and
 * `createProxy` on `node:http`, each holding `--connections` (default 10,000) client connections that
 * have made one request and now sit idle.
 *
 *   node bench/proxy-idle.bench.mjs [--connections 10000] [--only haproxy,fulcrum-server,fulcrum]
 *
 * Per proxy: start it (the same `proxy/servers.mjs` processes as proxy.bench.mjs, keep-alive timeouts
 * above a minute; HAProxy with a generated config, maxconn ${total + 100}), make 20 requests, read its RSS
 * (`VmRSS` of /proc/<pid>/status), open the connections 500 at a time — each sends one GET and reads
 * its answer — wait a second, read the RSS again. HAProxy's `maxconn` is set just above the count:
 * it reserves two descriptors per connection, so 10,000 needs `ulimit -n` above ~20,100. Reported: (after − before) ÷ connections. Node's
 * RSS includes heap the GC has not returned, so the Node rows are an upper bound. Only 127.0.0.1 is
 * contacted; every child is killed on exit. Needs `ulimit -n` above the connection count.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const BENCH_DIR = dirname(fileURLToPath(import.meta.url));
const { values } = parseArgs({
  options: { connections: { type: 'string', default: '10000' }, only: { type: 'string', default: 'haproxy,fulcrum-server,fulcrum' } },
});
const total = Number(values.connections);
if (!Number.isInteger(total) || total < 1 || total > 50_000) throw new Error(`--connections must be 1..50000, got ${values.connections}`);
const names = values.only.split(',');
const haproxyBin = existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : 'haproxy';

const children = new Set();
process.on('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function rssKiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)[1]);
}

function freePort() {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

async function start(argv, pattern = /^ready (\d+)$/m) {
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let out = '';
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${argv.join(' ')} not ready:\n${out}`)), 20_000);
    child.stdout.on('data', (c) => {
      out += c;
      const m = pattern.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.stderr.on('data', (c) => (out += c));
    child.once('exit', () => reject(new Error(`${argv.join(' ')} exited:\n${out}`)));
  });
  return { child, port };
}

/** One keep-alive GET on a new socket; resolves with the socket, left open, once the answer is read. */
function idleConnection(port) {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let text = '';
    socket.setTimeout(20_000, () => socket.destroy(new Error('timeout')));
    socket.on('data', (chunk) => {
      text += chunk.toString('latin1');
      if (/\r\n\r\nhello from b\d\n$/.test(text)) {
        socket.setTimeout(0);
        socket.removeAllListeners('data');
        resolve(socket);
      }
    });
    socket.once('error', reject);
    socket.write('GET / HTTP/1.1\r\nHost: bench\r\n\r\n');
  });
}

async function startProxy(name, backendPorts, tmp) {
  if (name === 'haproxy') {
    const port = await freePort();
    const config = join(tmp, 'haproxy-idle.cfg');
    writeFileSync(
      config,
      `global\n    nbthread 1\n    maxconn ${total + 100}\ndefaults\n    mode http\n    timeout connect 5s\n    timeout client 120s\n    timeout server 120s\n    timeout http-keep-alive 120s\n    option http-keep-alive\nfrontend bench\n    bind 127.0.0.1:${port}\n    default_backend three\nbackend three\n    balance roundrobin\n    cookie SRV insert indirect nocache\n${backendPorts.map((p, i) => `    server b${i + 1} 127.0.0.1:${p} cookie b${i + 1}`).join('\n')}\n`,
    );
    const child = spawn(haproxyBin, ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.add(child);
    let stderr = '';
    child.stderr.on('data', (c) => (stderr += c));
    for (let i = 0; i < 100; i++) {
      try {
        (await idleConnection(port)).destroy();
        return { child, port };
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    throw new Error(`haproxy did not answer: ${stderr.trim()}`);
  }
  return start([process.execPath, join(BENCH_DIR, 'proxy', 'servers.mjs'), name, backendPorts.join(',')]);
}

const tmp = mkdtempSync(join(tmpdir(), 'fulcrum-idle-'));
const backends = [];
try {
  for (const id of ['b1', 'b2', 'b3']) backends.push(await start([process.execPath, join(BENCH_DIR, 'proxy', 'backend.mjs'), id]));
  const rows = [];
  for (const name of names) {
    const proxy = await startProxy(
      name,
      backends.map((b) => b.port),
      tmp,
    );
    for (let i = 0; i < 20; i++) (await idleConnection(proxy.port)).destroy();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const before = rssKiB(proxy.child.pid);
    const sockets = [];
    for (let opened = 0; opened < total; opened += 500) {
      const batch = await Promise.all(Array.from({ length: Math.min(500, total - opened) }, () => idleConnection(proxy.port)));
      sockets.push(...batch);
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const after = rssKiB(proxy.child.pid);
    const perConnection = ((after - before) * 1024) / total;
    rows.push({ name, before, after, perConnection });
    console.log(`${name.padEnd(16)} RSS ${before} → ${after} KiB with ${total} idle connections: ${perConnection.toFixed(0)} bytes per connection`);
    for (const socket of sockets) socket.destroy();
    proxy.child.kill('SIGKILL');
    await once(proxy.child, 'exit');
  }
  console.log(`\n| proxy | RSS before | RSS with ${total} idle keep-alive connections | per connection |\n|---|---|---|---|`);
  for (const r of rows)
    console.log(`| ${r.name} | ${(r.before / 1024).toFixed(1)} MiB | ${(r.after / 1024).toFixed(1)} MiB | ${(r.perConnection / 1024).toFixed(2)} KiB |`);
} finally {
  for (const b of backends) b.child.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
  spawnSync('true');
}
