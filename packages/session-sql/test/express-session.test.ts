// express-session's store-facing behaviours, through real express-session over real HTTP, against
// the shared MariaDB (one table per store). Expiry is compared with Date.now(), which the suite fakes.
import express from 'express';
import session from 'express-session';
import { afterAll, describe } from 'vitest';
import { SqlStore } from '@fulcrum/session-sql';
import { describeExpressSessionConformance } from '../../../test-support/express-session-conformance';
import { createPool, dropTables, requireMysql, uniqueTable } from './helpers';

const available = await requireMysql('SqlStore behind express-session');

describe.skipIf(!available)('SqlStore', () => {
  const pool = createPool();
  const tables: string[] = [];
  afterAll(async () => {
    await dropTables(pool, ...tables);
    await pool.end();
  });

  describeExpressSessionConformance({
    name: 'SqlStore',
    express: express as never,
    session: session as never,
    makeStore: (touchAfterSeconds) => {
      const table = uniqueTable('es');
      tables.push(table);
      return new SqlStore({ pool, table, cleanupIntervalMs: 0, ...(touchAfterSeconds === undefined ? {} : { touchAfterSeconds }) });
    },
    closeStore: (store) => store.close(),
  });
});
