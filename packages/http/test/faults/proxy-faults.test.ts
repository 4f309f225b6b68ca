/**
 * Fault scenarios for the proxy: real backends behind `FaultProxy` relays, faults switched while
 * requests are in flight, and every claim checked by counting what actually reached each backend.
 * The rules under test are the proxy's retry rules (design §3): a GET is retried where safe, a POST
 * that reached a backend is delivered at most once, the retry budget bounds the extra load, and a
 * client that left starts no new attempt.
 */
import { createHash } from 'node:crypto';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { AccessLogEntry, ProxyOptions } from '@fulcrum/http';
import { useEngine, ENGINES, delay, send, startBackend, startProxy, type TestBackend, type TestProxy } from '../proxy/helpers';
import { FaultProxy } from './fault-proxy';
import { waitFor } from '../../../../test-support/wait-for';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Link {
  backend: TestBackend;
  fault: FaultProxy;
  /** What the proxy is configured with: the relay's address, under the backend's id. */
  spec: { id: string; address: string };
}

async function link(id: string, handler?: Parameters<typeof startBackend>[1]): Promise<Link> {
  const backend = await startBackend(id, handler);
  const fault = await FaultProxy.start({ host: '127.0.0.1', port: backend.port });
  cleanups.push(() => backend.close());
  cleanups.push(() => fault.close());
  return { backend, fault, spec: { id, address: fault.url } };
}

async function proxy(links: Link[], options: Partial<ProxyOptions> = {}): Promise<TestProxy> {
  const p = await startProxy({
    balancer: { backends: links.map((l) => l.spec), algorithm: 'first' },
    ...options,
  } as ProxyOptions);
  cleanups.push(() => p.close());
  return p;
}

function deliveries(links: Link[], method: string, body?: string): number {
  let n = 0;
  for (const l of links) for (const hit of l.backend.hits) if (hit.method === method && (body === undefined || hit.body === body)) n++;
  return n;
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(condition, { what, timeoutMs });
}

describe.each(ENGINES)('the %s engine', (engine) => {
  beforeAll(() => useEngine(engine));

  describe('a backend killed before it accepts', () => {
    it('retries a GET and delivers a POST exactly once on another backend, also over a stale keep-alive socket', async () => {
      const a = await link('a');
      const b = await link('b');
      const p = await proxy([a, b]);
      // Warm the pool: the proxy now holds an idle keep-alive connection to a.
      expect((await send(p.url)).body).toBe('a');
      await a.fault.refuse();
      for (let i = 0; i < 5; i++) {
        expect((await send(p.url, { path: `/get-${i}` })).body).toBe('b');
        const reply = await send(p.url, { method: 'POST', path: `/post-${i}`, body: `order-${i}` });
        expect(reply.status).toBe(200);
        expect(deliveries([a, b], 'POST', `order-${i}`)).toBe(1);
      }
      expect(a.backend.hits).toHaveLength(1);
      await a.fault.pass();
      expect((await send(p.url)).body).toBe('a');
    });
  });

  describe('a backend killed mid-request', () => {
    it('retries a GET on another backend but never replays a POST the dead backend received', async () => {
      const a: Link = await link('a', () => {
        // The process dies after reading the request and before answering.
        void a.fault.reset().then(() => a.fault.pass());
      });
      const b = await link('b');
      const p = await proxy([a, b]);
      for (let i = 0; i < 3; i++) {
        const get = await send(p.url, { path: `/g${i}` });
        expect(get.status).toBe(200);
        expect(get.body).toBe('b');
        const post = await send(p.url, { method: 'POST', body: `pay-${i}` });
        expect(post.status).toBe(502);
        expect(post.body).not.toContain('127.0.0.1');
        expect(deliveries([a], 'POST', `pay-${i}`)).toBe(1);
        expect(deliveries([b], 'POST', `pay-${i}`)).toBe(0);
      }
      expect(deliveries([a], 'GET')).toBe(3);
      expect(deliveries([b], 'GET')).toBe(3);
    });

    it('loses no GET and delivers no POST twice while backends are reset, refused and restored under load', async () => {
      const links = await Promise.all(['a', 'b', 'c'].map((id) => link(id)));
      const p = await proxy(links, { balancer: { backends: links.map((l) => l.spec), algorithm: 'round-robin' } } as Partial<ProxyOptions>);
      const getStatuses: number[] = [];
      const posts: { id: string; status: number }[] = [];
      let done = 0;
      const chaos = (async () => {
        const steps: (() => Promise<void>)[] = [
          () => links[0]!.fault.reset(),
          () => links[0]!.fault.pass(),
          () => links[1]!.fault.refuse(),
          () => links[1]!.fault.pass(),
          () => links[2]!.fault.reset(),
          () => links[2]!.fault.pass(),
        ];
        for (const step of steps) {
          await until(() => done >= 20, 'traffic');
          const mark = done;
          await step();
          await until(() => done >= mark + 20, 'traffic after a fault');
        }
      })();
      await Promise.all(
        // Four clients: enough to have requests in flight on every backend when it fails, few enough
        // that one failing backend's retries stay within the budget's floor of 3.
        Array.from({ length: 4 }, async (_, w) => {
          for (let i = 0; i < 60; i++) {
            if (i % 3 === 2) {
              const id = `w${w}-${i}`;
              const reply = await send(p.url, { method: 'POST', body: id }).catch(() => ({ status: 0 }));
              posts.push({ id, status: reply.status });
            } else {
              getStatuses.push((await send(p.url, { path: `/w${w}/${i}` }).catch(() => ({ status: 0 }))).status);
            }
            done++;
          }
        }),
      );
      await chaos;
      expect(getStatuses.length).toBe(4 * 40);
      expect(posts.length).toBe(4 * 20);
      expect(getStatuses.filter((s) => s !== 200)).toEqual([]);
      for (const post of posts) {
        const n = deliveries(links, 'POST', post.id);
        // Acknowledged exactly once; a failed one reached at most one backend, never two.
        if (post.status === 200) expect(n, post.id).toBe(1);
        else expect(n, post.id).toBeLessThanOrEqual(1);
      }
      expect(p.proxy.lb.snapshot().backends.every((b) => b.inflight === 0)).toBe(true);
    });
  });

  describe('a connection reset before the request was written', () => {
    it('retries even a POST when the backend resets the connection during connect, delivering it once', async () => {
      // Accept-then-RST: the proxy's socket dies in `connect` (syscall 'connect'), before any request
      // byte could be written, so the request certainly never reached a backend (design §3: "nothing
      // was written upstream … any method").
      const a = await link('a');
      const b = await link('b');
      const p = await proxy([a, b]);
      await a.fault.reset();
      for (let i = 0; i < 5; i++) {
        const reply = await send(p.url, { method: 'POST', body: `charge-${i}` });
        expect(reply.status).toBe(200);
        expect(reply.body).toBe('b');
        expect(deliveries([b], 'POST', `charge-${i}`)).toBe(1);
      }
      expect(a.backend.hits).toHaveLength(0);
    });
  });

  describe('stickiness when the sticky backend fails', () => {
    it('moves a pinned client to a live backend without a failed request, rewrites its cookie, and does not flap back', async () => {
      const a = await link('a');
      const b = await link('b');
      const p = await proxy([a, b], { stickiness: { cookie: { secrets: ['fault-suite-secret-0123456789abcdef0123'] } } });
      const first = await send(p.url);
      expect(first.body).toBe('a');
      const pinnedToA = stickyCookie(first.headers['set-cookie']);
      expect((await send(p.url, { headers: { cookie: pinnedToA } })).body).toBe('a');
      await a.fault.refuse();
      const moved = await send(p.url, { headers: { cookie: pinnedToA } });
      expect(moved.status).toBe(200);
      expect(moved.body).toBe('b');
      const pinnedToB = stickyCookie(moved.headers['set-cookie']);
      expect(pinnedToB).not.toBe(pinnedToA);
      await a.fault.pass();
      // a is back, and 'first' would pick it for a new client; the moved client stays on b.
      for (let i = 0; i < 3; i++) expect((await send(p.url, { headers: { cookie: pinnedToB } })).body).toBe('b');
      expect((await send(p.url)).body).toBe('a');
    });
  });

  describe('a backend that hangs', () => {
    it('retries a GET elsewhere after headersMs, answers a POST with 504 and never replays it', async () => {
      const a = await link('a');
      const b = await link('b');
      const p = await proxy([a, b], { timeouts: { headersMs: 300 } });
      await a.fault.blackhole();
      const get = await send(p.url);
      expect(get.status).toBe(200);
      expect(get.body).toBe('b');
      const post = await send(p.url, { method: 'POST', body: 'once' });
      expect(post.status).toBe(504);
      expect(deliveries([a, b], 'POST')).toBe(0);
      expect(a.backend.hits).toHaveLength(0);
      const failures = p.proxy.lb.snapshot().backends.find((s) => s.id === 'a')!.failures;
      expect(failures).toBeGreaterThanOrEqual(2);
    });

    it('waits out a slow but healthy link without a single spurious retry', async () => {
      const a = await link('a');
      const b = await link('b');
      const p = await proxy([a, b], { timeouts: { headersMs: 2000 } });
      await a.fault.latency(100);
      const replies = await Promise.all(
        Array.from({ length: 8 }, (_, i) => send(p.url, { method: i % 2 ? 'POST' : 'GET', body: i % 2 ? `p${i}` : undefined } as never)),
      );
      expect(replies.map((r) => r.body)).toEqual(Array(8).fill('a'));
      expect(a.backend.hits).toHaveLength(8);
      expect(b.backend.hits).toHaveLength(0);
    });

    it('cuts a response whose body stalls after the head instead of replaying it', async () => {
      const a = await link('a', (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('partial');
        // then nothing: the body never ends
      });
      const b = await link('b');
      const p = await proxy([a, b], { timeouts: { idleMs: 300 } });
      const outcome = await send(p.url).then(
        (reply) => `complete ${reply.status}`,
        (error: NodeJS.ErrnoException) => `cut ${error.code ?? error.message}`,
      );
      expect(outcome).toMatch(/^cut /);
      expect(b.backend.hits).toHaveLength(0);
    });
  });

  describe('5xx bursts', () => {
    it('keeps retries within the budget while every backend answers 503: no retry storm', async () => {
      const clients = 30;
      let attempts = 0;
      const held: ServerResponse[] = [];
      const retries: ServerResponse[] = [];
      let settled = false;
      const answer = (res: ServerResponse) => {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('overloaded');
      };
      const handler = (_req: IncomingMessage, res: ServerResponse) => {
        attempts++;
        if (attempts <= clients) {
          // Hold first attempts until all of them arrived, so all 30 requests are in flight together.
          held.push(res);
          if (held.length === clients) for (const r of held.splice(0)) answer(r);
        } else if (settled) {
          answer(res);
        } else {
          retries.push(res);
        }
      };
      const links = await Promise.all(['a', 'b', 'c'].map((id) => link(id, handler)));
      const p = await proxy(links, {
        balancer: { backends: links.map((l) => l.spec), algorithm: 'round-robin' },
        retryOn: ['connect', 'reset', 'timeout', 'status-503'],
        retryBudget: { percent: 20, minConcurrency: 3 },
      } as Partial<ProxyOptions>);
      let answered = 0;
      const replies = Array.from({ length: clients }, () =>
        send(p.url).then((r) => {
          answered++;
          return r;
        }),
      );
      // Every request the budget did not let retry has been answered; only then answer the retries,
      // so no budget slot is freed and reused during the burst.
      await until(() => attempts > clients && answered + retries.length === clients, 'the burst to settle');
      settled = true;
      const retriedDuringBurst = retries.length;
      for (const r of retries.splice(0)) answer(r);
      const statuses = (await Promise.all(replies)).map((r) => r.status);
      expect(statuses).toEqual(Array(clients).fill(503));
      const allowed = Math.max(3, Math.floor((clients * 20) / 100));
      // During the burst exactly 20 % of the 30 requests may retry; once the burst has drained, the
      // floor of 3 lets a few retried ones try a third time. Without a budget: 30 × 3 = 90 attempts.
      expect(retriedDuringBurst).toBe(allowed);
      expect(attempts - clients).toBeLessThanOrEqual(allowed + 3);
    });
  });

  describe('bodies over the replay limit', () => {
    it('replays a body of exactly maxReplayBytes byte for byte, and never one byte more', async () => {
      const limit = 4096;
      const a: Link = await link('a', () => {
        void a.fault.reset().then(() => a.fault.pass());
      });
      const b = await link('b', (_req, res, body) => res.end(createHash('sha256').update(body).digest('hex')));
      const p = await proxy([a, b], { maxReplayBytes: limit });
      const fits = 'f'.repeat(limit);
      const ok = await send(p.url, { method: 'PUT', body: fits });
      expect(ok.status).toBe(200);
      expect(ok.body).toBe(createHash('sha256').update(fits).digest('hex'));
      const over = await send(p.url, { method: 'PUT', body: 'o'.repeat(limit + 1) });
      expect(over.status).toBe(502);
      const chunkedOver = await sendChunked(p.url, 'PUT', ['c'.repeat(limit), 'c']);
      expect(chunkedOver).toBe(502);
      expect(deliveries([b], 'PUT')).toBe(1);
      expect(deliveries([a], 'PUT')).toBe(3);
    });
  });

  describe('a client that aborts during retries', () => {
    it('starts no further attempt and releases every lease once the client has gone', async () => {
      const a: Link = await link('a', () => {
        void a.fault.reset().then(() => a.fault.pass());
      });
      const b = await link('b');
      const c = await link('c');
      const log: AccessLogEntry[] = [];
      const p = await proxy([a, b, c], { timeouts: { headersMs: 5000 }, accessLog: (e) => log.push(e) });
      await b.fault.blackhole();
      const controller = new AbortController();
      const pending = send(p.url, { signal: controller.signal }).then(
        () => 'answered',
        () => 'aborted',
      );
      // The first attempt died on a; the retry is now stuck in b's blackhole.
      await until(() => a.backend.hits.length === 1 && b.fault.accepted > 0, 'the retry to b');
      controller.abort();
      expect(await pending).toBe('aborted');
      await until(() => log.length === 1, 'the access log entry');
      expect(log[0]).toMatchObject({ termination: 'client-aborted', attempts: 2 });
      // Every lease released: a third attempt would hold one on c until answered, and leave a hit there.
      await waitFor(() => p.proxy.lb.snapshot().backends.every((s) => s.inflight === 0), { what: 'every lease to be released' });
      expect(c.backend.hits).toHaveLength(0);
    });
  });

  describe('reused keep-alive sockets closed by the backend', () => {
    it('loses no GET when backends close idle keep-alive sockets just as the proxy reuses them', async () => {
      // A server with a tiny keep-alive timeout that does not advertise it (no `Keep-Alive: timeout=`),
      // so the proxy's pool cannot expire sockets first. Node adds a 1 s grace to
      // server.keepAliveTimeout, so the idle close is done here, as nginx's keepalive_timeout would.
      const idleCloseMs = 30;
      const links = await Promise.all(
        ['a', 'b'].map((id) =>
          link(id, (req, res) => {
            res.setHeader('connection', 'keep-alive');
            res.end(id);
            const socket = req.socket as typeof req.socket & { served?: number };
            const served = (socket.served = (socket.served ?? 0) + 1);
            setTimeout(() => {
              if (socket.served === served) socket.end();
            }, idleCloseMs).unref();
          }),
        ),
      );
      const p = await proxy(links, { balancer: { backends: links.map((l) => l.spec), algorithm: 'round-robin' } } as Partial<ProxyOptions>);
      const statuses: number[] = [];
      for (let i = 0; i < 100; i++) {
        statuses.push((await send(p.url, { path: `/${i}` })).status);
        // Pauses around the servers' idle limit, so some reuses race the servers' FIN.
        await delay(idleCloseMs - 12 + ((i * 7) % 24));
      }
      expect(statuses.filter((s) => s !== 200)).toEqual([]);
      // Sockets really were closed under the proxy: far more connections than a kept-alive pool needs.
      expect(links[0]!.fault.accepted + links[1]!.fault.accepted).toBeGreaterThan(10);
    });

    it('retries every GET whose connection the backend half-closes, while within the retry budget', async () => {
      const a = await link('a');
      const b = await link('b');
      const p = await proxy([a, b], { balancer: { backends: [a.spec, b.spec], algorithm: 'round-robin' } } as Partial<ProxyOptions>);
      for (let i = 0; i < 4; i++) expect((await send(p.url)).status).toBe(200);
      await a.fault.halfClose();
      // Waves of 3: within the retry budget's floor, so every failed attempt may be retried.
      const replies = [];
      for (let wave = 0; wave < 7; wave++) replies.push(...(await Promise.all([0, 1, 2].map((i) => send(p.url, { path: `/${wave}/${i}` })))));
      expect(replies.map((r) => r.status)).toEqual(Array(21).fill(200));
      expect(replies.every((r) => r.body === 'b')).toBe(true);
    });
  });

  describe('Retry-After', () => {
    it('waits at least the Retry-After of a 503 before retrying the only backend, within the deadline', async () => {
      const arrivals: number[] = [];
      const a = await link('a', (_req, res) => {
        arrivals.push(performance.now());
        if (arrivals.length === 1) {
          res.writeHead(503, { 'retry-after': '1', 'content-type': 'text/plain' });
          res.end('come back in a second');
        } else {
          res.end('a');
        }
      });
      const p = await proxy([a], { retryOn: ['connect', 'reset', 'timeout', 'status-503'], timeouts: { totalMs: 5000 } });
      const reply = await send(p.url);
      expect(reply.status).toBe(200);
      expect(arrivals).toHaveLength(2);
      // A lower bound, not a speed claim: the retry must not come before the backend asked.
      expect(arrivals[1]! - arrivals[0]!).toBeGreaterThanOrEqual(950);
    });

    it('passes a 503 through with its Retry-After, without retrying, when the wait would overrun the deadline', async () => {
      const a = await link('a', (_req, res) => {
        res.writeHead(503, { 'retry-after': '120', 'content-type': 'text/plain' });
        res.end('maintenance');
      });
      const p = await proxy([a], { retryOn: ['connect', 'reset', 'timeout', 'status-503'], timeouts: { totalMs: 2000 } });
      const reply = await send(p.url);
      expect(reply.status).toBe(503);
      expect(reply.headers['retry-after']).toBe('120');
      expect(a.backend.hits).toHaveLength(1);
    });
  });

  function stickyCookie(setCookie: string | string[] | undefined): string {
    const line = (Array.isArray(setCookie) ? setCookie : [setCookie ?? '']).find((l) => l.startsWith('fulcrum_srv='));
    if (line === undefined) throw new Error('no sticky cookie in the response');
    return line.split(';')[0]!;
  }

  /** A request with a chunked body (no Content-Length): the proxy cannot know its size in advance. */
  function sendChunked(url: string, method: string, chunks: string[]): Promise<number> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(new URL('/', url), { method, agent: false, headers: { 'transfer-encoding': 'chunked' } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      for (const chunk of chunks) req.write(chunk);
      req.end();
    });
  }
});
