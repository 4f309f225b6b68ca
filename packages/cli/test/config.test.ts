import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isInvalidOptionError } from '@fulcrum/core';
import { loadConfig, validateConfig, validateConfigAsync } from '../src';

const env = { FULCRUM_COOKIE_SECRET: 'a-cookie-secret-of-at-least-32-bytes-long!!', ADMIN: 'admin-token-0123456789abcdef' };

function good(): Record<string, any> {
  return {
    $schema: './node_modules/@fulcrum/cli/schema/fulcrum.schema.json',
    frontends: [{ port: 8080 }],
    pools: {
      web: {
        algorithm: 'round-robin',
        backends: [
          { id: 'b1', address: 'http://127.0.0.1:3001', weight: 2 },
          { id: 'b2', address: 'http://127.0.0.1:3002' },
        ],
        health: { path: '/health', intervalMs: 2000, rise: 2 },
        stickiness: { cookie: { name: 'srv', secrets: ['$env:FULCRUM_COOKIE_SECRET'] } },
        rateLimit: { requests: 100, windowMs: 1000 },
      },
      api: { backends: [{ id: 'a1', address: 'http://127.0.0.1:4001' }], stickiness: { sourceIp: {} }, timeouts: { connectMs: 1000 } },
    },
    routes: [{ match: { pathPrefix: '/api' }, pool: 'api', rateLimit: { concurrent: 10 } }, { pool: 'web' }],
    stats: { path: '/fulcrum' },
    admin: { port: 9000, token: '$env:ADMIN' },
    accessLog: { format: 'text' },
  };
}

/** The message of the error `validateConfig` throws for `mutate(good())`. */
function errorOf(mutate: (c: Record<string, any>) => void): string {
  const config = good();
  mutate(config);
  try {
    validateConfig(config, { env });
  } catch (error) {
    expect(isInvalidOptionError(error)).toBe(true);
    return (error as Error).message;
  }
  throw new Error('expected the config to be refused');
}

describe('validateConfig', () => {
  it('accepts a complete config, substitutes $env secrets and applies defaults', () => {
    const config = validateConfig(good(), { env });
    expect(config.pools.get('web')!.stickiness!.cookie!.secrets).toEqual([env.FULCRUM_COOKIE_SECRET]);
    expect(config.admin).toEqual({ token: env.ADMIN, port: 9000, host: '127.0.0.1', path: '' });
    expect(config.frontends[0]).toMatchObject({ port: 8080, host: '0.0.0.0' });
    expect(config.shutdownGraceMs).toBe(10_000);
    expect(config.workersAccept).toBe('primary');
    expect(config.routeLimits[0]?.concurrent).toBe(10);
    expect(config.routes![0]).not.toHaveProperty('rateLimit');
    expect(config.accessLog).toMatchObject({ format: 'text', path: '-' });
  });

  it('accepts a single pool without routes', () => {
    const config = validateConfig({ frontends: [{ port: 0 }], pools: { only: { backends: [] } } }, { env: {} });
    expect(config.routes).toBeUndefined();
  });

  it.each([
    [
      'a backend weight',
      (c: any) =>
        (c.pools.api.backends = [
          { id: 'a', address: 'http://x:1' },
          { id: 'b', address: 'http://x:2' },
          { id: 'c', address: 'http://x:3', weight: 'x' },
        ]),
      'pools.api.backends[2].weight: must be 0 or a finite number ≥ 0.01 and ≤ 1000000 (0 = no new unsticky traffic), got "x"',
    ],
    ['a duplicate backend id', (c: any) => c.pools.web.backends.push({ id: 'b1', address: 'http://h:1' }), 'pools.web.backends[2].id: must be unique'],
    ['a bad address', (c: any) => (c.pools.web.backends[0].address = 'ftp://x'), 'pools.web.backends[0].address'],
    ['an unknown algorithm', (c: any) => (c.pools.web.algorithm = 'fastest'), 'algorithm'],
    ['an unknown top-level key', (c: any) => (c.pool = {}), 'pool: is not an option (known: '],
    ['an unknown pool key', (c: any) => (c.pools.web.healh = {}), 'pools.web.healh: is not an option (known: '],
    ['a bad health interval', (c: any) => (c.pools.web.health.intervalMs = -1), 'pools.web.health.intervalMs'],
    ['a bad health path', (c: any) => (c.pools.web.health.path = 'health'), 'pools.web.health.path: must start with "/"'],
    ['an unknown health key', (c: any) => (c.pools.web.health.interval = 5), 'pools.web.health.interval: is not an option (known: '],
    ['a short cookie secret', (c: any) => (c.pools.web.stickiness.cookie.secrets = ['short']), 'pools.web.stickiness.cookie.secrets[0]'],
    ['two stickiness modes', (c: any) => (c.pools.web.stickiness.header = 'x-user'), 'pools.web.stickiness'],
    ['a bad proxy timeout', (c: any) => (c.pools.api.timeouts = { connect: 5 }), 'pools.api.timeouts.connect: is not an option (known: connectMs'],
    ['a bad attempts count', (c: any) => (c.pools.api.attempts = 0), 'pools.api.attempts: must be an integer ≥ 1 and ≤ 10, got 0'],
    [
      'a route regex with nested quantifiers',
      (c: any) => (c.routes[0].match = { header: { name: 'x-user', regex: '([a-z]+)+' } }),
      'routes[0].match.header.regex: must not risk catastrophic backtracking: a repeated group contains a quantifier',
    ],
    [
      'a route regex with a backreference',
      (c: any) => (c.routes[0].match = { header: { name: 'x-user', regex: '(a)\\1' } }),
      'routes[0].match.header.regex: must not risk catastrophic backtracking: a backreference',
    ],
    ['a route to an unknown pool', (c: any) => (c.routes[1].pool = 'nope'), 'routes[1].pool'],
    ['no routes with several pools', (c: any) => delete c.routes, 'routes: must be given when there are several pools'],
    ['a port out of range', (c: any) => (c.frontends[0].port = 70000), 'frontends[0].port: must be an integer ≥ 0 and ≤ 65535, got 70000'],
    ['no frontends', (c: any) => (c.frontends = []), 'frontends: must be a non-empty array'],
    [
      'a missing TLS file',
      (c: any) => (c.frontends[0].tls = { certs: [{ cert: '/nonexistent/a.pem', key: '/nonexistent/a.key' }] }),
      'frontends[0].tls.certs[0].cert: must be a readable regular file of at most 1 MiB, but it cannot be opened (ENOENT)',
    ],
    [
      'a redirect port',
      (c: any) => (c.frontends[0].redirectToHttps = { port: 0 }),
      'frontends[0].redirectToHttps.port: must be an integer ≥ 1 and ≤ 65535, got 0',
    ],
    ['a redirect host list', (c: any) => (c.frontends[0].redirectToHttps = { hosts: ['a b'] }), 'frontends[0].redirectToHttps.hosts[0]: must be a host name'],
    [
      'an unknown redirect key',
      (c: any) => (c.frontends[0].redirectToHttps = { status: 302 }),
      'frontends[0].redirectToHttps.status: is not an option (known: port, hosts)',
    ],
    [
      'a redirect that is not an object',
      (c: any) => (c.frontends[0].redirectToHttps = true),
      'frontends[0].redirectToHttps: must be an object like { "port": 443 }, got true',
    ],
    ['a short admin token', (c: any) => (c.admin.token = 'abc'), 'admin.token: must be a secret of at least 16 characters'],
    ['an admin path with a quote', (c: any) => (c.admin = { token: env.ADMIN, path: '/admin"x' }), 'admin.path: must be a URL path without quotes'],
    ['an admin without port or path', (c: any) => delete c.admin.port, 'admin: must set "port"'],
    ['a stats path without a slash', (c: any) => (c.stats.path = 'fulcrum'), 'stats.path: must be a URL path'],
    ['an access-log format', (c: any) => (c.accessLog.format = 'xml'), 'accessLog.format: must be "json" or "text", got "xml"'],
    ['a rate limit without limits', (c: any) => (c.pools.web.rateLimit = { windowMs: 1000 }), 'pools.web.rateLimit: must set "requests", "concurrent" or both'],
    ['a rate limit key', (c: any) => (c.routes[0].rateLimit = { requests: 1, by: 'cookie' }), 'routes[0].rateLimit.by'],
    ['two replication kinds', (c: any) => (c.replication = { redis: { url: 'redis://h' }, directory: { dir: '/tmp' } }), 'replication: must hold exactly one'],
    ['a replication URL', (c: any) => (c.replication = { redis: { url: 'http://h' } }), 'replication.redis.url: must be a redis:// or rediss:// URL'],
    [
      'a missing env var',
      (c: any) => (c.admin.token = '$env:NOT_SET_ANYWHERE'),
      'admin.token: reads the environment variable NOT_SET_ANYWHERE, which is not set',
    ],
    ['a malformed env reference', (c: any) => (c.admin.token = '$env:bad-name'), 'admin.token: must name an environment variable'],
    ['a pool name with spaces', (c: any) => (c.pools['my pool'] = { backends: [] }), 'pools.my pool: pool names must be'],
    ['a grace period', (c: any) => (c.shutdown = { graceMs: -5 }), 'shutdown.graceMs: must be an integer ≥ 0 and ≤ 3600000, got -5'],
    ['who accepts under --workers', (c: any) => (c.workers = { accept: 'kernel' }), 'workers.accept: must be "primary" or "workers"'],
    ['an unknown workers key', (c: any) => (c.workers = { count: 4 }), 'workers.count'],
  ])('refuses %s with the path in the file', (_name, mutate, message) => {
    expect(errorOf(mutate)).toContain(message);
  });

  it('never echoes a short admin token in its error', () => {
    expect(errorOf((c) => (c.admin.token = 'tiny-secret'))).not.toContain('tiny-secret');
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'fulcrum-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reports a JSON syntax error with its line and column', async () => {
    const file = join(dir, 'broken.json');
    writeFileSync(file, '{\n  "frontends": [{ "port": 80 }],\n  "pools": { oops }\n}\n');
    await expect(loadConfig(file, { env })).rejects.toThrow(/broken\.json:3:\d+: invalid JSON/);
  });

  it('reports a missing file', async () => {
    await expect(loadConfig(join(dir, 'missing.json'))).rejects.toThrow(/cannot read the config file \(ENOENT\)/);
  });

  it('resolves relative paths against the file directory', async () => {
    const file = join(dir, 'logs.json');
    writeFileSync(file, JSON.stringify({ frontends: [{ port: 0 }], pools: { p: { backends: [] } }, accessLog: { path: 'access.log' } }));
    const config = await loadConfig(file, { env: {} });
    expect(config.accessLog!.path).toBe(join(dir, 'access.log'));
  });
});

describe('fulcrum --check: what used to pass validation and fail (or hang) later', () => {
  let work: string;
  beforeAll(() => {
    work = mkdtempSync(join(tmpdir(), 'fulcrum-check-'));
    writeFileSync(join(work, 'a-file'), 'x');
  });
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  const minimal = (extra: Record<string, unknown> = {}, frontend: Record<string, unknown> = {}) => ({
    frontends: [{ port: 8080, ...frontend }],
    pools: { web: { backends: [] } },
    ...extra,
  });
  async function refusal(config: unknown, options: Parameters<typeof validateConfigAsync>[1] = {}): Promise<{ path: string; message: string }> {
    try {
      await validateConfigAsync(config, { env: {}, baseDir: work, ...options });
    } catch (error) {
      expect(isInvalidOptionError(error)).toBe(true);
      return { path: (error as { path: string }).path, message: (error as Error).message };
    }
    throw new Error('expected the config to be refused');
  }

  it('refuses a deeply nested metadata with a named error instead of overflowing the stack', async () => {
    // 100,000 levels: JSON.parse takes it; a recursive walk (substitution, JSON.stringify) would not.
    const text = `{"frontends":[{"port":8080}],"pools":{"web":{"backends":[{"id":"b1","address":"http://127.0.0.1:1","metadata":${'{"a":'.repeat(100_000)}"x"${'}'.repeat(100_000)}}]}}}`;
    const file = join(work, 'deep.json');
    writeFileSync(file, text);
    let caught: unknown;
    try {
      await loadConfig(file, { env: {} });
    } catch (error) {
      caught = error;
    }
    expect(isInvalidOptionError(caught)).toBe(true);
    expect((caught as { path: string }).path).toMatch(/^pools\.web\.backends\[0\]\.metadata(\.a)+$/);
    expect((caught as Error).message).toContain('must not nest objects or arrays more than 32 levels deep');
  });

  it.each(['0.0.0.0:8080', '[::1]', '300.1.1.1', '10.0.0', 'bad host!', '', 'localhost.', 7])('refuses the frontend host %j', async (host) => {
    const { path, message } = await refusal(minimal({}, { host }));
    expect(path).toBe('frontends[0].host');
    expect(message).toContain('must be an IP address');
  });

  it('accepts IPv4, IPv6 and host names as frontend and admin hosts', async () => {
    for (const host of ['127.0.0.1', '::', '::1', 'localhost', 'edge-1.internal']) {
      const config = await validateConfigAsync(minimal({ admin: { port: 9000, host, token: env.ADMIN } }, { host }), { env: {}, baseDir: work });
      expect(config.frontends[0]!.host).toBe(host);
      expect(config.admin!.host).toBe(host);
    }
    expect((await refusal(minimal({ admin: { port: 9000, host: '::1]', token: env.ADMIN } }))).path).toBe('admin.host');
  });

  it.each([
    ['a missing directory', () => join(work, 'no-such-dir', 'access.log'), 'is in a directory that does not exist'],
    ['a directory', () => work, 'is a directory'],
    ['a path under a regular file', () => join(work, 'a-file', 'access.log'), 'cannot be opened for writing (ENOTDIR)'],
    [
      'a FIFO',
      () => {
        const fifo = join(work, 'log.fifo');
        execFileSync('mkfifo', [fifo]);
        return fifo;
      },
      'is a FIFO (named pipe)',
    ],
  ])('refuses an access log in %s', async (_what, path, reason) => {
    const { path: option, message } = await refusal(minimal({ accessLog: { path: path() } }));
    expect(option).toBe('accessLog.path');
    expect(message).toContain(`must be a file this process can append to, but it ${reason}`);
  });

  it('accepts an access log it can create, and creates it as nginx -t does', async () => {
    const config = await validateConfigAsync(minimal({ accessLog: { path: 'logs-access.log' } }), { env: {}, baseDir: work });
    expect(config.accessLog!.path).toBe(join(work, 'logs-access.log'));
    expect(readFileSync(join(work, 'logs-access.log'), 'utf8')).toBe('');
  });

  it.each([
    [{ sql: { url: 'mysql://root@127.0.0.1/test', table: 'stick;drop table users' } }, 'replication.sql.table', 'must be a table name'],
    [{ sql: { url: 'mysql://root@127.0.0.1/test', table: '1abc' } }, 'replication.sql.table', 'must be a table name'],
    [{ redis: { url: 'redis://127.0.0.1:6379', key: 'stick\r\nFLUSHALL' } }, 'replication.redis.key', 'without NUL, CR or LF'],
    [{ redis: { url: 'redis://127.0.0.1:6379', channel: 'a\nb' } }, 'replication.redis.channel', 'without NUL, CR or LF'],
  ])('refuses replication %j under its own option name at check time', async (replication, path, message) => {
    const refused = await refusal(minimal({ replication }));
    expect(refused.path).toBe(path);
    expect(refused.message).toContain(message);
  });

  it('accepts replication whose packages are installed (this workspace has them)', async () => {
    const config = await validateConfigAsync(minimal({ replication: { redis: { url: 'redis://127.0.0.1:6379', key: 'fulcrum:stick' } } }), {
      env: {},
      baseDir: work,
    });
    expect(config.replication).toMatchObject({ kind: 'redis', key: 'fulcrum:stick' });
  });
});
