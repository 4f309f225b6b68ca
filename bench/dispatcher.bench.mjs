#!/usr/bin/env node
/**
 * Requests per second through `createBalancedDispatcher` next to undici's own `BalancedPool` and a
 * plain undici `Pool`, on the same backends, in the same run. Goal: the balanced dispatcher at
 * ≥ 0.9× the plain Pool — balancing (a peak-EWMA pick, a lease, retry bookkeeping) should cost close
 * to nothing next to an HTTP exchange.
 *
 *   node bench/dispatcher.bench.mjs                          defaults below
 *   node bench/dispatcher.bench.mjs --requests=20000 --concurrency=32 --rounds=5
 *
 * Setup: three node:http backends in ONE child process (so the server side costs the same whichever
 * backend a request reaches, and the client process measures only the client), each answering
 * `GET /` with 2 bytes. The client runs `undici.request` in a closed loop of `concurrency` workers
 * until `requests` responses are read, for each contender in turn; rounds alternate the order and
 * the median round counts. Every contender gets the same connection budget per backend (32).
 * The plain Pool talks to one backend (a Pool has one origin); BalancedPool and the dispatcher spread
 * over the three — the server work per request is identical, so the comparison is the client's cost.
 * Bounded: about 3 × rounds × requests requests in total (≈ 10–30 s on a 2-core machine).
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BalancedPool, Pool, request } from 'undici';
import { createBalancedDispatcher } from '@fulcrum/http';

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .filter((a) => a.startsWith('--'))
    .map((a) => {
      const [k, v] = a.slice(2).split('=');
      return [k, Number(v)];
    }),
);
const REQUESTS = args.requests || 20_000;
const CONCURRENCY = args.concurrency || 32;
const ROUNDS = args.rounds || 5;
const CONNECTIONS = 32;
const TARGET = 0.9;

if (process.argv[2] === '--serve') {
  // Child: three backends, ports reported to the parent.
  const { createServer } = await import('node:http');
  const ports = [];
  for (let i = 0; i < 3; i++) {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 });
      res.end('ok');
    });
    server.keepAliveTimeout = 60_000;
    await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
    ports.push(server.address().port);
  }
  process.send({ ports });
  process.on('disconnect', () => process.exit(0));
} else {
  const child = fork(fileURLToPath(import.meta.url), ['--serve'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { ports } = await new Promise((resolve) => child.once('message', resolve));
  const origins = ports.map((p) => `http://127.0.0.1:${p}`);

  const contenders = {
    'undici Pool (1 backend)': { dispatcher: new Pool(origins[0], { connections: CONNECTIONS, pipelining: 1 }), url: `${origins[0]}/` },
    'undici BalancedPool (3)': { dispatcher: new BalancedPool(origins, { connections: CONNECTIONS, pipelining: 1 }), url: `${origins[0]}/` },
    'fulcrum dispatcher (3, peak-ewma)': {
      dispatcher: createBalancedDispatcher({
        balancer: { backends: origins.map((address, i) => ({ id: `b${i}`, address })) },
        connectionsPerBackend: CONNECTIONS,
      }),
      url: 'http://users.internal/',
    },
  };

  async function measure({ dispatcher, url }, count) {
    let remaining = count;
    let failed = 0;
    const worker = async () => {
      while (remaining > 0) {
        remaining--;
        try {
          const res = await request(url, { dispatcher });
          await res.body.dump();
          if (res.statusCode !== 200) failed++;
        } catch {
          failed++;
        }
      }
    };
    const start = process.hrtime.bigint();
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    return { rps: count / seconds, failed };
  }

  const names = Object.keys(contenders);
  // Warm-up: connections open, JIT settled.
  for (const name of names) await measure(contenders[name], Math.min(2000, REQUESTS));
  const samples = Object.fromEntries(names.map((n) => [n, []]));
  let failures = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? names : [...names].reverse();
    for (const name of order) {
      const { rps, failed } = await measure(contenders[name], REQUESTS);
      samples[name].push(rps);
      failures += failed;
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const plain = median(samples[names[0]]);
  console.log(`\nNode ${process.version}, ${REQUESTS} requests × ${ROUNDS} rounds, concurrency ${CONCURRENCY}, ${CONNECTIONS} connections per backend\n`);
  console.log('| contender | req/s (median) | rounds | vs plain Pool |');
  console.log('|---|---|---|---|');
  for (const name of names) {
    const m = median(samples[name]);
    console.log(`| ${name} | ${Math.round(m).toLocaleString('en-US')} | ${samples[name].map((x) => Math.round(x)).join(', ')} | ${(m / plain).toFixed(2)}× |`);
  }
  const ratio = median(samples[names[2]]) / plain;
  console.log(
    `\nfulcrum dispatcher / plain Pool = ${ratio.toFixed(2)}× (target ≥ ${TARGET}×): ${ratio >= TARGET ? 'PASS' : 'FAIL'}; failed requests: ${failures}`,
  );
  for (const { dispatcher } of Object.values(contenders)) await dispatcher.close();
  child.disconnect();
  process.exitCode = failures === 0 ? 0 : 1;
}
