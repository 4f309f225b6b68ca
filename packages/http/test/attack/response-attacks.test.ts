/**
 * Backend answers that used to break the response path: informational 1xx responses before the
 * final one, and bodiless responses (304, 204, HEAD) that carry a Content-Length. Each reaches the
 * client intact over a raw socket, and the backend is never counted as failing for them.
 */
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProxy, type TestProxy } from '../proxy/helpers';
import { RawConnection, count } from './raw';

let backend: Server;
let rawBackend: NetServer;
let proxy: TestProxy;
let rawProxy: TestProxy;

beforeAll(async () => {
  backend = createServer((req, res) => {
    if (req.url === '/early-hints') {
      res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
      res.writeHead(200, { 'content-type': 'text/plain' }).end('final');
    } else if (req.url === '/processing') {
      res.writeProcessing();
      res.writeProcessing();
      res.end('done');
    } else if (req.url === '/not-modified') {
      res.writeHead(304, { etag: '"v1"', 'content-length': '1234' }).end();
    } else if (req.url === '/no-content') {
      res.writeHead(204, { 'content-length': '0' }).end();
    } else {
      res.writeHead(200, { 'content-length': '5' }).end(req.method === 'HEAD' ? undefined : 'hello');
    }
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  // A backend written as bytes: Node would not let its own server send these heads.
  rawBackend = createNetServer((socket) => {
    socket.on('error', () => undefined);
    socket.on('data', () => {
      socket.write('HTTP/1.1 304 Not Modified\r\nETag: "v2"\r\nContent-Length: 99\r\n\r\n');
    });
  });
  await new Promise<void>((resolve) => rawBackend.listen(0, '127.0.0.1', resolve));
  proxy = await startProxy({
    balancer: { backends: [{ id: 'a', address: `http://127.0.0.1:${(backend.address() as AddressInfo).port}` }], outlier: { consecutiveFailures: 1 } },
  });
  rawProxy = await startProxy({ balancer: { backends: [{ id: 'r', address: `http://127.0.0.1:${(rawBackend.address() as AddressInfo).port}` }] } });
});

afterAll(async () => {
  await proxy?.close();
  await rawProxy?.close();
  backend?.closeAllConnections();
  await new Promise<void>((resolve) => backend?.close(() => resolve()));
  await new Promise<void>((resolve) => rawBackend?.close(() => resolve()));
});

async function exchange(p: TestProxy, request: string, done: (text: string) => boolean): Promise<string> {
  const conn = await RawConnection.open(p.port);
  try {
    conn.write(request);
    return await conn.until(done);
  } finally {
    conn.destroy();
  }
}

describe('informational responses from a backend', () => {
  it('relays 103 Early Hints with its Link header, then the final response, and counts no failure', async () => {
    const text = await exchange(proxy, 'GET /early-hints HTTP/1.1\r\nHost: a\r\n\r\n', (t) => t.includes('final'));
    expect(text.startsWith('HTTP/1.1 103 Early Hints\r\n')).toBe(true);
    expect(text.toLowerCase()).toContain('link: </style.css>; rel=preload; as=style');
    expect(text).toContain('HTTP/1.1 200 OK');
    const b = proxy.proxy.lb.snapshot().backends[0]!;
    expect(b.failures).toBe(0);
    expect(b.state).toBe('up');
  });

  it('delivers the final response after 102 Processing, and counts no failure', async () => {
    const text = await exchange(proxy, 'GET /processing HTTP/1.1\r\nHost: a\r\n\r\n', (t) => t.includes('done'));
    expect(count(text, 'HTTP/1.1 200 OK')).toBe(1);
    expect(proxy.proxy.lb.snapshot().backends[0]!.failures).toBe(0);
  });
});

describe('bodiless responses with a Content-Length', () => {
  it('delivers a 304 with the Content-Length the backend sent, and keeps the connection', async () => {
    const text = await exchange(proxy, 'GET /not-modified HTTP/1.1\r\nHost: a\r\n\r\nGET /after HTTP/1.1\r\nHost: a\r\n\r\n', (t) => t.endsWith('hello'));
    expect(text.startsWith('HTTP/1.1 304 Not Modified\r\n')).toBe(true);
    const head = text.slice(0, text.indexOf('\r\n\r\n')).toLowerCase();
    expect(head).toContain('etag: "v1"');
    expect(head).toContain('content-length: 1234');
    expect(proxy.proxy.lb.snapshot().backends[0]!.failures).toBe(0);
  });

  it('delivers a 304 whose Content-Length no Node server would send', async () => {
    const text = await exchange(rawProxy, 'GET / HTTP/1.1\r\nHost: a\r\n\r\n', (t) => t.includes('\r\n\r\n'));
    expect(text.startsWith('HTTP/1.1 304 Not Modified\r\n')).toBe(true);
    expect(text.toLowerCase()).toContain('content-length: 99');
  });

  it('delivers a 204 with Content-Length: 0 and a HEAD answer with the length of the body it describes', async () => {
    const noContent = await exchange(proxy, 'GET /no-content HTTP/1.1\r\nHost: a\r\n\r\n', (t) => t.includes('\r\n\r\n'));
    expect(noContent.startsWith('HTTP/1.1 204 No Content\r\n')).toBe(true);
    const head = await exchange(proxy, 'HEAD /x HTTP/1.1\r\nHost: a\r\n\r\nGET /x HTTP/1.1\r\nHost: a\r\n\r\n', (t) => t.endsWith('hello'));
    expect(head.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true);
    expect(head.slice(0, head.indexOf('\r\n\r\n')).toLowerCase()).toContain('content-length: 5');
    expect(count(head, 'hello')).toBe(1);
  });
});
