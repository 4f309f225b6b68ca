import { afterEach, describe, expect, it } from 'vitest';
import { createLoadBalancer, isInvalidOptionError, isNoBackendAvailableError, isUpstreamError } from '@fulcrum/core';
import { fetch, getGlobalDispatcher, request, setGlobalDispatcher, errors as undiciErrors, type Dispatcher } from 'undici';
import { createBalancedDispatcher, routeByOrigin, type BalancedDispatcher, type BalancedDispatcherOptions } from '../../src/dispatcher';
import { closedPort, startBackend, type BackendHandler, type TestBackend } from '../proxy/helpers';
import { deferred } from '../../../../test-support/wait-for';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function backends(n: number, handler?: (id: string) => BackendHandler): Promise<TestBackend[]> {
  const list = await Promise.all(Array.from({ length: n }, (_, i) => startBackend(`b${i}`, handler?.(`b${i}`))));
  for (const b of list) cleanups.push(() => b.close());
  return list;
}

function dispatcherFor(
  list: readonly { id: string; address: string }[],
  options: Partial<BalancedDispatcherOptions> & { algorithm?: string } = {},
): BalancedDispatcher {
  const { algorithm = 'round-robin', ...rest } = options;
  const dispatcher = createBalancedDispatcher({
    balancer: { backends: list.map((b) => ({ id: b.id, address: b.address })), algorithm },
    ...rest,
  });
  cleanups.push(() => dispatcher.close());
  return dispatcher;
}

/** GET through the dispatcher with undici.request; the body text and the instance that answered. */
async function get(dispatcher: Dispatcher, path = '/', headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const res = await request(`http://users.internal${path}`, { dispatcher, headers });
  return { status: res.statusCode, body: await res.body.text() };
}

const OK_TEXT =
  (id: string): BackendHandler =>
  (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(id);
  };

describe('createBalancedDispatcher', () => {
  it('refuses bad options with the option named', () => {
    const balancer = { backends: [] };
    for (const [options, path] of [
      [{ balancer, attempts: 0 }, 'attempts'],
      [{ balancer, retryOn: ['connect', 'nope'] }, 'retryOn[1]'],
      [{ balancer, hostHeader: 'instance' }, 'hostHeader'],
      [{ balancer, keyHeader: 'bad header' }, 'keyHeader'],
      [{ balancer, origin: 'http://users.internal/api' }, 'origin'],
      [{ balancer, origin: ['http://a', 'ftp://b'] }, 'origin[1]'],
      [{ balancer, hashBy: 'source-ip' }, 'hashBy'],
      [{ balancer, timeouts: { totalMs: 5 } }, 'timeouts.totalMs'],
      [{ balancer, timeouts: { connectMs: -1 } }, 'timeouts.connectMs'],
      [{ balancer, maxReplayBytes: 10 }, 'maxReplayBytes'],
      [{ balancer: 'lb' }, 'balancer'],
    ] as const) {
      let caught: unknown;
      try {
        createBalancedDispatcher(options as unknown as BalancedDispatcherOptions);
      } catch (error) {
        caught = error;
      }
      expect(isInvalidOptionError(caught), path).toBe(true);
      expect((caught as { path: string }).path).toBe(path);
    }
  });

  it('defaults a load balancer it creates to peak-ewma and keeps a given algorithm', () => {
    const byDefault = createBalancedDispatcher({ balancer: { backends: [] } });
    const explicit = createBalancedDispatcher({ balancer: { backends: [], algorithm: 'maglev' } });
    cleanups.push(
      () => byDefault.close(),
      () => explicit.close(),
    );
    expect(byDefault.lb.algorithm).toBe('peak-ewma');
    expect(explicit.lb.algorithm).toBe('maglev');
  });

  it('sends fetch and request to an instance with method, path, query, headers and body unchanged', async () => {
    const list = await backends(2, OK_TEXT);
    const dispatcher = dispatcherFor(list);
    const viaFetch = await fetch('http://users.internal/api/users?id=42&x=%20y', {
      dispatcher,
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'x-trace': 'abc' },
      body: JSON.stringify({ name: 'ada' }),
    });
    expect(viaFetch.status).toBe(200);
    await viaFetch.text();
    const viaRequest = await request('http://users.internal/other?q=1', { dispatcher, method: 'DELETE', headers: { 'x-trace': 'def' } });
    await viaRequest.body.text();
    const hits = list.flatMap((b) => b.hits);
    expect(hits).toHaveLength(2);
    const put = hits.find((h) => h.method === 'PUT')!;
    expect(put.url).toBe('/api/users?id=42&x=%20y');
    expect(put.headers['x-trace']).toBe('abc');
    expect(put.headers['content-type']).toBe('application/json');
    expect(put.headers.host).toBe('users.internal');
    expect(put.body).toBe('{"name":"ada"}');
    const del = hits.find((h) => h.method === 'DELETE')!;
    expect(del.url).toBe('/other?q=1');
    expect(del.headers.host).toBe('users.internal');
  });

  it("sends the instance's own Host with hostHeader 'backend', and the caller's Host when it set one", async () => {
    const list = await backends(1, OK_TEXT);
    const dispatcher = dispatcherFor(list, { hostHeader: 'backend' });
    await get(dispatcher);
    await get(dispatcher, '/', { host: 'api.example' });
    expect(list[0]!.hits[0]!.headers.host).toBe(`127.0.0.1:${list[0]!.port}`);
    expect(list[0]!.hits[1]!.headers.host).toBe('api.example');
  });

  it('spreads requests evenly with round-robin', async () => {
    const list = await backends(3, OK_TEXT);
    const dispatcher = dispatcherFor(list);
    const counts = new Map<string, number>();
    for (let i = 0; i < 90; i++) {
      const { body } = await get(dispatcher);
      counts.set(body, (counts.get(body) ?? 0) + 1);
    }
    expect(Object.fromEntries(counts)).toEqual({ b0: 30, b1: 30, b2: 30 });
  });

  it('sends less traffic to a slow instance with the default peak-ewma', async () => {
    const list = await backends(3, (id) => (_req, res) => {
      setTimeout(() => res.end(id), id === 'b2' ? 40 : 0);
    });
    const dispatcher = createBalancedDispatcher({ balancer: { backends: list.map((b) => ({ id: b.id, address: b.address })) } });
    cleanups.push(() => dispatcher.close());
    const counts: Record<string, number> = { b0: 0, b1: 0, b2: 0 };
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        for (let i = 0; i < 40; i++) counts[(await get(dispatcher)).body]!++;
      }),
    );
    expect(counts.b0! + counts.b1! + counts.b2!).toBe(240);
    expect(counts.b0).toBeGreaterThan(0);
    expect(counts.b1).toBeGreaterThan(0);
    expect(counts.b2).toBeLessThan(counts.b0!);
    expect(counts.b2).toBeLessThan(counts.b1!);
  });

  // Three callers at a time: with one bad instance each request retries at most once, so the default
  // retry budget (minimum 3 in flight) never has to refuse — what is tested is routing, not the budget.
  it('fails no GET while an instance refuses every connection', async () => {
    const list = await backends(3, OK_TEXT);
    const dead = { id: 'dead', address: `http://127.0.0.1:${await closedPort()}` };
    const dispatcher = dispatcherFor([...list, dead]);
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: 3 }, async () => {
        for (let i = 0; i < 40; i++) statuses.push((await get(dispatcher)).status);
      }),
    );
    expect(statuses).toHaveLength(120);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(dispatcher.lb.get('dead')!.failures).toBeGreaterThan(0);
  });

  it('fails no GET while an instance is killed mid-load', async () => {
    const list = await backends(3, () => (_req, res) => setTimeout(() => res.end('ok'), 2));
    const dispatcher = dispatcherFor(list);
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: 3 }, async (_, w) => {
        for (let i = 0; i < 40; i++) {
          if (w === 0 && i === 10) void list[1]!.close();
          statuses.push((await get(dispatcher)).status);
        }
      }),
    );
    expect(statuses).toHaveLength(120);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect(dispatcher.lb.get('b1')!.failures).toBeGreaterThan(0);
  });

  it('never sends a POST twice once it reached an instance, but retries a GET there', async () => {
    const resetting = await startBackend('reset', (req) => req.socket.destroy());
    cleanups.push(() => resetting.close());
    const [healthy] = await backends(1, OK_TEXT);
    const dispatcher = dispatcherFor([resetting, healthy!]);
    let caught: unknown;
    try {
      // Round-robin starts at the resetting instance.
      await request('http://users.internal/orders', { dispatcher, method: 'POST', body: 'order-1' });
    } catch (error) {
      caught = error;
    }
    expect(isUpstreamError(caught)).toBe(true);
    expect((caught as { kind: string }).kind).toBe('reset');
    const posts = [...resetting.hits, ...healthy!.hits].filter((h) => h.method === 'POST');
    expect(posts).toHaveLength(1);

    // Round-robin alternates: one of two GETs meets the resetting instance first and is retried.
    expect(await get(dispatcher)).toEqual({ status: 200, body: 'b0' });
    expect(await get(dispatcher)).toEqual({ status: 200, body: 'b0' });
    expect(resetting.hits.filter((h) => h.method === 'GET')).toHaveLength(1);
  });

  it('retries a fetch POST whose connection was refused, body intact, since nothing was sent', async () => {
    const [healthy] = await backends(1, (id) => (_req, res, body) => res.end(`${id}:${body}`));
    const dead = { id: 'dead', address: `http://127.0.0.1:${await closedPort()}` };
    const dispatcher = dispatcherFor([dead, healthy!]);
    const res = await fetch('http://users.internal/orders', { dispatcher, method: 'POST', body: 'order-2' });
    expect(await res.text()).toBe('b0:order-2');
    expect(healthy!.hits.filter((h) => h.method === 'POST')).toHaveLength(1);
    expect(dispatcher.lb.get('dead')!.failures).toBe(1);
  });

  it('retries a 503 only when retryOn lists it', async () => {
    const busy = await startBackend('busy', (_req, res) => {
      res.writeHead(503);
      res.end('busy');
    });
    cleanups.push(() => busy.close());
    const [healthy] = await backends(1, OK_TEXT);
    const plain = dispatcherFor([busy, healthy!]);
    expect((await get(plain)).status).toBe(503);
    const retrying = dispatcherFor([busy, healthy!], { retryOn: ['connect', 'reset', 'timeout', 'status-503'] });
    expect(await get(retrying)).toEqual({ status: 200, body: 'b0' });
  });

  it('keeps a key on one instance, from the x-fulcrum-key header (stripped) or the fulcrumKey option', async () => {
    const list = await backends(4, OK_TEXT);
    const dispatcher = dispatcherFor(list, { algorithm: 'ring-hash' });
    const seen = new Map<string, Set<string>>();
    for (let i = 0; i < 40; i++) {
      const key = `user-${i % 8}`;
      const { body } = await get(dispatcher, '/', { 'X-Fulcrum-Key': key });
      const viaOption = await request('http://users.internal/', { dispatcher, fulcrumKey: key } as Parameters<typeof request>[1]);
      const set = seen.get(key) ?? new Set<string>();
      set.add(body).add(await viaOption.body.text());
      seen.set(key, set);
    }
    for (const instances of seen.values()) expect(instances.size).toBe(1);
    expect(new Set([...seen.values()].map((s) => [...s][0])).size).toBeGreaterThan(1);
    for (const hit of list.flatMap((b) => b.hits)) expect(hit.headers['x-fulcrum-key']).toBeUndefined();
  });

  it('hashes requests by hashBy when they carry no key', async () => {
    const list = await backends(4, OK_TEXT);
    const dispatcher = dispatcherFor(list, { algorithm: 'maglev', hashBy: { query: 'tenant' } });
    const first = await Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map((t) => get(dispatcher, `/x?tenant=${t}`)));
    const again = await Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map((t) => get(dispatcher, `/y?tenant=${t}&n=2`)));
    expect(again.map((r) => r.body)).toEqual(first.map((r) => r.body));
  });

  it('refuses a request for an origin it does not serve when origins are listed', async () => {
    const list = await backends(1, OK_TEXT);
    const dispatcher = dispatcherFor(list, { origin: 'http://users.internal' });
    expect((await get(dispatcher)).status).toBe(200);
    await expect(request('http://billing.internal/', { dispatcher })).rejects.toBeInstanceOf(undiciErrors.InvalidArgumentError);
    expect(list[0]!.hits).toHaveLength(1);
  });

  it('fails with NoBackendAvailableError when no instance is eligible', async () => {
    const lb = createLoadBalancer({ backends: [] });
    const dispatcher = createBalancedDispatcher({ balancer: lb });
    cleanups.push(async () => {
      await dispatcher.close();
      lb.close();
    });
    const caught = await request('http://users.internal/', { dispatcher }).catch((error: unknown) => error);
    expect(isNoBackendAvailableError(caught)).toBe(true);
    expect(lb.closed).toBe(false);
  });

  it('queues requests while every instance is at maxConnections and serves them all', async () => {
    let concurrent = 0;
    let peak = 0;
    const [b] = await backends(1, () => (_req, res) => {
      concurrent++;
      peak = Math.max(peak, concurrent);
      setTimeout(() => {
        concurrent--;
        res.end('ok');
      }, 10);
    });
    const dispatcher = createBalancedDispatcher({ balancer: { backends: [{ id: 'b0', address: b!.address, maxConnections: 2 }] } });
    cleanups.push(() => dispatcher.close());
    const results = await Promise.all(Array.from({ length: 10 }, () => get(dispatcher)));
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(peak).toBe(2);
  });

  it('composes with undici interceptors', async () => {
    const list = await backends(2, OK_TEXT);
    const dispatcher = dispatcherFor(list);
    const tagging: Dispatcher.DispatcherComposeInterceptor = (dispatch) => (opts, handler) =>
      dispatch({ ...opts, headers: { ...(opts.headers as Record<string, string>), 'x-intercepted': 'yes' } }, handler);
    const composed = dispatcher.compose(tagging);
    const res = await fetch('http://users.internal/composed', { dispatcher: composed });
    expect(res.status).toBe(200);
    expect(['b0', 'b1']).toContain(await res.text());
    const viaRequest = await request('http://users.internal/composed', { dispatcher: composed });
    expect(viaRequest.statusCode).toBe(200);
    await viaRequest.body.text();
    const hits = list.flatMap((b) => b.hits);
    expect(hits.map((h) => h.headers['x-intercepted'])).toEqual(['yes', 'yes']);
    expect(hits.map((h) => h.headers.host)).toEqual(['users.internal', 'users.internal']);
  });

  it('serves one origin as the global dispatcher and leaves the others to the fallback Agent', async () => {
    const list = await backends(2, OK_TEXT);
    const [other] = await Promise.all([startBackend('other', OK_TEXT('other'))]);
    cleanups.push(() => other!.close());
    const dispatcher = createBalancedDispatcher({ balancer: { backends: list.map((b) => ({ id: b.id, address: b.address })) } });
    const router = routeByOrigin({ 'http://Users.Internal:80': dispatcher });
    const previous = getGlobalDispatcher();
    setGlobalDispatcher(router);
    cleanups.push(async () => {
      setGlobalDispatcher(previous);
      await router.close();
    });
    const balanced = await fetch('http://users.internal/global');
    expect(['b0', 'b1']).toContain(await balanced.text());
    const direct = await fetch(`${other!.address}/direct`);
    expect(await direct.text()).toBe('other');
    expect(other!.hits.map((h) => h.url)).toEqual(['/direct']);
    expect(list.flatMap((b) => b.hits).map((h) => h.url)).toEqual(['/global']);
  });

  it('aborts the whole request when the caller aborts, and releases the lease', async () => {
    // The backend signals when the request reached it and never answers: the abort is what ends it.
    const arrived = deferred();
    const closedByClient = deferred();
    const list = await backends(1, () => (_req, res) => {
      res.on('close', () => closedByClient.resolve());
      arrived.resolve();
    });
    const dispatcher = dispatcherFor(list);
    const controller = new AbortController();
    const pending = fetch('http://users.internal/slow', { dispatcher, signal: controller.signal });
    await arrived.promise;
    expect(dispatcher.lb.get('b0')!.inflight).toBe(1);
    controller.abort();
    await expect(pending).rejects.toMatchObject({ name: 'AbortError' });
    expect(dispatcher.lb.get('b0')!.inflight).toBe(0);
    expect(dispatcher.pending).toBe(0);
    // The upstream exchange was cut too, not left to run to its end.
    await closedByClient.promise;
    expect(list[0]!.hits).toHaveLength(1);
  });

  it('lets requests in flight finish on close, refuses new ones, and aborts them on destroy', async () => {
    // Each request signals its arrival; the backend answers only when the test releases it.
    let arrived = deferred();
    let answer = deferred();
    const list = await backends(1, () => (_req, res) => {
      arrived.resolve();
      void answer.promise.then(() => res.end('done'));
    });
    const closing = dispatcherFor(list);
    const inFlight = get(closing);
    await arrived.promise;
    const closed = closing.close();
    await expect(request('http://users.internal/', { dispatcher: closing })).rejects.toBeInstanceOf(undiciErrors.ClientClosedError);
    answer.resolve();
    expect(await inFlight).toEqual({ status: 200, body: 'done' });
    await closed;
    expect(closing.closed).toBe(true);

    arrived = deferred();
    answer = deferred();
    const destroying = dispatcherFor(list);
    const aborted = get(destroying).catch((error: unknown) => error);
    await arrived.promise;
    await destroying.destroy();
    expect(await aborted).toBeInstanceOf(undiciErrors.ClientDestroyedError);
    expect(destroying.lb.closed).toBe(true);
  });

  it('reports every outcome to the load balancer so outlier detection ejects a failing instance', async () => {
    const failing = await startBackend('failing', (req) => req.socket.destroy());
    cleanups.push(() => failing.close());
    const [healthy] = await backends(1, OK_TEXT);
    const dispatcher = createBalancedDispatcher({
      balancer: {
        backends: [failing, healthy!].map((b) => ({ id: b.id, address: b.address })),
        algorithm: 'round-robin',
        outlier: { consecutiveFailures: 2 },
      },
    });
    cleanups.push(() => dispatcher.close());
    const ejected: string[] = [];
    dispatcher.lb.on('ejected', (id) => ejected.push(id));
    for (let i = 0; i < 6; i++) expect((await get(dispatcher)).status).toBe(200);
    expect(ejected).toEqual(['failing']);
    expect(failing.hits.length).toBe(2);
    expect(dispatcher.lb.backends.every((b) => b.inflight === 0)).toBe(true);
  });
});
