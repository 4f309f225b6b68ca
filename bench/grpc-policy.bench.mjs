#!/usr/bin/env node
/**
 * The `fulcrum` grpc-js balancing policy next to grpc-js's own `round_robin`, same backends, same run.
 *
 * 1. CPU per call. Goal: the policy at ≤ 1.1× round_robin's client CPU per call. Five grpc-js
 *    servers answer a unary call at once; the client runs a closed loop of `concurrency` workers
 *    until `calls` replies, and `process.cpuUsage()` (user + system, the client process only) over
 *    the loop divided by the calls is the cost. Contenders: round_robin, and the policy with
 *    round-robin, p2c and peak-EWMA. The servers live in ONE child process, so their work is the
 *    same whichever contender calls and the comparison is the client's cost.
 * 2. p99 with one slow backend out of five. Goal: peak-EWMA's p99 at most half of round_robin's.
 *    Four servers answer after `fastMs`, one after `slowMs`; closed loop as above, the latency of
 *    every call recorded; p50 / p99 per contender.
 *
 * Each part runs `rounds` rounds; every round runs every contender, in an order that rotates, and
 * the median round counts. A fresh channel per contender per round (the policy's latency averages
 * start empty each time), warmed by `warmup` calls that are not measured.
 *
 *   node bench/grpc-policy.bench.mjs
 *   node bench/grpc-policy.bench.mjs --calls=20000 --concurrency=32 --rounds=5 --slowMs=50 --fastMs=1
 *
 * Needs `@fulcrum/grpc` built (`pnpm build`). Bounded: rounds × contenders × calls calls.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { fulcrumServiceConfig, registerFulcrumPolicy } from '@fulcrum/grpc';
import { report, row } from './run.mjs';

const args = Object.fromEntries(
  process.argv
    .slice(2)
    .filter((a) => a.startsWith('--'))
    .map((a) => {
      const [k, v] = a.slice(2).split('=');
      return [k, Number(v)];
    }),
);
const CALLS = args.calls || 20_000;
const LATENCY_CALLS = args.latencyCalls || 5_000;
const CONCURRENCY = args.concurrency || 32;
const ROUNDS = args.rounds || 5;
const SLOW_MS = args.slowMs ?? 50;
const FAST_MS = args.fastMs ?? 1;
const WARMUP = args.warmup || 500;
const BACKENDS = 5;

const json = { serialize: (v) => Buffer.from(JSON.stringify(v)), deserialize: (b) => JSON.parse(b.toString()) };
const service = {
  Echo: {
    path: '/bench.Echo/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
};

if (process.argv[2] === '--serve') {
  // Child: five servers; the parent sets each one's delay over IPC.
  const delays = new Array(BACKENDS).fill(0);
  const ports = [];
  for (let i = 0; i < BACKENDS; i++) {
    const server = new grpc.Server();
    server.addService(service, {
      Echo(call, callback) {
        const delay = delays[i];
        if (delay === 0) callback(null, { i });
        else setTimeout(() => callback(null, { i }), delay);
      },
    });
    ports.push(
      await new Promise((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p)))),
    );
  }
  process.on('message', (message) => {
    if (message.delays) {
      delays.splice(0, BACKENDS, ...message.delays);
      process.send({ ok: true });
    }
  });
  process.send({ ports });
  process.on('disconnect', () => process.exit(0));
} else {
  await main();
}

async function main() {
  registerFulcrumPolicy();
  const child = fork(fileURLToPath(import.meta.url), ['--serve'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const { ports } = await new Promise((resolve) => child.once('message', resolve));
  const setDelays = (delays) =>
    new Promise((resolve) => {
      child.once('message', resolve);
      child.send({ delays });
    });
  const target = `ipv4:${ports.map((p) => `127.0.0.1:${p}`).join(',')}`;
  const Client = grpc.makeGenericClientConstructor(service, 'Echo');
  const contenders = {
    'grpc-js round_robin': { loadBalancingConfig: [{ round_robin: {} }] },
    'fulcrum round-robin': fulcrumServiceConfig({ algorithm: 'round-robin' }),
    'fulcrum p2c': fulcrumServiceConfig({ algorithm: 'p2c' }),
    'fulcrum peak-ewma': fulcrumServiceConfig({ algorithm: 'peak-ewma' }),
  };

  async function channel(config) {
    const client = new Client(target, grpc.credentials.createInsecure(), { 'grpc.service_config': JSON.stringify(config) });
    await new Promise((resolve, reject) => client.waitForReady(Date.now() + 10_000, (e) => (e ? reject(e) : resolve())));
    // Every backend connected before anything is measured.
    await loop(client, WARMUP, 8);
    return client;
  }

  function loop(client, calls, concurrency, latencies, served) {
    let started = 0;
    const one = () =>
      new Promise((resolve, reject) => {
        const t0 = latencies ? performance.now() : 0;
        client.Echo({}, (e, reply) => {
          if (e) reject(e);
          else {
            if (latencies) latencies.push(performance.now() - t0);
            if (served) served[reply.i]++;
            resolve();
          }
        });
      });
    return Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (started < calls) {
          started++;
          await one();
        }
      }),
    );
  }

  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const percentile = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
  const names = Object.keys(contenders);
  const order = (round) => names.map((_, i) => names[(i + round) % names.length]);

  // ---- 1. CPU per call -------------------------------------------------------------------------
  await setDelays(new Array(BACKENDS).fill(0));
  const cpu = Object.fromEntries(names.map((n) => [n, []]));
  const rate = Object.fromEntries(names.map((n) => [n, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of order(round)) {
      const client = await channel(contenders[name]);
      const before = process.cpuUsage();
      const t0 = performance.now();
      await loop(client, CALLS, CONCURRENCY);
      const wall = performance.now() - t0;
      const used = process.cpuUsage(before);
      cpu[name].push((used.user + used.system) / CALLS);
      rate[name].push((CALLS / wall) * 1000);
      client.close();
    }
  }
  const base = median(cpu['grpc-js round_robin']);
  console.log(`\nCPU per call, client process (${CALLS} unary calls × ${ROUNDS} rounds, concurrency ${CONCURRENCY}, ${BACKENDS} backends)\n`);
  console.log('| contender | µs CPU per call (median) | rounds | vs round_robin | calls/s (median) |');
  console.log('|---|---|---|---|---|');
  for (const name of names) {
    const m = median(cpu[name]);
    console.log(
      `| ${name} | ${m.toFixed(1)} | ${cpu[name].map((x) => x.toFixed(1)).join(', ')} | ${(m / base).toFixed(2)}× | ${Math.round(median(rate[name])).toLocaleString('en')} |`,
    );
  }
  const worst = Math.max(...names.filter((n) => n.startsWith('fulcrum')).map((n) => median(cpu[n]) / base));
  console.log(`\nGoal (every fulcrum contender ≤ 1.1× round_robin's CPU per call): ${worst <= 1.1 ? 'PASS' : 'FAIL'} (worst ${worst.toFixed(2)}×)`);

  // ---- 2. p99 with one slow backend of five ----------------------------------------------------
  await setDelays([FAST_MS, FAST_MS, FAST_MS, FAST_MS, SLOW_MS]);
  const tail = { 'grpc-js round_robin': [], 'fulcrum peak-ewma': [] };
  const p50 = { 'grpc-js round_robin': [], 'fulcrum peak-ewma': [] };
  const slowShare = { 'grpc-js round_robin': [], 'fulcrum peak-ewma': [] };
  const tailNames = Object.keys(tail);
  for (let round = 0; round < ROUNDS; round++) {
    for (const name of round % 2 === 0 ? tailNames : [...tailNames].reverse()) {
      const client = await channel(contenders[name]);
      const latencies = [];
      const served = new Array(BACKENDS).fill(0);
      await loop(client, LATENCY_CALLS, 16, latencies, served);
      slowShare[name].push(served[BACKENDS - 1] / LATENCY_CALLS);
      latencies.sort((a, b) => a - b);
      tail[name].push(percentile(latencies, 99));
      p50[name].push(percentile(latencies, 50));
      client.close();
    }
  }
  console.log(`\nOne slow backend of five (${SLOW_MS} ms vs ${FAST_MS} ms; ${LATENCY_CALLS} calls × ${ROUNDS} rounds, concurrency 16)\n`);
  console.log('| contender | p50 ms (median) | p99 ms (median) | p99 rounds | calls to the slow backend (median) |');
  console.log('|---|---|---|---|---|');
  for (const name of tailNames) {
    console.log(
      `| ${name} | ${median(p50[name]).toFixed(1)} | ${median(tail[name]).toFixed(1)} | ${tail[name].map((x) => x.toFixed(1)).join(', ')} | ${(median(slowShare[name]) * 100).toFixed(1)} % |`,
    );
  }
  const ratio = median(tail['fulcrum peak-ewma']) / median(tail['grpc-js round_robin']);
  console.log(`\nGoal (peak-EWMA's p99 ≤ 0.5× round_robin's): ${ratio <= 0.5 ? 'PASS' : 'FAIL'} (${ratio.toFixed(2)}×)`);
  report('grpc', [
    ...names.filter((n) => n.startsWith('fulcrum')).map((n) => row('gRPC policy', `${n}: CPU per call ÷ round_robin's`, median(cpu[n]) / base, 'x', 1.1)),
    row('gRPC policy', "peak-EWMA p99 ÷ round_robin's, one slow backend of five", ratio, 'x', 0.5),
  ]);
  child.disconnect();
}
