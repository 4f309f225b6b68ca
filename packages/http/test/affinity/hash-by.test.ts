import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isInvalidOptionError } from '@fulcrum/core';
import { compileHashBy, queryParameter, type HashBy } from '../../src/affinity/hash-by';
import { fakeRequest } from './helpers';

describe('compileHashBy', () => {
  it("keys 'source-ip' by the resolved client address", () => {
    const key = compileHashBy('source-ip');
    expect(key(fakeRequest('10.0.0.1'), '203.0.113.9')).toBe('203.0.113.9');
    expect(key(fakeRequest(undefined), '')).toBeUndefined();
  });

  it("keys 'uri' by the whole request target", () => {
    const key = compileHashBy('uri');
    expect(key(fakeRequest('10.0.0.1', {}, '/images/a.png?size=2'), '')).toBe('/images/a.png?size=2');
    expect(key(fakeRequest('10.0.0.1', {}, '/images/a.png?size=3'), '')).not.toBe(key(fakeRequest('10.0.0.1', {}, '/images/a.png?size=2'), ''));
  });

  it('keys by a header, case-insensitively, the first value when repeated', () => {
    const key = compileHashBy({ header: 'X-Tenant' });
    expect(key(fakeRequest('1.1.1.1', { 'x-tenant': 'acme' }), '')).toBe('acme');
    expect(key(fakeRequest('1.1.1.1', { 'x-tenant': ['acme', 'evil'] }), '')).toBe('acme');
    expect(key(fakeRequest('1.1.1.1', { 'x-tenant': '' }), '')).toBeUndefined();
    expect(key(fakeRequest('1.1.1.1', {}), '')).toBeUndefined();
  });

  it('keys by a cookie', () => {
    const key = compileHashBy({ cookie: 'sid' });
    expect(key(fakeRequest('1.1.1.1', { cookie: 'a=1; sid=s-42; b=2' }), '')).toBe('s-42');
    expect(key(fakeRequest('1.1.1.1', { cookie: 'sidx=1' }), '')).toBeUndefined();
    expect(key(fakeRequest('1.1.1.1', {}), '')).toBeUndefined();
  });

  it('keys by a query parameter, decoded', () => {
    const key = compileHashBy({ query: 'user' });
    expect(key(fakeRequest('1.1.1.1', {}, '/p?x=1&user=J%C3%B6rg+M'), '')).toBe('Jörg M');
    expect(key(fakeRequest('1.1.1.1', {}, '/p?user=a&user=b'), '')).toBe('a');
    expect(key(fakeRequest('1.1.1.1', {}, '/p?users=a'), '')).toBeUndefined();
    expect(key(fakeRequest('1.1.1.1', {}, '/p'), '')).toBeUndefined();
    expect(key(fakeRequest('1.1.1.1', {}, '/p?user=%E0%A4%A'), '')).toBeDefined();
    expect(queryParameter('/p?a=1#user=2', 'user')).toBeUndefined();
  });

  it('uses a function, and turns its throws and non-strings into no key', () => {
    expect(compileHashBy((req) => req.headers['x-k'] as string)(fakeRequest('1.1.1.1', { 'x-k': 'v' }), '')).toBe('v');
    const throwing = compileHashBy(() => {
      throw new Error('bug');
    });
    expect(throwing(fakeRequest('1.1.1.1'), '')).toBeUndefined();
    expect(compileHashBy((() => 42) as unknown as HashBy)(fakeRequest('1.1.1.1'), '')).toBeUndefined();
  });

  it.each([
    ['source', 'hashBy'],
    [{}, 'hashBy'],
    [{ header: 'x', cookie: 'y' }, 'hashBy'],
    [{ header: 'bad header' }, 'hashBy.header'],
    [{ cookie: 'a;b' }, 'hashBy.cookie'],
    [{ query: '' }, 'hashBy.query'],
    [{ path: 'x' }, 'hashBy'],
    [null, 'hashBy'],
  ])('rejects %j naming %s', (spec, path) => {
    let caught: unknown;
    try {
      compileHashBy(spec as HashBy);
    } catch (error) {
      caught = error;
    }
    expect(isInvalidOptionError(caught)).toBe(true);
    expect((caught as Error).message.startsWith(`${path}:`)).toBe(true);
  });

  it('never throws per request, whatever the request holds (property)', () => {
    const extractors = [compileHashBy('uri'), compileHashBy({ header: 'x-a' }), compileHashBy({ cookie: 'c' }), compileHashBy({ query: 'q' })];
    const headerValue = fc.oneof(fc.string(), fc.array(fc.string(), { maxLength: 3 }), fc.constant(undefined));
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), headerValue, headerValue, (url, a, cookie) => {
        const req = fakeRequest('1.1.1.1', { 'x-a': a, cookie }, url);
        for (const extract of extractors) {
          const key = extract(req, '1.1.1.1');
          expect(key === undefined || (typeof key === 'string' && key.length > 0)).toBe(true);
        }
      }),
      { seed: 5, numRuns: 400 },
    );
  });
});
