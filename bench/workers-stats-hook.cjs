// Loaded with `node --require` into every process of `fulcrum --workers N` by
// bench/workers-stats.bench.mjs only (through NODE_OPTIONS): never part of the product.
//
// - Every 100 ms, appends one line to `$FULCRUM_BENCH_DIR/eld-<pid>.jsonl`: the longest event-loop
//   delay of that window (`monitorEventLoopDelay`, 10 ms resolution), its longest garbage-collection
//   pause, the process's role and slot.
// - With FULCRUM_BENCH_IPC=1, the primary also counts the IPC bytes it receives from and sends to
//   its workers (the JSON text of each message, as Node's default 'json' serialization writes it),
//   in `$FULCRUM_BENCH_DIR/ipc.json`. Counting costs a stringify per message: the stalls are
//   measured in runs without it.
'use strict';
const { PerformanceObserver, monitorEventLoopDelay } = require('node:perf_hooks');
const { appendFileSync, writeFileSync } = require('node:fs');
const { join } = require('node:path');
const cluster = require('node:cluster');

const dir = process.env.FULCRUM_BENCH_DIR;
if (dir !== undefined) {
  const role = cluster.isPrimary ? 'primary' : 'worker';
  const slot = Number(process.env.FULCRUM_WORKER_SLOT ?? 0);
  const file = join(dir, `eld-${process.pid}.jsonl`);
  const h = monitorEventLoopDelay({ resolution: 10 });
  h.enable();
  // The longest garbage-collection pause of the window too: what of a stall is the collector's.
  let gcMs = 0;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) gcMs = Math.max(gcMs, entry.duration);
  }).observe({ entryTypes: ['gc'] });
  setInterval(() => {
    appendFileSync(file, `${JSON.stringify({ at: Date.now(), role, slot, pid: process.pid, maxMs: h.max / 1e6, gcMs })}\n`);
    h.reset();
    gcMs = 0;
  }, 100).unref();
  if (cluster.isPrimary && process.env.FULCRUM_BENCH_IPC === '1') {
    const ipc = { in: 0, out: 0, inMessages: 0, outMessages: 0, largestIn: 0, largestOut: 0 };
    const save = () => writeFileSync(join(dir, 'ipc.json'), JSON.stringify(ipc));
    cluster.on('fork', (worker) => {
      worker.on('message', (message) => {
        const n = Buffer.byteLength(JSON.stringify(message)) + 1;
        ipc.in += n;
        ipc.inMessages++;
        ipc.largestIn = Math.max(ipc.largestIn, n);
        save();
      });
      const send = worker.send.bind(worker);
      worker.send = (message, ...rest) => {
        const n = Buffer.byteLength(JSON.stringify(message)) + 1;
        ipc.out += n;
        ipc.outMessages++;
        ipc.largestOut = Math.max(ipc.largestOut, n);
        save();
        return send(message, ...rest);
      };
    });
  }
}
