// The primary's listening sockets (worker-listeners.ts): a connection the primary's copy accepts is
// passed whole to a worker — a real child process here, which serves it with node:http — including
// the request bytes the client sent before the pass, and connections that arrive while no worker is
// ready wait for one.
import { fork, type ChildProcess } from 'node:child_process';
import type { Worker } from 'node:cluster';
import { connect, type Socket } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { validateConfig } from '../src/config';
import { listenerAddresses, PrimaryListeners } from '../src/worker-listeners';
import { get, until } from './helpers';

/** A worker stand-in: serves each passed connection with node:http, answering `pid body`. */
const WORKER = `
import { createServer } from 'node:http';
const server = createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => res.end(process.pid + ' ' + req.method + ' ' + body));
});
process.on('message', (message, socket) => {
  if (message && message.t === 'connection') server.emit('connection', socket);
});
process.send('up');
`;

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const cleanup of cleanups.splice(0)) cleanup();
});

async function startWorker(): Promise<{ child: ChildProcess; worker: Worker }> {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-worker-listeners-'));
  const file = join(dir, 'worker.mjs');
  writeFileSync(file, WORKER);
  const child = fork(file, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  cleanups.push(() => {
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  await new Promise<void>((resolve) => child.once('message', () => resolve()));
  // What PrimaryListeners uses of a cluster Worker: send with a handle, and isConnected.
  const worker = { send: child.send.bind(child), isConnected: () => child.connected } as unknown as Worker;
  return { child, worker };
}

async function open(): Promise<{ listeners: PrimaryListeners; port: number }> {
  const config = validateConfig({ frontends: [{ port: 0, host: '127.0.0.1' }], pools: { web: { backends: [] } } }, { env: {} });
  const listeners = await PrimaryListeners.open(config);
  cleanups.push(() => listeners.close());
  const port = Number(listeners.addresses().get('frontend 127.0.0.1:0')!.split(':').pop());
  return { listeners, port };
}

describe('the primary’s listening sockets', () => {
  it('keys the listeners as the runner adopts them: frontends by their key, the admin, stats and metrics by host:port', () => {
    const config = validateConfig(
      {
        frontends: [{ port: 0, host: '127.0.0.1' }],
        pools: { web: { backends: [] } },
        admin: { port: 9001, host: '127.0.0.1', token: 'admin-token-0123456789abcdef' },
        metrics: { path: '/metrics', port: 9002, host: '127.0.0.1' },
      },
      { env: {} },
    );
    expect([...listenerAddresses(config)]).toEqual([
      ['frontend 127.0.0.1:0', { port: 0, host: '127.0.0.1' }],
      ['service 127.0.0.1:9001', { port: 9001, host: '127.0.0.1' }],
      ['service 127.0.0.1:9002', { port: 9002, host: '127.0.0.1' }],
    ]);
  });

  it('passes what it accepts to a ready worker whole, the bytes sent before the pass included', async () => {
    const { child, worker } = await startWorker();
    const { listeners, port } = await open();
    listeners.readyWorkers = () => [worker];
    // Nobody else holds the socket: the primary accepts every connection and passes it on.
    expect((await get(port, '/')).body).toBe(`${child.pid} GET `);
    const body = 'x'.repeat(100_000);
    expect((await get(port, '/', { method: 'POST', body })).body).toBe(`${child.pid} POST ${body}`);
  });

  it('holds connections while no worker is ready and hands them to the first one that is', async () => {
    const { child, worker } = await startWorker();
    const { listeners, port } = await open();
    let ready: Worker[] = [];
    listeners.readyWorkers = () => ready;
    const reply = get(port, '/', { method: 'POST', body: 'early' });
    const probe = get(port, '/');
    await until(() => listeners.waiting === 2, 'the primary holding both connections');
    ready = [worker];
    listeners.flush();
    expect((await reply).body).toBe(`${child.pid} POST early`);
    expect((await probe).body).toBe(`${child.pid} GET `);
  });

  it('closes the connections still on their way to a worker that exits, and only those', async () => {
    const { listeners, port } = await open();
    // A worker whose IPC sends never complete until told: Node queues a handle behind the previous
    // unacknowledged one, and a worker that dies leaves that queue unsent.
    const sends: { socket: Socket; done: (error: Error | null) => void }[] = [];
    const worker = {
      send: (_message: unknown, socket: Socket, done: (error: Error | null) => void) => sends.push({ socket, done }) > 0,
      isConnected: () => true,
    } as unknown as Worker;
    listeners.readyWorkers = () => [worker];
    const delivered = connect(port, '127.0.0.1');
    const stranded = connect(port, '127.0.0.1');
    cleanups.push(() => {
      delivered.destroy();
      stranded.destroy();
    });
    const strandedClosed = new Promise<void>((resolve) => stranded.once('close', () => resolve()));
    await until(() => sends.length === 2, 'both connections sent to the worker');
    // The first reached the worker (its send completed); the second was still queued.
    const first = sends.findIndex((s) => s.socket.remotePort === delivered.localPort);
    sends[first]!.done(null);
    listeners.workerGone(worker);
    await strandedClosed;
    expect(sends[1 - first]!.socket.destroyed).toBe(true);
    expect(sends[first]!.socket.destroyed).toBe(false);
  });
});
