// HAProxy is the reference for what the stats columns mean: the same failover runs through
// HAProxy 2.6 (its `stats uri`, read as CSV) and through both Fulcrum engines, and the counters are
// compared — sessions, responses by class, connection errors, retries and redispatches.
//
// The two schedulers do not pick backends in the same order (HAProxy's round robin moves on after a
// redispatch, Fulcrum's skips the failed backend), so per-backend attempt counts may differ; what
// is compared is what each counter means: totals per pool, and per-backend relations that hold in
// both (every attempt on a dead backend is redispatched, an error a redispatch recovers is not one).
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trafficOf } from '../../src/stats/traffic';
import type { PoolTrafficJson } from '../../src/stats/traffic';
import { waitFor } from '../../../../test-support/wait-for';
import { ENGINES, closedPort, send, startBackend, startProxy, type TestBackend } from '../proxy/helpers';

const HAPROXY = ['/usr/sbin/haproxy', '/usr/bin/haproxy', '/usr/local/sbin/haproxy'].find((path) => existsSync(path));
const required = process.env.CI === 'true';
const REQUESTS = 10;

type Row = Record<string, string>;

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** HAProxy's `stats;csv`, rows of backend `web` by server name (`BACKEND` for the pool). */
function parseCsv(text: string): Map<string, Row> {
  const lines = text.trim().split('\n');
  const header = lines[0]!.replace(/^# /, '').split(',');
  const rows = new Map<string, Row>();
  for (const line of lines.slice(1)) {
    const cells = line.split(',');
    const row: Row = {};
    header.forEach((name, i) => (row[name] = cells[i] ?? ''));
    if (row.pxname === 'web') rows.set(row.svname!, row);
  }
  return rows;
}

const n = (row: Row | undefined, field: string): number => Number(row?.[field] || 0);

interface HaproxyRun {
  statuses: number[];
  rows: Map<string, Row>;
}

describe.skipIf(HAPROXY === undefined && !required)('stats counters against HAProxy 2.6', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-haproxy-stats-'));
  const running: ChildProcess[] = [];
  let live: TestBackend;

  beforeAll(async () => {
    if (HAPROXY === undefined) throw new Error('CI=true: HAProxy is required (apt-get install -y haproxy)');
    live = await startBackend('b1');
  });

  afterAll(async () => {
    for (const child of running) child.kill('SIGKILL');
    await live?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** HAProxy in front of `servers`, three attempts per request, redispatch on every retry. */
  async function throughHaproxy(name: string, servers: string[]): Promise<HaproxyRun> {
    const [front, stats] = [await closedPort(), await closedPort()];
    const config = join(dir, `${name}.cfg`);
    writeFileSync(
      config,
      [
        'global',
        '    maxconn 100',
        'defaults',
        '    mode http',
        '    timeout connect 1s',
        '    timeout client 5s',
        '    timeout server 5s',
        '    retries 2',
        '    option redispatch 1',
        'frontend fe',
        `    bind 127.0.0.1:${front}`,
        '    default_backend web',
        'backend web',
        '    balance roundrobin',
        ...servers.map((address, i) => `    server b${i + 1} ${address}`),
        'listen stats',
        `    bind 127.0.0.1:${stats}`,
        '    stats enable',
        '    stats uri /stats',
        '',
      ].join('\n'),
    );
    const child = spawn(HAPROXY!, ['-db', '-f', config], { stdio: 'ignore' });
    running.push(child);
    await waitFor(async () => (await get(stats, '/stats;csv').catch(() => ({ status: 0 }))).status === 200, {
      what: 'HAProxy to serve its stats',
      intervalMs: 50,
    });
    const statuses: number[] = [];
    for (let i = 0; i < REQUESTS; i++) statuses.push((await get(front, '/')).status);
    const rows = parseCsv((await get(stats, '/stats;csv')).body);
    child.kill('SIGKILL');
    return { statuses, rows };
  }

  /** The same through a Fulcrum engine: round robin, three attempts (HAProxy's retries 2). */
  async function throughFulcrum(
    engine: (typeof ENGINES)[number],
    servers: string[],
  ): Promise<{ statuses: number[]; traffic: PoolTrafficJson; attempts: Record<string, number> }> {
    const proxy = await startProxy(
      {
        balancer: { name: 'web', algorithm: 'round-robin', backends: servers.map((address, i) => ({ id: `b${i + 1}`, address: `http://${address}` })) },
        attempts: 3,
      },
      engine,
    );
    try {
      const statuses: number[] = [];
      for (let i = 0; i < REQUESTS; i++) statuses.push((await send(proxy.url)).status);
      const attempts: Record<string, number> = {};
      for (const backend of proxy.proxy.lb.backends) attempts[backend.id] = backend.requests;
      return { statuses, traffic: trafficOf(proxy.proxy.lb).toJSON(), attempts };
    } finally {
      await proxy.close();
    }
  }

  it.each(ENGINES)('a dead backend beside a live one (%s engine): every attempt on it is redispatched, no request errs', async (engine) => {
    const dead = `127.0.0.1:${await closedPort()}`;
    const servers = [`127.0.0.1:${live.port}`, dead];
    const theirs = await throughHaproxy(`one-dead-${engine}`, servers);
    const ours = await throughFulcrum(engine, servers);
    expect(theirs.statuses).toEqual(new Array(REQUESTS).fill(200));
    expect(ours.statuses).toEqual(theirs.statuses);

    const pool = theirs.rows.get('BACKEND');
    const t = ours.traffic;
    // The pool: sessions, responses by class, errors, retries and redispatches.
    expect({
      requests: t.requests,
      '2xx': t.responses['2xx'],
      '5xx': t.responses['5xx'],
      connectionErrors: t.connectionErrors,
      responseErrors: t.responseErrors,
      retries: t.retries,
    }).toEqual({
      requests: n(pool, 'stot'),
      '2xx': n(pool, 'hrsp_2xx'),
      '5xx': n(pool, 'hrsp_5xx'),
      connectionErrors: n(pool, 'econ'),
      responseErrors: n(pool, 'eresp'),
      retries: n(pool, 'wretr'),
    });
    expect(n(pool, 'wredis')).toBe(n(theirs.rows.get('b2'), 'wredis'));
    expect(t.redispatches).toBe(t.backends['b2']!.redispatches);
    // The dead backend: each of its attempts redispatched, none a connection error or a retry.
    const b2 = theirs.rows.get('b2');
    expect({ econ: n(b2, 'econ'), wretr: n(b2, 'wretr'), answered: n(b2, 'hrsp_2xx') }).toEqual({ econ: 0, wretr: 0, answered: 0 });
    expect(n(b2, 'wredis')).toBe(n(b2, 'stot'));
    expect(n(b2, 'wredis')).toBeGreaterThan(0);
    const ourB2 = t.backends['b2']!;
    expect({ econ: ourB2.connectionErrors, wretr: ourB2.retries, answered: ourB2.responses['2xx'] }).toEqual({ econ: 0, wretr: 0, answered: 0 });
    expect(ourB2.redispatches).toBe(ours.attempts['b2']);
    expect(ourB2.redispatches).toBeGreaterThan(0);
    // The live backend answered everything, in both.
    expect(t.backends['b1']!.responses['2xx']).toBe(n(theirs.rows.get('b1'), 'hrsp_2xx'));
  });

  it.each(ENGINES)('every backend dead (%s engine): one connection error per request, two retries or redispatches before it', async (engine) => {
    const servers = [`127.0.0.1:${await closedPort()}`, `127.0.0.1:${await closedPort()}`];
    const theirs = await throughHaproxy(`all-dead-${engine}`, servers);
    const ours = await throughFulcrum(engine, servers);
    // HAProxy answers 503 where Fulcrum answers 502: both a 5xx for every request.
    expect(theirs.statuses).toEqual(new Array(REQUESTS).fill(503));
    expect(ours.statuses).toEqual(new Array(REQUESTS).fill(502));
    const pool = theirs.rows.get('BACKEND');
    const t = ours.traffic;
    expect(n(pool, 'hrsp_5xx')).toBe(REQUESTS);
    expect(t.responses['5xx']).toBe(REQUESTS);
    expect(t.connectionErrors).toBe(n(pool, 'econ'));
    expect(t.connectionErrors).toBe(REQUESTS);
    expect(t.retries + t.redispatches).toBe(n(pool, 'wretr') + n(pool, 'wredis'));
    expect(t.retries + t.redispatches).toBe(2 * REQUESTS);
    // Attempts: three per request in both, spread over the two servers.
    const theirAttempts = n(theirs.rows.get('b1'), 'stot') + n(theirs.rows.get('b2'), 'stot');
    expect((ours.attempts['b1'] ?? 0) + (ours.attempts['b2'] ?? 0)).toBe(theirAttempts);
    expect(theirAttempts).toBe(3 * REQUESTS);
  });
});
