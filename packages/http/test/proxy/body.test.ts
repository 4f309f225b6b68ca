import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { hasBody } from '@fulcrum/http';

/** A request as node:http hands it over; reading `req.headers` (built lazily by Node) fails the test. */
function raw(rawHeaders: string[]): IncomingMessage {
  return {
    rawHeaders,
    get headers(): never {
      throw new Error('req.headers was read');
    },
  } as unknown as IncomingMessage;
}

describe('hasBody', () => {
  it('reads Content-Length and Transfer-Encoding from the raw header lines, in any case', () => {
    expect(hasBody(raw(['Host', 'x']))).toBe(false);
    expect(hasBody(raw(['Host', 'x', 'Content-Length', '0']))).toBe(false);
    expect(hasBody(raw(['content-length', '12']))).toBe(true);
    expect(hasBody(raw(['CONTENT-LENGTH', '1']))).toBe(true);
    expect(hasBody(raw(['Transfer-Encoding', 'chunked']))).toBe(true);
    expect(hasBody(raw(['transfer-encoding', 'gzip, chunked', 'Host', 'x']))).toBe(true);
    // Names of the same length that are not these.
    expect(hasBody(raw(['content-lengtx', '5', 'transfer-encodinX', 'chunked']))).toBe(false);
  });

  it('falls back to req.headers for objects that are not node:http requests', () => {
    const fake = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
    expect(hasBody(fake({ 'content-length': '3' }))).toBe(true);
    expect(hasBody(fake({ 'content-length': '0' }))).toBe(false);
    expect(hasBody(fake({ 'transfer-encoding': 'chunked' }))).toBe(true);
    expect(hasBody(fake({}))).toBe(false);
  });
});
