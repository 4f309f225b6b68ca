#!/usr/bin/env node
// Three backends behind a Fulcrum load balancer, simulated in one process: app-1 and app-2 answer
// in ~20 ms and ~35 ms; app-3 answers fast at first, then starts failing and slowing down — the
// classic bad node. Every second the table shows where requests went and how the balancer reacts:
// outlier detection ejects app-3 after consecutive failures, health checks mark it down, and when
// it recovers slow start ramps its weight back up.
//
//   node demo.mjs [--algorithm p2c] [--seconds N] [--rate 300]
//
// No network is used: each "request" is a timer whose duration and outcome depend on the backend.
import { parseArgs } from 'node:util';
import { createLoadBalancer, describeDecision } from '@fulcrum/core';

const startedAt = Date.now();

const { values } = parseArgs({
  options: {
    algorithm: { type: 'string', default: 'peak-ewma' },
    seconds: { type: 'string', default: '0' },
    rate: { type: 'string', default: '300' },
    plain: { type: 'boolean', default: false },
  },
});
const seconds = Number(values.seconds);
const rate = Number(values.rate);
const fancy = process.stdout.isTTY && !values.plain;

const lb = createLoadBalancer({
  name: 'demo',
  algorithm: values.algorithm,
  backends: [
    { id: 'app-1', address: 'http://127.0.0.1:3001' },
    { id: 'app-2', address: 'http://127.0.0.1:3002' },
    { id: 'app-3', address: 'http://127.0.0.1:3003' },
  ],
  // Active checks: a simulated probe that fails while the backend is bad.
  health: { probe: async (backend) => !isBad(backend.id), intervalMs: 1000, fastIntervalMs: 500, downIntervalMs: 1000, rise: 2, fall: 2 },
  // Passive checks: eject a backend after 5 consecutive failed requests, for 3 s (longer if it repeats).
  outlier: { consecutiveFailures: 5, baseEjectionMs: 3000, intervalMs: 1000 },
  slowStart: { windowMs: 5000 },
});

const events = [];
const log = (line) => {
  events.push(`${new Date().toISOString().slice(11, 19)} ${line}`);
  if (events.length > 5) events.shift();
};
lb.on('state', (id, from, to, cause) => log(`${id}: ${from} → ${to} (${cause})`));
lb.on('ejected', (id, cause, until) => log(`${id}: ejected for ${cause} until ${new Date(until).toISOString().slice(11, 19)}`));
lb.on('restored', (id) => log(`${id}: ejection over; slow start ramps its weight back up`));

/** app-3 goes bad 4 s in, recovers at 14 s, and the cycle repeats every 20 s. */
function isBad(id) {
  const t = ((Date.now() - startedAt) / 1000) % 20;
  return id === 'app-3' && t >= 4 && t < 14;
}
const baseLatency = { 'app-1': 20, 'app-2': 35, 'app-3': 15 };

const window = new Map(lb.backends.map((b) => [b.id, { requests: 0, failures: 0 }]));
let noBackend = 0;
let lastDecision = '';

function sendOne(i) {
  const lease = lb.acquire({ key: `user-${i % 1000}` });
  if (!lease) {
    noBackend++;
    return;
  }
  const id = lease.backend.id;
  const bad = isBad(id);
  const latency = baseLatency[id] * (bad ? 6 : 1) * (0.5 + Math.random());
  const failed = bad && Math.random() < 0.7;
  const t0 = performance.now();
  setTimeout(() => {
    const w = window.get(id);
    if (w) {
      w.requests++;
      if (failed) w.failures++;
    }
    lease.release(failed ? { ok: false, status: 503 } : { ok: true, status: 200, durationMs: performance.now() - t0 });
  }, latency);
  if (i % 97 === 0) lastDecision = describeDecision(lease.decision);
}

let sent = 0;
const tick = setInterval(() => {
  const perTick = Math.max(1, Math.round(rate / 20));
  for (let k = 0; k < perTick; k++) sendOne(sent++);
}, 50);

function bar(fraction, width = 30) {
  const n = Math.round(fraction * width);
  return '█'.repeat(n) + '·'.repeat(width - n);
}

function render() {
  const snap = lb.snapshot();
  const total = [...window.values()].reduce((n, w) => n + w.requests, 0) || 1;
  const elapsed = ((Date.now() - startedAt) / 1000).toFixed(0);
  const lines = [
    `Fulcrum demo — algorithm ${snap.algorithm}, ${rate} req/s, t=${elapsed}s, tier ${snap.tier}   (Ctrl-C to stop)`,
    '',
    'backend  state     weight  share of last second              req/s  fail/s  inflight  latency(ewma)',
  ];
  for (const b of snap.backends) {
    const w = window.get(b.id) ?? { requests: 0, failures: 0 };
    const note = isBad(b.id) ? '  ← failing and slow' : '';
    lines.push(
      `${b.id.padEnd(8)} ${(b.ejected ? 'ejected' : b.state).padEnd(9)} ${b.effectiveWeight.toFixed(2).padStart(6)}  ${bar(w.requests / total)} ${String(w.requests).padStart(6)} ${String(w.failures).padStart(7)} ${String(b.inflight).padStart(9)} ${b.latencyEwma.toFixed(1).padStart(12)} ms${note}`,
    );
  }
  lines.push('', `no backend available: ${noBackend}`, `a recent decision: ${lastDecision}`, '', 'events:', ...events.map((e) => `  ${e}`));
  if (fancy) process.stdout.write(`\x1b[H\x1b[2J${lines.join('\n')}\n`);
  else console.log(`${lines.join('\n')}\n`);
  for (const w of window.values()) {
    w.requests = 0;
    w.failures = 0;
  }
}

const display = setInterval(render, 1000);
function stop() {
  clearInterval(tick);
  clearInterval(display);
  render();
  lb.close();
  setTimeout(() => process.exit(0), 300);
}
process.on('SIGINT', stop);
if (seconds > 0) setTimeout(stop, seconds * 1000);
