// The client-side balancing demo, as a check: three instances of `users`, two services (`orders`
// and `billing`) calling them through their own balanced dispatchers, and a rolling restart of one
// instance in the middle — SIGTERM, graceful drain, exit, a new process on the same port.
//
//   node run.mjs [--seconds 6]
//
// Exits 0 when no idempotent call (GET) failed and the restarted instance got traffic again, else 1.
// Every process it starts is stopped before it exits.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: '6' } } });
const seconds = Number(values.seconds);
const here = (file) => fileURLToPath(new URL(file, import.meta.url));
const children = new Set();

function start(file, args) {
  const child = fork(here(file), args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.add(child);
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  void child.exited.then(() => children.delete(child));
  return child;
}

function message(child, type) {
  return new Promise((resolve, reject) => {
    child.once('message', (m) => (m?.type === type ? resolve(m) : reject(new Error(`unexpected message ${JSON.stringify(m)}`))));
    child.once('exit', (code) => reject(new Error(`${type}: the process exited first (code ${code})`)));
  });
}

async function startInstance(id, port) {
  const child = start('users-instance.mjs', ['--id', id, '--port', String(port)]);
  const { port: bound } = await message(child, 'listening');
  return { id, port: bound, child };
}

const log = (line) => console.log(`[run] ${line}`);
// A bound on the whole run: whatever happens, nothing is left behind.
const guard = setTimeout(
  () => {
    log('timed out');
    for (const child of children) child.kill('SIGKILL');
    process.exit(1);
  },
  (seconds + 30) * 1000,
);

let ok = false;
try {
  const instances = [];
  for (const id of ['users-1', 'users-2', 'users-3']) instances.push(await startInstance(id, 0));
  const ports = instances.map((i) => i.port);
  log(`users instances on ports ${ports.join(', ')}`);

  const callers = ['orders', 'billing'].map((name) => {
    const child = start('caller.mjs', ['--name', name, '--ports', ports.join(','), '--seconds', String(seconds)]);
    return message(child, 'result');
  });

  await new Promise((resolve) => setTimeout(resolve, (seconds * 1000) / 4));
  const restarting = instances[1];
  log(`SIGTERM to ${restarting.id} (pid ${restarting.child.pid}): draining`);
  restarting.child.kill('SIGTERM');
  const exit = await restarting.child.exited;
  log(`${restarting.id} exited by itself (code ${exit.code}); starting its successor on port ${restarting.port}`);
  instances[1] = await startInstance('users-2-new', restarting.port);

  const results = await Promise.all(callers);
  const getFailures = results.reduce((n, r) => n + r.getFailures, 0);
  const gets = results.reduce((n, r) => n + r.gets, 0);
  const posts = results.reduce((n, r) => n + r.posts, 0);
  const postFailures = results.reduce((n, r) => n + r.postFailures, 0);
  const successorCalls = results.reduce((n, r) => n + (r.perInstance['users-2-new'] ?? 0), 0);
  log(`GETs: ${gets} ok, ${getFailures} failed · POSTs: ${posts} ok, ${postFailures} failed · calls served by the restarted instance: ${successorCalls}`);
  for (const r of results) if (r.errors.length > 0) log(`${r.name} errors: ${r.errors.join(' | ')}`);
  ok = getFailures === 0 && gets > 0 && successorCalls > 0 && exit.code === 0;
  log(ok ? 'PASS: zero failed idempotent calls through a rolling restart' : 'FAIL');
} catch (error) {
  log(`FAIL: ${error?.stack ?? error}`);
} finally {
  for (const child of children) child.kill('SIGTERM');
  await Promise.all([...children].map((c) => c.exited));
  clearTimeout(guard);
}
process.exitCode = ok ? 0 : 1;
