import { describe, expect, it } from 'vitest';
import { checkStore, type SessionData, type StoreCallback, type StoreUnderTest } from '../../src/testing/check-store';

type Flaw = 'none' | 'touch-revives' | 'ignores-ttl' | 'ignores-future-ttl' | 'glob-destroy' | 'object-map';

/** A small, correct in-memory express-session store — and, with a flaw, a broken one. */
class ReferenceStore implements StoreUnderTest {
  readonly #sessions = new Map<string, { json: string; expiresAt: number }>();
  // The 'object-map' flaw: a plain object as the map, so '__proto__' and friends misbehave.
  readonly #objectMap: Record<string, { json: string; expiresAt: number }> = {};
  constructor(readonly flaw: Flaw = 'none') {}

  #expiry(session: SessionData): number {
    if (this.flaw === 'ignores-ttl') return Number.POSITIVE_INFINITY;
    const { expires, maxAge } = session.cookie;
    let expiresAt = Number.POSITIVE_INFINITY;
    if (expires !== undefined && expires !== null) expiresAt = new Date(expires).getTime();
    else if (typeof maxAge === 'number') expiresAt = Date.now() + maxAge;
    // Honours a cookie already in the past, but keeps every other session forever.
    if (this.flaw === 'ignores-future-ttl' && expiresAt > Date.now()) return Number.POSITIVE_INFINITY;
    return expiresAt;
  }
  #live(): [string, { json: string; expiresAt: number }][] {
    const now = Date.now();
    return [...this.#sessions].filter(([, s]) => s.expiresAt > now);
  }
  #answer<T>(work: () => T, callback?: StoreCallback<T>): Promise<T> | void {
    const result = new Promise<T>((resolve) => setTimeout(() => resolve(work()), 0));
    if (!callback) return result;
    result.then(
      (value) => callback(null, value),
      (error: unknown) => callback(error),
    );
  }

  get(sid: string, callback?: StoreCallback<SessionData | null | undefined>) {
    return this.#answer(() => {
      const stored = this.flaw === 'object-map' ? this.#objectMap[sid] : this.#sessions.get(sid);
      return stored && stored.expiresAt > Date.now() ? (JSON.parse(stored.json) as SessionData) : null;
    }, callback);
  }
  set(sid: string, session: SessionData, callback?: StoreCallback<void>) {
    return this.#answer(() => {
      const record = { json: JSON.stringify(session), expiresAt: this.#expiry(session) };
      if (this.flaw === 'object-map') this.#objectMap[sid] = record;
      this.#sessions.set(sid, record);
    }, callback);
  }
  destroy(sid: string, callback?: StoreCallback<void>) {
    return this.#answer(() => {
      if (this.flaw === 'glob-destroy' && sid.includes('*')) {
        const pattern = new RegExp(
          `^${sid
            .split('*')
            .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
            .join('.*')}$`,
        );
        for (const id of [...this.#sessions.keys()]) if (pattern.test(id)) this.#sessions.delete(id);
      }
      delete this.#objectMap[sid];
      this.#sessions.delete(sid);
    }, callback);
  }
  touch(sid: string, session: SessionData, callback?: StoreCallback<void>) {
    return this.#answer(() => {
      const stored = this.#sessions.get(sid);
      if (stored) stored.expiresAt = this.#expiry(session);
      else if (this.flaw === 'touch-revives') this.#sessions.set(sid, { json: JSON.stringify(session), expiresAt: this.#expiry(session) });
    }, callback);
  }
  all(callback?: StoreCallback<SessionData[] | Record<string, SessionData> | null | undefined>) {
    return this.#answer(() => Object.fromEntries(this.#live().map(([id, s]) => [id, JSON.parse(s.json) as SessionData])), callback);
  }
  length(callback?: StoreCallback<number>) {
    return this.#answer(() => this.#live().length, callback);
  }
  clear(callback?: StoreCallback<void>) {
    return this.#answer(() => {
      this.#sessions.clear();
      for (const sid of Object.keys(this.#objectMap)) delete this.#objectMap[sid];
    }, callback);
  }
  ids(callback?: StoreCallback<string[]>) {
    return this.#answer(() => this.#live().map(([id]) => id), callback);
  }
}

const fast = { ttlMs: 150, expiryGraceMs: 100 };

describe('checkStore', () => {
  it('passes a correct in-memory store', async () => {
    await expect(checkStore(() => new ReferenceStore(), fast)).resolves.toBeUndefined();
  });

  it('passes a correct store with the default (one-second) expiry waits', async () => {
    await expect(checkStore(async () => new ReferenceStore())).resolves.toBeUndefined();
  });

  it('rejects a store whose touch revives a destroyed session', async () => {
    await expect(checkStore(() => new ReferenceStore('touch-revives'), fast)).rejects.toThrow(
      /touch never revives a destroyed session: touch\(\) brought a destroyed session back/,
    );
  });

  it('rejects a store that ignores the cookie expiry', async () => {
    await expect(checkStore(() => new ReferenceStore('ignores-ttl'), fast)).rejects.toThrow(/a session whose cookie already expired/);
  });

  it('rejects a store that ignores the cookie expiry even when only the expiry wait could tell', async () => {
    await expect(checkStore(() => new ReferenceStore('ignores-future-ttl'), fast)).rejects.toThrow(
      /expiry from the cookie: a session was still returned 100 ms after its cookie expired/,
    );
  });

  it('rejects a store where a hostile id reaches another session', async () => {
    await expect(checkStore(() => new ReferenceStore('glob-destroy'), fast)).rejects.toThrow(/hostile ids: another session changed after destroy\("\*"\)/);
  });

  it('rejects a store that breaks on prototype-named ids', async () => {
    await expect(checkStore(() => new ReferenceStore('object-map'), { ...fast, skipExpiryWait: true })).rejects.toThrow(
      /hostile ids: destroy\("__proto__"\) left the session in place/,
    );
  });

  it('rejects a store whose methods return nothing without a callback', async () => {
    class CallbackOnly extends ReferenceStore {
      override length(callback?: StoreCallback<number>) {
        const result = super.length(callback);
        return callback ? result : undefined;
      }
    }
    await expect(checkStore(() => new CallbackOnly(), fast)).rejects.toThrow(/length\(\) without a callback must return a promise/);
  });

  it('rejects a store whose all() is keyed by something other than the session ids', async () => {
    class KeyedByIndex extends ReferenceStore {
      override all(callback?: StoreCallback<SessionData[] | Record<string, SessionData> | null | undefined>) {
        const answer = (super.all() as Promise<Record<string, SessionData>>).then((byId) =>
          Object.fromEntries(Object.values(byId).map((session, i) => [String(i), session])),
        );
        if (!callback) return answer;
        answer.then(
          (value) => callback(null, value),
          (error: unknown) => callback(error),
        );
      }
    }
    await expect(checkStore(() => new KeyedByIndex(), { ...fast, skipExpiryWait: true })).rejects.toThrow(
      /all\(\) is keyed by \["0","1","2"\], not by the stored ids/,
    );
  });

  it('rejects a store whose concurrent writes leave a mixed value', async () => {
    class TornWrites extends ReferenceStore {
      #last: SessionData | undefined;
      override set(sid: string, session: SessionData, callback?: StoreCallback<void>) {
        // Keeps the payload of one write and the rest of another: a torn write.
        const previous = this.#last;
        this.#last = session;
        const torn = previous && sid.endsWith('-race') ? { ...session, payload: previous.payload } : session;
        return super.set(sid, torn, callback);
      }
    }
    await expect(checkStore(() => new TornWrites(), { ...fast, skipExpiryWait: true })).rejects.toThrow(/concurrent writes of one id/);
  });

  it('passes a correct store that refuses ids over the stated maxIdLength', async () => {
    class Capped extends ReferenceStore {
      override set(sid: string, session: SessionData, callback?: StoreCallback<void>) {
        if (sid.length > 1024) {
          const error = new RangeError('sid too long');
          if (callback) return void queueMicrotask(() => callback(error));
          return Promise.reject(error);
        }
        return super.set(sid, session, callback);
      }
    }
    await expect(checkStore(() => new Capped(), { ...fast, skipExpiryWait: true, maxIdLength: 1024 })).resolves.toBeUndefined();
  });

  it('rejects a store that accepts ids over the stated maxIdLength', async () => {
    await expect(checkStore(() => new ReferenceStore(), { ...fast, skipExpiryWait: true, maxIdLength: 100 })).rejects.toThrow(
      /ids a custom genid makes: set\(\) of an id of 101 characters \(over maxIdLength\) succeeded/,
    );
  });

  it('rejects a store that refuses the ids a custom genid makes (like "/foo" or "%")', async () => {
    class Strict extends ReferenceStore {
      override set(sid: string, session: SessionData, callback?: StoreCallback<void>) {
        if (!/^[A-Za-z0-9_-]+$/.test(sid)) {
          const error = new TypeError('bad sid');
          if (callback) return void queueMicrotask(() => callback(error));
          return Promise.reject(error);
        }
        return super.set(sid, session, callback);
      }
    }
    await expect(checkStore(() => new Strict(), { ...fast, skipExpiryWait: true })).rejects.toThrow(/ids a custom genid makes: set\("%"\) failed: .*bad sid/);
  });

  it.each([
    ['folds case, as a case-insensitive collation does', (sid: string) => sid.toLowerCase()],
    ['ignores trailing spaces, as a PAD SPACE collation does', (sid: string) => sid.replace(/ +$/, '')],
    [
      'percent-decodes ids, as a naive file-name mapping would',
      (sid: string) => {
        try {
          return decodeURIComponent(sid);
        } catch {
          return sid;
        }
      },
    ],
    ['normalises Unicode', (sid: string) => sid.normalize('NFC')],
  ])('rejects a store whose keys collide because it %s', async (_what, keyOf) => {
    class Colliding extends ReferenceStore {
      readonly #original = new Map<string, string>();
      #key(sid: string): string {
        const key = keyOf(sid);
        this.#original.set(key, sid);
        return key;
      }
      override get(sid: string, callback?: StoreCallback<SessionData | null | undefined>) {
        return super.get(this.#key(sid), callback);
      }
      override set(sid: string, session: SessionData, callback?: StoreCallback<void>) {
        return super.set(this.#key(sid), session, callback);
      }
      override destroy(sid: string, callback?: StoreCallback<void>) {
        return super.destroy(this.#key(sid), callback);
      }
      override touch(sid: string, session: SessionData, callback?: StoreCallback<void>) {
        return super.touch(this.#key(sid), session, callback);
      }
    }
    await expect(checkStore(() => new Colliding(), { ...fast, skipExpiryWait: true })).rejects.toThrow(
      /ids a custom genid makes: .*(found a session before any was stored|did not return the session set under that id|did not list exactly)/,
    );
  });
});
