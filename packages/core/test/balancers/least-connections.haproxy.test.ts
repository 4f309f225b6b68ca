/**
 * Differential test against the real HAProxy: `balance leastconn` in `mode http` over three Node
 * backends of weights 1, 2 and 3 on loopback, driven by a script of requests — started one by one
 * (each held open by its backend until the script finishes it) and finished in a chosen order. The
 * sequence of backends HAProxy chose is compared with the sequence `least-connections` chooses for
 * the same script through `createLoadBalancer` (acquire for a start, release for a finish).
 *
 * HAProxy runs in the foreground (`-db`) from a generated config on free loopback ports and is
 * killed at the end. Without `/usr/sbin/haproxy` the suite is skipped, except under `CI=true`,
 * where it must run.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLoadBalancer, type Lease } from '@fulcrum/core';

const HAPROXY = '/usr/sbin/haproxy';
const present = existsSync(HAPROXY);
const required = process.env.CI === 'true';
if (!present && !required) console.warn(`skipping the HAProxy differential test: ${HAPROXY} is not installed`);

const WEIGHTS: Record<string, number> = { a: 1, b: 2, c: 3 };
const IDS = Object.keys(WEIGHTS);
/** Every socket and wait in this file is bounded by this. */
const TIMEOUT_MS = 10_000;

/** One step of a script: start a request (held by its backend), or finish the i-th started one. */
type Step = { start: true } | { finish: number };

/** A backend that answers a request only when the test says so. */
interface HeldBackend {
  id: string;
  server: Server;
  port: number;
  /** Requests received and not yet answered, in arrival order. */
  waiting: ServerResponse[];
  /** Resolvers waiting for the next request to arrive. */
  arrivals: (() => void)[];
}

async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function startBackend(id: string): Promise<HeldBackend> {
  const backend: HeldBackend = { id, server: undefined as unknown as Server, port: 0, waiting: [], arrivals: [] };
  backend.server = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    req.resume();
    backend.waiting.push(res);
    for (const notify of backend.arrivals.splice(0)) notify();
  });
  backend.server.keepAliveTimeout = 1;
  backend.server.requestTimeout = TIMEOUT_MS;
  backend.server.headersTimeout = TIMEOUT_MS;
  await new Promise<void>((resolve) => backend.server.listen(0, '127.0.0.1', resolve));
  backend.port = (backend.server.address() as { port: number }).port;
  return backend;
}

function haproxyConfig(frontendPort: number, backends: readonly HeldBackend[]): string {
  return [
    'global',
    '  maxconn 100',
    'defaults',
    '  mode http',
    '  timeout connect 5s',
    '  timeout client 10s',
    '  timeout server 10s',
    // One request per connection on both sides, so that a finished request leaves the server at once.
    '  option httpclose',
    'frontend in',
    `  bind 127.0.0.1:${frontendPort}`,
    '  default_backend pool',
    'backend pool',
    '  balance leastconn',
    ...backends.map((b) => `  server ${b.id} 127.0.0.1:${b.port} weight ${WEIGHTS[b.id]}`),
    '',
  ].join('\n');
}

/** Resolves once the port accepts a connection; each try is bounded, the whole wait too. */
async function waitForListener(port: number, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`haproxy exited with code ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect({ port, host: '127.0.0.1' });
      socket.setTimeout(1000, () => socket.destroy());
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
      socket.once('close', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`haproxy did not listen on 127.0.0.1:${port} within ${TIMEOUT_MS} ms`);
    // Waiting for an external process to bind: a short back-off between bounded connection attempts.
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe.skipIf(!present && !required)('least-connections against HAProxy 2.6 leastconn', () => {
  let backends: HeldBackend[] = [];
  let haproxy: ChildProcess | undefined;
  let frontendPort = 0;
  let dir = '';
  let stderr = '';

  beforeAll(async () => {
    backends = await Promise.all(IDS.map(startBackend));
    frontendPort = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'fulcrum-haproxy-'));
    const config = join(dir, 'haproxy.cfg');
    writeFileSync(config, haproxyConfig(frontendPort, backends));
    haproxy = spawn(HAPROXY, ['-f', config, '-db'], { stdio: ['ignore', 'ignore', 'pipe'] });
    haproxy.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await waitForListener(frontendPort, haproxy).catch((error: Error) => {
      throw new Error(`${error.message}\n${stderr}`);
    });
  });

  afterAll(async () => {
    if (haproxy && haproxy.exitCode === null) {
      const exited = new Promise((resolve) => haproxy!.once('exit', resolve));
      haproxy.kill('SIGKILL');
      await exited;
    }
    await Promise.all(
      backends.map(
        (b) =>
          new Promise<void>((resolve) => {
            for (const res of b.waiting) res.destroy();
            b.server.closeAllConnections();
            b.server.close(() => resolve());
          }),
      ),
    );
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Starts a request through HAProxy and resolves with the backend that received it, and a function
   * that answers it and resolves once the client has the whole response and the connection closed.
   */
  async function start(): Promise<{ id: string; finish: () => Promise<void> }> {
    const arrived = Promise.race(
      backends.map(
        (b) =>
          new Promise<HeldBackend>((resolve) => {
            const before = b.waiting.length;
            const check = () => (b.waiting.length > before ? resolve(b) : b.arrivals.push(check));
            b.arrivals.push(check);
          }),
      ),
    );
    const done = new Promise<void>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: frontendPort, path: '/', agent: false, headers: { connection: 'close' } }, (res) => {
        res.resume();
        res.once('end', () => res.socket.once('close', () => resolve()));
        res.once('error', reject);
      });
      req.setTimeout(TIMEOUT_MS, () => req.destroy(new Error('request to haproxy timed out')));
      req.once('error', reject);
      req.end();
    });
    done.catch(() => {});
    const backend = await withTimeout(arrived, 'a backend to receive the request');
    // Every other backend's pending arrival check is dropped: only one request is in transit.
    for (const b of backends) b.arrivals.length = 0;
    const res = backend.waiting[backend.waiting.length - 1]!;
    return {
      id: backend.id,
      finish: async () => {
        backend.waiting.splice(backend.waiting.indexOf(res), 1);
        res.setHeader('connection', 'close');
        res.end(backend.id);
        await withTimeout(done, 'the response to reach the client');
      },
    };
  }

  async function throughHaproxy(script: readonly Step[]): Promise<string[]> {
    const chosen: string[] = [];
    const open: { finish: () => Promise<void> }[] = [];
    for (const step of script) {
      if ('start' in step) {
        const started = await start();
        chosen.push(started.id);
        open.push(started);
      } else {
        await open[step.finish]!.finish();
      }
    }
    return chosen;
  }

  function throughFulcrum(script: readonly Step[]): string[] {
    const lb = createLoadBalancer({
      backends: IDS.map((id, i) => ({ id, address: `127.0.0.1:${10_000 + i}`, weight: WEIGHTS[id] })),
      algorithm: 'least-connections',
    });
    const chosen: string[] = [];
    const leases: Lease[] = [];
    for (const step of script) {
      if ('start' in step) {
        const lease = lb.acquire()!;
        chosen.push(lease.backend.id);
        leases.push(lease);
      } else {
        leases[step.finish]!.release({ ok: true });
      }
    }
    lb.close();
    return chosen;
  }

  it('chooses the same backends as HAProxy with one request at a time (weights 1, 2, 3)', async () => {
    const script: Step[] = [];
    for (let i = 0; i < 12; i++) script.push({ start: true }, { finish: i });
    const haproxyChoices = await throughHaproxy(script);
    // What HAProxy 2.6 does, written down: an idle server keys at 0, so the servers take turns.
    expect(haproxyChoices.join(' ')).toBe('a b c a b c a b c a b c');
    expect(throughFulcrum(script)).toEqual(haproxyChoices);
  });

  it('chooses the same backends as HAProxy while requests overlap (weights 1, 2, 3)', async () => {
    // Build up to 8 in flight, finish some out of order, start more, and so on.
    const script: Step[] = [];
    for (let i = 0; i < 8; i++) script.push({ start: true });
    script.push({ finish: 2 }, { finish: 0 }, { start: true }, { start: true }, { finish: 5 }, { finish: 7 }, { finish: 1 });
    for (let i = 0; i < 4; i++) script.push({ start: true });
    script.push({ finish: 3 }, { finish: 4 }, { finish: 6 }, { start: true }, { finish: 8 }, { start: true }, { start: true });
    const haproxyChoices = await throughHaproxy(script);
    expect(throughFulcrum(script)).toEqual(haproxyChoices);
  });
});

function withTimeout<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${TIMEOUT_MS} ms waiting for ${what}`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
