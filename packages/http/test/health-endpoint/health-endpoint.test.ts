import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createLoadBalancer, isInvalidOptionError, type Backend } from '@fulcrum/core';
import { fetch, request } from 'undici';
import { createBalancedDispatcher } from '../../src/dispatcher';
import { healthEndpoint, type HealthEndpoint, type HealthEndpointOptions } from '../../src/health-endpoint';
import { httpProbe } from '../../src/probes';
import { deferred } from '../../../../test-support/wait-for';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Instance {
  id: string;
  server: Server;
  address: string;
  health: HealthEndpoint;
  /** Paths of the app's requests (probes excluded). */
  hits: string[];
}

/** A real backend on 127.0.0.1: `/slow` answers after 200 ms, anything else at once, with its id. */
async function instance(id: string, options: HealthEndpointOptions = {}): Promise<Instance> {
  const hits: string[] = [];
  const health = healthEndpoint({ graceMs: 0, ...options });
  const app = (req: IncomingMessage, res: ServerResponse): void => {
    hits.push(req.url ?? '');
    setTimeout(() => res.end(id), req.url === '/slow' ? 200 : 0);
  };
  const server = createServer(health.wrap(app));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  cleanups.push(() => {
    health.close();
    server.closeAllConnections();
    return new Promise<void>((resolve) => server.close(() => resolve()));
  });
  return { id, server, address: `http://127.0.0.1:${port}`, health, hits };
}

/** Poll a condition every 5 ms (what is awaited is an event, not a duration). */
function waitFor(condition: () => boolean): Promise<void> {
  return new Promise<void>((resolve) => {
    const check = (): void => (condition() ? resolve() : void setTimeout(check, 5));
    check();
  });
}

function probeTarget(address: string): Backend {
  return { id: 'x', address } as Backend;
}

describe('healthEndpoint', () => {
  it('refuses bad options with the option named', () => {
    for (const [options, path] of [
      [{ path: 'health' }, 'path'],
      [{ weightPercent: 120 }, 'weightPercent'],
      [{ graceMs: -1 }, 'graceMs'],
      [{ signals: ['TERM'] }, 'signals'],
      [{ drainingStatus: 99 }, 'drainingStatus'],
      [{ agentHeader: 'a b' }, 'agentHeader'],
      [{ exitProcess: 'yes' }, 'exitProcess'],
      [{ grace: 5 }, 'grace'],
    ] as const) {
      let caught: unknown;
      try {
        healthEndpoint(options as unknown as HealthEndpointOptions);
      } catch (error) {
        caught = error;
      }
      expect(isInvalidOptionError(caught), path).toBe(true);
      expect((caught as { path: string }).path).toBe(path);
    }
  });

  it('answers probes with what httpProbe reads: ready, a weight share, then drain', async () => {
    const a = await instance('a');
    const probe = httpProbe({ path: '/health' });
    const signal = new AbortController().signal;
    const serving = await fetch(`${a.address}/health?from=lb`);
    expect(serving.status).toBe(200);
    expect(serving.headers.get('x-fulcrum-agent')).toBe('up ready');
    expect(await serving.json()).toEqual({ status: 'ok' });
    expect(await probe(probeTarget(a.address), signal)).toMatchObject({ ok: true, ready: true });

    a.health.setWeightPercent(25);
    expect(await probe(probeTarget(a.address), signal)).toMatchObject({ ok: true, ready: true, weightPercent: 25 });

    void a.health.beginShutdown();
    const draining = await fetch(`${a.address}/health`);
    expect(draining.status).toBe(503);
    expect(draining.headers.get('connection')).toBe('close');
    expect(await draining.json()).toEqual({ status: 'draining', weightPercent: 25 });
    const result = await probe(probeTarget(a.address), signal);
    expect(result).toMatchObject({ ok: false, drain: true });
    expect(result).not.toHaveProperty('ready');
  });

  it("answers 503 down when the app's check fails, throws or hangs, and 405 to other methods", async () => {
    let verdict: () => boolean | Promise<boolean> = () => true;
    const errors: unknown[] = [];
    const a = await instance('a', { check: () => verdict(), checkTimeoutMs: 50, onError: (e) => errors.push(e) });
    expect((await fetch(`${a.address}/health`)).status).toBe(200);
    verdict = () => false;
    const down = await fetch(`${a.address}/health`);
    expect(down.status).toBe(503);
    expect(down.headers.get('x-fulcrum-agent')).toBe('down');
    await down.text();
    verdict = () => {
      throw new Error('db gone');
    };
    expect((await fetch(`${a.address}/health`)).status).toBe(503);
    expect(errors).toHaveLength(1);
    verdict = () => new Promise<boolean>(() => undefined);
    expect((await fetch(`${a.address}/health`)).status).toBe(503);
    const post = await fetch(`${a.address}/health`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
  });

  it('serves as Express-style middleware and as a standalone probe server', async () => {
    const health = healthEndpoint();
    const nextCalls: string[] = [];
    const server = createServer((req, res) => {
      health(req, res, () => {
        nextCalls.push(req.url ?? '');
        res.end('app');
      });
    });
    const standalone = createServer(health);
    for (const s of [server, standalone]) {
      await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
      cleanups.push(() => new Promise<void>((resolve) => s.close(() => resolve())));
    }
    const base = (s: Server) => `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
    expect(await (await fetch(`${base(server)}/orders`)).text()).toBe('app');
    expect((await fetch(`${base(server)}/health`)).status).toBe(200);
    expect(nextCalls).toEqual(['/orders']);
    expect((await fetch(`${base(standalone)}/health`)).status).toBe(200);
    expect((await fetch(`${base(standalone)}/other`)).status).toBe(404);
  });

  it('drains under a real load balancer: no new traffic once probes see it, in-flight requests complete, then the server closes', async () => {
    const a = await instance('a');
    const b = await instance('b');
    const lb = createLoadBalancer({
      backends: [a, b].map((i) => ({ id: i.id, address: i.address })),
      algorithm: 'round-robin',
      health: { probe: httpProbe({ path: '/health' }), intervalMs: 20, fastIntervalMs: 20, downIntervalMs: 20, timeoutMs: 500, jitter: 0 },
    });
    const dispatcher = createBalancedDispatcher({ balancer: lb });
    cleanups.push(async () => {
      await dispatcher.close();
      lb.close();
    });
    const events: string[] = [];
    a.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      if (req.url === '/slow') res.once('finish', () => events.push('slow request on a finished'));
    });
    // Round-robin puts one slow request on each instance.
    const slow = [0, 1].map(async () => {
      const res = await request('http://users.internal/slow', { dispatcher });
      return { status: res.statusCode, body: await res.body.text() };
    });
    await waitFor(() => a.health.inflight === 1 && b.health.inflight === 1);

    const stopping = a.health.beginShutdown().then((result) => {
      events.push('shutdown');
      return result;
    });
    await waitFor(() => lb.get('a')!.state !== 'up');
    const hitsBefore = a.hits.length;
    const after = await Promise.all(Array.from({ length: 10 }, async () => (await request('http://users.internal/fast', { dispatcher })).body.text()));
    expect(after).toEqual(Array(10).fill('b'));
    expect(a.hits.length).toBe(hitsBefore);

    expect((await Promise.all(slow)).sort((x, y) => x.body.localeCompare(y.body))).toEqual([
      { status: 200, body: 'a' },
      { status: 200, body: 'b' },
    ]);
    expect(await stopping).toEqual({ abandoned: 0 });
    expect(events).toEqual(['slow request on a finished', 'shutdown']);
    expect(a.health.state).toBe('stopped');
  });

  it('closes the given server at the end of the shutdown and reports requests it had to abandon', async () => {
    const a = await instance('a', { timeoutMs: 50 });
    const server = a.server;
    const health = healthEndpoint({ graceMs: 0, timeoutMs: 50, server });
    // A request that outlives timeoutMs, counted by this endpoint's middleware; it signals its arrival.
    const arrived = deferred();
    const hanging = createServer(health.wrap(() => arrived.resolve()));
    await new Promise<void>((resolve) => hanging.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => {
      hanging.closeAllConnections();
      return new Promise<void>((resolve) => hanging.close(() => resolve()));
    });
    const pending = fetch(`http://127.0.0.1:${(hanging.address() as AddressInfo).port}/never`).catch(() => undefined);
    await arrived.promise;
    expect(await health.beginShutdown()).toEqual({ abandoned: 1 });
    expect(server.listening).toBe(false);
    hanging.closeAllConnections();
    await pending;
  });
});
