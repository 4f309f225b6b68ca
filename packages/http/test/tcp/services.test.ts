// The TCP proxy in front of the machine's real services: MariaDB (mysql2 connects through the proxy
// and runs queries) and Redis (RESP over the relayed connection). Addresses from MYSQL_URL and
// REDIS_URL; an unreachable service skips its tests with one line, except under CI=true where it
// fails. mysql2 is a dependency of @fulcrum/session-sql, not of this package: it is loaded from
// there (see the report: a devDependency of @fulcrum/http would be the clean way).
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLoadBalancer, type LoadBalancer } from '@fulcrum/core';
import { MYSQL_URL, REDIS_URL, reachable, skipUnless } from '../services';
import { startTcpProxy, type TestProxy } from './helpers';
import { waitFor } from '../../../../test-support/wait-for';

const skipMysql = skipUnless(await reachable(MYSQL_URL), MYSQL_URL, '[http/tcp] the TCP proxy tests against it');
const skipRedis = skipUnless(await reachable(REDIS_URL), REDIS_URL, '[http/tcp] the TCP proxy tests against it');

/** The part of mysql2/promise this test uses (its types live with @fulcrum/session-sql). */
interface MysqlPromise {
  createPool(options: Record<string, unknown>): {
    query(sql: string, values?: unknown[]): Promise<[unknown, unknown]>;
    end(): Promise<void>;
  };
}

function hostPort(url: string): string {
  const { hostname, port } = new URL(url);
  return `${hostname}:${port}`;
}

describe.skipIf(skipMysql)('createTcpProxy in front of MariaDB', () => {
  let proxy: TestProxy;
  let lb: LoadBalancer;
  beforeAll(async () => {
    // Two backend entries for the same server: the connections are spread over both ids.
    lb = createLoadBalancer({
      algorithm: 'least-connections',
      backends: [
        { id: 'db-a', address: hostPort(MYSQL_URL) },
        { id: 'db-b', address: hostPort(MYSQL_URL) },
      ],
    });
    proxy = await startTcpProxy({ balancer: lb });
  });
  afterAll(async () => {
    await proxy.close();
    lb.close();
  });

  it('carries mysql2 connections and their queries through the proxy', async () => {
    const require = createRequire(new URL('../../../session-sql/package.json', import.meta.url));
    const mysql = require('mysql2/promise') as MysqlPromise;
    const url = new URL(MYSQL_URL);
    const pool = mysql.createPool({
      host: '127.0.0.1',
      port: proxy.port,
      user: decodeURIComponent(url.username || 'root'),
      password: decodeURIComponent(url.password),
      database: url.pathname.slice(1) || 'test',
      connectionLimit: 4,
    });
    try {
      const results = await Promise.all([1, 2, 3, 4].map((n) => pool.query('SELECT ? + 1 AS answer, SLEEP(0.05) AS s', [n])));
      expect(results.map(([rows]) => (rows as { answer: number }[])[0]!.answer)).toEqual([2, 3, 4, 5]);
      const [rows] = await pool.query("SELECT REPEAT('x', 200000) AS big");
      expect((rows as { big: string }[])[0]!.big.length).toBe(200_000);
      // Least-connections spread the pool's four open connections over both entries.
      expect(lb.backends.map((b) => b.inflight)).toEqual([2, 2]);
    } finally {
      await pool.end();
    }
    await waitFor(() => lb.backends.every((b) => b.inflight === 0), { what: 'every lease to be released' });
    // Every connection's lease was released when mysql2 closed it.
    expect(lb.backends.map((b) => b.inflight)).toEqual([0, 0]);
  });
});

describe.skipIf(skipRedis)('createTcpProxy in front of Redis', () => {
  it('relays RESP commands and replies', async () => {
    const lb = createLoadBalancer({ backends: [{ id: 'redis', address: hostPort(REDIS_URL) }] });
    const proxy = await startTcpProxy({ balancer: lb, hashBy: 'source-ip' });
    try {
      const reply = await new Promise<string>((resolve, reject) => {
        const socket = connect({ host: '127.0.0.1', port: proxy.port });
        let text = '';
        socket.on('data', (c: Buffer) => {
          text += c.toString();
          if (text.endsWith('$5\r\nhello\r\n')) {
            socket.end();
            resolve(text);
          }
        });
        socket.on('error', reject);
        socket.write('*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n');
      });
      expect(reply).toBe('+PONG\r\n$5\r\nhello\r\n');
    } finally {
      await proxy.close();
      lb.close();
    }
  });
});
