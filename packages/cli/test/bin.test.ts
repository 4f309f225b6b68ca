// The real bin file, run as a child process (bin-bundle.ts).
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleBin, type BundledBin } from './bin-bundle';
import { get, startBackend, until } from './helpers';

let bundled: BundledBin;
let dir: string;
const run = (args: string[], env: Record<string, string> = {}) => bundled.run(args, env);

beforeAll(async () => {
  bundled = await bundleBin();
  dir = bundled.dir;
}, 60_000);

afterAll(() => bundled.remove());

describe('bin/fulcrum.mjs', () => {
  it('--check exits 0 for a valid file and 1 with the path of the error for an invalid one', async () => {
    const goodFile = join(dir, 'good.json');
    writeFileSync(
      goodFile,
      JSON.stringify({
        frontends: [{ port: 8080 }],
        pools: { web: { backends: [{ id: 'b1', address: 'http://127.0.0.1:3001' }] } },
        admin: { port: 9000, token: '$env:FULCRUM_ADMIN_TOKEN' },
      }),
    );
    const ok = run(['--check', '--config', goodFile], { FULCRUM_ADMIN_TOKEN: 'x'.repeat(20) });
    expect(await ok.exited).toBe(0);
    expect(ok.out.stdout).toContain('valid (1 pool, 1 frontend)');

    const missingEnv = run(['--check', '--config', goodFile], { FULCRUM_ADMIN_TOKEN: '' });
    expect(await missingEnv.exited).toBe(1);
    expect(missingEnv.out.stderr).toContain('admin.token: reads the environment variable FULCRUM_ADMIN_TOKEN, which is not set');

    const badFile = join(dir, 'bad.json');
    writeFileSync(
      badFile,
      JSON.stringify({
        frontends: [{ port: 8080 }],
        pools: {
          api: {
            backends: [
              { id: 'a', address: 'http://h:1' },
              { id: 'b', address: 'http://h:2' },
              { id: 'c', address: 'http://h:3', weight: 'x' },
            ],
          },
        },
      }),
    );
    const bad = run(['--check', '--config', badFile]);
    expect(await bad.exited).toBe(1);
    expect(bad.out.stderr).toContain('pools.api.backends[2].weight: must be 0 or a finite number ≥ 0.01 and ≤ 1000000 (0 = no new unsticky traffic), got "x"');
  });

  it('--check refuses a certificate path that is a FIFO and exits 1 instead of waiting for a writer', async () => {
    const fifo = join(dir, 'cert.fifo');
    execFileSync('mkfifo', [fifo]);
    const file = join(dir, 'fifo.json');
    writeFileSync(
      file,
      JSON.stringify({ frontends: [{ port: 8443, tls: { certs: [{ cert: 'cert.fifo', key: 'cert.fifo' }] } }], pools: { web: { backends: [] } } }),
    );
    const check = run(['--check', '--config', file]);
    expect(await check.exited).toBe(1);
    expect(check.out.stderr).toContain('frontends[0].tls.certs[0].cert: must be a readable regular file of at most 1 MiB, but it is a FIFO (named pipe)');
  });

  it('--check refuses replication whose optional package is not installed, naming option and package', async () => {
    // The bundle lives in a temp directory with no node_modules: exactly a proxy installed without
    // the optional @fulcrum/session-redis (ESM resolution, as the running CLI does it).
    const file = join(dir, 'redis.json');
    writeFileSync(
      file,
      JSON.stringify({ frontends: [{ port: 8080 }], pools: { web: { backends: [] } }, replication: { redis: { url: 'redis://127.0.0.1:6379' } } }),
    );
    const check = run(['--check', '--config', file]);
    expect(await check.exited).toBe(1);
    expect(check.out.stderr).toContain('replication.redis: needs the package @fulcrum/session-redis, which is not installed (install it next to @fulcrum/cli)');
  });

  it('runs the proxy and exits 0 after SIGTERM', async () => {
    const backend = await startBackend('b1');
    try {
      const file = join(dir, 'run.json');
      writeFileSync(file, JSON.stringify({ frontends: [{ port: 0, host: '127.0.0.1' }], pools: { web: { backends: [{ id: 'b1', address: backend.url }] } } }));
      const proxy = run(['--config', file]);
      await until(() => proxy.out.stderr.includes('fulcrum started'), 'the start line', 15_000);
      const started = JSON.parse(proxy.out.stderr.split('\n').find((l) => l.includes('fulcrum started'))!);
      const port = Number(String(started.frontends[0]).split(':').pop());
      expect((await get(port, '/')).body).toBe('b1');
      proxy.child.kill('SIGTERM');
      expect(await proxy.exited).toBe(0);
      expect(proxy.out.stderr).toContain('fulcrum stopped');
    } finally {
      await backend.close();
    }
  });
});
