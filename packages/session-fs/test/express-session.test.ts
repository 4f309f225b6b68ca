import { createHmac } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { readdir } from 'node:fs/promises';
import express from 'express';
import session from 'express-session';
import { afterAll, describe, expect, it } from 'vitest';
import { FileStore } from '@fulcrum/session-fs';
import { tempDirs } from './temp-dir';

declare module 'express-session' {
  interface SessionData {
    views?: number;
    host?: string;
  }
}

const dirs = tempDirs();
const servers: Server[] = [];
const stores: FileStore[] = [];
afterAll(async () => {
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  await Promise.all(stores.map((store) => store.close()));
  await dirs.cleanup();
});

/** One "host": an Express app with its own FileStore on the shared directory. */
async function startHost(dir: string, name: string): Promise<string> {
  const store = new FileStore({ dir });
  stores.push(store);
  const app = express();
  app.use(session({ store, secret: 'test secret', resave: false, saveUninitialized: false, name: 'sid' }));
  app.get('/visit', (req, res) => {
    req.session.views = (req.session.views ?? 0) + 1;
    req.session.host = name;
    res.json({ views: req.session.views, servedBy: name });
  });
  app.get('/logout', (req, res, next) => {
    req.session.destroy((error) => (error ? next(error) : res.json({ ok: true })));
  });
  const server = app.listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise((resolve) => server.once('listening', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

describe('FileStore behind express-session', () => {
  it('keeps a visitor’s session across two app instances sharing the directory, until logout', async () => {
    const dir = await dirs.make();
    const [a, b] = [await startHost(dir, 'a'), await startHost(dir, 'b')];
    const first = await fetch(`${a}/visit`);
    expect(await first.json()).toEqual({ views: 1, servedBy: 'a' });
    const cookie = first.headers.get('set-cookie')!.split(';')[0]!;
    expect(await (await fetch(`${b}/visit`, { headers: { cookie } })).json()).toEqual({ views: 2, servedBy: 'b' });
    expect(await (await fetch(`${a}/visit`, { headers: { cookie } })).json()).toEqual({ views: 3, servedBy: 'a' });
    expect(await readdir(dir)).toHaveLength(1);
    await fetch(`${b}/logout`, { headers: { cookie } });
    expect(await readdir(dir)).toHaveLength(0);
    expect(await (await fetch(`${a}/visit`, { headers: { cookie } })).json()).toEqual({ views: 1, servedBy: 'a' });
  });

  it('answers a forged or hostile session cookie with a fresh session, not an error', async () => {
    const dir = await dirs.make();
    const a = await startHost(dir, 'a');
    // Signed with the app's secret, so express-session does hand these ids to the store.
    const signed = (id: string) => `sid=${encodeURIComponent(`s:${id}.${createHmac('sha256', 'test secret').update(id).digest('base64').replace(/=+$/, '')}`)}`;
    const forged = ['../../etc/passwd', '\u0000', 'x'.repeat(6000), 'ünïcödé', '__proto__'].map(signed);
    forged.push('sid=s%3A..%2F..%2Fetc%2Fpasswd.invalidsig');
    for (const cookie of forged) {
      const response = await fetch(`${a}/visit`, { headers: { cookie } });
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({ views: 1, servedBy: 'a' });
    }
    // Only the sessions express-session created for those visits, under hashed names.
    for (const name of await readdir(dir)) expect(name).toMatch(/^[0-9a-f]{64}\.session$/);
  });
});
