import { createLoadBalancer, isInvalidOptionError } from '@fulcrum/core';
import type { LoadBalancer } from '@fulcrum/core';
import { FakeClock } from '@fulcrum/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { escapeLabelValue, prometheus, prometheusHandler } from '../../src/stats';
import { heldRequest, request, serve } from './http-client';
import { trafficOf } from '../../src/stats/traffic';
import { spawnSync } from 'node:child_process';
import { waitFor } from '../../../../test-support/wait-for';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}
interface Exposition {
  help: Map<string, string>;
  type: Map<string, string>;
  samples: Sample[];
}

/**
 * A strict reader of the text format 0.0.4, enough to prove the output round-trips: HELP/TYPE
 * lines, `name{label="value",…} number`, and the three label-value escapes. Anything else throws.
 */
function parseExposition(text: string): Exposition {
  const result: Exposition = { help: new Map(), type: new Map(), samples: [] };
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.slice(0, -1).split('\n')) {
    const meta = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, string, string, string];
      const target = kind === 'HELP' ? result.help : result.type;
      if (target.has(name)) throw new Error(`duplicate ${kind} for ${name}`);
      target.set(name, rest);
      continue;
    }
    const head = /^([a-zA-Z_:][a-zA-Z0-9_:]*)/.exec(line);
    if (!head) throw new Error(`bad line: ${JSON.stringify(line)}`);
    const name = head[1] as string;
    let i = name.length;
    const labels: Record<string, string> = {};
    if (line[i] === '{') {
      i += 1;
      while (line[i] !== '}') {
        const labelName = /^([a-zA-Z_][a-zA-Z0-9_]*)="/.exec(line.slice(i));
        if (!labelName) throw new Error(`bad label at ${i} in ${JSON.stringify(line)}`);
        i += labelName[0].length;
        let value = '';
        for (;;) {
          const c = line[i];
          if (c === undefined) throw new Error(`unterminated label value in ${JSON.stringify(line)}`);
          if (c === '"') break;
          if (c === '\\') {
            const next = line[i + 1];
            if (next === 'n') value += '\n';
            else if (next === '\\' || next === '"') value += next;
            else throw new Error(`bad escape \\${next} in ${JSON.stringify(line)}`);
            i += 2;
          } else {
            value += c;
            i += 1;
          }
        }
        i += 1;
        if (Object.hasOwn(labels, labelName[1] as string)) throw new Error('duplicate label');
        labels[labelName[1] as string] = value;
        if (line[i] === ',') i += 1;
        else if (line[i] !== '}') throw new Error(`expected , or } in ${JSON.stringify(line)}`);
      }
      i += 1;
    }
    const valueText = line.slice(i);
    if (!/^ (?:[+-]?(?:\d+\.?\d*(?:e[+-]?\d+)?|\.\d+)|NaN|[+-]Inf)$/i.test(valueText)) throw new Error(`bad value in ${JSON.stringify(line)}`);
    const trimmed = valueText.trim();
    result.samples.push({ name, labels, value: trimmed === '+Inf' ? Infinity : trimmed === '-Inf' ? -Infinity : Number(trimmed) });
  }
  return result;
}

function lb(name: string, backends: { id: string; weight?: number }[], clock = new FakeClock(0)): LoadBalancer {
  const balancer = createLoadBalancer({
    name,
    clock,
    algorithm: 'round-robin',
    backends: backends.map((b, i) => ({ ...b, address: i < 254 ? `http://10.0.0.${i + 1}:80` : `http://10.1.${i >> 8}.${i & 255}:80` })),
  });
  cleanups.push(() => balancer.close());
  return balancer;
}

function sample(exposition: Exposition, name: string, labels: Record<string, string>): number | undefined {
  return exposition.samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

describe('prometheus', () => {
  it('exposes every backend and pool metric with HELP and TYPE, parseable line by line', () => {
    const web = lb('web', [{ id: 'b1', weight: 2 }, { id: 'b2' }]);
    for (let i = 0; i < 4; i += 1) {
      const lease = web.acquire();
      lease?.release(lease.backend.id === 'b2' ? { ok: false, error: 'reset', durationMs: 10 } : { ok: true, status: 200, durationMs: 250 });
    }
    web.acquire(); // in flight on b1
    web.drain('b2');
    const parsed = parseExposition(prometheus(web)());

    const families = [
      'fulcrum_backend_up',
      'fulcrum_backend_state',
      'fulcrum_backend_inflight',
      'fulcrum_backend_requests_total',
      'fulcrum_backend_failures_total',
      'fulcrum_backend_latency_ewma_seconds',
      'fulcrum_backend_weight',
      'fulcrum_backend_effective_weight',
      'fulcrum_backend_ejected',
      'fulcrum_pool_backends',
      'fulcrum_pool_eligible_backends',
      'fulcrum_pool_panic',
    ];
    for (const family of families) {
      expect(parsed.help.get(family)?.length ?? 0).toBeGreaterThan(10);
      expect(parsed.type.get(family)).toBe(family.endsWith('_total') ? 'counter' : 'gauge');
    }
    const names = new Set(parsed.samples.map((s) => s.name));
    for (const family of families) expect(names.has(family)).toBe(true);

    const b1 = { pool: 'web', backend: 'b1' };
    const b2 = { pool: 'web', backend: 'b2' };
    expect(sample(parsed, 'fulcrum_backend_up', b1)).toBe(1);
    expect(sample(parsed, 'fulcrum_backend_up', b2)).toBe(0);
    expect(sample(parsed, 'fulcrum_backend_state', { ...b2, state: 'draining' })).toBe(1);
    for (const state of ['up', 'down', 'maintenance']) expect(sample(parsed, 'fulcrum_backend_state', { ...b2, state })).toBe(0);
    expect(parsed.samples.filter((s) => s.name === 'fulcrum_backend_state')).toHaveLength(8);
    expect(sample(parsed, 'fulcrum_backend_requests_total', b1)).toBe(2);
    expect(sample(parsed, 'fulcrum_backend_failures_total', b2)).toBe(2);
    expect(sample(parsed, 'fulcrum_backend_inflight', b1)).toBe(1);
    expect(sample(parsed, 'fulcrum_backend_weight', b1)).toBe(2);
    expect(sample(parsed, 'fulcrum_backend_effective_weight', b1)).toBe(2);
    expect(sample(parsed, 'fulcrum_backend_latency_ewma_seconds', b1)).toBeCloseTo((web.get('b1')?.latencyEwma ?? Number.NaN) / 1000, 9);
    expect(sample(parsed, 'fulcrum_backend_latency_ewma_seconds', b1)).toBeGreaterThan(0.1);
    expect(sample(parsed, 'fulcrum_backend_ejected', b1)).toBe(0);
    expect(sample(parsed, 'fulcrum_pool_backends', { pool: 'web' })).toBe(2);
    expect(sample(parsed, 'fulcrum_pool_eligible_backends', { pool: 'web' })).toBe(1);
    expect(sample(parsed, 'fulcrum_pool_panic', { pool: 'web' })).toBe(0);
  });

  it('reports ejection and panic', async () => {
    const clock = new FakeClock(0);
    const pool = createLoadBalancer({
      name: 'p',
      clock,
      panicThreshold: 0.6,
      outlier: { consecutiveFailures: 1, maxEjectionPercent: 100 },
      backends: [
        { id: 'a', address: 'http://10.0.0.1:80' },
        { id: 'b', address: 'http://10.0.0.2:80' },
      ],
    });
    cleanups.push(() => pool.close());
    pool.acquire({ exclude: ['b'] })?.release({ ok: false, error: 'connect' });
    const parsed = parseExposition(prometheus(pool)());
    expect(sample(parsed, 'fulcrum_backend_ejected', { backend: 'a' })).toBe(1);
    expect(sample(parsed, 'fulcrum_pool_panic', { pool: 'p' })).toBe(1);
  });

  it('escapes hostile pool names so they cannot forge samples', () => {
    const hostile = 'x"} 1\nfulcrum_backend_up{pool="evil",backend="b1"} 1\n# \\';
    const metrics = prometheus({ [hostile]: lb('h', [{ id: 'b1' }]), 'back\\slash': lb('s', [{ id: 'b:1.x-y_z' }]) })();
    const parsed = parseExposition(metrics);
    // fulcrum_workers is the one sample without a pool.
    const pools = new Set(parsed.samples.filter((s) => s.name !== 'fulcrum_workers').map((s) => s.labels.pool));
    expect(pools).toEqual(new Set([hostile, 'back\\slash']));
    expect(parsed.samples.some((s) => s.labels.pool === 'evil')).toBe(false);
    expect(sample(parsed, 'fulcrum_backend_up', { pool: 'back\\slash', backend: 'b:1.x-y_z' })).toBe(1);
    expect(metrics.split('\n').filter((l) => l.startsWith('fulcrum_backend_up{'))).toHaveLength(2);
  });

  it('escapes exactly backslash, double quote and line feed in label values', () => {
    expect(escapeLabelValue('a\\b"c\nd\te')).toBe('a\\\\b\\"c\\nd\te');
  });

  it('snapshots afresh on every call', () => {
    const web = lb('web', [{ id: 'b1' }]);
    const metrics = prometheus(web);
    expect(sample(parseExposition(metrics()), 'fulcrum_backend_up', { backend: 'b1' })).toBe(1);
    web.maintain('b1');
    const parsed = parseExposition(metrics());
    expect(sample(parsed, 'fulcrum_backend_up', { backend: 'b1' })).toBe(0);
    expect(sample(parsed, 'fulcrum_backend_state', { backend: 'b1', state: 'maintenance' })).toBe(1);
  });

  it('refuses a source that is not a load balancer or pools', () => {
    let thrown: unknown;
    try {
      prometheus({} as LoadBalancer);
    } catch (error) {
      thrown = error;
    }
    expect(isInvalidOptionError(thrown)).toBe(true);
  });
});

describe('prometheusHandler', () => {
  it('serves the metrics with the text format content type, HEAD without a body, 405 otherwise', async () => {
    const web = lb('web', [{ id: 'b1' }]);
    const server = await serve(prometheusHandler({ web }));
    cleanups.push(() => server.close());
    const reply = await request(`${server.url}/metrics`);
    expect(reply.status).toBe(200);
    expect(reply.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(reply.body).toBe(prometheus({ web })());
    const head = await request(`${server.url}/metrics`, 'HEAD');
    expect(head.body).toBe('');
    expect(head.headers['content-length']).toBe(String(Buffer.byteLength(reply.body)));
    const post = await request(`${server.url}/metrics`, 'POST');
    expect(post.status).toBe(405);
    expect(post.headers.allow).toBe('GET, HEAD');
  });
});

describe('prometheusHandler: a huge source', () => {
  const big = (n: number): { id: string }[] => Array.from({ length: n }, (_, i) => ({ id: `b${i}` }));

  it('streams a 40,000-backend pool in slices: a change made while the client holds the stream shows in the part not yet rendered', async () => {
    const huge = lb('huge', big(40_000));
    const web = lb('web', [{ id: 'w1' }]);
    const server = await serve(prometheusHandler({ huge, web }));
    cleanups.push(() => server.close());
    const held = await heldRequest(`${server.url}/metrics`);
    expect(held.status).toBe(200);
    expect(held.headers['content-length']).toBeUndefined();
    // The reader holds the stream after its first chunk, so the server has rendered what the
    // socket buffers hold (a few MB) of the ~30 MB; the weight family comes after ~25 MB of it.
    // Rendering in one step (the old way) would already have written w1's weight as 1.
    web.setWeight('w1', 7);
    const text = await held.resume();
    const exposition = parseExposition(text);
    expect(sample(exposition, 'fulcrum_backend_weight', { pool: 'web', backend: 'w1' })).toBe(7);
    expect(sample(exposition, 'fulcrum_backend_up', { pool: 'huge', backend: 'b39999' })).toBe(1);
    expect(sample(exposition, 'fulcrum_pool_backends', { pool: 'huge' })).toBe(40_000);
    expect(exposition.samples.filter((s) => s.name === 'fulcrum_backend_state')).toHaveLength(4 * 40_001);
  }, 60_000);

  it('streams exactly the text of renderPrometheus when nothing changes', async () => {
    const pool = lb('p', big(3000));
    const server = await serve(prometheusHandler({ p: pool, 'odd "name"\n': lb('x', [{ id: 'y' }]) }));
    cleanups.push(() => server.close());
    const reply = await request(`${server.url}/metrics`);
    expect(reply.headers['transfer-encoding']).toBe('chunked');
    expect(reply.body).toBe(prometheus({ p: pool, 'odd "name"\n': lb('x2', [{ id: 'y' }]) })());
  });

  it('renders two huge bodies at once at most: a third request gets 503 with Retry-After, and a slot frees when a client leaves', async () => {
    const huge = lb('huge', big(20_000));
    const server = await serve(prometheusHandler(huge));
    cleanups.push(() => server.close());
    const first = await heldRequest(`${server.url}/metrics`);
    const second = await heldRequest(`${server.url}/metrics`);
    const third = await request(`${server.url}/metrics`);
    expect(third.status).toBe(503);
    expect(third.headers['retry-after']).toBe('1');
    await second.resume();
    const fourth = await heldRequest(`${server.url}/metrics`);
    expect(fourth.status).toBe(200);
    fourth.abort();
    first.abort();
    // Both slots come back once the aborted renders notice their clients are gone.
    const again = await request(`${server.url}/metrics`);
    expect(again.status).toBe(200);
  });
});

describe('prometheusHandler: readers that stop reading', () => {
  it('cuts a streamed response whose client reads nothing for stallTimeoutMs, giving its render slot back', async () => {
    const huge = lb(
      'huge',
      Array.from({ length: 40_000 }, (_, i) => ({ id: `b${i}` })),
    );
    const server = await serve(prometheusHandler(huge, { maxConcurrentRenders: 1, stallTimeoutMs: 200 }));
    cleanups.push(() => server.close());
    const stalled = await heldRequest(`${server.url}/metrics`);
    expect((await request(`${server.url}/metrics`)).status).toBe(503);
    // The held reader reads nothing more (a paused socket does not even see the server's close):
    // the server cuts it after 200 ms and its slot comes back — later requests get 200 again.
    const next = await waitFor(
      async () => {
        const answer = await request(`${server.url}/metrics`);
        return answer.status === 503 ? undefined : answer;
      },
      { what: 'the render slot to come back', intervalMs: 50 },
    );
    expect(next.status).toBe(200);
    expect(next.body).toContain('fulcrum_pool_panic{pool="huge"} 0\n');
    expect(next.body.endsWith('fulcrum_workers 1\n')).toBe(true);
    // What the stalled reader got is truncated, and it is told so once it reads again.
    await expect(stalled.resume()).rejects.toThrow(/aborted/);
  }, 60_000);

  it('refuses stream options out of range, naming them', () => {
    const web = lb('web', [{ id: 'b1' }]);
    for (const [options, path] of [
      [{ maxConcurrentRenders: 0 }, 'prometheusHandler.options.maxConcurrentRenders'],
      [{ stallTimeoutMs: 5 }, 'prometheusHandler.options.stallTimeoutMs'],
      [{ max: 1 }, 'prometheusHandler.options.max'],
    ] as const) {
      let thrown: unknown;
      try {
        prometheusHandler(web, options as never);
      } catch (error) {
        thrown = error;
      }
      expect(isInvalidOptionError(thrown)).toBe(true);
      expect((thrown as { path: string }).path).toBe(path);
    }
  });
});

describe('prometheus: traffic counters', () => {
  it('passes promtool check metrics with traffic, checks, ejections and queue samples, and names every family by convention', async () => {
    const clock = new FakeClock(1_700_000_000_000);
    let failing = false;
    const web = createLoadBalancer({
      name: 'web',
      clock,
      algorithm: 'round-robin',
      outlier: { consecutiveFailures: 2, baseEjectionMs: 30_000 },
      health: { probe: async () => (failing ? { ok: false, detail: 'HTTP 503' } : true), intervalMs: 1000, jitter: 0 },
      backends: [
        { id: 'b1', address: 'http://10.0.0.1:80' },
        { id: 'b2', address: 'http://10.0.0.2:80', maxConnections: 5 },
      ],
    });
    cleanups.push(() => web.close());
    const metrics = prometheus({ web, 'odd "pool"\n': lb('odd', [{ id: 'o1' }]) });
    const traffic = trafficOf(web);
    await clock.advance(1_500);
    failing = true;
    await clock.advance(5_000);
    for (let i = 0; i < 6; i++) {
      const lease = web.acquire();
      if (lease === undefined) break;
      traffic.started();
      const outcome = lease.backend.id === 'b2' ? { ok: false, error: 'connect' as const } : { ok: true, status: 200 + (i % 2) * 304, durationMs: 12 + i };
      lease.release(outcome);
      traffic.attemptEnded(lease.backend, outcome, 1, lease.startedAt, undefined);
      // Attempts nothing followed: connection errors. (A retried one would be a redispatch instead.)
      traffic.queued(1);
      traffic.queued(-1);
      traffic.ended(lease.backend, 'ok', 200, 100, 2000, 40 + i, 3);
    }
    const text = metrics();
    const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(result.error).toBeUndefined();
    expect({ status: result.status, stdout: result.stdout, stderr: result.stderr }).toEqual({ status: 0, stdout: '', stderr: '' });

    const parsed = parseExposition(text);
    for (const [name, type] of parsed.type) {
      if (type === 'counter') expect(name).toMatch(/_total$/);
      else expect(name).not.toMatch(/_total$/);
      if (/seconds|bytes/.test(name)) expect(name).toMatch(/_(seconds|bytes)(_total)?$/);
    }
    const b1 = { pool: 'web', backend: 'b1' };
    const b2 = { pool: 'web', backend: 'b2' };
    expect(parsed.type.get('fulcrum_backend_request_duration_seconds')).toBe('histogram');
    expect(sample(parsed, 'fulcrum_backend_request_duration_seconds_count', b1)).toBeGreaterThan(0);
    expect(sample(parsed, 'fulcrum_backend_request_duration_seconds_bucket', { ...b1, le: '+Inf' })).toBe(
      sample(parsed, 'fulcrum_backend_request_duration_seconds_count', b1),
    );
    // Per backend, a coarse subset of the bounds (7 + Inf); per pool, all of them (19 + Inf).
    expect(
      parsed.samples.filter((s) => s.name === 'fulcrum_backend_request_duration_seconds_bucket' && s.labels.backend === 'b1').map((s) => s.labels.le),
    ).toEqual(['0.005', '0.02', '0.05', '0.1', '0.3', '1', '5', '+Inf']);
    expect(parsed.samples.filter((s) => s.name === 'fulcrum_pool_request_duration_seconds_bucket' && s.labels.pool === 'web')).toHaveLength(20);
    const buckets = parsed.samples.filter((s) => s.name === 'fulcrum_backend_request_duration_seconds_bucket' && s.labels.backend === 'b1').map((s) => s.value);
    expect(buckets).toEqual([...buckets].sort((x, y) => x - y));
    expect(sample(parsed, 'fulcrum_backend_request_duration_seconds_bucket', { ...b1, le: '0.02' })).toBe(
      sample(parsed, 'fulcrum_backend_request_duration_seconds_count', b1),
    );
    expect(sample(parsed, 'fulcrum_backend_request_duration_seconds_bucket', { ...b1, le: '0.005' })).toBe(0);
    expect(sample(parsed, 'fulcrum_backend_connection_errors_total', b2)).toBeGreaterThan(0);
    expect(sample(parsed, 'fulcrum_backend_redispatches_total', b2)).toBe(0);
    expect(sample(parsed, 'fulcrum_backend_checks_total', { ...b1, result: 'failed' })).toBeGreaterThan(0);
    expect(sample(parsed, 'fulcrum_backend_check_success', b1)).toBe(0);
    expect(sample(parsed, 'fulcrum_backend_check_duration_seconds', b1)).toBeGreaterThanOrEqual(0);
    expect(sample(parsed, 'fulcrum_backend_downtime_seconds_total', b1)).toBeGreaterThan(0);
    expect(sample(parsed, 'fulcrum_pool_responses_total', { pool: 'web', code: '2xx' })).toBeGreaterThan(0);
    expect(sample(parsed, 'fulcrum_pool_queue_wait_seconds_count', { pool: 'web' })).toBeGreaterThan(0);
    expect(sample(parsed, 'fulcrum_pool_request_bytes_total', { pool: 'web' })).toBeGreaterThan(0);
    expect(sample(parsed, 'fulcrum_pool_requests_total', { pool: 'odd "pool"\n' })).toBe(0);
    expect(sample(parsed, 'fulcrum_workers', {})).toBe(1);
    expect(sample(parsed, 'fulcrum_backend_connections', b1)).toBe(0);
    expect(parsed.type.get('fulcrum_backend_connections_opened_total')).toBe('counter');
  });

  it('gives a draining backend an effective weight of 0', () => {
    const pool = lb('w', [
      { id: 'a', weight: 3 },
      { id: 'b', weight: 3 },
    ]);
    pool.drain('a');
    const parsed = parseExposition(prometheus(pool)());
    expect(sample(parsed, 'fulcrum_backend_effective_weight', { backend: 'a' })).toBe(0);
    expect(sample(parsed, 'fulcrum_backend_effective_weight', { backend: 'b' })).toBe(3);
  });
});
