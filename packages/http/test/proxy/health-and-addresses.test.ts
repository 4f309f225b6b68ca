import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BACKEND_ID_PATTERN, backendIdOf, isInvalidOptionError } from '@fulcrum/core';
import { createBalancedDispatcher, createProxy, createRouter, resolveHealth } from '@fulcrum/http';
import { waitFor } from '../../../../test-support/wait-for';
import { useEngine, ENGINES, send, startBackend, startProxy, type TestBackend } from './helpers';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function backend(id: string, healthy: () => boolean): Promise<TestBackend> {
  const b = await startBackend(id, (req, res) => {
    if (req.url === '/healthz') res.writeHead(healthy() ? 200 : 503).end();
    else res.writeHead(200, { 'x-backend': id }).end(id);
  });
  cleanups.push(() => b.close());
  return b;
}

describe.each(ENGINES)('the %s engine', (engine) => {
  beforeAll(() => useEngine(engine));

  it('checks health from `health: { path }` in the balancer options, as the config file does', async () => {
    let healthy = true;
    const b = await backend('b0', () => healthy);
    const spare = await backend('b1', () => true);
    const p = await startProxy({
      balancer: { algorithm: 'first', backends: [b.address, spare.address], health: { path: '/healthz', intervalMs: 20, jitter: 0, rise: 1, fall: 1 } },
    });
    cleanups.push(() => p.close());
    expect((await send(p.url)).body).toBe('b0');
    healthy = false;
    const first = p.proxy.lb.backends[0]!;
    await waitFor(() => first.state === 'down', { what: 'b0 marked down by its health check' });
    expect(b.hits.some((hit) => hit.url === '/healthz')).toBe(true);
    expect((await send(p.url)).body).toBe('b1');
  });

  it('takes backends as bare addresses, with opaque ids that never put the address in the sticky cookie', async () => {
    const a = await backend('a', () => true);
    const b = await backend('b', () => true);
    const p = await startProxy({ balancer: { backends: [a.address, b.address] }, stickiness: { cookie: { secrets: [SECRET] } } });
    cleanups.push(() => p.close());
    expect(p.proxy.lb.backends.map((x) => x.id)).toEqual([backendIdOf(a.address), backendIdOf(b.address)]);
    const first = await send(p.url);
    const cookie = String(first.headers['set-cookie']).split(';')[0]!.split('=')[1]!;
    const decoded = Buffer.from(cookie, 'base64url').toString('latin1');
    expect(decoded).toContain(backendIdOf(first.body === 'a' ? a.address : b.address));
    expect(decoded).not.toContain('127.0.0.1');
    expect(decoded).not.toContain(String(a.port));
    expect(decoded).not.toContain(String(b.port));
  });
});

describe('health options without a probe function', () => {
  it('names the option as the user wrote it', () => {
    const cases: [unknown, RegExp][] = [
      [{ path: 'healthz' }, /^balancer\.health\.path: /],
      [{ type: 'tcp', path: '/x' }, /^balancer\.health\.path: is an HTTP check option/],
      [{ type: 'udp' }, /^balancer\.health\.type: /],
      [{ pth: '/x' }, /^balancer\.health\.pth: is not a health option/],
      [{ path: '/x', intervalMs: -1 }, /health\.intervalMs/],
      ['/healthz', /^balancer\.health: must be an object/],
    ];
    for (const [health, message] of cases) {
      let error: unknown;
      try {
        createProxy({ balancer: { backends: ['http://127.0.0.1:1'], health: health as never } });
      } catch (e) {
        error = e;
      }
      expect(isInvalidOptionError(error), String(health)).toBe(true);
      expect((error as Error).message).toMatch(message);
    }
  });

  it('builds a probe for a router pool and a balanced dispatcher too, and passes a given probe through', async () => {
    const router = createRouter({
      pools: { web: { backends: ['http://127.0.0.1:1'], health: { type: 'tcp', intervalMs: 60_000 } } },
      routes: [{ pool: 'web' }],
    });
    expect(router.pools.get('web')!.backends).toHaveLength(1);
    await router.close();
    expect(() => createRouter({ pools: { web: { backends: ['http://127.0.0.1:1'], health: { path: 'x' } } }, routes: [{ pool: 'web' }] })).toThrow(
      /^pools\.web\.health\.path: /,
    );
    const dispatcher = createBalancedDispatcher({ balancer: { backends: ['http://127.0.0.1:1'], health: { path: '/healthz', intervalMs: 60_000 } } });
    await dispatcher.close();
    const probe = async () => ({ ok: true });
    expect(resolveHealth('health', { probe, intervalMs: 5 })).toEqual({ probe, intervalMs: 5 });
    const built = resolveHealth('health', { path: '/h', rise: 3 })!;
    expect(typeof built.probe).toBe('function');
    expect(built.rise).toBe(3);
  });
});

describe('backendIdOf', () => {
  it('derives one stable, valid, opaque id per origin', () => {
    const id = backendIdOf('http://10.0.0.1:3000');
    expect(id).toMatch(BACKEND_ID_PATTERN);
    expect(id).toMatch(/^b-[0-9a-f]{16}$/);
    expect(backendIdOf('10.0.0.1:3000')).toBe(id);
    expect(backendIdOf('http://10.0.0.1:3000/')).toBe(id);
    expect(backendIdOf('https://API.example')).toBe(backendIdOf('https://api.example:443'));
    expect(backendIdOf('http://api.example')).toBe(backendIdOf('http://api.example:80'));
    expect(backendIdOf('http://api.example')).not.toBe(backendIdOf('https://api.example'));
    expect(backendIdOf('http://10.0.0.1:3001')).not.toBe(id);
    expect(backendIdOf('http://[::1]:3000')).toMatch(BACKEND_ID_PATTERN);
    // A golden value: the id must not change between releases (hashing balancers and cookies use it).
    expect(id).toBe('b-80b26003b8d87412');
  });
});
