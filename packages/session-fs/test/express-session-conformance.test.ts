// express-session's store-facing behaviours, through real express-session over real HTTP, on a
// temporary directory. Expiry is compared with Date.now(), which the suite fakes.
import express from 'express';
import session from 'express-session';
import { afterAll } from 'vitest';
import { FileStore } from '@fulcrum/session-fs';
import { describeExpressSessionConformance } from '../../../test-support/express-session-conformance';
import { tempDirs } from './temp-dir';

const dirs = tempDirs();
afterAll(() => dirs.cleanup());

describeExpressSessionConformance({
  name: 'FileStore',
  express: express as never,
  session: session as never,
  makeStore: async (touchAfterSeconds) =>
    new FileStore({ dir: await dirs.make(), cleanupIntervalMs: 0, fsync: false, ...(touchAfterSeconds === undefined ? {} : { touchAfterSeconds }) }),
  closeStore: (store) => store.close(),
});
