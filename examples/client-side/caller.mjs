// A service that calls `users` through a balanced undici dispatcher: a closed loop of workers doing
// GETs (idempotent: retried on another instance when one fails) and a few POSTs (sent at most once),
// for `--seconds`. Each instance is probed at /health every 100 ms, so a draining instance stops
// getting new calls within about one probe interval.
//
//   node caller.mjs --name orders --ports 4001,4002,4003 --seconds 6
//
// Reports { type: 'result', name, gets, getFailures, posts, postFailures, perInstance } over IPC (and prints it).
import { parseArgs } from 'node:util';
import { createBalancedDispatcher, httpProbe } from './fulcrum.mjs';

const { values } = parseArgs({
  options: {
    name: { type: 'string', default: 'caller' },
    ports: { type: 'string' },
    seconds: { type: 'string', default: '6' },
    workers: { type: 'string', default: '4' },
  },
});
const ports = values.ports.split(',').map(Number);

const users = createBalancedDispatcher({
  balancer: {
    name: 'users',
    backends: ports.map((port, i) => ({ id: `users-${i + 1}`, address: `http://127.0.0.1:${port}` })),
    health: { probe: httpProbe({ path: '/health' }), intervalMs: 100, fastIntervalMs: 50, downIntervalMs: 100, timeoutMs: 500 },
    outlier: {},
  },
  origin: 'http://users.internal',
});

const result = { type: 'result', name: values.name, gets: 0, getFailures: 0, posts: 0, postFailures: 0, perInstance: {}, errors: [] };
const until = Date.now() + Number(values.seconds) * 1000;

async function call(method, n) {
  // Node's own fetch takes an undici dispatcher: the logical origin goes to one users instance.
  const res = await fetch(`http://users.internal/users/${n}`, {
    dispatcher: users,
    method,
    ...(method === 'POST' ? { body: JSON.stringify({ n }), headers: { 'content-type': 'application/json' } } : {}),
  });
  const body = await res.json();
  if (res.status !== 200) throw new Error(`HTTP ${res.status}`);
  result.perInstance[body.instance] = (result.perInstance[body.instance] ?? 0) + 1;
}

async function worker(w) {
  for (let n = 0; Date.now() < until; n++) {
    const method = n % 10 === 9 ? 'POST' : 'GET';
    try {
      await call(method, w * 1_000_000 + n);
      if (method === 'GET') result.gets++;
      else result.posts++;
    } catch (error) {
      if (method === 'GET') result.getFailures++;
      else result.postFailures++;
      if (result.errors.length < 5) result.errors.push(`${method}: ${error?.message ?? error}`);
    }
  }
}

await Promise.all(Array.from({ length: Number(values.workers) }, (_, w) => worker(w)));
await users.close();
console.log(`[${values.name}] ${JSON.stringify(result)}`);
process.send?.(result);
process.disconnect?.();
