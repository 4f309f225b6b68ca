import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { useEngine, ENGINES, send, startBackend, startProxy, type TestBackend } from './helpers';
import { waitFor } from '../../../../test-support/wait-for';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function three(handler?: Parameters<typeof startBackend>[1]): Promise<TestBackend[]> {
  const list = await Promise.all(['b0', 'b1', 'b2'].map((id) => startBackend(id, handler)));
  for (const b of list) cleanups.push(() => b.close());
  return list;
}

function cookieOf(setCookie: string | string[] | undefined): string {
  const first = (Array.isArray(setCookie) ? setCookie[0] : setCookie) ?? '';
  return first.split(';')[0]!;
}

describe.each(ENGINES)('the %s engine', (engine) => {
  beforeAll(() => useEngine(engine));

  describe('cookie stickiness through the proxy', () => {
    it('keeps a client on one backend over many requests', async () => {
      const list = await three();
      const p = await startProxy({
        balancer: { backends: list.map((b) => ({ id: b.id, address: b.address })), algorithm: 'round-robin' },
        stickiness: { cookie: { secrets: [SECRET] } },
      });
      cleanups.push(() => p.close());
      const first = await send(p.url);
      const cookie = cookieOf(first.headers['set-cookie']);
      expect(cookie).toMatch(/^fulcrum_srv=/);
      for (let i = 0; i < 20; i++) {
        const reply = await send(p.url, { headers: { cookie } });
        expect(reply.body).toBe(first.body);
        expect(reply.headers['set-cookie']).toBeUndefined();
      }
    });

    it('never puts a backend address in the cookie', async () => {
      const list = await three();
      const p = await startProxy({
        balancer: { backends: list.map((b) => ({ id: b.id, address: b.address })) },
        stickiness: { cookie: { secrets: [SECRET] } },
      });
      cleanups.push(() => p.close());
      const setCookie = String((await send(p.url)).headers['set-cookie']);
      for (const b of list) expect(setCookie).not.toContain(String(b.port));
      expect(setCookie).not.toContain('127.0.0.1');
      expect(setCookie).toContain('HttpOnly');
    });

    it('marks the cookie Secure behind a trusted proxy that says X-Forwarded-Proto: https, and only then', async () => {
      const list = await three();
      const backends = list.map((b) => ({ id: b.id, address: b.address }));
      const trusted = await startProxy({ balancer: { backends }, stickiness: { cookie: { secrets: [SECRET] } }, trustedProxies: ['loopback'] });
      cleanups.push(() => trusted.close());
      const secure = (reply: { headers: Record<string, unknown> }) => /;\s*Secure(;|$)/i.test(String(reply.headers['set-cookie']));
      expect(secure(await send(trusted.url, { headers: { 'x-forwarded-proto': 'https' } }))).toBe(true);
      expect(secure(await send(trusted.url, { headers: { 'x-forwarded-proto': 'HTTPS, http' } }))).toBe(true);
      expect(secure(await send(trusted.url, { headers: { forwarded: 'for=192.0.2.1;proto=https' } }))).toBe(true);
      expect(secure(await send(trusted.url, { headers: { 'x-forwarded-proto': 'http' } }))).toBe(false);
      expect(secure(await send(trusted.url))).toBe(false);
      // The same header from a peer outside trustedProxies (here: nobody is trusted) counts for nothing.
      const untrusted = await startProxy({ balancer: { backends }, stickiness: { cookie: { secrets: [SECRET] } }, trustedProxies: ['10.0.0.0/8'] });
      cleanups.push(() => untrusted.close());
      expect(secure(await send(untrusted.url, { headers: { 'x-forwarded-proto': 'https' } }))).toBe(false);
      const none = await startProxy({ balancer: { backends }, stickiness: { cookie: { secrets: [SECRET] } } });
      cleanups.push(() => none.close());
      expect(secure(await send(none.url, { headers: { 'x-forwarded-proto': 'https', forwarded: 'proto=https' } }))).toBe(false);
    });

    it('ignores and reissues forged, truncated, oversized and garbage cookies', async () => {
      const list = await three();
      const p = await startProxy({
        balancer: { backends: list.map((b) => ({ id: b.id, address: b.address })), algorithm: 'round-robin' },
        stickiness: { cookie: { secrets: [SECRET] } },
      });
      cleanups.push(() => p.close());
      const good = cookieOf((await send(p.url)).headers['set-cookie']);
      const value = good.slice('fulcrum_srv='.length);
      const forged = [
        `fulcrum_srv=${value.slice(0, -2)}`,
        `fulcrum_srv=${value.slice(0, -1)}${value.endsWith('A') ? 'B' : 'A'}`,
        `fulcrum_srv=${'x'.repeat(5000)}`,
        'fulcrum_srv=b1',
        'fulcrum_srv=%00%0d%0a',
        `fulcrum_srv=${Buffer.from('b2').toString('base64url')}.0.AAAA`,
      ];
      for (const cookie of forged) {
        const reply = await send(p.url, { headers: { cookie } });
        expect(reply.status).toBe(200);
        // Not obeyed: the proxy chose and issued a fresh, valid cookie.
        expect(reply.headers['set-cookie']).toBeDefined();
        const fresh = cookieOf(reply.headers['set-cookie']);
        const again = await send(p.url, { headers: { cookie: fresh } });
        expect(again.body).toBe(reply.body);
      }
    });

    it('moves a client whose backend went into maintenance and rewrites its cookie', async () => {
      const list = await three();
      const p = await startProxy({
        balancer: { backends: list.map((b) => ({ id: b.id, address: b.address })), algorithm: 'round-robin' },
        stickiness: { cookie: { secrets: [SECRET] } },
      });
      cleanups.push(() => p.close());
      const first = await send(p.url);
      p.proxy.lb.maintain(first.body);
      const moved = await send(p.url, { headers: { cookie: cookieOf(first.headers['set-cookie']) } });
      expect(moved.body).not.toBe(first.body);
      const next = await send(p.url, { headers: { cookie: cookieOf(moved.headers['set-cookie']) } });
      expect(next.body).toBe(moved.body);
    });
  });

  describe('source-IP stickiness through the proxy', () => {
    it('does not let a spoofed X-Forwarded-For move a directly connected client', async () => {
      const list = await three();
      const p = await startProxy({
        balancer: { backends: list.map((b) => ({ id: b.id, address: b.address })), algorithm: 'round-robin' },
        stickiness: { sourceIp: {} },
      });
      cleanups.push(() => p.close());
      const first = (await send(p.url)).body;
      for (let i = 0; i < 10; i++) {
        const reply = await send(p.url, { headers: { 'x-forwarded-for': `198.51.100.${i}` } });
        expect(reply.body).toBe(first);
      }
    });

    it('reads the client from X-Forwarded-For behind a trusted proxy', async () => {
      const list = await three();
      const p = await startProxy({
        balancer: { backends: list.map((b) => ({ id: b.id, address: b.address })), algorithm: 'round-robin' },
        stickiness: { sourceIp: {} },
        trustedProxies: ['127.0.0.1'],
      });
      cleanups.push(() => p.close());
      const seen = new Map<string, Set<string>>();
      for (let round = 0; round < 3; round++) {
        for (const client of ['198.51.100.1', '198.51.100.2', '198.51.100.3']) {
          const reply = await send(p.url, { headers: { 'x-forwarded-for': client } });
          seen.set(client, (seen.get(client) ?? new Set()).add(reply.body));
        }
      }
      for (const backendsSeen of seen.values()) expect(backendsSeen.size).toBe(1);
      expect(new Set([...seen.values()].map((s) => [...s][0])).size).toBe(3);
    });
  });

  describe('WebSockets through the proxy', () => {
    it('upgrades and relays messages both ways, holding a lease while open', async () => {
      const server = createServer();
      const wss = new WebSocketServer({ server });
      wss.on('connection', (socket, req) => {
        socket.on('message', (data) => socket.send(`echo:${data.toString()}:${req.headers['x-forwarded-for']}`));
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      cleanups.push(
        () =>
          new Promise<void>((resolve) => {
            wss.close();
            server.closeAllConnections();
            server.close(() => resolve());
          }),
      );
      const port = (server.address() as AddressInfo).port;
      const p = await startProxy({ balancer: { backends: [{ id: 'ws', address: `http://127.0.0.1:${port}` }] } });
      cleanups.push(() => p.close());
      const client = new WebSocket(`ws://127.0.0.1:${p.port}/chat`);
      await new Promise<void>((resolve, reject) => {
        client.once('open', () => resolve());
        client.once('error', reject);
      });
      expect(p.proxy.lb.snapshot().backends[0]!.inflight).toBe(1);
      const reply = await new Promise<string>((resolve) => {
        client.once('message', (data) => resolve(data.toString()));
        client.send('hello');
      });
      expect(reply).toBe('echo:hello:127.0.0.1');
      await new Promise<void>((resolve) => {
        client.once('close', () => resolve());
        client.close();
      });
      // The upstream socket closes after the client's: the lease ends with it.
      await waitFor(() => p.proxy.lb.snapshot().backends[0]!.inflight === 0, { what: 'the upgrade’s lease to be released' });
    });

    it('answers 503 to an upgrade when no backend is available', async () => {
      const p = await startProxy({ balancer: { backends: [] } });
      cleanups.push(() => p.close());
      const client = new WebSocket(`ws://127.0.0.1:${p.port}/`);
      const status = await new Promise<number>((resolve) => {
        client.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
        client.once('error', () => resolve(-1));
      });
      expect(status).toBe(503);
    });
  });
});
