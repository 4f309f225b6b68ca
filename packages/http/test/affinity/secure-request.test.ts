import { describe, expect, it } from 'vitest';
import { isSecureRequest } from '../../src/affinity/secure-request';

const request = (rawHeaders: string[], encrypted = false) => ({ socket: { encrypted } as never, rawHeaders });

describe('isSecureRequest', () => {
  it('is true over TLS whoever the peer is, and false over plain HTTP without forwarded headers', () => {
    expect(isSecureRequest(request([], true), false)).toBe(true);
    expect(isSecureRequest(request([]), true)).toBe(false);
  });

  it('believes X-Forwarded-Proto and Forwarded only from a trusted peer', () => {
    for (const headers of [
      ['X-Forwarded-Proto', 'https'],
      ['Forwarded', 'proto=https'],
    ]) {
      expect(isSecureRequest(request(headers), true)).toBe(true);
      expect(isSecureRequest(request(headers), false)).toBe(false);
    }
  });

  it('reads the left-most X-Forwarded-Proto value and the first header, case-insensitively', () => {
    expect(isSecureRequest(request(['x-forwarded-proto', ' HTTPS , http']), true)).toBe(true);
    expect(isSecureRequest(request(['x-forwarded-proto', 'http, https']), true)).toBe(false);
    expect(isSecureRequest(request(['x-forwarded-proto', 'http', 'x-forwarded-proto', 'https']), true)).toBe(false);
    expect(isSecureRequest(request(['x-forwarded-proto', 'httpsx']), true)).toBe(false);
    expect(isSecureRequest(request(['x-forwarded-proto', '']), true)).toBe(false);
  });

  it('reads proto from the first Forwarded element only, through quoted strings', () => {
    expect(isSecureRequest(request(['forwarded', 'for="[2001:db8::1]";Proto="https";host=a']), true)).toBe(true);
    expect(isSecureRequest(request(['forwarded', 'host="a,b;proto=http";proto=https']), true)).toBe(true);
    expect(isSecureRequest(request(['forwarded', 'for=a;proto=http, for=b;proto=https']), true)).toBe(false);
    expect(isSecureRequest(request(['forwarded', 'for=a, proto=https']), true)).toBe(false);
    expect(isSecureRequest(request(['forwarded', 'for="unterminated;proto=https']), true)).toBe(false);
  });
});
