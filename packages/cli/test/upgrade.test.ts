// A seamless upgrade with real processes: the bin, under continuous load, hands its listeners and
// state to its successor on SIGUSR2. No connection is refused, no request fails, and the successor
// serves with the health, admin states and learned stickiness its predecessor had.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { bundleBin, type BundledBin } from './bin-bundle';
import { AUTH, get, logLines, portOf, startBackend, until } from './helpers';
import { alive, startLoad, upgradeConfig } from './upgrade-load';

let bundled: BundledBin;
const pids: number[] = [];

beforeAll(async () => {
  bundled = await bundleBin();
}, 60_000);

afterAll(() => bundled.remove());

afterEach(async () => {
  for (const pid of pids.splice(0)) {
    if (alive(pid)) process.kill(pid, 'SIGKILL');
  }
});

describe('fulcrum upgrades on SIGUSR2 without dropping a connection', () => {
  it('hands listeners, health, admin states and stickiness to its successor under load', async () => {
    const a = await startBackend('a');
    const b = await startBackend('b');
    const c = await startBackend('c');
    c.setSick(true);
    const file = join(bundled.dir, 'upgrade.json');
    writeFileSync(file, JSON.stringify(upgradeConfig({ a: a.url, b: b.url, c: c.url }, [{ port: 0, host: '127.0.0.1' }])));
    const { child: old, out, exited: oldExit } = bundled.run(['--config', file]);
    pids.push(old.pid!);
    const stderr = (): string => out.stderr;
    try {
      await until(() => logLines(stderr()).some((l) => l.msg === 'fulcrum started'), 'the first process to start', 10_000);
      const started = logLines(stderr()).find((l) => l.msg === 'fulcrum started')!;
      const port = portOf((started.frontends as string[])[0]);
      const adminPort = portOf(started.admin);
      const admin = (method: string, path: string) => get(adminPort, path, { method, headers: AUTH });
      const stateOf = async (id: string): Promise<string> => {
        const state = JSON.parse((await admin('GET', '/state')).body) as { pools: { web: { backends: { id: string; state: string }[] } } };
        return state.pools.web.backends.find((backend) => backend.id === id)!.state;
      };
      await until(async () => (await stateOf('c')) === 'down', 'c to be checked down', 10_000);

      // Ten users learn a backend each (a or b), then b is drained: it keeps only its sticky users.
      const users = new Map<string, string>();
      for (let i = 0; i < 10; i++) users.set(`u${i}`, (await get(port, '/', { headers: { 'x-user': `u${i}` } })).body);
      expect(new Set(users.values())).toEqual(new Set(['a', 'b']));
      expect((await admin('POST', '/pools/web/backends/b/drain')).status).toBe(200);

      const load = startLoad(port);
      await until(() => load.result.ok > 50, 'load before the upgrade', 10_000);
      old.kill('SIGUSR2');
      await until(() => logLines(stderr()).some((l) => l.msg === 'took over from the previous process'), 'the successor to take over', 20_000);
      const successor = Number(logLines(stderr()).find((l) => l.msg === 'took over from the previous process')!.pid);
      pids.push(successor);
      expect(successor).not.toBe(old.pid);
      expect(await oldExit).toBe(0);
      const atExit = load.result.ok;
      await until(() => load.result.ok > atExit + 50, 'load after the old process exited', 10_000);
      const result = await load.stop();

      expect(result.failed).toEqual([]);
      expect(result.ok).toBeGreaterThan(100);
      // The successor serves on the same ports, with what its predecessor knew.
      expect(await stateOf('b')).toBe('draining');
      expect(await stateOf('c')).toBe('down');
      expect(c.hits).toBe(0);
      for (const [user, backend] of users) expect((await get(port, '/', { headers: { 'x-user': user } })).body).toBe(backend);
      const logs = logLines(stderr());
      expect(logs.some((l) => l.msg === 'upgrade: the new process serves; this one drains and exits' && l.successor === successor)).toBe(true);

      process.kill(successor, 'SIGTERM');
      await until(() => !alive(successor), 'the successor to stop', 10_000);
    } finally {
      old.kill('SIGKILL');
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  }, 60_000);

  it('keeps serving when the successor cannot start', async () => {
    const a = await startBackend('a');
    const file = join(bundled.dir, 'failing-upgrade.json');
    writeFileSync(file, JSON.stringify({ frontends: [{ port: 0, host: '127.0.0.1' }], pools: { web: { backends: [{ id: 'a', address: a.url }] } } }));
    const { child: old, out } = bundled.run(['--config', file]);
    pids.push(old.pid!);
    const stderr = (): string => out.stderr;
    try {
      await until(() => logLines(stderr()).some((l) => l.msg === 'fulcrum started'), 'the process to start', 10_000);
      const started = logLines(stderr()).find((l) => l.msg === 'fulcrum started')!;
      const port = portOf((started.frontends as string[])[0]);
      // The successor reads the file again, and this one is broken.
      writeFileSync(file, '{ "frontends": [');
      old.kill('SIGUSR2');
      await until(() => logLines(stderr()).some((l) => l.msg === 'upgrade failed; this process keeps serving'), 'the upgrade to fail', 20_000);
      expect(stderr()).toContain('fulcrum: ');
      expect((await get(port, '/')).body).toBe('a');
      expect(alive(old.pid!)).toBe(true);
    } finally {
      old.kill('SIGKILL');
      await a.close();
    }
  }, 60_000);
});
