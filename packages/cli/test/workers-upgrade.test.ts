// A seamless upgrade of `fulcrum --workers 2` with real processes: under continuous load, SIGUSR2 to
// the primary starts a new primary, which takes the listening sockets (a plain and a TLS frontend,
// the admin listener) and the state (stick entries, health, a drain), forks its workers on those
// sockets, and only then lets the old workers drain. No connection is refused, no request fails.
import { writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { certDir, type CertDir } from '../../http/test/tls/certs';
import { bundleBin, type BundledBin } from './bin-bundle';
import { AUTH, get, logLines, portOf, startBackend, until } from './helpers';
import { alive, startLoad, upgradeConfig } from './upgrade-load';

let bundled: BundledBin;
let certs: CertDir;
const pids: number[] = [];

beforeAll(async () => {
  bundled = await bundleBin();
  certs = certDir();
  const pair = certs.make('site', 'site.test', ['site.test']);
  writeFileSync(join(bundled.dir, 'site.crt'), pair.cert);
  writeFileSync(join(bundled.dir, 'site.key'), pair.key);
}, 60_000);

afterAll(() => {
  certs.remove();
  bundled.remove();
});

afterEach(() => {
  for (const pid of pids.splice(0)) if (alive(pid)) process.kill(pid, 'SIGKILL');
});

/** One https GET on a fresh connection to a throwaway certificate: the body. */
function getTls(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', port, path, servername: 'site.test', rejectUnauthorized: false, agent: false }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

/** Lines of the shared stderr from the `from`-th on. */
const linesFrom = (text: string, from: number): Record<string, unknown>[] => logLines(text).slice(from);

describe('fulcrum --workers upgrades on SIGUSR2 without dropping a connection', () => {
  // Both ways of accepting (workers.accept): the primary passing every connection, or the workers
  // accepting on the handed-over sockets themselves.
  it.each(['primary', 'workers'] as const)(
    'hands listeners and state to a new primary and its workers under load; refuses a second SIGUSR2 meanwhile; replaces a crashed worker afterwards (workers.accept %s)',
    async (accept) => {
      const a = await startBackend('a');
      const b = await startBackend('b');
      const c = await startBackend('c');
      c.setSick(true);
      const file = join(bundled.dir, `workers-upgrade-${accept}.json`);
      writeFileSync(
        file,
        JSON.stringify(
          upgradeConfig(
            { a: a.url, b: b.url, c: c.url },
            [
              { port: 0, host: '127.0.0.1' },
              { port: 0, host: '127.0.0.1', tls: { certs: [{ cert: 'site.crt', key: 'site.key' }] } },
            ],
            { workers: { accept } },
          ),
        ),
      );
      // At debug: a non-checking worker's restored health is logged there.
      const { child: old, out, exited: oldExit } = bundled.run(['--config', file, '--workers', '2', '--log-level', 'debug']);
      pids.push(old.pid!);
      const stderr = (): string => out.stderr;
      try {
        await until(() => logLines(stderr()).some((l) => l.msg === 'fulcrum started'), 'the first primary to start', 30_000);
        const started = logLines(stderr()).find((l) => l.msg === 'fulcrum started')!;
        const oldWorkers = logLines(stderr())
          .filter((l) => l.msg === 'worker started')
          .map((l) => l.pid as number);
        pids.push(...oldWorkers);
        const [port, tlsPort] = (started.frontends as string[]).map(portOf) as [number, number];
        const adminPort = portOf(started.admin);
        const admin = (method: string, path: string) => get(adminPort, path, { method, headers: AUTH });
        const states = async (): Promise<Record<string, string>> => {
          const state = JSON.parse((await admin('GET', '/state?per=worker')).body) as {
            workers: { pid: number; pools: { web: { backends: { id: string; state: string }[] } } }[];
          };
          // Every worker's own view, `pid:id` → state.
          return Object.fromEntries(state.workers.flatMap((w) => w.pools.web.backends.map((backend) => [`${w.pid}:${backend.id}`, backend.state])));
        };
        await until(
          async () => Object.entries(await states()).filter(([k, v]) => k.endsWith(':c') && v === 'down').length === 2,
          'c checked down on both workers',
          10_000,
        );
        expect(await getTls(tlsPort, '/')).toMatch(/^[ab]$/);

        // Ten users learn a backend each (a or b), then b is drained: it keeps only its sticky users.
        const users = new Map<string, string>();
        for (let i = 0; i < 10; i++) users.set(`u${i}`, (await get(port, '/', { headers: { 'x-user': `u${i}` } })).body);
        expect(new Set(users.values())).toEqual(new Set(['a', 'b']));
        expect((await admin('POST', '/pools/web/backends/b/drain')).status).toBe(200);

        // The load has no `x-user`: a drained b takes none of it, before or after the upgrade.
        const bHits = b.hits;
        const load = startLoad(port);
        await until(() => load.result.ok > 50, 'load before the upgrade', 10_000);
        const mark = logLines(stderr()).length;
        old.kill('SIGUSR2');
        await until(() => linesFrom(stderr(), mark).some((l) => l.msg === 'upgrade: starting a new process'), 'the upgrade to start', 10_000);
        // The new primary cannot be serving yet: it has to start, and fork and start two workers.
        old.kill('SIGUSR2');
        await until(() => linesFrom(stderr(), mark).some((l) => l.msg === 'took over from the previous process'), 'the new primary to take over', 30_000);
        const after = linesFrom(stderr(), mark);
        expect(after.some((l) => l.msg === 'upgrade ignored: one is in progress' && l.pid === old.pid)).toBe(true);
        const successor = after.find((l) => l.msg === 'took over from the previous process')!.pid as number;
        pids.push(successor);
        expect(successor).not.toBe(old.pid);
        const newWorkers = after.filter((l) => l.msg === 'worker started').map((l) => l.pid as number);
        pids.push(...newWorkers);
        expect(newWorkers).toHaveLength(2);
        // Accepting for its workers, the new primary takes the sockets only once both serve (the old
        // one accepts everything until then); with the workers accepting, they get them at hello.
        const tookAt = after.findIndex((l) => l.msg === 'took the listening sockets: every worker serves');
        if (accept === 'primary') {
          const lastStarted = Math.max(...newWorkers.map((pid) => after.findIndex((l) => l.msg === 'worker started' && l.pid === pid)));
          expect(tookAt).toBeGreaterThan(lastStarted);
          expect(tookAt).toBeLessThan(after.findIndex((l) => l.msg === 'took over from the previous process'));
          expect(after[tookAt]!.missing).toBeUndefined();
        } else expect(tookAt).toBe(-1);
        // The old primary logs this once it has read the successor's word: it may come after the
        // successor's own 'took over' line, which `after` was cut at.
        await until(
          () => linesFrom(stderr(), mark).some((l) => l.msg === 'upgrade: the new process serves; this one drains and exits' && l.successor === successor),
          'the old primary to hand over',
          10_000,
        );
        expect(await oldExit).toBe(0);
        for (const pid of oldWorkers) await until(() => !alive(pid), `old worker ${pid} to exit`, 10_000);
        const atExit = load.result.ok;
        await until(() => load.result.ok > atExit + 50, 'load after the old primary exited', 10_000);
        const result = await load.stop();

        expect(result.failed).toEqual([]);
        expect(result.ok).toBeGreaterThan(100);
        // The same ports (plain, TLS, admin), served by the new workers with what the old ones knew:
        // the drain, the health verdict and the learned stickiness, on each new worker.
        const now = await states();
        for (const pid of newWorkers) {
          expect(now[`${pid}:b`]).toBe('draining');
          expect(now[`${pid}:c`]).toBe('down');
          expect(now[`${pid}:a`]).toBe('up');
        }
        expect(c.hits).toBe(0);
        expect(b.hits).toBe(bHits);
        // Restored before they served, not replayed after: each new worker logged b drained and c down
        // before its `worker serving`.
        for (const pid of newWorkers) {
          const own = after.filter((l) => l.pid === pid).map((l) => String(l.msg));
          expect(own.indexOf('backend web/b is DRAIN')).toBeGreaterThanOrEqual(0);
          expect(own.indexOf('backend web/b is DRAIN')).toBeLessThan(own.indexOf('worker serving'));
          expect(own.indexOf('backend web/c is DOWN')).toBeGreaterThanOrEqual(0);
          expect(own.indexOf('backend web/c is DOWN')).toBeLessThan(own.indexOf('worker serving'));
        }
        for (const [user, backend] of users) expect((await get(port, '/', { headers: { 'x-user': user } })).body).toBe(backend);
        expect(await getTls(tlsPort, '/')).toBe('a');

        // Crash replacement still works under the new primary, on the handed-over sockets.
        const victim = newWorkers[1]!;
        process.kill(victim, 'SIGKILL');
        const crashMark = logLines(stderr()).length;
        await until(() => linesFrom(stderr(), crashMark).some((l) => l.msg === 'worker started'), 'the new primary to replace its worker', 20_000);
        expect(logLines(stderr()).some((l) => l.msg === 'worker exited; replacing it' && l.pid === victim)).toBe(true);
        const replacement = linesFrom(stderr(), crashMark).find((l) => l.msg === 'worker started')!.pid as number;
        pids.push(replacement);
        const replacementStates = await states();
        expect(replacementStates[`${replacement}:b`]).toBe('draining');
        for (let i = 0; i < 20; i++) expect((await get(port, '/')).body).toBe('a');

        process.kill(successor, 'SIGTERM');
        await until(() => !alive(successor), 'the new primary to stop', 10_000);
      } finally {
        old.kill('SIGKILL');
        await Promise.all([a.close(), b.close(), c.close()]);
      }
    },
    120_000,
  );

  it('a SIGTERM during an upgrade stops the old primary and abandons the new one: nothing serves afterwards', async () => {
    const a = await startBackend('a');
    const file = join(bundled.dir, 'workers-stopped-upgrade.json');
    writeFileSync(file, JSON.stringify({ frontends: [{ port: 0, host: '127.0.0.1' }], pools: { web: { backends: [{ id: 'a', address: a.url }] } } }));
    const { child: old, out, exited } = bundled.run(['--config', file, '--workers', '2']);
    pids.push(old.pid!);
    const stderr = (): string => out.stderr;
    try {
      await until(() => logLines(stderr()).some((l) => l.msg === 'fulcrum started'), 'the primary to start', 30_000);
      const port = portOf((logLines(stderr()).find((l) => l.msg === 'fulcrum started')!.frontends as string[])[0]);
      old.kill('SIGUSR2');
      await until(() => logLines(stderr()).some((l) => l.msg === 'upgrade: starting a new process'), 'the upgrade to start', 10_000);
      old.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(logLines(stderr()).some((l) => l.msg === 'upgrade: the new process serves; this one drains and exits')).toBe(false);
      // The new primary stops too (it exits before it serves, or drains once it did): the port closes.
      await until(
        () =>
          get(port, '/').then(
            () => false,
            (error: NodeJS.ErrnoException) => error.code === 'ECONNREFUSED',
          ),
        'the port to refuse connections',
        20_000,
      );
    } finally {
      old.kill('SIGKILL');
      await a.close();
    }
  }, 60_000);

  it('keeps the old primary and its workers serving when the new primary cannot start', async () => {
    const a = await startBackend('a');
    const file = join(bundled.dir, 'workers-failing-upgrade.json');
    writeFileSync(file, JSON.stringify({ frontends: [{ port: 0, host: '127.0.0.1' }], pools: { web: { backends: [{ id: 'a', address: a.url }] } } }));
    const { child: old, out } = bundled.run(['--config', file, '--workers', '2']);
    pids.push(old.pid!);
    const stderr = (): string => out.stderr;
    try {
      await until(() => logLines(stderr()).some((l) => l.msg === 'fulcrum started'), 'the primary to start', 30_000);
      const port = portOf((logLines(stderr()).find((l) => l.msg === 'fulcrum started')!.frontends as string[])[0]);
      const workers = logLines(stderr())
        .filter((l) => l.msg === 'worker started')
        .map((l) => l.pid as number);
      pids.push(...workers);
      // The new primary reads the file again, and this one is broken.
      writeFileSync(file, '{ "frontends": [');
      const load = startLoad(port);
      await until(() => load.result.ok > 20, 'load before the upgrade', 10_000);
      old.kill('SIGUSR2');
      await until(() => logLines(stderr()).some((l) => l.msg === 'upgrade failed; this process keeps serving'), 'the upgrade to fail', 30_000);
      const atFailure = load.result.ok;
      await until(() => load.result.ok > atFailure + 20, 'load after the failed upgrade', 10_000);
      const result = await load.stop();
      expect(result.failed).toEqual([]);
      expect(stderr()).toContain('fulcrum: ');
      expect(alive(old.pid!)).toBe(true);
      for (const pid of workers) expect(alive(pid)).toBe(true);
      expect((await get(port, '/')).body).toBe('a');
      // And it can still be upgraded once the file is fixed.
      writeFileSync(file, JSON.stringify({ frontends: [{ port: 0, host: '127.0.0.1' }], pools: { web: { backends: [{ id: 'a', address: a.url }] } } }));
      const mark = logLines(stderr()).length;
      old.kill('SIGUSR2');
      await until(() => linesFrom(stderr(), mark).some((l) => l.msg === 'took over from the previous process'), 'the new primary to take over', 30_000);
      pids.push(linesFrom(stderr(), mark).find((l) => l.msg === 'took over from the previous process')!.pid as number);
      pids.push(
        ...linesFrom(stderr(), mark)
          .filter((l) => l.msg === 'worker started')
          .map((l) => l.pid as number),
      );
      expect((await get(port, '/')).body).toBe('a');
    } finally {
      old.kill('SIGKILL');
      await a.close();
    }
  }, 120_000);
});
