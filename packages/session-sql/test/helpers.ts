/**
 * Shared test plumbing: the MariaDB the suite talks to (MYSQL_URL, default
 * mysql://root@127.0.0.1:3306/test), a skip-with-one-line when it is not there (a failure under
 * CI=true), unique table names per test file, and private `mariadbd` instances — on a free port,
 * with their own datadir and socket in a temp dir — for tests that stop and restart a server.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFile } from 'node:child_process';
import { constants } from 'node:fs';
import { access, mkdtemp, rm, chmod, chown, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import mysql from 'mysql2/promise';
import { waitFor as waitUntil } from '../../../test-support/wait-for';
import { freePort } from '../../../test-support/free-port';

const run = promisify(execFile);

export const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

/** Resolves true when `url` answers `SELECT 1`. */
export async function mysqlAnswers(url: string): Promise<boolean> {
  let connection: mysql.Connection | undefined;
  try {
    connection = await mysql.createConnection({ uri: url, connectTimeout: 2000 });
    await connection.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await connection?.end().catch(() => undefined);
  }
}

/**
 * Whether the MariaDB at MYSQL_URL is usable. Unreachable under CI=true throws (the run fails);
 * elsewhere it prints one line and the caller skips with `describe.skipIf(!available)`.
 */
export async function requireMysql(what: string): Promise<boolean> {
  if (await mysqlAnswers(MYSQL_URL)) return true;
  if (process.env.CI === 'true') throw new Error(`${what}: MariaDB at ${MYSQL_URL} is unreachable (CI=true: failing instead of skipping)`);
  console.warn(`skipping ${what}: MariaDB at ${MYSQL_URL} is unreachable (set MYSQL_URL)`);
  return false;
}

/** A table name of its own for one test file / case. */
export function uniqueTable(prefix: string): string {
  return `${prefix}_${process.pid}_${Math.floor(Math.random() * 1e9).toString(36)}`.slice(0, 48);
}

export function createPool(url = MYSQL_URL, options: mysql.PoolOptions = {}): mysql.Pool {
  return mysql.createPool({ uri: url, connectionLimit: 10, ...options });
}

export async function dropTables(pool: mysql.Pool, ...tables: string[]): Promise<void> {
  for (const table of tables) await pool.query(`DROP TABLE IF EXISTS \`${table}\``).catch(() => undefined);
}

export { freePort };

export async function waitFor(condition: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  await waitUntil(condition, { what, timeoutMs, intervalMs: 100 });
}

/** Whether this machine can run private servers (mariadbd and mariadb-install-db present). */
export async function canRunPrivateMariadb(): Promise<boolean> {
  return (await resolveBinary('mariadbd')) !== undefined && (await resolveBinary('mariadb-install-db')) !== undefined;
}

/** The executable's path in PATH or the sbin/bin directories Debian installs servers to. */
async function resolveBinary(name: string): Promise<string | undefined> {
  // `mariadb-install-db --help` exits 1, so look for the files instead of running them.
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin'];
  for (const dir of dirs) {
    const path = join(dir || '.', name);
    if (
      dir &&
      (await access(path, constants.X_OK).then(
        () => true,
        () => false,
      ))
    )
      return path;
  }
  return undefined;
}

export interface PrivateMariadb {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** Stop the server (SIGKILL by default: a crash) and wait for the process to exit. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Start it again on the same port and datadir; resolves once it answers. */
  start(): Promise<void>;
  /** Stop it and remove its directory. */
  destroy(): Promise<void>;
}

export interface PrivateMariadbOptions {
  /** Extra mariadbd arguments (e.g. wsrep settings). */
  args?: (port: number) => string[];
  /** Skip mariadb-install-db (Galera joiners get their data by state transfer). */
  emptyDatadir?: boolean;
  /** Reuse this directory and port (a Galera node restarted by its test). */
  port?: number;
  /** Longest wait for the server to answer, ms. Default 30000. */
  startTimeoutMs?: number;
}

/**
 * Installs a datadir in a new temp dir and runs a private `mariadbd` on a free port (as root it
 * needs `--user=root`). Nothing is shared with the machine's server: own datadir, socket, pid file.
 */
export async function startPrivateMariadb(options: PrivateMariadbOptions = {}): Promise<PrivateMariadb> {
  const dir = await mkdtemp(join(tmpdir(), 'fulcrum-mariadb-'));
  await chmod(dir, 0o755);
  const datadir = join(dir, 'data');
  if (options.emptyDatadir) {
    // rsync state transfer writes as `nobody` when the server runs as root.
    await mkdir(datadir);
    await chown(datadir, 65534, 65534).catch(() => undefined);
  } else {
    await run(
      (await resolveBinary('mariadb-install-db')) ?? 'mariadb-install-db',
      ['--no-defaults', `--datadir=${datadir}`, '--auth-root-authentication-method=normal', '--skip-test-db', '--user=root'],
      {
        maxBuffer: 16 * 1024 * 1024,
      },
    );
  }
  const port = options.port ?? (await freePort());
  const url = `mysql://root@127.0.0.1:${port}/test`;
  let child: ChildProcess | undefined;
  const args = [
    '--no-defaults',
    '--user=root',
    `--datadir=${datadir}`,
    `--port=${port}`,
    `--socket=${join(dir, 'mysqld.sock')}`,
    `--pid-file=${join(dir, 'mysqld.pid')}`,
    `--log-error=${join(dir, 'error.log')}`,
    '--bind-address=127.0.0.1',
    '--skip-name-resolve',
    '--performance-schema=OFF',
    '--innodb-buffer-pool-size=32M',
    '--innodb-log-file-size=16M',
    '--max-connections=200',
    ...(options.args?.(port) ?? []),
  ];
  const handle: PrivateMariadb = {
    port,
    url,
    dir,
    async start() {
      child = spawn((await resolveBinary('mariadbd')) ?? 'mariadbd', args, { stdio: 'ignore' });
      const started = child;
      let exited = false;
      started.once('exit', () => {
        exited = true;
      });
      await waitFor(
        async () => {
          if (exited) throw new Error(`private mariadbd exited during start; see ${join(dir, 'error.log')}`);
          return mysqlAnswers(`mysql://root@127.0.0.1:${port}/`);
        },
        options.startTimeoutMs ?? 30_000,
        `private mariadbd on port ${port}`,
      );
      const admin = await mysql.createConnection({ uri: `mysql://root@127.0.0.1:${port}/` });
      await admin.query('CREATE DATABASE IF NOT EXISTS test');
      await admin.end();
    },
    async stop(signal: NodeJS.Signals = 'SIGKILL') {
      const running = child;
      child = undefined;
      if (!running || running.exitCode !== null || running.signalCode !== null) return;
      await new Promise<void>((resolve) => {
        running.once('exit', () => resolve());
        running.kill(signal);
      });
    },
    async destroy() {
      await handle.stop('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await handle.start();
  } catch (error) {
    await handle.destroy();
    throw error;
  }
  return handle;
}

/** A store's `get`, typed as plain data for assertions (express-session types sessions narrowly). */
export async function readSession(store: { get(sid: string): unknown }, sid: string): Promise<Record<string, any> | null> {
  return ((await store.get(sid)) ?? null) as Record<string, any> | null;
}
