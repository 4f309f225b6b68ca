// The runner's log as an operator reads it, from the real bin in its own process: a line for every
// backend state change with its reason (health check result, outlier rule, admin), reloads,
// --log-level and --log-format, --version, a missing file named once, no "stopped" after a failed start.
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bundleBin, packageDir, type BinRun, type BundledBin } from './bin-bundle';
import { TOKEN, get, until } from './helpers';

let bundled: BundledBin;
const running: BinRun[] = [];
const servers: Server[] = [];

beforeAll(async () => {
  bundled = await bundleBin();
}, 60_000);

afterEach(async () => {
  for (const proxy of running.splice(0)) {
    if (proxy.child.exitCode === null) {
      proxy.child.kill('SIGKILL');
      await proxy.exited;
    }
  }
  for (const server of servers.splice(0)) {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

afterAll(() => bundled.remove());

/** A backend whose /health answers 503 while `sick`, and whose /fail answers 500. */
async function backend(name: string): Promise<{ url: string; sick: boolean }> {
  const state = { url: '', sick: false };
  const server = createServer((req, res) => {
    if (req.url === '/health') res.writeHead(state.sick ? 503 : 200).end('health');
    else if (req.url === '/fail') res.writeHead(500).end('fail');
    else res.end(name);
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return state;
}

function start(config: unknown, args: string[] = []): { proxy: BinRun; file: string } {
  const file = join(bundled.dir, `logs-${running.length}-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(config));
  const proxy = bundled.run(['--config', file, ...args]);
  running.push(proxy);
  return { proxy, file };
}

function jsonLines(proxy: BinRun): Record<string, unknown>[] {
  return proxy.out.stderr
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

const lineWith = (proxy: BinRun, msg: string) => jsonLines(proxy).find((l) => l.msg === msg);

async function frontendPort(proxy: BinRun): Promise<number> {
  await until(() => proxy.out.stderr.includes('fulcrum started'), 'the start line', 15_000);
  const started = proxy.out.stderr.split('\n').find((l) => l.includes('fulcrum started'))!;
  return Number(/127\.0\.0\.1:(\d+)/.exec(started)![1]);
}

const health = { path: '/health', intervalMs: 50, timeoutMs: 1000, rise: 1, fall: 1 };

describe('fulcrum logs', () => {
  it('logs DOWN with the check result, then UP, for a backend whose health check fails and recovers', async () => {
    const b1 = await backend('b1');
    const { proxy } = start({ frontends: [{ port: 0, host: '127.0.0.1' }], pools: { web: { backends: [{ id: 'b1', address: b1.url }], health } } });
    await frontendPort(proxy);
    b1.sick = true;
    await until(() => lineWith(proxy, 'backend web/b1 is DOWN') !== undefined, 'the DOWN line', 10_000);
    expect(lineWith(proxy, 'backend web/b1 is DOWN')).toMatchObject({
      level: 40,
      pool: 'web',
      backend: 'b1',
      from: 'UP',
      to: 'DOWN',
      reason: 'check',
      check: 'HTTP 503 (expected 200-399)',
    });
    b1.sick = false;
    await until(() => lineWith(proxy, 'backend web/b1 is UP') !== undefined, 'the UP line', 10_000);
    expect(lineWith(proxy, 'backend web/b1 is UP')).toMatchObject({ level: 30, from: 'DOWN', to: 'UP', reason: 'check', check: 'HTTP 200' });
  });

  it('logs DRAIN, MAINT and UP with the reason admin for changes made through the admin API', async () => {
    const b1 = await backend('b1');
    const { proxy } = start({
      frontends: [{ port: 0, host: '127.0.0.1' }],
      pools: { web: { backends: [{ id: 'b1', address: b1.url }] } },
      admin: { token: TOKEN, path: '/admin' },
    });
    const port = await frontendPort(proxy);
    const auth = { authorization: `Bearer ${TOKEN}` };
    for (const [action, word] of [
      ['drain', 'DRAIN'],
      ['maintenance', 'MAINT'],
      ['ready', 'UP'],
    ] as const) {
      expect((await get(port, `/admin/pools/web/backends/b1/${action}`, { method: 'POST', headers: auth })).status).toBe(200);
      await until(() => lineWith(proxy, `backend web/b1 is ${word}`) !== undefined, `the ${word} line`);
      expect(lineWith(proxy, `backend web/b1 is ${word}`)).toMatchObject({ pool: 'web', backend: 'b1', to: word, reason: 'admin' });
    }
  });

  it('logs an outlier ejection with its rule, and a reload with its cause, added and removed backends', async () => {
    const b1 = await backend('b1');
    const b2 = await backend('b2');
    const pool = { algorithm: 'first', attempts: 1, outlier: { consecutiveFailures: 2, maxEjectionPercent: 100, baseEjectionMs: 60_000 } };
    const { proxy, file } = start({ frontends: [{ port: 0, host: '127.0.0.1' }], pools: { web: { ...pool, backends: [{ id: 'b1', address: b1.url }] } } });
    const port = await frontendPort(proxy);
    for (let i = 0; i < 2; i++) expect((await get(port, '/fail')).status).toBe(500);
    await until(() => lineWith(proxy, 'backend web/b1 is ejected') !== undefined, 'the ejection line');
    const ejected = lineWith(proxy, 'backend web/b1 is ejected')!;
    expect(ejected).toMatchObject({ level: 40, pool: 'web', backend: 'b1', reason: 'outlier', rule: 'consecutive-failures' });
    expect(ejected.forMs).toBeGreaterThan(50_000);

    const config = JSON.parse(readFileSync(file, 'utf8')) as { pools: { web: { backends: unknown[] } } };
    config.pools.web.backends = [{ id: 'b2', address: b2.url }];
    writeFileSync(file, JSON.stringify(config));
    proxy.child.kill('SIGHUP');
    await until(() => lineWith(proxy, 'config reloaded') !== undefined, 'the reload line');
    expect(lineWith(proxy, 'config reloaded')).toMatchObject({ cause: expect.stringMatching(/SIGHUP|file change/), pools: ['web'] });
    await until(() => lineWith(proxy, 'backend web/b1 removed') !== undefined, 'the removal line');
    expect(lineWith(proxy, 'backend web/b2 added')).toMatchObject({ pool: 'web', backend: 'b2' });
  });

  it('writes text lines with --log-format text and drops info lines with --log-level warn', async () => {
    const b1 = await backend('b1');
    const { proxy } = start({ frontends: [{ port: 0, host: '127.0.0.1' }], pools: { web: { backends: [{ id: 'b1', address: b1.url }], health } } }, [
      '--log-format',
      'text',
      '--log-level',
      'warn',
    ]);
    // No start line at warn: the DOWN line (a warning) is the first one.
    b1.sick = true;
    await until(() => proxy.out.stderr.includes('backend web/b1 is DOWN'), 'the DOWN line', 10_000);
    const line = proxy.out.stderr.split('\n').find((l) => l.includes('is DOWN'))!;
    expect(line).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z WARN backend web\/b1 is DOWN pool=web backend=b1 from=UP to=DOWN reason=check check="HTTP 503 \(expected 200-399\)"$/,
    );
    expect(proxy.out.stderr).not.toContain('fulcrum started');
    expect(proxy.out.stderr).not.toContain('{');
  });

  it('prints the version of the package', async () => {
    const version = bundled.run(['--version']);
    expect(await version.exited).toBe(0);
    const { version: expected } = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { version: string };
    expect(version.out.stdout).toBe(`fulcrum ${expected} (node ${process.version})\n`);
  });

  it('names a missing config file once', async () => {
    const missing = join(bundled.dir, 'no-such-file.json');
    const proxy = bundled.run(['--config', missing]);
    expect(await proxy.exited).toBe(1);
    expect(proxy.out.stderr).toBe(`fulcrum: ${missing}: cannot read the config file (ENOENT)\n`);
  });

  it('refuses a bad --log-level with the usage and exit code 2', async () => {
    const proxy = bundled.run(['--log-level', 'loud', '--config', 'x.json']);
    expect(await proxy.exited).toBe(2);
    expect(proxy.out.stderr).toContain('--log-level must be one of debug, info, warn, error, got "loud"');
  });

  it('does not log "stopped" when the start fails', async () => {
    const taken = createServer();
    servers.push(taken);
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    const { proxy } = start({ frontends: [{ port, host: '127.0.0.1' }], pools: { web: { backends: [] } } });
    expect(await proxy.exited).toBe(1);
    expect(proxy.out.stderr).toContain('fulcrum: cannot start: listen EADDRINUSE');
    expect(proxy.out.stderr).not.toContain('stopped');
    expect(proxy.out.stderr).not.toContain('fulcrum started');
  });
});
