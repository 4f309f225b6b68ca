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
    expect(path('/q/x%3By%5Cz')).toBe('/q/x%3By%5Cz');
    expect(path('/files/..a%2Fb.')).toBe('/files/..a%2Fb.');
    expect(path('/a%20b')).toBe('/a%20b');
  });

  it('refuses an encoded /, \\ or ; bordering a dot segment, which a decoding backend would resolve upwards', () => {
    for (const url of [
      '/public/..%5Cadmin',
      '/public/..%2Fadmin',
      '/public/..%3B/admin',
      '/public/..%2fadmin',
      '/public/%2e%2e%5cadmin',
      '/public/.%2F..%2Fadmin',
      '/public/a%2F..%2F..%2Fadmin',
      '/public/x%5C..',
      '/public/..%3Bjsessionid=1/admin',
      '/api%2F..%2Fadmin',
      '/public/a;b%2F..',
    ]) {
      expect(normaliseTarget(url), url).toBeUndefined();
      expect(normaliseTarget(url, true), url).toBeDefined();
    }
    expect(normaliseTarget('/public/..%5Cadmin', true)).toEqual({ path: '/public/..%5Cadmin', query: '' });
  });

  it('refuses every path whose decoded form has a dot segment the normalised form lacks (property)', () => {
    // What a backend that decodes %2F, %5C and %3B before resolving dots (and strips ;params) sees.
    const backendView = (p: string) =>
      p
        .replace(/%2F/gi, '/')
        .replace(/%5C/gi, '/')
        .replace(/%3B/gi, ';')
        .replace(/;[^/]*/g, '')
        .split('/');
    const piece = fc.constantFrom('.', '..', 'a', 'public', '%2F', '%2f', '%5C', '%3B', ';', '%2E', 'x;y', '');
    fc.assert(
      fc.property(fc.array(fc.array(piece, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 5 }), (segments) => {
        const url = `/${segments.map((s) => s.join('')).join('/')}`;
        const result = normaliseTarget(url);
        if (result === undefined) return;
        expect(backendView(result.path).slice(1)).not.toContain('..');
        expect(backendView(result.path).slice(1)).not.toContain('.');
      }),
      { seed: 1914, numRuns: 1000 },
    );
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
