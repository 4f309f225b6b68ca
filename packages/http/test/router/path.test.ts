import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { normaliseTarget } from '../../src/router/path';

const path = (url: string) => normaliseTarget(url)?.path;

describe('normaliseTarget', () => {
  it('returns clean paths and their query unchanged', () => {
    expect(normaliseTarget('/api/users?id=1&x=%2F')).toEqual({ path: '/api/users', query: '?id=1&x=%2F' });
    expect(normaliseTarget('/')).toEqual({ path: '/', query: '' });
  });

  it('resolves dot segments so /api/../admin is /admin and never climbs above the root', () => {
    expect(path('/api/../admin')).toBe('/admin');
    expect(path('/a/./b/../c')).toBe('/a/c');
    expect(path('/../../etc/passwd')).toBe('/etc/passwd');
    expect(path('/a/b/..')).toBe('/a/');
    expect(path('/a/.')).toBe('/a/');
  });

  it('decodes percent-encoded unreserved characters, so %2e%2e is a dot segment too', () => {
    expect(path('/api/%2e%2e/admin')).toBe('/admin');
    expect(path('/api/%2E%2E/admin')).toBe('/admin');
    expect(path('/%61dmin')).toBe('/admin');
    expect(path('/a%7Eb')).toBe('/a~b');
  });

  it('keeps reserved characters encoded (upper-cased), so %2F stays inside its segment', () => {
    expect(path('/files/a%2fb')).toBe('/files/a%2Fb');
    expect(path('/api%2F..%2Fadmin')).toBe('/api%2F..%2Fadmin');
    expect(path('/a%20b')).toBe('/a%20b');
  });

  it('merges runs of slashes as nginx does by default', () => {
    expect(path('//admin')).toBe('/admin');
    expect(path('/a///b//')).toBe('/a/b/');
  });

  it('refuses targets it will not interpret: malformed escapes, backslashes, ..; segments, non-origin forms', () => {
    for (const url of ['/a%zz', '/a%2', '/%', '/a\\..\\admin', '/api/..;/admin', '/api/.;x/admin', 'http://example.com/', '*', '', undefined]) {
      expect(normaliseTarget(url), String(url)).toBeUndefined();
    }
  });

  it('produces paths that are already normal: normalising twice changes nothing (property)', () => {
    const segment = fc.oneof(fc.constantFrom('', '.', '..', '%2e', '%2E%2e', 'a', 'api', '%41', '%2F', 'x;y', '~'), fc.stringMatching(/^[a-z0-9._~-]{1,6}$/));
    fc.assert(
      fc.property(fc.array(segment, { maxLength: 10 }), (segments) => {
        const once = normaliseTarget(`/${segments.join('/')}`);
        if (once === undefined) return;
        expect(once.path.startsWith('/')).toBe(true);
        expect(once.path).not.toMatch(/\/\/|\/\.\.?(\/|$)/);
        expect(normaliseTarget(once.path)?.path).toBe(once.path);
      }),
      { seed: 1101, numRuns: 500 },
    );
  });
});
