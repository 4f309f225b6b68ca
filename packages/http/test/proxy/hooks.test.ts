import { createServer, type IncomingMessage } from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isInvalidOptionError } from '@fulcrum/core';
import { createProxy, createProxyServer, type ProxyHooks, type ProxyOptions } from '@fulcrum/http';
import { useEngine, ENGINES, closedPort, send, startBackend, startProxy, type TestBackend } from './helpers';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function backend(id: string, handler?: Parameters<typeof startBackend>[1]): Promise<TestBackend> {
  const b = await startBackend(id, handler);
  cleanups.push(() => b.close());
  return b;
}

async function proxyWith(backends: { id: string; address: string }[], extra: Partial<ProxyOptions>) {
  const errors: unknown[] = [];
  const p = await startProxy({ balancer: { backends, algorithm: 'first' }, onError: (e) => errors.push(e), ...extra });
  cleanups.push(() => p.close());
  return { p, errors };
}

describe.each(ENGINES)('the %s engine', (engine) => {
  beforeAll(() => useEngine(engine));

  describe('on.proxyReq', () => {
    it('sets and removes upstream request headers, and sees the attempt it is called for', async () => {
      const b = await backend('b0');
      const seen: { method: string; path: string; backend: string; attempt: number; cookie: string | undefined; url: string | undefined }[] = [];
      const on: ProxyHooks = {
        proxyReq(proxyReq, req) {
          seen.push({
            method: proxyReq.method,
            path: proxyReq.path,
            backend: proxyReq.backend.id,
            attempt: proxyReq.attempt,
            cookie: proxyReq.getHeader('cookie'),
            url: req.url,
          });
          proxyReq.setHeader('X-User', 'alice').appendHeader('x-tag', ['a', 'b']).removeHeader('cookie');
          expect(proxyReq.hasHeader('x-user')).toBe(true);
          expect(proxyReq.getHeaders()['x-tag']).toEqual(['a', 'b']);
        },
      };
      const { p } = await proxyWith([b], { on });
      const res = await send(p.url, { method: 'POST', path: '/orders?x=1', headers: { cookie: 'sid=1', 'x-user': 'mallory' }, body: 'hi' });
      expect(res.status).toBe(200);
      expect(b.hits[0]!.headers['x-user']).toBe('alice');
      expect(b.hits[0]!.headers['x-tag']).toBe('a, b');
      expect(b.hits[0]!.headers.cookie).toBeUndefined();
      expect(b.hits[0]!.body).toBe('hi');
      expect(seen).toEqual([{ method: 'POST', path: '/orders?x=1', backend: 'b0', attempt: 1, cookie: 'sid=1', url: '/orders?x=1' }]);
    });

    it('runs again for a retry, with the new backend', async () => {
      const b = await backend('b1');
      const calls: [string, number][] = [];
      const { p } = await proxyWith([{ id: 'dead', address: `http://127.0.0.1:${await closedPort()}` }, b], {
        on: {
          proxyReq(proxyReq) {
            calls.push([proxyReq.backend.id, proxyReq.attempt]);
            proxyReq.setHeader('x-attempt', proxyReq.attempt);
          },
        },
      });
      expect((await send(p.url)).status).toBe(200);
      expect(calls).toEqual([
        ['dead', 1],
        ['b1', 2],
      ]);
      expect(b.hits[0]!.headers['x-attempt']).toBe('2');
    });

    it('may set the Host header the backend sees', async () => {
      const b = await backend('b0');
      const { p } = await proxyWith([b], { on: { proxyReq: (proxyReq) => void proxyReq.setHeader('host', 'internal.example') } });
      await send(p.url, { headers: { host: 'public.example' } });
      expect(b.hits[0]!.headers.host).toBe('internal.example');
    });

    it.each([
      ['a CR/LF in a value', (r: Parameters<NonNullable<ProxyHooks['proxyReq']>>[0]) => r.setHeader('x-user', 'alice\r\nx-admin: 1')],
      ['a bare LF in a value', (r: Parameters<NonNullable<ProxyHooks['proxyReq']>>[0]) => r.setHeader('x-user', 'alice\nx-admin: 1')],
      ['a NUL in a value', (r: Parameters<NonNullable<ProxyHooks['proxyReq']>>[0]) => r.appendHeader('x-user', ['ok', 'a\0b'])],
      ['a CR/LF in a name', (r: Parameters<NonNullable<ProxyHooks['proxyReq']>>[0]) => r.setHeader('x-a\r\nx-admin', '1')],
      ['X-Forwarded-For (the proxy owns it)', (r: Parameters<NonNullable<ProxyHooks['proxyReq']>>[0]) => r.setHeader('x-forwarded-for', '10.0.0.1')],
      ['removing Forwarded', (r: Parameters<NonNullable<ProxyHooks['proxyReq']>>[0]) => r.removeHeader('forwarded')],
      ['Transfer-Encoding', (r: Parameters<NonNullable<ProxyHooks['proxyReq']>>[0]) => r.setHeader('transfer-encoding', 'chunked')],
      ['Content-Length', (r: Parameters<NonNullable<ProxyHooks['proxyReq']>>[0]) => r.setHeader('content-length', '0')],
      ['Connection', (r: Parameters<NonNullable<ProxyHooks['proxyReq']>>[0]) => r.setHeader('connection', 'x-user')],
      ['an object as a value', (r: Parameters<NonNullable<ProxyHooks['proxyReq']>>[0]) => r.setHeader('x-user', { toString: () => 'x' } as unknown as string)],
    ])('refuses %s: nothing reaches the backend, the client gets 500', async (_name, edit) => {
      const b = await backend('b0');
      const { p, errors } = await proxyWith([b], { on: { proxyReq: (proxyReq) => void edit(proxyReq) } });
      const res = await send(p.url, { method: 'POST', body: 'x' });
      expect(res.status).toBe(500);
      expect(res.headers['x-admin']).toBeUndefined();
      expect(b.hits).toHaveLength(0);
      expect(errors.some((e) => isInvalidOptionError(e) && e.path.startsWith('on.proxyReq'))).toBe(true);
      // The backend did nothing wrong.
      expect(p.proxy.lb.snapshot().backends[0]!.failures).toBe(0);
    });

    it('lets a hook set forwarding headers when the proxy does not add them', async () => {
      const b = await backend('b0');
      const { p } = await proxyWith([b], {
        forwardedHeaders: false,
        on: { proxyReq: (proxyReq) => void proxyReq.setHeader('x-forwarded-for', '203.0.113.9') },
      });
      await send(p.url);
      expect(b.hits[0]!.headers['x-forwarded-for']).toBe('203.0.113.9');
    });

    it('refuses a hook that returns a promise (nothing would wait for it)', async () => {
      const b = await backend('b0');
      const { p, errors } = await proxyWith([b], { on: { proxyReq: (async () => undefined) as unknown as ProxyHooks['proxyReq'] } });
      expect((await send(p.url)).status).toBe(500);
      expect(b.hits).toHaveLength(0);
      expect(errors.some((e) => isInvalidOptionError(e) && /synchronous/.test(e.message))).toBe(true);
    });

    it('answers 500 when the hook throws, and reports the error', async () => {
      const b = await backend('b0');
      const boom = new Error('boom');
      const { p, errors } = await proxyWith([b], {
        on: {
          proxyReq() {
            throw boom;
          },
        },
      });
      expect((await send(p.url)).status).toBe(500);
      expect(errors).toContain(boom);
      expect(b.hits).toHaveLength(0);
    });
  });

  describe('on.proxyRes', () => {
    it('changes, adds and removes response headers before the client sees them', async () => {
      const b = await backend('b0', (_req, res) => {
        res.writeHead(201, { 'x-powered-by': 'php', 'x-backend': 'b0', 'set-cookie': ['a=1', 'b=2'] });
        res.end('made');
      });
      const statuses: number[] = [];
      const { p } = await proxyWith([b], {
        on: {
          proxyRes(proxyRes, req) {
            statuses.push(proxyRes.statusCode);
            expect(proxyRes.backend.id).toBe('b0');
            expect(req.url).toBe('/x');
            delete proxyRes.headers['x-powered-by'];
            proxyRes.headers['x-served-by'] = 'edge';
            proxyRes.headers['set-cookie'] = [...(proxyRes.headers['set-cookie'] as string[]), 'c=3'];
          },
        },
      });
      const res = await send(p.url, { path: '/x' });
      expect(res.status).toBe(201);
      expect(res.body).toBe('made');
      expect(res.headers['x-powered-by']).toBeUndefined();
      expect(res.headers['x-served-by']).toBe('edge');
      expect(res.headers['x-backend']).toBe('b0');
      expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2', 'c=3']);
      expect(statuses).toEqual([201]);
    });

    it.each([
      ['a CR/LF in a value', (h: Record<string, string | string[]>) => void (h['x-a'] = 'v\r\nset-cookie: admin=1')],
      ['a CR/LF in a list value', (h: Record<string, string | string[]>) => void (h['set-cookie'] = ['ok=1', 'v\r\n\r\n<script>'])],
      ['a CR/LF in a name', (h: Record<string, string | string[]>) => void (h['x-a\r\nset-cookie'] = 'admin=1')],
      ['a changed Content-Length', (h: Record<string, string | string[]>) => void (h['content-length'] = '1')],
      ['Transfer-Encoding', (h: Record<string, string | string[]>) => void (h['transfer-encoding'] = 'chunked')],
    ])('refuses %s: the client gets 500 and nothing of the edit', async (_name, edit) => {
      const b = await backend('b0', (_req, res) => {
        res.writeHead(200, { 'content-length': '2' });
        res.end('ok');
      });
      const { p, errors } = await proxyWith([b], { on: { proxyRes: (proxyRes) => edit(proxyRes.headers) } });
      const res = await send(p.url);
      expect(res.status).toBe(500);
      expect(res.headers['set-cookie']).toBeUndefined();
      expect(res.body).not.toContain('<script>');
      expect(errors.some((e) => isInvalidOptionError(e) && e.path.startsWith('on.proxyRes'))).toBe(true);
      expect(p.proxy.lb.snapshot().backends[0]!.failures).toBe(0);
      // The proxy keeps serving.
      const again = await startProxy({ balancer: { backends: [b] } });
      cleanups.push(() => again.close());
      expect((await send(again.url)).status).toBe(200);
    });
  });

  it('keeps the Content-Length a proxyRes hook deleted: the client still gets the framing', async () => {
    const b = await backend('b0', (_req, res) => {
      res.writeHead(200, { 'content-length': '5', 'x-a': '1' });
      res.end('hello');
    });
    const { p } = await proxyWith([b], { on: { proxyRes: (proxyRes) => void (proxyRes.headers = { 'x-b': '2' }) } });
    const res = await send(p.url);
    expect(res.status).toBe(200);
    expect(res.headers['content-length']).toBe('5');
    expect(res.headers['x-a']).toBeUndefined();
    expect(res.headers['x-b']).toBe('2');
    expect(res.body).toBe('hello');
  });

  it('validates the hooks at construction', async () => {
    const backends = [{ id: 'b', address: 'http://127.0.0.1:1' }];
    await expect(startProxy({ balancer: { backends }, on: { proxyReq: 'no' as never } })).rejects.toThrow(/on\.proxyReq: must be a function/);
    await expect(startProxy({ balancer: { backends }, on: { onProxyReq: () => undefined } as never })).rejects.toThrow(/on\.onProxyReq: is not a hook/);
    await expect(startProxy({ balancer: { backends }, on: 'x' as never })).rejects.toThrow(/^on: must be an object/);
  });
});

describe('the hooks on HTTP/2 streams (createProxyServer with h2c)', () => {
  async function h2request(port: number, headers: Record<string, string>): Promise<{ status: number; headers: http2.IncomingHttpHeaders }> {
    const session = http2.connect(`http://127.0.0.1:${port}`);
    try {
      return await new Promise((resolve, reject) => {
        const stream = session.request({ ':path': '/h2', ...headers });
        stream.on('response', (head) => {
          stream.resume();
          stream.on('end', () => resolve({ status: Number(head[':status']), headers: head }));
        });
        stream.on('error', reject);
        stream.end();
      });
    } finally {
      session.close();
    }
  }

  async function serve(b: TestBackend, on: ProxyHooks): Promise<number> {
    const server = createProxyServer({ balancer: { backends: [b] }, http2: { h2c: true }, on });
    await server.listen(0, '127.0.0.1');
    cleanups.push(() => server.close(0));
    return server.address()!.port;
  }

  it('runs proxyReq and proxyRes for an HTTP/2 stream', async () => {
    const b = await backend('b0');
    const port = await serve(b, {
      proxyReq: (proxyReq) => void proxyReq.setHeader('x-user', 'alice').removeHeader('x-secret'),
      proxyRes: (proxyRes) => void (proxyRes.headers['x-served-by'] = proxyRes.backend.id),
    });
    const res = await h2request(port, { 'x-secret': 's' });
    expect(res.status).toBe(200);
    expect(res.headers['x-served-by']).toBe('b0');
    expect(b.hits[0]!.headers['x-user']).toBe('alice');
    expect(b.hits[0]!.headers['x-secret']).toBeUndefined();
  });

  it('refuses a CR/LF a hook puts in a header: 500, nothing forwarded', async () => {
    const b = await backend('b0');
    const port = await serve(b, { proxyReq: (proxyReq) => void proxyReq.setHeader('x-user', 'a\r\nx-admin: 1') });
    expect((await h2request(port, {})).status).toBe(500);
    expect(b.hits).toHaveLength(0);
  });
});

describe('createProxy honours req.headers changed before it (middleware)', () => {
  async function withMiddleware(b: TestBackend, middleware: (req: IncomingMessage) => void) {
    const proxy = createProxy({ balancer: { backends: [b] } });
    const server = createServer((req, res) => {
      middleware(req);
      proxy(req, res);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await proxy.close();
    });
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('forwards headers middleware set, replaced or deleted', async () => {
    const raw: string[][] = [];
    const b = await backend('b0', (req, res) => {
      raw.push(req.rawHeaders);
      res.end('ok');
    });
    const url = await withMiddleware(b, (req) => {
      req.headers['x-user'] = 'alice';
      req.headers.authorization = 'Bearer internal';
      req.headers['x-count'] = 3 as unknown as string;
      delete req.headers.cookie;
    });
    await send(url, { headers: { Authorization: 'Basic Y2xpZW50', Cookie: 'sid=1', 'X-Keep': 'Kept' } });
    const seen = b.hits[0]!.headers;
    expect(seen['x-user']).toBe('alice');
    expect(seen.authorization).toBe('Bearer internal');
    expect(seen['x-count']).toBe('3');
    expect(seen.cookie).toBeUndefined();
    // Untouched headers keep their spelling.
    expect(raw[0]).toContain('X-Keep');
  });

  it('forwards untouched repeated headers as the client sent them', async () => {
    const raw: string[][] = [];
    const b = await backend('b0', (req, res) => {
      raw.push(req.rawHeaders);
      res.end('ok');
    });
    const url = await withMiddleware(b, (req) => void req.headers['x-dup']);
    await send(url, { headers: { 'X-Dup': ['one', 'two'] } });
    const lines = raw[0]!.filter((_v, i) => i % 2 === 0 && raw[0]![i]!.toLowerCase() === 'x-dup').length;
    expect(lines).toBe(2);
  });

  it('still strips hop-by-hop headers middleware added, and refuses CR/LF it put in a value', async () => {
    const b = await backend('b0');
    const url = await withMiddleware(b, (req) => {
      req.headers.upgrade = 'websocket';
      req.headers['proxy-authorization'] = 'Basic x';
      req.headers['x-forwarded-for'] = '10.9.9.9';
    });
    await send(url);
    expect(b.hits[0]!.headers.upgrade).toBeUndefined();
    expect(b.hits[0]!.headers['proxy-authorization']).toBeUndefined();
    // Treated as the client's claim: the proxy appends the socket address after it.
    expect(b.hits[0]!.headers['x-forwarded-for']).toBe('10.9.9.9, 127.0.0.1');
    const hostile = await backend('b1');
    const url2 = await withMiddleware(hostile, (req) => void (req.headers['x-user'] = 'a\r\nx-admin: 1'));
    expect((await send(url2)).status).toBe(400);
    expect(hostile.hits).toHaveLength(0);
  });
});
