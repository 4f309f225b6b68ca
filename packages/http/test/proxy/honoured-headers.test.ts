import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { headersOf, honouredRawHeaders } from '../../src/proxy/headers';

const names = fc.constantFrom('Host', 'host', 'Accept', 'accept', 'Cookie', 'Authorization', 'X-User', 'x-user', 'Set-Cookie', 'X-Dup', 'Content-Type');
const values = fc.stringMatching(/^[a-z0-9=;, ]{0,6}$/);
const rawLists = fc.array(fc.tuple(names, values), { maxLength: 8 }).map((pairs) => pairs.flat());

/** A request as middleware sees it: Node's `headers` object built from the lines. */
function request(raw: string[]): { rawHeaders: string[]; headers: Record<string, string | string[] | undefined> } {
  return { rawHeaders: raw, headers: { ...headersOf(raw) } };
}

describe('honouredRawHeaders', () => {
  it('returns the very lines the client sent when req.headers was not changed', () => {
    fc.assert(
      fc.property(rawLists, (raw) => {
        expect(honouredRawHeaders(request(raw))).toBe(raw);
      }),
      { seed: 2121, numRuns: 500 },
    );
  });

  it('forwards lines whose headers are exactly what middleware left in req.headers', () => {
    const edits = fc.array(fc.tuple(fc.constantFrom('x-user', 'authorization', 'accept', 'x-new', 'cookie'), fc.option(values, { nil: undefined })), {
      maxLength: 4,
    });
    fc.assert(
      fc.property(rawLists, edits, (raw, changes) => {
        const req = request(raw);
        for (const [name, value] of changes) {
          if (value === undefined) delete req.headers[name];
          else req.headers[name] = value;
        }
        const expected = Object.fromEntries(Object.entries(req.headers).filter(([, v]) => v !== undefined));
        expect({ ...headersOf(honouredRawHeaders(req)) }).toEqual(expected);
      }),
      { seed: 2122, numRuns: 500 },
    );
  });

  it('keeps the spelling and order of the lines it did not change', () => {
    const raw = ['Host', 'a.example', 'X-Keep', 'one', 'X-User', 'mallory', 'X-Keep-Too', 'two'];
    const req = request(raw);
    req.headers['x-user'] = 'alice';
    expect(honouredRawHeaders(req)).toEqual(['Host', 'a.example', 'X-Keep', 'one', 'X-Keep-Too', 'two', 'x-user', 'alice']);
  });
});
