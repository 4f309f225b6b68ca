import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLoadBalancer, isInvalidOptionError } from '@fulcrum/core';
import type { Backend, ProbeResult } from '@fulcrum/core';
import { createBackends } from '@fulcrum/core/testing';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { httpProbe } from '../../src/probes';
import type { HttpProbeOptions } from '../../src/probes';
import { closedPort, startHttpServer, startHttpsServer } from './servers';
import type { TrackedServer } from './servers';

const servers: TrackedServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

async function serve(handler: (req: import('node:http').IncomingMessage, res: ServerResponse) => void): Promise<TrackedServer> {
  const server = await startHttpServer(handler);
  servers.push(server);
  return server;
}

function backendAt(address: string): Backend {
  const [backend] = createBackends([{ id: 'b1', address }]);
  return backend as Backend;
}

async function probe(server: TrackedServer, options?: HttpProbeOptions, signal = new AbortController().signal): Promise<ProbeResult> {
  const result = await httpProbe(options)(backendAt(`http://127.0.0.1:${server.port}`), signal);
  return result as ProbeResult;
}

describe('httpProbe against a real server', () => {
  it('passes on a 200 to GET / and closes its connection', async () => {
    const server = await serve((_req, res) => res.end('hello'));
    const result = await probe(server);
    expect(result).toEqual({ ok: true, detail: 'HTTP 200' });
    const [req] = server.requests;
    expect(req?.method).toBe('GET');
    expect(req?.url).toBe('/');
    expect(req?.headers.host).toBe(`127.0.0.1:${server.port}`);
    expect(req?.headers.connection).toBe('close');
    expect(req?.headers['user-agent']).toBe('fulcrum-probe');
    await server.allClosed();
    expect(server.connections).toBe(1);
  });

  it('opens a fresh connection for every check instead of reusing one', async () => {
    const server = await serve((_req, res) => res.end());
    const check = httpProbe();
    const backend = backendAt(`http://127.0.0.1:${server.port}`);
    for (let i = 0; i < 3; i += 1) expect(await check(backend, new AbortController().signal)).toMatchObject({ ok: true });
    await server.allClosed();
    expect(server.connections).toBe(3);
  });

  it('fails on a 503 and says what it expected', async () => {
    const server = await serve((_req, res) => {
      res.statusCode = 503;
      res.end();
    });
    expect(await probe(server)).toEqual({ ok: false, detail: 'HTTP 503 (expected 200-399)' });
    await server.allClosed();
  });

  it('treats redirects as passing by default, as HAProxy and nginx do', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(302, { location: '/elsewhere' });
      res.end();
    });
    expect((await probe(server)).ok).toBe(true);
    expect((await probe(server, { expectStatus: { min: 200, max: 299 } })).ok).toBe(false);
  });

  it('accepts exactly the statuses given as a number, a list or a range', async () => {
    const server = await serve((req, res) => {
      res.statusCode = Number(req.url?.slice(1));
      res.end();
    });
    const at = async (status: number, expectStatus: HttpProbeOptions['expectStatus']): Promise<boolean> =>
      (await probe(server, { path: `/${status}`, expectStatus })).ok;
    expect(await at(204, 204)).toBe(true);
    expect(await at(200, 204)).toBe(false);
    expect(await at(418, [200, 418])).toBe(true);
    expect(await at(204, [200, 418])).toBe(false);
    expect(await at(404, { min: 400, max: 404 })).toBe(true);
    expect(await at(405, { min: 400, max: 404 })).toBe(false);
    expect(await at(500, undefined)).toBe(false);
  });

  it('sends the configured path, method, headers and Host', async () => {
    const server = await serve((_req, res) => res.end());
    await probe(server, { path: '/health?full=1', method: 'HEAD', headers: { 'X-Token': 'abc', 'User-Agent': 'mine' }, host: 'api.internal:8443' });
    const [req] = server.requests;
    expect(req?.method).toBe('HEAD');
    expect(req?.url).toBe('/health?full=1');
    expect(req?.headers['x-token']).toBe('abc');
    expect(req?.headers['user-agent']).toBe('mine');
    expect(req?.headers.host).toBe('api.internal:8443');
  });

  it('probes host:port addresses over plain HTTP', async () => {
    const server = await serve((_req, res) => res.end());
    const result = await httpProbe()(backendAt(`127.0.0.1:${server.port}`), new AbortController().signal);
    expect(result).toEqual({ ok: true, detail: 'HTTP 200' });
    expect(server.requests).toHaveLength(1);
  });

  it('reports a refused connection by its code, without the address', async () => {
    const port = await closedPort();
    const result = (await httpProbe()(backendAt(`http://127.0.0.1:${port}`), new AbortController().signal)) as ProbeResult;
    expect(result.ok).toBe(false);
    expect(result.detail).toBe('request failed: ECONNREFUSED');
  });

  it('fails a backend that does not answer within its own timeout and closes the socket', async () => {
    const server = await serve(() => undefined);
    const result = await probe(server, { timeoutMs: 150 });
    expect(result).toEqual({ ok: false, detail: 'timed out after 150 ms' });
    await server.allClosed();
  });

  it('stops when the checker aborts its signal, rejecting with the reason and closing the socket', async () => {
    const server = await serve(() => undefined);
    const controller = new AbortController();
    const pending = probe(server, {}, controller.signal);
    await server.requestArrived();
    const reason = new Error('checker timed out');
    controller.abort(reason);
    await expect(pending).rejects.toBe(reason);
    await server.allClosed();
  });

  it('does not connect at all when the signal is already aborted', async () => {
    const server = await serve((_req, res) => res.end());
    const controller = new AbortController();
    controller.abort();
    await expect(probe(server, {}, controller.signal)).rejects.toMatchObject({ name: 'AbortError' });
    expect(server.connections).toBe(0);
  });

  it('does not read a large body: it closes the connection once the status is known', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' });
      // An endless body: only a probe that stops reading lets this test finish.
      const pump = (): void => {
        while (res.write(chunk));
        res.once('drain', pump);
      };
      res.on('error', () => undefined);
      pump();
    });
    expect(await probe(server)).toEqual({ ok: true, detail: 'HTTP 200' });
    await server.allClosed();
  });
});

describe('httpProbe agent reports', () => {
  async function agentResult(headers: Record<string, string>, body = '', options: HttpProbeOptions = {}, status = 200): Promise<ProbeResult> {
    const server = await serve((_req, res) => {
      res.writeHead(status, headers);
      res.end(body);
    });
    const result = await probe(server, options);
    await server.allClosed();
    return result;
  }

  it('reads HAProxy agent words from the x-fulcrum-agent header', async () => {
    expect(await agentResult({ 'x-fulcrum-agent': 'drain, 75%' })).toEqual({ ok: true, detail: 'HTTP 200', drain: true, weightPercent: 75 });
    expect(await agentResult({ 'x-fulcrum-agent': 'maint' })).toMatchObject({ ok: true, maintenance: true });
    expect(await agentResult({ 'x-fulcrum-agent': 'ready 100%' })).toMatchObject({ ok: true, ready: true, weightPercent: 100 });
  });

  it('fails the check when the agent says down, with its description', async () => {
    expect(await agentResult({ 'x-fulcrum-agent': 'down#disk full' })).toEqual({ ok: false, detail: 'HTTP 200 (agent: down): disk full' });
  });

  it('cannot make a failing status pass by saying up', async () => {
    expect(await agentResult({ 'x-fulcrum-agent': 'up, ready' }, '', {}, 500)).toMatchObject({ ok: false, ready: true });
  });

  it('ignores garbage agent words and keeps the ones it knows', async () => {
    const result = await agentResult({ 'x-fulcrum-agent': 'banana, 1000%%, maxconn:10, -5%, 50%, <script>' });
    expect(result).toEqual({ ok: true, detail: 'HTTP 200', weightPercent: 50 });
  });

  it('reads the agent header named by agentHeader, and none when it is false', async () => {
    expect(await agentResult({ 'x-agent': 'drain' }, '', { agentHeader: 'X-Agent' })).toMatchObject({ drain: true });
    expect(await agentResult({ 'x-fulcrum-agent': 'drain' }, '', { agentHeader: 'X-Agent' })).toEqual({ ok: true, detail: 'HTTP 200' });
    expect(await agentResult({ 'x-fulcrum-agent': 'drain' }, '', { agentHeader: false })).toEqual({ ok: true, detail: 'HTTP 200' });
  });

  it('reads a small JSON body with a status and a weight percentage', async () => {
    const body = JSON.stringify({ status: 'draining', weightPercent: 30 });
    expect(await agentResult({ 'content-type': 'application/json; charset=utf-8' }, body)).toEqual({
      ok: true,
      detail: 'HTTP 200',
      drain: true,
      weightPercent: 30,
    });
    expect(await agentResult({ 'content-type': 'application/health+json' }, '{"status":"maintenance"}')).toMatchObject({ maintenance: true });
    expect(await agentResult({ 'content-type': 'application/json' }, '{"status":"down"}')).toMatchObject({ ok: false });
  });

  it('treats a JSON status of ok as a plain pass, not as ready', async () => {
    expect(await agentResult({ 'content-type': 'application/json' }, '{"status":"ok"}')).toEqual({ ok: true, detail: 'HTTP 200' });
  });

  it('ignores a JSON body that is not declared as JSON, is not an object, or is malformed', async () => {
    const body = '{"status":"draining"}';
    expect(await agentResult({ 'content-type': 'text/plain' }, body)).toEqual({ ok: true, detail: 'HTTP 200' });
    expect(await agentResult({ 'content-type': 'application/json' }, '["draining"]')).toEqual({ ok: true, detail: 'HTTP 200' });
    expect(await agentResult({ 'content-type': 'application/json' }, '{"status":')).toEqual({ ok: true, detail: 'HTTP 200' });
    expect(await agentResult({ 'content-type': 'application/json' }, '{"status":"draining"}', { method: 'HEAD' })).toEqual({ ok: true, detail: 'HTTP 200' });
  });

  it('ignores a JSON body over 4 KiB, declared or chunked, and still closes the connection', async () => {
    const big = JSON.stringify({ status: 'draining', padding: 'x'.repeat(5000) });
    expect(await agentResult({ 'content-type': 'application/json' }, big)).toEqual({ ok: true, detail: 'HTTP 200' });
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.on('error', () => undefined);
      res.write(big.slice(0, 3000));
      setImmediate(() => res.end(big.slice(3000)));
    });
    expect(await probe(server)).toEqual({ ok: true, detail: 'HTTP 200' });
    await server.allClosed();
  });

  it('lets the header win a conflicting percentage and combines the flags', async () => {
    const result = await agentResult({ 'content-type': 'application/json', 'x-fulcrum-agent': '20%' }, '{"status":"draining","weightPercent":80}');
    expect(result).toEqual({ ok: true, detail: 'HTTP 200', drain: true, weightPercent: 20 });
  });
});

describe('httpProbe over HTTPS', () => {
  let dir: string;
  let tls: { key: string; cert: string };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fulcrum-probe-tls-'));
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=backend.test',
        '-addext',
        'subjectAltName=DNS:backend.test,IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    tls = { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function serveTls(): Promise<TrackedServer> {
    const server = await startHttpsServer(tls, (req, res) => res.end(req.headers.host));
    servers.push(server);
    return server;
  }

  it('verifies the certificate by default and fails on an untrusted one', async () => {
    const server = await serveTls();
    const result = (await httpProbe()(backendAt(`https://127.0.0.1:${server.port}`), new AbortController().signal)) as ProbeResult;
    expect(result).toEqual({ ok: false, detail: 'request failed: DEPTH_ZERO_SELF_SIGNED_CERT' });
    await server.allClosed();
  });

  it('passes with the backend CA given in tls.ca, sending SNI from the host option', async () => {
    const server = await serveTls();
    let servername: string | undefined;
    (server.server as import('node:https').Server).on('secureConnection', (socket: import('node:tls').TLSSocket) => {
      servername = (socket as unknown as { servername?: string }).servername;
    });
    const check = httpProbe({ tls: { ca: tls.cert }, host: 'backend.test' });
    const result = await check(backendAt(`https://127.0.0.1:${server.port}`), new AbortController().signal);
    expect(result).toEqual({ ok: true, detail: 'HTTP 200' });
    expect(servername).toBe('backend.test');
    await server.allClosed();
  });

  it('can skip verification when told to', async () => {
    const server = await serveTls();
    const check = httpProbe({ tls: { rejectUnauthorized: false } });
    expect(await check(backendAt(`https://127.0.0.1:${server.port}`), new AbortController().signal)).toEqual({ ok: true, detail: 'HTTP 200' });
  });
});

describe('httpProbe in a load balancer', () => {
  it('takes a failing backend down, drains one whose agent asks, and leaves nothing open after close()', async () => {
    let b1Status = 200;
    const b1 = await serve((_req, res) => {
      res.statusCode = b1Status;
      res.end();
    });
    const b2 = await serve((_req, res) => {
      res.writeHead(200, { 'x-fulcrum-agent': 'drain' });
      res.end();
    });
    const lb = createLoadBalancer({
      backends: [
        { id: 'b1', address: `http://127.0.0.1:${b1.port}` },
        { id: 'b2', address: `http://127.0.0.1:${b2.port}` },
      ],
      health: { probe: httpProbe(), intervalMs: 40, fastIntervalMs: 20, downIntervalMs: 40, rise: 1, fall: 1, timeoutMs: 2000 },
    });
    const seen = (id: string, to: string): Promise<void> =>
      new Promise((resolve) => {
        const listener = (who: string, _from: string, state: string): void => {
          if (who === id && state === to) {
            lb.off('state', listener);
            resolve();
          }
        };
        lb.on('state', listener);
      });
    try {
      await seen('b2', 'draining');
      b1Status = 503;
      await seen('b1', 'down');
      expect(lb.get('b1')?.state).toBe('down');
      expect(lb.get('b2')?.state).toBe('draining');
    } finally {
      lb.close();
    }
    await Promise.all([b1.allClosed(), b2.allClosed()]);
  });
});

describe('httpProbe options', () => {
  const invalid: [string, HttpProbeOptions | unknown][] = [
    ['httpProbe.path', { path: 'health' }],
    ['httpProbe.path', { path: '/a b' }],
    ['httpProbe.path', { path: '/\r\nX: y' }],
    ['httpProbe.method', { method: 'POST' }],
    ['httpProbe.expectStatus', { expectStatus: 99 }],
    ['httpProbe.expectStatus', { expectStatus: 200.5 }],
    ['httpProbe.expectStatus', { expectStatus: [] }],
    ['httpProbe.expectStatus', { expectStatus: [200, 600] }],
    ['httpProbe.expectStatus', { expectStatus: { min: 300, max: 200 } }],
    ['httpProbe.expectStatus', { expectStatus: { min: 200 } }],
    ['httpProbe.timeoutMs', { timeoutMs: 0 }],
    ['httpProbe.timeoutMs', { timeoutMs: Number.NaN }],
    ['httpProbe.timeoutMs', { timeoutMs: 2 ** 31 }],
    ['httpProbe.headers["x-a"]', { headers: { 'x-a': 'b\r\nInjected: 1' } }],
    ['httpProbe.headers["bad name"]', { headers: { 'bad name': 'x' } }],
    ['httpProbe.headers["Host"]', { headers: { Host: 'x' } }],
    ['httpProbe.headers["transfer-encoding"]', { headers: { 'transfer-encoding': 'chunked' } }],
    ['httpProbe.headers["X-A"]', { headers: { 'x-a': '1', 'X-A': '2' } }],
    ['httpProbe.headers', { headers: 'x-a: 1' }],
    ['httpProbe.host', { host: 'evil.test\r\nX: 1' }],
    ['httpProbe.host', { host: '' }],
    ['httpProbe.agentHeader', { agentHeader: 'x agent' }],
    ['httpProbe.agentHeader', { agentHeader: true }],
    ['httpProbe.tls.rejectUnauthorized', { tls: { rejectUnauthorized: 'no' } }],
    ['httpProbe.tls.ca', { tls: { ca: 42 } }],
    ['httpProbe.tls.verify', { tls: { verify: false } }],
    ['httpProbe.expect', { expect: 200 }],
    ['httpProbe', 'GET /'],
  ];
  it.each(invalid)('refuses %s in %j at creation with an InvalidOptionError naming it', (path, options) => {
    let thrown: unknown;
    try {
      httpProbe(options as HttpProbeOptions);
    } catch (error) {
      thrown = error;
    }
    expect(isInvalidOptionError(thrown)).toBe(true);
    expect((thrown as { path: string }).path).toBe(path);
  });

  it('accepts the documented forms', () => {
    expect(typeof httpProbe()).toBe('function');
    expect(
      typeof httpProbe({
        path: '/health',
        method: 'HEAD',
        expectStatus: [200, 204],
        timeoutMs: 500,
        headers: { 'x-a': 'b' },
        host: '[::1]:8080',
        agentHeader: false,
      }),
    ).toBe('function');
    expect(
      typeof httpProbe({ expectStatus: { min: 200, max: 204 }, tls: { ca: ['a', Buffer.from('b')], rejectUnauthorized: true, servername: 'a.test' } }),
    ).toBe('function');
  });
});
