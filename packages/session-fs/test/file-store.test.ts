import { spawnSync } from 'node:child_process';
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, truncate, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { isInvalidOptionError, isStoreUnavailableError } from '@fulcrum/core';
import { MAX_SESSION_ID_LENGTH, jsonSerializer } from '@fulcrum/core/session';
import fc from 'fast-check';
import { FakeClock } from '@fulcrum/core/testing';
import type { SessionLike } from '@fulcrum/core/session';
import type { SessionData } from 'express-session';
import { FileStore, isCorruptFileError } from '@fulcrum/session-fs';
import type { FileStoreOptions } from '@fulcrum/session-fs';
import { HOST_TAG, digest } from '../src/atomic-file';
import { decodeHeaderId, encodeHeaderId, encodeSessionFile, sessionFileName } from '../src/session-file';
import { eventually, tempDirs } from './temp-dir';

const dirs = tempDirs();
const stores: FileStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()));
});
afterAll(() => dirs.cleanup());

function open(options: FileStoreOptions): FileStore {
  const store = new FileStore({ cleanupIntervalMs: 0, ...options });
  stores.push(store);
  return store;
}

function session(data: Record<string, unknown> = {}, ttlMs = 3_600_000, now = Date.now()): SessionData {
  return { cookie: { originalMaxAge: ttlMs, expires: new Date(now + ttlMs), httpOnly: true, path: '/' }, ...data } as unknown as SessionData;
}

const SESSION_FILE = /^[0-9a-f]{64}\.session$/;

describe('FileStore on a shared directory', () => {
  it('lets two stores on one directory see each other’s writes, destroys and touches, as two hosts would', async () => {
    const dir = await dirs.make();
    const a = open({ dir, touchAfterSeconds: 0 });
    const b = open({ dir, touchAfterSeconds: 0 });
    await a.set('sid-1', session({ user: 'zoë' }));
    expect(await b.get('sid-1')).toMatchObject({ user: 'zoë' });
    await b.set('sid-1', session({ user: 'ana' }));
    expect(await a.get('sid-1')).toMatchObject({ user: 'ana' });
    const later = session({ ignored: true }, 7_200_000);
    await b.touch('sid-1', later);
    const touched = (await a.get('sid-1')) as unknown as SessionLike;
    expect(touched).toMatchObject({ user: 'ana' });
    expect(touched).not.toHaveProperty('ignored');
    expect(new Date(touched.cookie!.expires as string).getTime()).toBe((later.cookie.expires as Date).getTime());
    await a.destroy('sid-1');
    expect(await b.get('sid-1')).toBeNull();
    expect(await b.ids()).toEqual([]);
  });

  it('leaves one whole value after 50 concurrent writers on one id, in one store and across five', async () => {
    const dir = await dirs.make();
    const many = [0, 1, 2, 3, 4].map(() => open({ dir }));
    const payload = (writer: number) => String.fromCharCode(65 + (writer % 26)).repeat(20_000 + writer);
    await Promise.all(Array.from({ length: 50 }, (_, writer) => many[0]!.set('race-one', session({ writer, payload: payload(writer) }))));
    await Promise.all(Array.from({ length: 50 }, (_, writer) => many[writer % 5]!.set('race-five', session({ writer, payload: payload(writer) }))));
    for (const id of ['race-one', 'race-five']) {
      const got = (await many[1]!.get(id)) as unknown as { writer: number; payload: string };
      expect(got.payload).toBe(payload(got.writer));
    }
    // Serialised in one process, the last call wins.
    expect(((await many[2]!.get('race-one')) as unknown as { writer: number }).writer).toBe(49);
    expect((await readdir(dir)).sort()).toEqual([sessionFileName('race-five'), sessionFileName('race-one')].sort());
  });

  it('sweeps a crashed writer’s temporary file on start and never reads it as a session', async () => {
    const dir = await dirs.make();
    const first = open({ dir });
    await first.set('crashed', session({ version: 'before the crash' }));
    await first.close();
    // The writer died after writing half of the next version to its temporary file.
    const exited = spawnSync(process.execPath, ['-e', '']);
    const deadPid = exited.pid!;
    const whole = encodeSessionFile('crashed', Date.now() + 3_600_000, JSON.stringify(session({ version: 'after the crash' })));
    const leftover = `.fulcrum-${HOST_TAG}-${deadPid}-0123456789abcdef.tmp`;
    await writeFile(join(dir, leftover), whole.slice(0, whole.length >> 1));
    // Another host's leftover, a few minutes old, and another host's write in flight right now.
    const oldForeign = '.fulcrum-00000000-12-0123456789abcdef.tmp';
    const liveForeign = '.fulcrum-00000000-13-0123456789abcdef.tmp';
    await writeFile(join(dir, oldForeign), whole);
    await writeFile(join(dir, liveForeign), whole);
    const minutesAgo = new Date(Date.now() - 5 * 60_000);
    await utimes(join(dir, oldForeign), minutesAgo, minutesAgo);

    const restarted = open({ dir });
    await restarted.ready;
    const names = await readdir(dir);
    expect(names).not.toContain(leftover);
    expect(names).not.toContain(oldForeign);
    expect(names).toContain(liveForeign);
    expect(await restarted.get('crashed')).toMatchObject({ version: 'before the crash' });
    expect(await restarted.length()).toBe(1);
  });

  it('stores path-like ids such as ../../etc/x and /abs inside its directory, under hashed names, and gives them back', async () => {
    const root = await dirs.make();
    const parent = join(root, 'a', 'b');
    const dir = join(parent, 'sessions');
    const store = open({ dir });
    const ids = [
      '../x',
      '../../etc/x',
      '../../../../../../tmp/escape',
      '/abs',
      `${root}/planted`,
      'a/b',
      'a\\b',
      '..',
      '.',
      '.hidden',
      '\u0000',
      'a\u0000b',
      'ünïcödé-会话-🍪',
      ' ',
      'a b',
      '%',
      '%2e%2e%2fx',
      'line\nbreak',
      'CON',
      '__proto__',
      'x'.repeat(MAX_SESSION_ID_LENGTH),
      '\u0800'.repeat(MAX_SESSION_ID_LENGTH),
    ];
    for (const id of ids) await store.set(id, session({ id }));
    for (const id of ids) expect(await store.get(id), JSON.stringify(id.slice(0, 20))).toMatchObject({ id });
    // Nothing was created anywhere but the session directory, and only hashed names in it.
    expect(await readdir(root)).toEqual(['a']);
    expect(await readdir(join(root, 'a'))).toEqual(['b']);
    expect(await readdir(parent)).toEqual(['sessions']);
    const names = (await readdir(dir)).sort();
    expect(names).toEqual(ids.map(sessionFileName).sort());
    for (const name of names) expect(name).toMatch(SESSION_FILE);
    expect((await store.ids())!.sort()).toEqual([...ids].sort());
    expect(Object.keys((await store.all())!).sort()).toEqual([...ids].sort());
    for (const id of ids) {
      await store.destroy(id);
      expect(await store.get(id)).toBeNull();
    }
    expect(await readdir(dir)).toEqual([]);
    expect(await readdir(root)).toEqual(['a']);
  });

  it('refuses an id over 1024 characters, an empty one and a lone surrogate with InvalidOptionError, and writes nothing', async () => {
    const dir = await dirs.make();
    const store = open({ dir });
    for (const id of ['x'.repeat(MAX_SESSION_ID_LENGTH + 1), '', 'a\ud800b']) {
      const error = await Promise.resolve(store.set(id, session())).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(isInvalidOptionError(error), `set(${JSON.stringify(id.slice(0, 20))})`).toBe(true);
      expect((error as Error).message).toMatch(/^sid: /);
      expect(await store.get(id)).toBeNull();
      await store.touch(id, session());
      await store.destroy(id);
    }
    expect(await readdir(dir)).toEqual([]);
  });

  it('keeps the header to one ASCII line whatever the id, and reads files written before ids were encoded', async () => {
    const dir = await dirs.make();
    const store = open({ dir });
    await store.set('a b\n%/é', session({ n: 1 }));
    const text = await readFile(join(dir, sessionFileName('a b\n%/é')), 'utf8');
    const header = text.slice(0, text.indexOf('\n'));
    expect(header.split(' ')).toHaveLength(5);
    expect(header.split(' ')[4]).toBe('a%20b%0A%25%2F%C3%A9');
    // A file of the previous version: the id raw in the header (only [A-Za-z0-9_.:+=-] were allowed).
    const legacyId = 'Zq3v_-x.Yp2:Jk8+sQ0=';
    const body = JSON.stringify(session({ legacy: true }));
    const expiresAt = Date.now() + 3_600_000;
    const legacy = `fulcrum-session/1 ${expiresAt} ${Buffer.byteLength(body)} ${digest(legacyId, String(expiresAt), body)} ${legacyId}\n${body}`;
    expect(encodeSessionFile(legacyId, expiresAt, body)).toBe(legacy);
    await writeFile(join(dir, sessionFileName(legacyId)), legacy);
    expect(await store.get(legacyId)).toMatchObject({ legacy: true });
    expect((await store.ids())!.sort()).toEqual(['a b\n%/é', legacyId].sort());
  });

  it('encodes header ids one-to-one and refuses every non-canonical encoding', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 64 }), (id) => {
        const encoded = encodeHeaderId(id);
        expect(encoded).toMatch(/^[A-Za-z0-9_.:+=%-]+$/);
        expect(decodeHeaderId(encoded)).toBe(id);
      }),
      { seed: 20, numRuns: 500 },
    );
    for (const bad of ['%2f', '%41', '%', '%G0', 'a b', 'a/b', '%C3', '%FF', 'é']) expect(decodeHeaderId(bad), bad).toBeUndefined();
  });
});

describe('FileStore reading damaged and expired files', () => {
  it('reads a partially replicated or corrupted file as no session and reports it', async () => {
    const dir = await dirs.make();
    const store = open({ dir });
    const errors: unknown[] = [];
    store.on('error', (error) => errors.push(error));
    await store.set('cut', session({ data: 'x'.repeat(1000) }));
    await store.set('flipped', session({ data: 'y'.repeat(1000) }));
    await store.set('intact', session({ data: 'z' }));
    const cutPath = join(dir, sessionFileName('cut'));
    await truncate(cutPath, (await stat(cutPath)).size - 300);
    const flippedPath = join(dir, sessionFileName('flipped'));
    const bytes = await readFile(flippedPath);
    bytes[bytes.length - 10] = 'Y'.charCodeAt(0);
    await writeFile(flippedPath, bytes);

    expect(await store.get('cut')).toBeNull();
    expect(await store.get('flipped')).toBeNull();
    expect(await store.ids()).toEqual(['intact']);
    expect(await store.length()).toBe(1);
    expect(Object.keys((await store.all())!)).toEqual(['intact']);
    const reasons = errors.filter(isCorruptFileError).map((e) => e.reason);
    expect(reasons).toContain('truncated');
    expect(reasons).toContain('checksum');
  });

  it('never returns an expired session, and its sweep removes only expired files (on its clock option)', async () => {
    const dir = await dirs.make();
    // Years before the wall clock: a store that read Date.now() would find every session expired.
    const clock = new FakeClock(Date.UTC(2020, 0, 1));
    const store = open({ dir, clock });
    await store.set('short', session({}, 150, clock.now()));
    await store.set('long', session({}, 3_600_000, clock.now()));
    expect(await store.get('short')).not.toBeNull();
    await clock.advance(150);
    // Still on disk (no sweep has run), yet never read.
    expect(await readdir(dir)).toContain(sessionFileName('short'));
    expect(await store.get('short')).toBeNull();
    expect(await store.ids()).toEqual(['long']);
    expect(await store.cleanup()).toEqual({ expired: 1, corrupt: 0, temporary: 0 });
    expect(await readdir(dir)).toEqual([sessionFileName('long')]);
  });

  it('runs its cleanup sweep on its clock option, every cleanupIntervalMs', async () => {
    const dir = await dirs.make();
    const clock = new FakeClock(Date.UTC(2020, 0, 1));
    const store = open({ dir, clock, cleanupIntervalMs: 60_000 });
    await store.ready;
    await store.set('short', session({}, 1000, clock.now()));
    await store.set('long', session({}, 3_600_000, clock.now()));
    await clock.advance(59_999);
    expect((await readdir(dir)).sort()).toEqual([sessionFileName('long'), sessionFileName('short')].sort());
    await clock.advance(1);
    await eventually('the timer’s sweep to remove the expired file', async () => (await readdir(dir)).length === 1);
    expect(await readdir(dir)).toEqual([sessionFileName('long')]);
  });

  it('sweeps a file that stayed corrupt for over an hour, and keeps a freshly damaged one', async () => {
    const dir = await dirs.make();
    const store = open({ dir });
    store.on('error', () => undefined);
    await store.set('old', session());
    await store.set('fresh', session());
    for (const id of ['old', 'fresh']) await truncate(join(dir, sessionFileName(id)), 40);
    const twoHoursAgo = new Date(Date.now() - 2 * 3_600_000);
    await utimes(join(dir, sessionFileName('old')), twoHoursAgo, twoHoursAgo);
    expect(await store.cleanup()).toEqual({ expired: 0, corrupt: 1, temporary: 0 });
    expect(await readdir(dir)).toEqual([sessionFileName('fresh')]);
  });
});

describe('FileStore touch', () => {
  it('writes only when the expiry moves by at least touchAfterSeconds', async () => {
    const dir = await dirs.make();
    const store = open({ dir, touchAfterSeconds: 60 });
    const path = join(dir, sessionFileName('t'));
    const original = session({ n: 1 }, 3_600_000);
    await store.set('t', original);
    const before = await stat(path, { bigint: true });
    await store.touch('t', session({}, 3_600_000 + 30_000));
    expect((await stat(path, { bigint: true })).ino).toBe(before.ino);
    await store.touch('t', session({}, 3_600_000 + 120_000));
    expect((await stat(path, { bigint: true })).ino).not.toBe(before.ino);
    expect(await store.get('t')).toMatchObject({ n: 1 });
  });

  it('never brings back a session destroyed before, during or after the touch', async () => {
    const dir = await dirs.make();
    const store = open({ dir, touchAfterSeconds: 0 });
    // In one process the per-id chain orders them, whichever comes first.
    await store.set('a', session());
    await Promise.all([store.touch('a', session({}, 7_200_000)), store.destroy('a')]);
    expect(await store.get('a')).toBeNull();
    await store.set('b', session());
    await Promise.all([store.destroy('b'), store.touch('b', session({}, 7_200_000))]);
    expect(await store.get('b')).toBeNull();
    await store.touch('never', session());
    expect(await readdir(dir)).toEqual([]);
  });

  it('does not rewrite a file another host deleted or replaced between its read and its rename', async () => {
    const dir = await dirs.make();
    let during: (() => void) | undefined;
    // The serializer runs between touch's read and its rename: the moment another host acts.
    const serializer = {
      parse: jsonSerializer.parse,
      stringify: (value: SessionLike) => {
        const act = during;
        during = undefined;
        act?.();
        return jsonSerializer.stringify(value);
      },
    };
    const store = open({ dir, touchAfterSeconds: 0, serializer });
    const path = join(dir, sessionFileName('s'));

    await store.set('s', session({ v: 1 }));
    during = () => unlinkSync(path);
    await store.touch('s', session({}, 7_200_000));
    expect(await store.get('s')).toBeNull();

    await store.set('s', session({ v: 1 }));
    during = () => {
      const newer = encodeSessionFile('s', Date.now() + 3_600_000, JSON.stringify(session({ v: 2 })));
      writeFileSync(`${path}.other-host`, newer);
      renameSync(`${path}.other-host`, path);
    };
    await store.touch('s', session({}, 7_200_000));
    expect(await store.get('s')).toMatchObject({ v: 2 });
    expect(readFileSync(path, 'utf8')).toContain('"v":2');
  });
});

describe('FileStore availability and options', () => {
  it('disconnects when its directory vanishes, fails fast meanwhile, and reconnects when it is back', async () => {
    const parent = await dirs.make();
    const dir = join(parent, 'mounted');
    // The recovery probe runs on the store's clock: advanced below, one probe at a time.
    const clock = new FakeClock(Date.now());
    const store = open({ dir, clock });
    const events: string[] = [];
    store.on('connect', () => events.push('connect'));
    store.on('disconnect', () => events.push('disconnect'));
    await store.ready;
    await eventually('connect', () => events.includes('connect'));
    expect(store.connected).toBe(true);
    await rm(dir, { recursive: true });
    const failed = await Promise.resolve(store.set('s', session())).catch((e: unknown) => e);
    expect(isStoreUnavailableError(failed)).toBe(true);
    await eventually('disconnect', () => events.includes('disconnect'));
    expect(isStoreUnavailableError(await Promise.resolve(store.get('s')).catch((e: unknown) => e))).toBe(true);
    // The store never re-creates it (that would write under an unmounted mount point). A probe that
    // has ended schedules the next one a second on: that is the signal that the first one is done.
    const firstProbeAt = clock.now() + 1000;
    expect(clock.nextDueAt).toBe(firstProbeAt);
    await clock.advance(1000);
    await eventually('the first probe to end', () => clock.nextDueAt === firstProbeAt + 1000);
    expect(await readdir(parent)).toEqual([]);
    expect(store.connected).toBe(false);
    await mkdir(dir);
    await clock.advance(1000);
    await eventually('reconnect', () => events.filter((e) => e === 'connect').length === 2, 5000);
    await store.set('s', session({ back: true }));
    expect(await store.get('s')).toMatchObject({ back: true });
  });

  it('decides touch throttling on its clock option', async () => {
    const dir = await dirs.make();
    const clock = new FakeClock(Date.UTC(2020, 0, 1));
    const store = open({ dir, clock, touchAfterSeconds: 60 });
    await store.set('t', session({}, 3_600_000, clock.now()));
    const storedExpiry = async () => new Date(((await store.get('t')) as unknown as SessionLike).cookie!.expires as string).getTime();
    const first = await storedExpiry();
    // 30 s later the rolling session extends its expiry by 30 s: under the 60 s throttle.
    await clock.advance(30_000);
    await store.touch('t', session({}, 3_600_000, clock.now()));
    expect(await storedExpiry()).toBe(first);
    await clock.advance(60_000);
    await store.touch('t', session({}, 3_600_000, clock.now()));
    expect(await storedExpiry()).toBe(clock.now() + 3_600_000);
  });

  it('refuses a clock without now, setTimeout and clearTimeout', () => {
    expect(() => new FileStore({ dir: '/tmp/unused', clock: { now: () => 0 } as never })).toThrow(/fileStore\.clock: must be a Clock/);
  });

  it('works in callback style for express-session', async () => {
    const dir = await dirs.make();
    const store = open({ dir });
    await new Promise<void>((resolve, reject) => store.set('cb', session({ cb: 1 }), (error) => (error ? reject(error) : resolve())));
    const got = await new Promise<unknown>((resolve, reject) => store.get('cb', (error, value) => (error ? reject(error) : resolve(value))));
    expect(got).toMatchObject({ cb: 1 });
    expect(store.get('cb', () => undefined)).toBeUndefined();
  });

  it('refuses bad options with the option path and value', () => {
    const cases: [unknown, string][] = [
      [{}, 'fileStore.dir'],
      [{ dir: '' }, 'fileStore.dir'],
      [{ dir: '/tmp/x', ttlSeconds: 0 }, 'fileStore.ttlSeconds'],
      [{ dir: '/tmp/x', touchAfterSeconds: -1 }, 'fileStore.touchAfterSeconds'],
      [{ dir: '/tmp/x', cleanupIntervalMs: 1.5 }, 'fileStore.cleanupIntervalMs'],
      [{ dir: '/tmp/x', serializer: JSON.stringify }, 'fileStore.serializer'],
      [{ dir: '/tmp/x', fsync: 'yes' }, 'fileStore.fsync'],
      [{ dir: '/tmp/x', fileMode: 0o400 }, 'fileStore.fileMode'],
      [{ dir: '/tmp/x', ttl: 60 }, 'fileStore.ttl'],
      [null, 'fileStore'],
    ];
    for (const [options, path] of cases) {
      let error: unknown;
      try {
        new FileStore(options as FileStoreOptions);
      } catch (e) {
        error = e;
      }
      expect(isInvalidOptionError(error), path).toBe(true);
      expect((error as { path: string }).path).toBe(path);
    }
  });

  it('writes session files readable by their owner only', async () => {
    const dir = await dirs.make();
    const store = open({ dir });
    await store.set('private', session());
    expect((await stat(join(dir, sessionFileName('private')))).mode & 0o777).toBe(0o600);
  });
});
