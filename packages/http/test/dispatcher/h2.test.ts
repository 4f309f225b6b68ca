// The balanced dispatcher speaking HTTP/2 to its instances (`allowH2`), against real node:http2
// servers over TLS with ALPN: each request is balanced on its own while the requests to one instance
// share one connection as concurrent streams.
import { createServer as createHttpsServer } from 'node:https';
import { createSecureServer, type Http2SecureServer } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request } from 'undici';
import { isInvalidOptionError } from '@fulcrum/core';
import { createBalancedDispatcher, type BalancedDispatcherOptions } from '../../src/dispatcher';
import { certDir, type CertDir, type TestCert } from '../tls/certs';

let certs: CertDir;
let cert: TestCert;
beforeAll(() => {
  certs = certDir();
  cert = certs.make('h2', 'localhost', ['localhost']);
});
afterAll(() => certs.remove());

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface H2Backend {
  id: string;
  address: string;
  sessions: number;
  requests: number;
  versions: string[];
  close(): Promise<void>;
}

async function h2Backend(id: string, options: { allowHTTP1?: boolean } = {}): Promise<H2Backend> {
  const server: Http2SecureServer = createSecureServer({ key: cert.key, cert: cert.cert, allowHTTP1: options.allowHTTP1 ?? false });
  const state: H2Backend = { id, address: '', sessions: 0, requests: 0, versions: [], close: () => Promise.resolve() };
  const sessions = new Set<import('node:http2').ServerHttp2Session>();
  server.on('session', (session) => {
    state.sessions++;
    sessions.add(session);
    session.on('close', () => sessions.delete(session));
  });
  server.on('request', (req, res) => {
    state.requests++;
    state.versions.push(req.httpVersion);
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id, version: req.httpVersion, method: req.method, body: Buffer.concat(chunks).toString() }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.address = `https://localhost:${(server.address() as AddressInfo).port}`;
  let closed: Promise<void> | undefined;
  state.close = () =>
    (closed ??= new Promise<void>((resolve) => {
      server.close(() => resolve());
      // Open sessions would keep close() waiting.
      for (const session of sessions) session.destroy();
    }));
  cleanups.push(() => state.close());
  return state;
}

function dispatcher(backends: readonly { id: string; address: string }[], options: Partial<BalancedDispatcherOptions> = {}) {
  const d = createBalancedDispatcher({
    balancer: { backends: backends.map((b) => ({ id: b.id, address: b.address })), algorithm: 'round-robin' },
    backendTls: { ca: cert.cert },
    // The instances' certificate names them (localhost), not the logical origin.
    hostHeader: 'backend',
    ...options,
  });
  cleanups.push(() => d.destroy());
  return d;
}

async function get(d: ReturnType<typeof dispatcher>, init: { method?: string; body?: string } = {}) {
  const res = await request('http://users.internal/', { dispatcher: d, method: (init.method ?? 'GET') as 'GET', body: init.body });
  return { status: res.statusCode, json: (await res.body.json()) as { id: string; version: string; method: string; body: string } };
}

describe('createBalancedDispatcher({ allowH2 })', () => {
  it('speaks HTTP/2 to TLS instances that negotiate h2, balancing each request, one connection per instance', async () => {
    const list = await Promise.all([h2Backend('a'), h2Backend('b')]);
    const d = dispatcher(list, { allowH2: true });
    // One request each first: until ALPN has said h2, undici's pool counts a connecting connection
    // as busy and would open one per request of a cold burst.
    for (let i = 0; i < 2; i++) expect((await get(d)).json.version).toBe('2.0');
    const replies = await Promise.all(Array.from({ length: 40 }, () => get(d)));
    expect(replies.every((r) => r.status === 200 && r.json.version === '2.0')).toBe(true);
    // Balanced per request, not per connection: round robin gives each instance half.
    expect(list.map((b) => b.requests)).toEqual([21, 21]);
    // Forty concurrent requests on one HTTP/2 connection to each instance: streams, not connections.
    expect(list.map((b) => b.sessions)).toEqual([1, 1]);
    const snapshot = d.lb.snapshot();
    expect(snapshot.backends.map((b) => [b.requests, b.inflight])).toEqual([
      [21, 0],
      [21, 0],
    ]);
  });

  it('carries request bodies over HTTP/2', async () => {
    const list = await Promise.all([h2Backend('a')]);
    const d = dispatcher(list, { allowH2: true });
    const reply = await get(d, { method: 'POST', body: 'x'.repeat(100_000) });
    expect(reply.json).toMatchObject({ id: 'a', version: '2.0', method: 'POST' });
    expect(reply.json.body.length).toBe(100_000);
  });

  it('stays on HTTP/1.1 without allowH2, and with it when the instance offers only HTTP/1.1', async () => {
    const both = await h2Backend('both', { allowHTTP1: true });
    const plain = createHttpsServer({ key: cert.key, cert: cert.cert }, (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ id: 'h1', version: req.httpVersion, method: req.method, body: '' }));
    });
    await new Promise<void>((resolve) => plain.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          plain.close(() => resolve());
          plain.closeAllConnections();
        }),
    );
    const h1 = { id: 'h1', address: `https://localhost:${(plain.address() as AddressInfo).port}` };

    expect((await get(dispatcher([both]))).json.version).toBe('1.1');
    expect((await get(dispatcher([h1], { allowH2: true }))).json.version).toBe('1.1');
    expect((await get(dispatcher([both], { allowH2: true }))).json.version).toBe('2.0');
  });

  it('moves requests off an HTTP/2 instance that goes away to the other one', async () => {
    const list = await Promise.all([h2Backend('a'), h2Backend('b')]);
    const d = dispatcher(list, { allowH2: true, balancer: { backends: list.map((b) => ({ id: b.id, address: b.address })), algorithm: 'round-robin' } });
    await Promise.all(Array.from({ length: 4 }, () => get(d)));
    // Stop instance a: its connection closes; the next requests to it fail to connect and are retried on b.
    await list[0]!.close();
    const replies = await Promise.all(Array.from({ length: 10 }, () => get(d)));
    expect(replies.every((r) => r.status === 200 && r.json.id === 'b')).toBe(true);
  });

  it('refuses a non-boolean allowH2 with the option named', () => {
    let caught: unknown;
    try {
      createBalancedDispatcher({ balancer: { backends: [] }, allowH2: 'yes' as unknown as boolean });
    } catch (error) {
      caught = error;
    }
    expect(isInvalidOptionError(caught) && caught.path).toBe('allowH2');
  });
});
