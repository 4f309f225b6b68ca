import { createServer as createHttpsServer } from 'node:https';
import { connect, type AddressInfo } from 'node:net';
import { certDir } from '../tls/certs';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createLoadBalancer, isInvalidOptionError } from '@fulcrum/core';
import { createProxy, createProxyServer } from '@fulcrum/http';
import { deferred, waitFor } from '../../../../test-support/wait-for';
import { ENGINES, closedPort, send, startBackend, startProxy, type Engine, type TestBackend, type TestProxy } from './helpers';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function backends(n: number, handler?: Parameters<typeof startBackend>[1]): Promise<TestBackend[]> {
  const list = await Promise.all(Array.from({ length: n }, (_, i) => startBackend(`b${i}`, handler)));
  for (const b of list) cleanups.push(() => b.close());
  return list;
}

/** The engine of the `describe.each` block running now. */
let engine: Engine = 'node';

async function proxyFor(list: { id: string; address: string }[], options: Record<string, unknown> = {}): Promise<TestProxy> {
  const p = await startProxy(
    {
      balancer: { backends: list.map((b) => ({ id: b.id, address: b.address })), algorithm: 'round-robin' },
      ...options,
    },
    engine,
  );
  cleanups.push(() => p.close());
  return p;
}

describe.each(ENGINES)('the %s engine', (current) => {
  beforeAll(() => {
    engine = current;
  });

  describe('createProxy', () => {
    it('refuses bad options with the option named', () => {
      for (const [options, path] of [
        [{ balancer: { backends: [] }, attempts: 0 }, 'attempts'],
        [{ balancer: { backends: [] }, retryOn: ['error'] }, 'retryOn[0]'],
        [{ balancer: { backends: [] }, timeouts: { connect: 5 } }, 'timeouts.connect'],
        [{ balancer: { backends: [] }, maxReplayBytes: -1 }, 'maxReplayBytes'],
        [{ balancer: 'x' }, 'balancer'],
        [{ balancer: { backends: [] }, retries: 3 }, 'retries'],
      ] as const) {
        try {
          if (engine === 'node') createProxy(options as never);
          else createProxyServer(options as never);
          throw new Error(`accepted ${JSON.stringify(options)}`);
        } catch (error) {
          expect(isInvalidOptionError(error), String(error)).toBe(true);
          expect((error as Error).message.startsWith(`${path}:`)).toBe(true);
        }
      }
    });

    it('spreads requests over every backend and returns their responses', async () => {
      const list = await backends(3);
      const p = await proxyFor(list);
      const bodies = [];
      for (let i = 0; i < 6; i++) bodies.push((await send(p.url)).body);
      expect(bodies.sort()).toEqual(['b0', 'b0', 'b1', 'b1', 'b2', 'b2']);
    });

    it('streams request and response bodies both ways', async () => {
      const list = await backends(1, (req, res, body) => {
        res.writeHead(201, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ method: req.method, length: body.length, path: req.url }));
      });
      const p = await proxyFor(list);
      const big = 'x'.repeat(1_000_000);
      const reply = await send(p.url, { method: 'POST', path: '/upload?a=1', body: big, headers: { 'content-type': 'text/plain' } });
      expect(reply.status).toBe(201);
      expect(JSON.parse(reply.body)).toEqual({ method: 'POST', length: big.length, path: '/upload?a=1' });
    });

    it('strips hop-by-hop headers before adding forwarding headers a client cannot remove', async () => {
      const list = await backends(1);
      const p = await proxyFor(list);
      await send(p.url, {
        headers: {
          connection: 'close, X-Forwarded-For, x-secret',
          'x-forwarded-for': '6.6.6.6',
          'x-secret': 'drop me',
          'keep-alive': 'timeout=5',
          'proxy-authorization': 'Basic abc',
          host: 'app.example.com',
        },
      });
      const headers = list[0]!.hits[0]!.headers;
      expect(headers['x-forwarded-for']).toBe('127.0.0.1');
      expect(headers['x-forwarded-proto']).toBe('http');
      expect(headers['x-forwarded-host']).toBe('app.example.com');
      expect(headers.forwarded).toBe('for=127.0.0.1;proto=http;host=app.example.com');
      expect(headers.host).toBe('app.example.com');
      expect(headers['x-secret']).toBeUndefined();
      expect(headers['keep-alive']).toBeUndefined();
      expect(headers['proxy-authorization']).toBeUndefined();
    });

    it('appends the socket address to an X-Forwarded-For the client sent', async () => {
      const list = await backends(1);
      const p = await proxyFor(list);
      await send(p.url, { headers: { 'x-forwarded-for': '203.0.113.7' } });
      expect(list[0]!.hits[0]!.headers['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
    });

    it('drops hop-by-hop headers of the response', async () => {
      const list = await backends(1, (_req, res) => {
        res.writeHead(200, { connection: 'x-internal', 'x-internal': 'secret', 'x-public': 'ok' });
        res.end('hi');
      });
      const p = await proxyFor(list);
      const reply = await send(p.url);
      expect(reply.headers['x-internal']).toBeUndefined();
      expect(reply.headers['x-public']).toBe('ok');
    });

    it('refuses a request whose header carries a NUL byte, without reaching a backend', async () => {
      const list = await backends(1);
      const p = await proxyFor(list);
      const raw = await new Promise<string>((resolve) => {
        const socket = connect(p.port, '127.0.0.1', () => {
          socket.write('GET / HTTP/1.1\r\nHost: x\r\nX-Evil: a\u0000b\r\n\r\n');
        });
        let data = '';
        socket.on('data', (c) => (data += c.toString()));
        socket.on('close', () => resolve(data));
        socket.on('error', () => resolve(data));
        setTimeout(() => socket.destroy(), 1000);
      });
      expect(raw).toMatch(/^HTTP\/1\.1 400/);
      expect(list[0]!.hits).toHaveLength(0);
    });

    it('answers 503 without a backend address when nothing is eligible', async () => {
      const list = await backends(2);
      const p = await proxyFor(list);
      p.proxy.lb.maintain('b0');
      p.proxy.lb.maintain('b1');
      const reply = await send(p.url);
      expect(reply.status).toBe(503);
      expect(reply.body).toBe('Service Unavailable: no backend available\n');
    });

    it('answers 502 without any address when every backend refuses connections', async () => {
      const ports = [await closedPort(), await closedPort()];
      const p = await proxyFor(ports.map((port, i) => ({ id: `dead${i}`, address: `http://127.0.0.1:${port}` })));
      const reply = await send(p.url);
      expect(reply.status).toBe(502);
      expect(reply.body).toBe('Bad Gateway\n');
      for (const port of ports) expect(reply.body + JSON.stringify(reply.headers)).not.toContain(String(port));
    });
  });

  describe('https backends', () => {
    it('forwards to an https backend, verifying it with backendTls', async () => {
      const certs = certDir();
      cleanups.push(async () => certs.remove());
      const cert = certs.make('backend', 'localhost', ['localhost']);
      const backend = createHttpsServer({ cert: cert.cert, key: cert.key }, (req, res) => res.end(`tls:${req.url}:${req.headers['x-forwarded-proto']}`));
      await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
      cleanups.push(
        () =>
          new Promise<void>((resolve) => {
            backend.closeAllConnections();
            backend.close(() => resolve());
          }),
      );
      const address = `https://localhost:${(backend.address() as AddressInfo).port}`;
      const trusted = await proxyFor([{ id: 'tls', address }], { backendTls: { ca: cert.cert } });
      const reply = await send(trusted.url, { path: '/secure' });
      expect([reply.status, reply.body]).toEqual([200, 'tls:/secure:http']);
      // Without the CA the certificate is not trusted: 502, never a plaintext fallback.
      const untrusted = await proxyFor([{ id: 'tls', address }]);
      expect((await send(untrusted.url)).status).toBe(502);
    });
  });

  describe('retries', () => {
    it('retries a GET and a POST on another backend when the first refuses the connection', async () => {
      const [live] = await backends(1);
      const dead = { id: 'dead', address: `http://127.0.0.1:${await closedPort()}` };
      const p = await proxyFor([dead, live!]);
      for (let i = 0; i < 4; i++) {
        expect((await send(p.url)).status).toBe(200);
        expect((await send(p.url, { method: 'POST', body: 'payload' })).status).toBe(200);
      }
      expect(live!.hits.filter((h) => h.method === 'POST')).toHaveLength(4);
      expect(live!.hits.every((h) => h.method !== 'POST' || h.body === 'payload')).toBe(true);
    });

    it('never replays a POST that reached a backend which then reset the connection', async () => {
      const resetter = await startBackend('reset', (_req, res) => res.socket?.destroy());
      cleanups.push(() => resetter.close());
      const [other] = await backends(1);
      const p = await proxyFor([resetter, other!], {
        balancer: { backends: [resetter, other!].map((b) => ({ id: b.id, address: b.address })), algorithm: 'first' },
      });
      const reply = await send(p.url, { method: 'POST', body: 'once' });
      expect(reply.status).toBe(502);
      expect(resetter.hits.map((h) => h.body)).toEqual(['once']);
      expect(other!.hits).toHaveLength(0);
    });

    it('retries a GET that reached a backend which reset the connection', async () => {
      const resetter = await startBackend('reset', (_req, res) => res.socket?.destroy());
      cleanups.push(() => resetter.close());
      const [other] = await backends(1);
      const p = await proxyFor([], { balancer: { backends: [resetter, other!].map((b) => ({ id: b.id, address: b.address })), algorithm: 'first' } });
      const reply = await send(p.url);
      expect(reply.status).toBe(200);
      expect(reply.body).toBe('b0');
      expect(resetter.hits).toHaveLength(1);
    });

    it('answers 504 for a hanging backend and retries a GET elsewhere within the timeout', async () => {
      const hanging = await startBackend('hang', () => undefined);
      cleanups.push(() => hanging.close());
      const [other] = await backends(1);
      const specs = [hanging, other!].map((b) => ({ id: b.id, address: b.address }));
      const p = await proxyFor([], { balancer: { backends: specs, algorithm: 'first' }, timeouts: { headersMs: 300 } });
      const reply = await send(p.url);
      expect(reply.status).toBe(200);
      expect(reply.body).toBe('b0');
      const solo = await proxyFor([], { balancer: { backends: [specs[0]!], algorithm: 'first' }, timeouts: { headersMs: 300 } });
      expect((await send(solo.url)).status).toBe(504);
    });

    it('does not replay a body larger than maxReplayBytes', async () => {
      const resetter = await startBackend('reset', (_req, res) => res.socket?.destroy());
      cleanups.push(() => resetter.close());
      const [other] = await backends(1);
      const specs = [resetter, other!].map((b) => ({ id: b.id, address: b.address }));
      const p = await proxyFor([], { balancer: { backends: specs, algorithm: 'first' }, maxReplayBytes: 1024 });
      const reply = await send(p.url, { method: 'PUT', body: 'y'.repeat(10_000) });
      expect(reply.status).toBe(502);
      expect(other!.hits).toHaveLength(0);
      const small = await send(p.url, { method: 'PUT', body: 'y'.repeat(100) });
      expect(small.status).toBe(200);
    });

    it('retries a 503 only when asked to', async () => {
      const busy = await startBackend('busy', (_req, res) => {
        res.writeHead(503);
        res.end('busy');
      });
      cleanups.push(() => busy.close());
      const [other] = await backends(1);
      const specs = [busy, other!].map((b) => ({ id: b.id, address: b.address }));
      const plain = await proxyFor([], { balancer: { backends: specs, algorithm: 'first' } });
      expect((await send(plain.url)).status).toBe(503);
      const retrying = await proxyFor([], { balancer: { backends: specs, algorithm: 'first' }, retryOn: ['connect', 'status-503'] });
      expect((await send(retrying.url)).body).toBe('b0');
    });

    it('starts no new attempt after the client aborts', async () => {
      // The backend never answers; it signals when the request reached it and when its exchange was cut.
      const arrived = deferred();
      const cut = deferred();
      const hanging = await startBackend('hang', (_req, res) => {
        res.on('close', () => cut.resolve());
        arrived.resolve();
      });
      cleanups.push(() => hanging.close());
      const [other] = await backends(1);
      const specs = [hanging, other!].map((b) => ({ id: b.id, address: b.address }));
      // A header timeout far away: only the client's abort can end the attempt.
      const p = await proxyFor([], { balancer: { backends: specs, algorithm: 'first' }, timeouts: { headersMs: 60_000 } });
      const controller = new AbortController();
      const pending = send(p.url, { signal: controller.signal }).catch(() => 'aborted');
      await arrived.promise;
      controller.abort();
      expect(await pending).toBe('aborted');
      // The proxy cut the upstream exchange, then released its lease. A retry would have taken a
      // lease on the other backend (held until answered) and left a hit there.
      await cut.promise;
      await waitFor(() => p.proxy.lb.snapshot().backends.every((b) => b.inflight === 0), { what: 'every lease to be released' });
      expect(hanging.hits).toHaveLength(1);
      expect(other!.hits).toHaveLength(0);
      expect(p.proxy.lb.snapshot().backends.every((b) => b.inflight === 0)).toBe(true);
    });

    it('loses no GET while a backend is killed mid-load', async () => {
      const list = await backends(3);
      const p = await proxyFor(list);
      const results: number[] = [];
      let killed = false;
      const workers = Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; i < 40; i++) {
          if (!killed && w === 0 && i === 10) {
            killed = true;
            await list[1]!.close();
          }
          results.push((await send(p.url)).status);
        }
      });
      await Promise.all(workers);
      expect(results).toHaveLength(320);
      expect(results.filter((s) => s !== 200)).toEqual([]);
    });
  });

  describe('queues', () => {
    it('queues requests when every backend is at maxConnections and serves them all', async () => {
      let concurrent = 0;
      let peak = 0;
      const slow = await backends(2, (_req, res) => {
        concurrent++;
        peak = Math.max(peak, concurrent);
        setTimeout(() => {
          concurrent--;
          res.end('ok');
        }, 30);
      });
      const specs = slow.map((b) => ({ id: b.id, address: b.address, maxConnections: 1 }));
      const p = await proxyFor([], { balancer: { backends: specs, algorithm: 'round-robin' } });
      const replies = await Promise.all(Array.from({ length: 10 }, () => send(p.url)));
      expect(replies.map((r) => r.status)).toEqual(Array(10).fill(200));
      expect(peak).toBeLessThanOrEqual(2);
    });

    it('answers 503 when the queue is full', async () => {
      const slow = await backends(1, (_req, res) => setTimeout(() => res.end('ok'), 200));
      const p = await proxyFor([], { balancer: { backends: [{ id: 'b0', address: slow[0]!.address, maxConnections: 1 }] }, maxQueue: 1 });
      const replies = await Promise.all([send(p.url), send(p.url), send(p.url)]);
      expect(replies.map((r) => r.status).sort()).toEqual([200, 200, 503]);
      expect(replies.find((r) => r.status === 503)!.body).toBe('Service Unavailable: queue full\n');
    });

    it('answers 503 when a request waits longer than queueTimeoutMs', async () => {
      const slow = await backends(1, (_req, res) => setTimeout(() => res.end('ok'), 500));
      const p = await proxyFor([], { balancer: { backends: [{ id: 'b0', address: slow[0]!.address, maxConnections: 1 }] }, queueTimeoutMs: 100 });
      const replies = await Promise.all([send(p.url), send(p.url)]);
      expect(replies.map((r) => r.status).sort()).toEqual([200, 503]);
    });
  });

  describe('feedback to the load balancer', () => {
    it('releases every lease and counts failures, so outlier detection sees them', async () => {
      const failing = await startBackend('fail', (_req, res) => {
        res.writeHead(500);
        res.end('no');
      });
      cleanups.push(() => failing.close());
      const lb = createLoadBalancer({
        backends: [{ id: 'fail', address: failing.address }],
        outlier: { consecutiveFailures: 3 },
      });
      const p = await proxyFor([], { balancer: lb });
      for (let i = 0; i < 3; i++) expect((await send(p.url)).status).toBe(500);
      const snap = lb.snapshot().backends[0]!;
      expect(snap).toMatchObject({ inflight: 0, requests: 3, failures: 3, ejected: true });
      lb.close();
    });
  });

  describe('close', () => {
    it('leaves no sockets or timers behind', async () => {
      const before = process.getActiveResourcesInfo();
      const list = await backends(2);
      const p = await startProxy({ balancer: { backends: list.map((b) => ({ id: b.id, address: b.address })) } }, engine);
      for (let i = 0; i < 10; i++) await send(p.url);
      await p.close();
      for (const b of list) await b.close();
      cleanups.length = 0;
      const counted = (resources: string[]) => resources.filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap' || r === 'Timeout').length;
      // Closed sockets leave the list once their close callbacks have run: wait for that, bounded.
      await waitFor(() => counted(process.getActiveResourcesInfo()) <= counted(before), { what: 'sockets and timers to be gone' });
    });
  });

  describe('retries avoid the backend that failed', () => {
    it('never sends a retry back to the dead backend, even with a random balancer', async () => {
      const [live] = await backends(1);
      const dead = { id: 'dead', address: `http://127.0.0.1:${await closedPort()}` };
      const p = await proxyFor([], { balancer: { backends: [dead, live!].map((b) => ({ id: b.id, address: b.address })), algorithm: 'random' }, attempts: 2 });
      const statuses = [];
      for (let i = 0; i < 40; i++) statuses.push((await send(p.url)).status);
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
    });
  });

  describe('response bodies end exactly where the backend said', () => {
    it('relays Content-Length bodies in one piece or many, HEAD and 204/304 without a body, and chunked bodies', async () => {
      const big = Buffer.alloc(3 * 1024 * 1024 + 7, 'y');
      const list = await backends(1, (req, res) => {
        if (req.url === '/big') {
          // Written in pieces so the proxy sees many chunks before the last byte of the declared length.
          res.writeHead(200, { 'content-length': String(big.length) });
          for (let offset = 0; offset < big.length; offset += 65_536) res.write(big.subarray(offset, offset + 65_536));
          res.end();
        } else if (req.url === '/head') {
          res.writeHead(200, { 'content-length': '100' });
          res.end();
        } else if (req.url === '/204') {
          res.writeHead(204);
          res.end();
        } else if (req.url === '/304') {
          res.writeHead(304, { etag: '"x"' });
          res.end();
        } else if (req.url === '/chunked') {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.write('one,');
          setTimeout(() => res.end('two'), 5);
        } else {
          res.writeHead(200, { 'content-length': '5' });
          res.end('exact');
        }
      });
      const p = await proxyFor(list);
      const large = await send(p.url, { path: '/big' });
      expect(large.status).toBe(200);
      expect(large.body.length).toBe(big.length);
      expect(large.headers['content-length']).toBe(String(big.length));
      const head = await send(p.url, { method: 'HEAD', path: '/head' });
      expect([head.status, head.body, head.headers['content-length']]).toEqual([200, '', '100']);
      expect((await send(p.url, { path: '/204' })).status).toBe(204);
      expect((await send(p.url, { path: '/304' })).status).toBe(304);
      expect((await send(p.url, { path: '/chunked' })).body).toBe('one,two');
      const exact = await send(p.url, { path: '/exact' });
      expect([exact.status, exact.body]).toEqual([200, 'exact']);
      // Every lease was released (the response end was seen for each, including the ones ended early).
      expect(p.proxy.lb.backends[0]!.inflight).toBe(0);
      expect(p.proxy.lb.backends[0]!.requests).toBe(6);
    });

    it('keeps a keep-alive client connection usable after a body ended on its declared length', async () => {
      const list = await backends(1, (_req, res) => {
        res.writeHead(200, { 'content-length': '2' });
        res.end('ok');
      });
      const p = await proxyFor(list);
      // Three requests on one socket: each response must be complete and framed for the next to parse.
      const socket = connect(p.port, '127.0.0.1');
      cleanups.push(async () => void socket.destroy());
      await new Promise<void>((resolve) => socket.once('connect', () => resolve()));
      let received = '';
      socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
      socket.write('GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\nGET /3 HTTP/1.1\r\nHost: x\r\n\r\n');
      await waitFor(() => (received.match(/\r\n\r\nok/g) ?? []).length >= 3, { what: 'three responses' });
      expect((received.match(/HTTP\/1\.1 200 OK/g) ?? []).length).toBe(3);
      expect((received.match(/\r\n\r\nok/g) ?? []).length).toBe(3);
    });
  });
});
