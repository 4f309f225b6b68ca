/**
 * Test support for @fulcrum/session-redis: where the shared Redis is (`REDIS_URL`, default
 * redis://127.0.0.1:6379), whether to run or skip (skip with one line when it is unreachable, fail
 * under CI=true), unique key prefixes per test file, and PRIVATE redis-server processes (a standalone
 * server, a 3-master cluster or a master + replica + sentinel on free ports) for the tests that stop and restart Redis — never the
 * shared instance.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SessionData } from 'express-session';
import { Cluster as Cluster5, Redis as Redis5, type RedisOptions } from 'ioredis';
import { Cluster as Cluster6, Redis as Redis6 } from 'ioredis6';
import { waitFor } from '../../../test-support/wait-for';
import { freePort } from '../../../test-support/free-port';

/**
 * The ioredis major the tests' clients use: 5 by default, 6 with `FULCRUM_IOREDIS_MAJOR=6` (CI runs
 * the package's tests once per major; `ioredis-majors.test.ts` runs the core suites on both always).
 */
export const IOREDIS_MAJOR = process.env.FULCRUM_IOREDIS_MAJOR === '6' ? 6 : 5;
/** The client classes of the selected major, typed as ioredis 5's (their APIs are the same for this package). */
export const Redis = (IOREDIS_MAJOR === 6 ? Redis6 : Redis5) as unknown as typeof Redis5;
export type Redis = Redis5;
export const Cluster = (IOREDIS_MAJOR === 6 ? Cluster6 : Cluster5) as unknown as typeof Cluster5;
export type Cluster = Cluster5;
/** Both majors' client classes, typed as ioredis 5's (their APIs are the same for this package). */
export const REDIS_CLIENTS = { 5: Redis5, 6: Redis6 as unknown as typeof Redis5 } as const;

export const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const IN_CI = process.env.CI === 'true';

/** PING `url` once with a short timeout. */
export async function redisReachable(url = REDIS_URL): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** Whether redis-server and redis-cli are on this machine (for the private-server tests). */
export function redisBinariesAvailable(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0 && spawnSync('redis-cli', ['--version']).status === 0;
}

/**
 * `true` when the tests needing `what` should be skipped. Prints the one line saying why; under
 * CI=true throws instead, so a missing service fails the run.
 */
export function skipUnless(available: boolean, what: string): boolean {
  if (available) return false;
  const message = `${what} unavailable: skipping these tests`;
  if (IN_CI) throw new Error(`${message} is not allowed under CI=true`);
  console.warn(`[session-redis] ${message}`);
  return true;
}

/** A key prefix no other test file or run uses. */
export function uniquePrefix(name: string): string {
  return `test:${name}:${process.pid}:${Date.now().toString(36)}:`;
}

const clients = new Set<Redis>();

/** An ioredis client that ignores 'error' events (commands report failures) and is closed by `closeClients`. */
export function newClient(url = REDIS_URL, options: RedisOptions = {}): Redis {
  const client = new Redis(url, options);
  client.on('error', () => undefined);
  client.setMaxListeners(100); // the tests attach many stores to one client
  clients.add(client);
  return client;
}

export async function closeClients(): Promise<void> {
  await Promise.all([...clients].map((c) => c.quit().catch(() => c.disconnect())));
  clients.clear();
}

export { freePort };

async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(condition, { what, timeoutMs, intervalMs: 50 });
}

/** A private redis-server on a free port: no persistence, loopback only. */
export class PrivateRedis {
  readonly port: number;
  readonly dir: string;
  readonly #extraArgs: string[];
  #process: ChildProcess | undefined;

  private constructor(port: number, extraArgs: string[]) {
    this.port = port;
    this.dir = mkdtempSync(join(tmpdir(), 'fulcrum-redis-'));
    this.#extraArgs = extraArgs;
  }

  static async start(extraArgs: string[] = []): Promise<PrivateRedis> {
    const server = new PrivateRedis(await freePort(), extraArgs);
    await server.start();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** (Re)start the server on the same port and wait until it answers. */
  async start(): Promise<void> {
    const child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, ...this.#extraArgs],
      { stdio: 'ignore' },
    );
    this.#process = child;
    await until(() => redisReachable(this.url), `redis-server on port ${this.port}`);
  }

  /** Kill the server (SIGKILL: a crash, not a clean shutdown) and wait for it to exit. */
  async kill(): Promise<void> {
    const child = this.#process;
    this.#process = undefined;
    if (child === undefined || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A private Redis Cluster of `masters` masters (no replicas) on free ports. */
export class PrivateCluster {
  readonly servers: PrivateRedis[];

  private constructor(servers: PrivateRedis[]) {
    this.servers = servers;
  }

  static async start(masters = 3): Promise<PrivateCluster> {
    const servers: PrivateRedis[] = [];
    try {
      for (let i = 0; i < masters; i++) {
        servers.push(await PrivateRedis.start(['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000']));
      }
      const created = spawnSync(
        'redis-cli',
        ['--cluster', 'create', ...servers.map((s) => `127.0.0.1:${s.port}`), '--cluster-replicas', '0', '--cluster-yes'],
        { encoding: 'utf8', timeout: 20_000 },
      );
      if (created.status !== 0) throw new Error(`redis-cli --cluster create failed: ${created.stderr || created.stdout}`);
      const probe = new Redis(servers[0]!.port, '127.0.0.1', { lazyConnect: true });
      probe.on('error', () => undefined);
      try {
        await until(async () => {
          const info = await probe.cluster('INFO').catch(() => '');
          return String(info).includes('cluster_state:ok');
        }, 'cluster_state:ok');
      } finally {
        probe.disconnect();
      }
      return new PrivateCluster(servers);
    } catch (error) {
      await Promise.all(servers.map((s) => s.stop()));
      throw error;
    }
  }

  get nodes(): { host: string; port: number }[] {
    return this.servers.map((s) => ({ host: '127.0.0.1', port: s.port }));
  }

  async stop(): Promise<void> {
    await Promise.all(this.servers.map((s) => s.stop()));
  }
}

/**
 * A private Sentinel setup on free ports: a master, one replica and one sentinel (quorum 1) that
 * calls the master down after 1 s. `redis-server --sentinel` is the sentinel: no extra binary.
 */
export class PrivateSentinel {
  static readonly NAME = 'fulcrum-main';
  readonly master: PrivateRedis;
  readonly replica: PrivateRedis;
  readonly port: number;
  readonly #dir: string;
  #process: ChildProcess | undefined;

  private constructor(master: PrivateRedis, replica: PrivateRedis, port: number) {
    this.master = master;
    this.replica = replica;
    this.port = port;
    this.#dir = mkdtempSync(join(tmpdir(), 'fulcrum-sentinel-'));
  }

  static async start(): Promise<PrivateSentinel> {
    const master = await PrivateRedis.start();
    const replica = await PrivateRedis.start(['--replicaof', '127.0.0.1', String(master.port)]);
    const setup = new PrivateSentinel(master, replica, await freePort());
    try {
      await setup.#startSentinel();
      return setup;
    } catch (error) {
      await setup.stop();
      throw error;
    }
  }

  get sentinels(): { host: string; port: number }[] {
    return [{ host: '127.0.0.1', port: this.port }];
  }

  async #startSentinel(): Promise<void> {
    const config = join(this.#dir, 'sentinel.conf');
    writeFileSync(
      config,
      [
        `port ${this.port}`,
        'bind 127.0.0.1',
        `dir ${this.#dir}`,
        `sentinel monitor ${PrivateSentinel.NAME} 127.0.0.1 ${this.master.port} 1`,
        `sentinel down-after-milliseconds ${PrivateSentinel.NAME} 1000`,
        `sentinel failover-timeout ${PrivateSentinel.NAME} 5000`,
        '',
      ].join('\n'),
    );
    this.#process = spawn('redis-server', [config, '--sentinel'], { stdio: 'ignore' });
    // Ready when the sentinel has found the replica and the replica is in sync.
    await withConnection(this.port, (sentinel) =>
      until(
        async () => {
          const replicas = (await sentinel.call('SENTINEL', 'REPLICAS', PrivateSentinel.NAME).catch(() => [])) as string[][];
          return replicas.some((fields) => fields.includes(String(this.replica.port)) && fields.join(' ').includes('master-link-status ok'));
        },
        'the sentinel to see the replica in sync',
        20_000,
      ),
    );
  }

  /** The port of the master the sentinel currently names. */
  masterPort(): Promise<number> {
    return withConnection(this.port, async (sentinel) => {
      const [, port] = (await sentinel.call('SENTINEL', 'GET-MASTER-ADDR-BY-NAME', PrivateSentinel.NAME)) as [string, string];
      return Number(port);
    });
  }

  /** Ask the sentinel for a failover and wait until it names the replica as the master. */
  async failover(): Promise<void> {
    await withConnection(this.port, (sentinel) => sentinel.call('SENTINEL', 'FAILOVER', PrivateSentinel.NAME));
    await until(async () => (await this.masterPort().catch(() => 0)) === this.replica.port, 'the failover to the replica', 20_000);
    // Until the sentinel has turned the old master into a replica, it still takes writes as a master
    // (and loses them when it resyncs): wait for that too, so a test's writes go where they stay.
    await withConnection(this.master.port, (old) =>
      until(async () => ((await old.call('ROLE').catch(() => ['?'])) as string[])[0] === 'slave', 'the old master to become a replica', 20_000),
    );
  }

  async stop(): Promise<void> {
    const child = this.#process;
    this.#process = undefined;
    if (child !== undefined && child.exitCode === null) {
      await new Promise<void>((resolve) => {
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      });
    }
    await Promise.all([this.master.stop(), this.replica.stop()]);
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/** Run `fn` with a short-lived connection to 127.0.0.1:`port`, closed afterwards whatever happens. */
async function withConnection<T>(port: number, fn: (client: Redis) => Promise<T>): Promise<T> {
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  try {
    return await fn(client);
  } finally {
    client.disconnect();
  }
}

/** A session as express-session stores it, expiring `ttlMs` from now. */
export function sessionData(ttlMs: number, data: Record<string, unknown> = {}, now = Date.now()): SessionData {
  return {
    cookie: { originalMaxAge: ttlMs, expires: new Date(now + ttlMs).toISOString(), httpOnly: true, path: '/' },
    ...data,
  } as unknown as SessionData;
}
