// `fulcrum --workers 2` with real processes: the large renders of the metrics and the stats page's
// JSON are bounded for the whole instance as one process bounds them per handler — two at once, a
// third gets 503 with `Retry-After: 1` whichever worker it reaches, and the slots come back after a
// completed answer, after a client that disconnects mid-body, and when the workers holding them die.
// Scrapes that share one collection are served as one process would serve them: two large ones at
// once, any number of small ones.
//
// Which worker serves a connection: the primary passes the connections of a listener to the workers
// round-robin (worker-listeners.ts), so of connections opened one after the other, the 1st, 3rd, 5th
// reach one worker and the 2nd, 4th, 6th the other.
import { writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleBin, type BinRun, type BundledBin } from './bin-bundle';
import { get, logLines, portOf, until } from './helpers';

let bundled: BundledBin;

beforeAll(async () => {
  bundled = await bundleBin();
}, 60_000);

afterAll(() => bundled.remove());

interface Scrape {
  socket: Socket;
  /** The status line and headers (status 0: the connection closed before them). */
  head: Promise<{ status: number; headers: Map<string, string> }>;
  /** The body (de-chunked), once the server closed the connection. */
  body: Promise<string>;
}

/** A connection to `port`, open (the primary has accepted it) before this resolves. */
function open(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/**
 * `GET path` on `socket` (HTTP/1.1, `Connection: close`). With `hold`, a 200 stops being read once its
 * head is in: the server's writes then wait on a full socket, and its render holds its slot.
 */
function scrape(socket: Socket, path: string, hold = false): Scrape {
  socket.on('error', () => undefined);
  let buffered = Buffer.alloc(0);
  let bodyStart = -1;
  let chunked = false;
  let resolveHead: (head: { status: number; headers: Map<string, string> }) => void;
  const head = new Promise<{ status: number; headers: Map<string, string> }>((resolve) => (resolveHead = resolve));
  const body = new Promise<string>((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      if (bodyStart !== -1) {
        chunks.push(chunk);
        return;
      }
      buffered = Buffer.concat([buffered, chunk]);
      bodyStart = buffered.indexOf('\r\n\r\n');
      if (bodyStart === -1) return;
      const [statusLine, ...lines] = buffered.subarray(0, bodyStart).toString('latin1').split('\r\n');
      const headers = new Map(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
      const status = Number(statusLine!.split(' ')[1]);
      chunked = headers.get('transfer-encoding') === 'chunked';
      chunks.push(buffered.subarray(bodyStart + 4));
      if (hold && status === 200) socket.pause();
      resolveHead({ status, headers });
    });
    socket.on('close', () => {
      if (bodyStart === -1) resolveHead({ status: 0, headers: new Map() });
      const raw = Buffer.concat(chunks);
      resolve((chunked ? dechunk(raw) : raw).toString('utf8'));
    });
  });
  socket.write(`GET ${path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n`);
  return { socket, head, body };
}

/** The data of a chunked body, up to its last chunk or as far as it came. */
function dechunk(raw: Buffer): Buffer {
  const parts: Buffer[] = [];
  for (let at = 0; ;) {
    const lineEnd = raw.indexOf('\r\n', at);
    const size = lineEnd === -1 ? 0 : parseInt(raw.subarray(at, lineEnd).toString('latin1'), 16);
    if (!(size > 0)) return Buffer.concat(parts);
    parts.push(raw.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
}

/** Connections to `port`, opened one after the other (so the primary passes them in this order). */
async function openInOrder(port: number, count: number): Promise<Socket[]> {
  const sockets: Socket[] = [];
  for (let i = 0; i < count; i++) sockets.push(await open(port));
  return sockets;
}

const sample = (text: string, series: string): number | undefined => {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

async function startWorkers(name: string, backends: number): Promise<{ proxy: BinRun; metrics: number; stats: number }> {
  const file = join(bundled.dir, `${name}-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      frontends: [{ port: 0, host: '127.0.0.1' }],
      // Nothing listens there, and nothing probes them: no health checks.
      pools: {
        many: { backends: Array.from({ length: backends }, (_, i) => ({ id: `b${i}`, address: `http://10.${i >> 16}.${(i >> 8) & 255}.${i & 255}:8080` })) },
      },
      metrics: { path: '/metrics', port: 0, host: '127.0.0.1' },
      stats: { path: '/stats', port: 0, host: '127.0.0.1' },
    }),
  );
  const proxy = bundled.run(['--config', file, '--workers', '2']);
  await until(() => logLines(proxy.out.stderr).some((l) => l.msg === 'fulcrum started'), 'the primary announcing its workers', 60_000);
  const started = logLines(proxy.out.stderr).find((l) => l.msg === 'fulcrum started')!;
  return { proxy, metrics: portOf(started.metrics), stats: portOf(started.stats) };
}

async function stop(proxy: BinRun): Promise<void> {
  if (proxy.child.exitCode === null) {
    proxy.child.kill('SIGTERM');
    await proxy.exited;
  }
}

describe('fulcrum --workers: large stats renders, two at once over every worker', () => {
  it('refuses a third large scrape on either worker with 503 and Retry-After: 1, and gets the slots back after a completed answer, a client gone mid-body and a worker gone', async () => {
    // 10,000 backends: 7.5 MB of metrics, far more than the sockets' buffers take from a client that
    // does not read; and a collection well within the primary's 2 s deadline on a loaded machine.
    const { proxy, metrics, stats } = await startWorkers('workers-renders', 10_000);
    const held: Socket[] = [];
    try {
      // The 1st and 3rd connections reach one worker, the 2nd the other.
      const [first, other, third] = await openInOrder(metrics, 3);
      held.push(first!, other!, third!);
      // Two scrapes on one worker at once (they share one collection): both are served.
      const a = scrape(first!, '/metrics', true);
      const b = scrape(third!, '/metrics', true);
      expect((await a.head).status).toBe(200);
      expect((await b.head).status).toBe(200);
      // A third, on the other worker, is refused: the bound is the instance's.
      const refused = scrape(other!, '/metrics');
      const refusedHead = await refused.head;
      expect(refusedHead.status).toBe(503);
      expect(refusedHead.headers.get('retry-after')).toBe('1');
      expect(await refused.body).toBe('stats busy: too many large renders at once, retry\n');
      // The stats page's JSON has slots of its own, as in one process.
      const page = await get(stats, '/stats?format=json');
      expect(page.status).toBe(200);
      expect((JSON.parse(page.body) as { workers: number }).workers).toBeGreaterThan(0);

      // A held answer read to its end gives its slot back: a new scrape is served.
      b.socket.resume();
      const whole = await b.body;
      // Whole: its last line is there (a worker late under load may be left out of it, and named).
      expect(whole).toMatch(/^fulcrum_backend_up\{pool="many",backend="b9999"\} 1$/m);
      expect(whole).toMatch(/\nfulcrum_workers_missing [01]\n$/);
      const servedOnce = async (what: string): Promise<void> => {
        await until(
          async () => {
            const [socket] = await openInOrder(metrics, 1);
            held.push(socket!);
            if ((await scrape(socket!, '/metrics', true).head).status === 200) return true;
            socket!.destroy();
            return false;
          },
          what,
          60_000,
        );
      };
      await servedOnce('a scrape served once an answer was read whole');
      // A client that goes away mid-body gives its slot back too.
      first!.destroy();
      await servedOnce('a scrape served once a client left mid-body');
      // None was given back twice: with two held, the next is refused.
      const [last] = await openInOrder(metrics, 1);
      held.push(last!);
      expect((await scrape(last!, '/metrics').head).status).toBe(503);

      // Workers that exit while rendering cannot say so: the primary gives back what they held.
      const pids = [...whole.matchAll(/^fulcrum_worker_info\{worker="\d+",pid="(\d+)"\} 1$/gm)].map((m) => Number(m[1]));
      expect(pids).toHaveLength(2);
      for (const pid of pids) process.kill(pid, 'SIGKILL');
      // Asked once both replacements serve: a connection the primary passed to a worker in the instant
      // it died is not answered by anyone.
      await until(() => logLines(proxy.out.stderr).filter((l) => l.msg === 'worker started').length === 4, 'both workers replaced', 60_000);
      await servedOnce('a scrape served once the workers that held the slots were replaced');
    } finally {
      for (const socket of held) socket.destroy();
      await stop(proxy);
    }
  }, 180_000);

  it('serves every scrape of a small pool that shares a collection, as one process does: three at once on one worker', async () => {
    const { proxy, metrics } = await startWorkers('workers-renders-small', 10);
    let stopped: number | undefined;
    const sockets: Socket[] = [];
    try {
      const text = (await get(metrics, '/metrics')).body;
      const pid = Number(/^fulcrum_worker_info\{worker="2",pid="(\d+)"\} 1$/m.exec(text)![1]);
      // Worker 2 stopped: a collection waits for it until the primary's deadline (2 s), so scrapes
      // that reach worker 1 meanwhile are all under way at once and share that collection.
      process.kill(pid, 'SIGSTOP');
      stopped = pid;
      sockets.push(...(await openInOrder(metrics, 6)));
      const scrapes = sockets.map((socket) => scrape(socket, '/metrics'));
      // Three connections reach worker 1: its three answers come first (worker 2's wait while it is stopped).
      const answered: { status: number; body: string }[] = [];
      for (const s of scrapes) void s.head.then(async (head) => answered.push({ status: head.status, body: await s.body }));
      await until(() => answered.length >= 3, "worker 1's three answers", 60_000);
      expect(answered.slice(0, 3).map((r) => r.status)).toEqual([200, 200, 200]);
      for (const { body } of answered.slice(0, 3)) expect(sample(body, 'fulcrum_workers_missing')).toBe(1);
      process.kill(pid, 'SIGCONT');
      stopped = undefined;
      const all = await Promise.all(scrapes.map(async (s) => (await s.head).status));
      expect(all).toEqual([200, 200, 200, 200, 200, 200]);
    } finally {
      if (stopped !== undefined) process.kill(stopped, 'SIGCONT');
      for (const socket of sockets) socket.destroy();
      await stop(proxy);
    }
  }, 120_000);
});
