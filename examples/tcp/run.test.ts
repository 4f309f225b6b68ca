// End-to-end test of the TCP example as a user runs it: `node run.mjs` in its own process (importing
// @fulcrum/http from its built dist — `pnpm test` builds first), in front of the machine's MariaDB
// (MYSQL_URL, default mysql://root@127.0.0.1:3306/test). Its scenario checks itself and reports the
// result over IPC; this test also uses the proxy it leaves open with its own mysql2 client.
// An unreachable MariaDB skips the MariaDB tests with one line, except under CI=true where it fails.
import { fileURLToPath } from 'node:url';
import mysql from 'mysql2/promise';
import { afterEach, describe, expect, it } from 'vitest';
import { forkExample, interrupt, type Exit, type ExampleProcess } from '../../test-support/example-process';
import { freePort } from '../../test-support/free-port';

const RUN = fileURLToPath(new URL('./run.mjs', import.meta.url));
const MYSQL_URL = process.env.MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';

async function mysqlAnswers(url: string): Promise<boolean> {
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

const available = await mysqlAnswers(MYSQL_URL);
if (!available) {
  if (process.env.CI === 'true') throw new Error(`examples/tcp: MariaDB at ${MYSQL_URL} is unreachable (CI=true: failing instead of skipping)`);
  console.warn(`skipping examples/tcp against MariaDB: ${MYSQL_URL} is unreachable (set MYSQL_URL)`);
}

interface Result {
  type: 'result';
  ok: boolean;
  port: number;
  checks: { name: string; ok: boolean }[];
}
interface Run extends ExampleProcess<Result> {
  /** The scenario's report: it checks itself, then leaves its proxy open until stopped. */
  result: Promise<Result>;
}

const running = new Set<Run>();

function start(args: string[]): Run {
  const run = forkExample<Result>(RUN, ['--port', '0', ...args]);
  const withResult: Run = Object.assign(run, { result: run.message('result', 12_000) });
  running.add(withResult);
  return withResult;
}

function stop(run: Run): Promise<Exit> {
  running.delete(run);
  return interrupt(run);
}

afterEach(async () => {
  for (const run of [...running]) await stop(run);
});

describe.skipIf(!available)('examples/tcp in front of MariaDB', () => {
  it('spreads, maintains, fails over and commits through the proxy, then serves other clients until stopped', async () => {
    const run = start(['--seconds', '20', '--mysql-url', MYSQL_URL]);
    const result = await run.result;
    expect(result.checks.map((c) => c.name)).toEqual([
      'least-connections spreads six connections 3 / 3',
      'a node in maintenance gets no new connection and keeps its open ones',
      'connections to a dead node are retried on a live one',
      'a transaction with prepared statements commits through the proxy',
      'the PROXY v1 header names the client',
    ]);
    expect(result.checks.filter((c) => !c.ok)).toEqual([]);
    expect(result.ok).toBe(true);

    // The proxy it leaves open relays our own client too.
    const url = new URL(MYSQL_URL);
    url.hostname = '127.0.0.1';
    url.port = String(result.port);
    const connection = await mysql.createConnection({ uri: url.toString(), connectTimeout: 5000 });
    try {
      const [rows] = await connection.query<mysql.RowDataPacket[]>('SELECT ? + 1 AS answer', [41]);
      expect(rows[0]!.answer).toBe(42);
    } finally {
      await connection.end();
    }

    const exit = await stop(run);
    expect(exit.code).toBe(0);
    expect(run.output()).toContain('stopping (SIGINT)');
  });
});

describe('examples/tcp without a database', () => {
  it('exits 1 and names the address when nothing listens there', async () => {
    const port = await freePort();
    const run = start(['--seconds', '20', '--mysql-url', `mysql://root@127.0.0.1:${port}/test`]);
    const result = await run.result;
    expect(result.ok).toBe(false);
    const exit = await run.exited;
    running.delete(run);
    expect(exit.code).toBe(1);
    expect(run.output()).toContain(`is MariaDB running at 127.0.0.1:${port}?`);
  });
});
