/**
 * A flood of idle connections against a proxy with few file descriptors (`ulimit -n 64`): when the
 * proxy can no longer open a connection to a backend (`EMFILE`), the client gets 503 and the backend
 * is not counted as failing — one attacker must not get healthy backends ejected.
 *
 * The proxy runs in a child process under the low limit, from the BUILT `packages/http/dist` (CI
 * builds before testing; locally: `cd packages/http && npx tsup --config ../../tsup.config.ts`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { RawConnection } from './raw';

const DIST = fileURLToPath(new URL('../../dist/index.js', import.meta.url));

const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

/** The child: a proxy in front of BACKEND that prints its port, then one JSON line per access-log entry. */
const CHILD = `
import { createServer } from 'node:http';
const { createProxy } = await import(process.env.DIST);
const proxy = createProxy({
  balancer: { backends: [{ id: 'b', address: process.env.BACKEND }], outlier: { consecutiveFailures: 1 } },
  accessLog: (entry) => {
    const b = proxy.lb.snapshot().backends[0];
    process.stdout.write(JSON.stringify({ status: entry.status, termination: entry.termination, failures: b.failures, state: b.state, ejected: b.ejectedUntil > Date.now() }) + '\\n');
  },
});
const server = createServer(proxy);
server.listen(0, '127.0.0.1', () => process.stdout.write(JSON.stringify({ port: server.address().port }) + '\\n'));
`;

describe('a proxy out of file descriptors', () => {
  it.skipIf(!existsSync(DIST) && process.env.CI !== 'true')(
    'answers 503 and counts no failure against a healthy backend',
    async () => {
      // The backend closes every connection, so each request needs a new descriptor in the proxy.
      const backend: Server = createServer((_req, res) => {
        res.setHeader('connection', 'close');
        res.end('ok');
      });
      await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
      cleanups.push(
        () =>
          new Promise<void>((resolve) => {
            backend.closeAllConnections();
            backend.close(() => resolve());
          }),
      );
      const child: ChildProcess = spawn('bash', ['-c', 'ulimit -n 64 && exec node --input-type=module -e "$CHILD"'], {
        env: { ...process.env, CHILD, DIST, BACKEND: `http://127.0.0.1:${(backend.address() as AddressInfo).port}` },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      cleanups.push(() => child.kill('SIGKILL'));
      const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
      const next = async (): Promise<Record<string, unknown>> => JSON.parse(String((await lines.next()).value)) as Record<string, unknown>;
      const port = (await next()).port as number;

      // A client connected before the flood, served once (its connection is accepted and kept).
      const client = await RawConnection.open(port);
      cleanups.push(() => client.destroy());
      client.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
      await client.until((t) => t.endsWith('ok'));
      expect((await next()).status).toBe(200);

      // The flood: idle connections until the proxy cannot open a backend connection any more.
      const flood: RawConnection[] = [];
      cleanups.push(() => flood.forEach((c) => c.destroy()));
      let entry: Record<string, unknown> = { status: 200 };
      for (let round = 0; round < 10 && entry.status === 200; round++) {
        for (let i = 0; i < 20; i++) flood.push(await RawConnection.open(port));
        const before = client.text.length;
        client.write('GET / HTTP/1.1\r\nHost: a\r\n\r\n');
        // The answer is complete when its body is: `ok` from the backend, or the proxy's one line.
        await client.until((t) => t.length > before && /\r\n\r\n(ok|[^\r\n]*\n)$/.test(t.slice(before)));
        entry = await next();
      }
      expect(entry).toEqual({ status: 503, termination: 'proxy-exhausted', failures: 0, state: 'up', ejected: false });
    },
    30_000,
  );
});
