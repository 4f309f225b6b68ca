#!/usr/bin/env node
/**
 * Layer-4 proxy throughput: Fulcrum's `createTcpProxy` against HAProxy in `mode tcp`, on the same
 * box, in the same run, over the same two backends — plus the floor (clients straight to a backend)
 * and a minimal Node `net` pipe (what any Node layer-4 proxy costs before it does anything).
 *
 *   node bench/tcp.bench.mjs [--duration 5] [--warmup 1] [--connections 32] [--rounds 1]
 *                            [--only direct,node-pipe,fulcrum,haproxy] [--cpu-prof DIR]
 *
 * Two measurements per contender:
 *   - bulk MB/s: ONE connection; the backend streams bytes (64 KiB writes of a preallocated buffer)
 *     as fast as the path takes them; the client counts what arrives for `--duration` seconds;
 *   - connections/s: `--connections` clients in a closed loop of short connections — connect, send
 *     "P", the backend answers "P" and closes, the client waits for the close — for `--duration`
 *     seconds. Every connection is a full accept + backend connect + relay + teardown in the proxy.
 * Next to each rate: the CPU time the proxy process spent per MB and per connection (from
 * /proc/<pid>/stat), which moves far less than the rate when other work shares the machine.
 *
 * Set-up as in proxy.bench.mjs: backends and the proxy under test share CPU 0 (`taskset -c 0`), the
 * load generator runs alone on CPU 1; HAProxy runs with `nbthread 1` (one core, like Node's one
 * thread), `balance roundrobin`, the same two backends; Fulcrum uses round-robin over the same two.
 * Every contender is checked first (a bulk transfer arrives complete, a short connection answers),
 * warmed up for `--warmup` seconds, then measured. `--rounds N` repeats the list, in reverse order
 * every other round, and reports medians.
 *
 * Fulcrum is imported from the BUILT `packages/http/dist` (`npx -y pnpm@10.34.9 build` first).
 * HAProxy is Debian's (`apt-get install -y haproxy`); without it that row is skipped with a note.
 * Bounded: every child is killed on exit (normal, error, Ctrl-C), every wait has a timeout, and only
 * 127.0.0.1 is contacted.
 */
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { summarizeProfile } from './proxy/profile-summary.mjs';

const BENCH_FILE = fileURLToPath(import.meta.url);
const HTTP_DIST = join(dirname(BENCH_FILE), '..', 'packages', 'http', 'dist', 'index.js');
const ALL = ['direct', 'node-pipe', 'fulcrum', 'haproxy'];
const LABELS = {
  direct: 'floor: client straight to a backend',
  'node-pipe': 'reference: minimal Node net pipe',
  fulcrum: 'Fulcrum createTcpProxy (round-robin)',
  haproxy: 'HAProxy mode tcp (roundrobin, nbthread 1)',
};
const CHUNK = Buffer.alloc(64 * 1024, 0x61);

// ------------------------------------------------------------------------------------- child modes

const mode = process.argv[2];
if (mode === '--backend') await backend();
else if (mode === '--fulcrum' || mode === '--node-pipe') await nodeProxy(mode, process.argv[3], process.argv[4]);
else if (mode === '--client') await client(JSON.parse(process.argv[3]));
else await main();

function ready(server) {
  console.log(`ready ${server.address().port}`);
}

/** Two listeners (two "backends"): "B" → stream until the client leaves; "P" → answer "P", close. */
async function backend() {
  const handle = (socket) => {
    socket.setNoDelay(true);
    socket.on('error', () => undefined);
    socket.once('data', (first) => {
      if (first[0] === 0x42 /* B */) {
        const pump = () => {
          while (!socket.destroyed && socket.write(CHUNK));
        };
        socket.on('drain', pump);
        pump();
      } else socket.end('P');
    });
  };
  const servers = [net.createServer(handle), net.createServer(handle)];
  for (const server of servers) {
    server.maxConnections = 10_000;
    await new Promise((resolve) => server.listen(0, '127.0.0.1', 1024, resolve));
  }
  console.log(`ready ${servers.map((s) => s.address().port).join(',')}`);
}

async function nodeProxy(which, ports, listenPort) {
  const [a, b] = ports.split(',').map(Number);
  let handler;
  if (which === '--fulcrum') {
    const { createTcpProxy } = await import(pathToFileURL(HTTP_DIST).href);
    handler = createTcpProxy({
      balancer: {
        algorithm: 'round-robin',
        backends: [
          { id: 'a', address: `127.0.0.1:${a}` },
          { id: 'b', address: `127.0.0.1:${b}` },
        ],
      },
    });
  } else {
    // The least a Node layer-4 proxy does: round robin, connect, pipe both ways, tear down on error.
    let next = 0;
    handler = (socket) => {
      const upstream = net.connect({ host: '127.0.0.1', port: next++ % 2 === 0 ? a : b, allowHalfOpen: true });
      upstream.setNoDelay(true);
      socket.setNoDelay(true);
      const kill = () => {
        socket.destroy();
        upstream.destroy();
      };
      socket.on('error', kill);
      upstream.on('error', kill);
      socket.pipe(upstream);
      upstream.pipe(socket);
      // The backend is done: let what it sent reach the client, then close; the client gone: drop the backend.
      upstream.on('close', () => socket.destroySoon());
      socket.on('close', () => upstream.destroy());
    };
  }
  const server = net.createServer({ allowHalfOpen: true }, handler);
  server.maxConnections = 10_000;
  server.listen(Number(listenPort), '127.0.0.1', 1024, () => ready(server));
  // Exit (rather than die of the signal) so that `--cpu-prof` writes its profile.
  process.once('SIGTERM', () => process.exit(0));
}

/** The load generator: prints one JSON line. */
async function client({ port, kind, durationMs, connections }) {
  const deadline = performance.now() + durationMs;
  if (kind === 'bulk') {
    const socket = net.connect({ port, host: '127.0.0.1' });
    await once(socket, 'connect');
    let bytes = 0;
    let started;
    socket.on('data', (chunk) => {
      started ??= performance.now();
      bytes += chunk.length;
    });
    socket.on('error', () => undefined);
    socket.write('B');
    await new Promise((resolve) => setTimeout(resolve, durationMs));
    const elapsed = (performance.now() - started) / 1000;
    socket.destroy();
    console.log(JSON.stringify({ bytes, seconds: elapsed }));
    return;
  }
  let done = 0;
  let errors = 0;
  const one = () =>
    new Promise((resolve) => {
      const socket = net.connect({ port, host: '127.0.0.1' });
      let answered = false;
      socket.setNoDelay(true);
      socket.on('connect', () => socket.write('P'));
      socket.on('data', () => (answered = true));
      socket.on('error', () => undefined);
      socket.on('close', () => {
        if (answered) done++;
        else errors++;
        resolve();
      });
    });
  const start = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < deadline) await one();
    }),
  );
  console.log(JSON.stringify({ done, errors, seconds: (performance.now() - start) / 1000 }));
}

// ------------------------------------------------------------------------------------- orchestration

async function main() {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '5' },
      warmup: { type: 'string', default: '1' },
      connections: { type: 'string', default: '32' },
      rounds: { type: 'string', default: '1' },
      only: { type: 'string' },
      'cpu-prof': { type: 'string' },
    },
  });
  const die = (message) => {
    console.error(`tcp.bench: ${message}`);
    process.exit(2);
  };
  const integer = (name, min, max) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < min || n > max) die(`--${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(values[name])}`);
    return n;
  };
  const duration = integer('duration', 1, 120);
  const warmup = integer('warmup', 0, 60);
  const connections = integer('connections', 1, 512);
  const rounds = integer('rounds', 1, 9);
  const only = values.only === undefined ? ALL : values.only.split(',');
  for (const name of only) if (!ALL.includes(name)) die(`--only: unknown contender ${JSON.stringify(name)} (known: ${ALL.join(', ')})`);
  const profileDir = values['cpu-prof'];
  const has = (command) => spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
  if (!existsSync(HTTP_DIST)) die(`${HTTP_DIST} is missing: build first (npx -y pnpm@10.34.9 build)`);
  const pin = has('taskset') && cpus().length >= 2;
  if (!pin) console.warn('tcp.bench: taskset or a second CPU is missing: processes are NOT pinned');
  const haproxyBin = has('haproxy') ? 'haproxy' : existsSync('/usr/sbin/haproxy') ? '/usr/sbin/haproxy' : undefined;

  const children = new Set();
  const killAll = () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.on('exit', killAll);
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      killAll();
      process.exit(130);
    });
  }
  const tmp = mkdtempSync(join(tmpdir(), 'fulcrum-tcp-bench-'));
  process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

  function spawnPinned(argv, cpu, stdio = ['ignore', 'pipe', 'pipe']) {
    const command = pin ? ['taskset', '-c', String(cpu), ...argv] : argv;
    const child = spawn(command[0], command.slice(1), { stdio });
    children.add(child);
    child.once('exit', () => children.delete(child));
    return child;
  }

  /** Spawn and wait for `ready <ports>` on stdout. */
  async function startReady(argv, cpu) {
    const child = spawnPinned(argv, cpu);
    let output = '';
    const ports = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${argv.join(' ')}: not ready in 15 s:\n${output}`)), 15_000);
      child.stdout.on('data', (chunk) => {
        output += chunk;
        const match = /^ready ([\d,]+)$/m.exec(output);
        if (match) {
          clearTimeout(timer);
          resolve(match[1].split(',').map(Number));
        }
      });
      child.stderr.on('data', (chunk) => (output += chunk));
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`${argv.join(' ')} exited (code ${code}, signal ${signal}):\n${output}`));
      });
    });
    return { child, ports };
  }

  async function stop(child) {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }

  function freePort() {
    return new Promise((resolve, reject) => {
      const server = net.createServer();
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        const { port } = server.address();
        server.close(() => resolve(port));
      });
    });
  }

  async function runClient(port, kind, durationMs) {
    const child = spawnPinned([process.execPath, BENCH_FILE, '--client', JSON.stringify({ port, kind, durationMs, connections })], 1);
    let output = '';
    child.stdout.on('data', (chunk) => (output += chunk));
    child.stderr.on('data', (chunk) => (output += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), durationMs + 30_000);
    const [code] = await once(child, 'exit');
    clearTimeout(timer);
    if (code !== 0) throw new Error(`client ${kind} exited with ${code}:\n${output}`);
    return JSON.parse(output.trim().split('\n').pop());
  }

  const TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;
  /** CPU seconds (user + system) used by `pid` so far; undefined without /proc. */
  function cpuSeconds(pid) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return (Number(fields[11]) + Number(fields[12])) / TICKS;
    } catch {
      return undefined;
    }
  }

  /** A bulk transfer arrives and a short connection answers: a contender failing this is not measured. */
  async function verify(name, port) {
    const bulk = await runClient(port, 'bulk', 300);
    if (!(bulk.bytes > 1024 * 1024)) throw new Error(`${name}: a bulk transfer delivered only ${bulk.bytes} bytes`);
    const short = await new Promise((resolve, reject) => {
      const socket = net.connect({ port, host: '127.0.0.1' }, () => socket.write('P'));
      let got = '';
      socket.setEncoding('latin1');
      socket.on('data', (c) => (got += c));
      socket.on('close', () => resolve(got));
      socket.on('error', reject);
      setTimeout(() => socket.destroy(new Error('timeout')), 5000).unref();
    });
    if (short !== 'P') throw new Error(`${name}: a short connection answered ${JSON.stringify(short)}`);
  }

  async function startProxy(name, backendPorts) {
    if (name === 'direct') return { port: backendPorts[0], child: undefined };
    if (name === 'haproxy') {
      const port = await freePort();
      const config = join(tmp, 'haproxy.cfg');
      writeFileSync(
        config,
        `global
    nbthread 1
    maxconn 8192
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend l4
    bind 127.0.0.1:${port}
    default_backend two
backend two
    balance roundrobin
    server a 127.0.0.1:${backendPorts[0]}
    server b 127.0.0.1:${backendPorts[1]}
`,
      );
      const check = spawnSync(haproxyBin, ['-c', '-f', config], { encoding: 'utf8' });
      if (check.status !== 0) throw new Error(`haproxy rejected its config:\n${check.stdout}${check.stderr}`);
      const child = spawnPinned([haproxyBin, '-db', '-f', config], 0, ['ignore', 'ignore', 'pipe']);
      for (let i = 0; i < 100; i++) {
        const up = await new Promise((resolve) => {
          const s = net.connect({ port, host: '127.0.0.1' }, () => {
            s.destroy();
            resolve(true);
          });
          s.on('error', () => resolve(false));
        });
        if (up) return { port, child };
        if (child.exitCode !== null) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      throw new Error('haproxy did not listen within 5 s');
    }
    const node = [process.execPath];
    if (profileDir !== undefined && name === 'fulcrum') {
      mkdirSync(profileDir, { recursive: true });
      node.push('--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=fulcrum-tcp-${Date.now()}.cpuprofile`);
    }
    const port = await freePort();
    const { child } = await startReady([...node, BENCH_FILE, name === 'fulcrum' ? '--fulcrum' : '--node-pipe', backendPorts.join(','), String(port)], 0);
    return { port, child };
  }

  const { child: backendChild, ports: backendPorts } = await startReady([process.execPath, BENCH_FILE, '--backend'], 0);
  const results = new Map(only.map((name) => [name, []]));
  console.log(
    `tcp.bench: ${duration} s per measurement, ${connections} concurrent short connections, ${rounds} round(s)${pin ? ', pinned (proxy+backends: CPU 0, client: CPU 1)' : ''}`,
  );
  try {
    for (let round = 0; round < rounds; round++) {
      const order = round % 2 === 0 ? only : [...only].reverse();
      for (const name of order) {
        if (name === 'haproxy' && haproxyBin === undefined) {
          console.log('haproxy: not installed (apt-get install -y haproxy): skipped');
          continue;
        }
        const { port, child } = await startProxy(name, backendPorts);
        try {
          await verify(name, port);
          if (warmup > 0) {
            await runClient(port, 'bulk', warmup * 1000);
            await runClient(port, 'conn', warmup * 1000);
          }
          const pid = child?.pid ?? backendChild.pid;
          const cpu0 = cpuSeconds(pid);
          const bulk = await runClient(port, 'bulk', duration * 1000);
          const cpu1 = cpuSeconds(pid);
          const conn = await runClient(port, 'conn', duration * 1000);
          const cpu2 = cpuSeconds(pid);
          const mb = bulk.bytes / 1e6;
          const row = {
            mbps: mb / bulk.seconds,
            connps: conn.done / conn.seconds,
            errors: conn.errors,
            // For `direct` this is the backend's CPU: the work the proxies add on top of it is the rest.
            cpuPerMb: cpu0 === undefined ? undefined : ((cpu1 - cpu0) / mb) * 1e6,
            cpuPerConn: cpu1 === undefined ? undefined : ((cpu2 - cpu1) / conn.done) * 1e6,
          };
          results.get(name).push(row);
          console.log(
            `round ${round + 1} ${name.padEnd(9)} bulk ${row.mbps.toFixed(0)} MB/s   short ${row.connps.toFixed(0)} conn/s (${row.errors} errors)` +
              (row.cpuPerMb === undefined ? '' : `   process CPU ${row.cpuPerMb.toFixed(0)} µs/MB, ${row.cpuPerConn.toFixed(1)} µs/conn`),
          );
        } finally {
          if (child !== undefined) await stop(child);
        }
      }
    }
  } finally {
    await stop(backendChild);
  }

  const median = (xs) => {
    const sorted = xs.filter((x) => x !== undefined).sort((a, b) => a - b);
    return sorted.length === 0 ? undefined : sorted[Math.floor((sorted.length - 1) / 2)];
  };
  const summary = new Map(
    [...results]
      .filter(([, rows]) => rows.length > 0)
      .map(([name, rows]) => [
        name,
        {
          mbps: median(rows.map((r) => r.mbps)),
          connps: median(rows.map((r) => r.connps)),
          errors: rows.reduce((n, r) => n + r.errors, 0),
          cpuPerMb: median(rows.map((r) => r.cpuPerMb)),
          cpuPerConn: median(rows.map((r) => r.cpuPerConn)),
        },
      ]),
  );
  const ha = summary.get('haproxy');
  console.log(`\n| contender | bulk MB/s | vs HAProxy | short conn/s | vs HAProxy | proxy CPU µs/MB | proxy CPU µs/conn | errors |`);
  console.log('|---|---|---|---|---|---|---|---|');
  for (const [name, s] of summary) {
    const ratio = (a, b) => (b === undefined ? '' : `${(a / b).toFixed(2)}×`);
    console.log(
      `| ${LABELS[name]} | ${s.mbps.toFixed(0)} | ${ratio(s.mbps, ha?.mbps)} | ${s.connps.toFixed(0)} | ${ratio(s.connps, ha?.connps)} | ` +
        `${s.cpuPerMb === undefined ? 'n/a' : s.cpuPerMb.toFixed(0)}${name === 'direct' ? ' (backend)' : ''} | ` +
        `${s.cpuPerConn === undefined ? 'n/a' : s.cpuPerConn.toFixed(1)}${name === 'direct' ? ' (backend)' : ''} | ${s.errors} |`,
    );
  }
  if (profileDir !== undefined) {
    for (const file of readdirSync(profileDir).filter((f) => f.startsWith('fulcrum-tcp-') && f.endsWith('.cpuprofile'))) {
      console.log(`\n${file}: hottest functions by self time (bulk and short connections together)`);
      console.log(summarizeProfile(join(profileDir, file), 20));
    }
  }
  const anyErrors = [...summary.values()].some((s) => s.errors > 0);
  if (anyErrors) process.exitCode = 1;
}
