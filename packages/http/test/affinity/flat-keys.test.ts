/**
 * Retained heap per stick-table entry when keys are cut from padded (1–4 KB) headers: a key that
 * keeps its parent string alive (a V8 sliced or cons string) costs the whole header per entry.
 *
 * `gc` comes from `--expose-gc`, switched on at run time with `v8.setFlagsFromString` (the forks
 * pool runs each file in its own process, so the flag touches nothing else), then fetched from a
 * fresh context, which is where V8 installs it.
 */
import { setFlagsFromString, getHeapStatistics } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '@fulcrum/core/testing';
import { clientAddress, Stickiness, TrustedProxies } from '../../src/affinity';
import { RateLimiter } from '../../src/ratelimit';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Entries per measurement: enough that a few kilobytes of noise are < 2 bytes per entry. */
const ENTRIES = 4000;
/** The bound: a flat key entry costs ~150–350 B; one that keeps a ≥ 1 KB header alive exceeds it. */
const BOUND = 600;

function heapAfterGc(): number {
  gc();
  gc();
  return getHeapStatistics().used_heap_size;
}

/** A string as Node's HTTP parser hands it over: flat, decoded from the bytes on the wire. */
const wire = (text: string) => Buffer.from(text, 'latin1').toString('latin1');

/** 1–4 KB of padding, different per request. */
const padding = (i: number, unit: string) => unit.repeat(Math.ceil((1024 + ((i * 733) % 3072)) / unit.length));

/** A request as the proxy sees it (raw and parsed headers, a loopback peer). */
function request(i: number, headers: Record<string, string>): IncomingMessage {
  const rawHeaders: string[] = [];
  const parsed: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const v = wire(value);
    rawHeaders.push(wire(name), v);
    parsed[name.toLowerCase()] = v;
  }
  parsed['x-padding'] = wire(padding(i, 'p'));
  rawHeaders.push('X-Padding', parsed['x-padding']);
  return { rawHeaders, headers: parsed, socket: { remoteAddress: '127.0.0.1', encrypted: false }, url: '/' } as unknown as IncomingMessage;
}

const ipv6 = (i: number) => `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::beef`;
const sessionId = (i: number) => `s-${i.toString(36).padStart(8, '0')}-${'abcdef0123456789'.slice(i % 8)}-session`;

/**
 * Heap bytes retained per entry by `record(i)` for ENTRIES distinct clients, after everything but
 * the structure `keep` holds is garbage. A warm-up round on a throwaway structure compiles the code
 * first, so the measurement holds data, not code.
 */
function bytesPerEntry(make: () => { record: (i: number) => void; size: () => number; close: () => void }): number {
  const warm = make();
  for (let i = 0; i < 500; i++) warm.record(1_000_000 + i);
  warm.close();
  const subject = make();
  const before = heapAfterGc();
  for (let i = 0; i < ENTRIES; i++) subject.record(i);
  const after = heapAfterGc();
  expect(subject.size()).toBe(ENTRIES);
  subject.close();
  return (after - before) / ENTRIES;
}

const trusted = new TrustedProxies(['loopback', 'private'], 'trustedProxies');

/** One stickiness mode's entries, made through `commit` as the proxy calls it. */
function stickiness(options: ConstructorParameters<typeof Stickiness>[0], requestOf: (i: number) => IncomingMessage, setCookieOf?: (i: number) => string[]) {
  return () => {
    const s = new Stickiness(options, { clock: new FakeClock(0), trustedProxies: trusted, nodeId: 'test' });
    return {
      record: (i: number) => {
        const req = requestOf(i);
        s.commit(req, clientAddress(req, trusted), `backend-${i % 7}`, setCookieOf?.(i), false, 0);
      },
      size: () => s.table!.size,
      close: () => void s.close(),
    };
  };
}

function limiter(by: 'source-ip' | { header: string }, requestOf: (i: number) => IncomingMessage) {
  return () => {
    const l = new RateLimiter({ requests: 1000, by, capacity: 100_000 }, { clock: new FakeClock(0) });
    return {
      record: (i: number) => {
        const req = requestOf(i);
        l.admission(req, { clientIp: clientAddress(req, trusted) });
      },
      // Counter keys are not enumerable: check that the first and the last client each got one.
      size: () => {
        const counted = (i: number) => {
          const req = requestOf(i);
          return l.table.count(l.keyOf(req, clientAddress(req, trusted)), 'req') === 1;
        };
        return counted(0) && counted(ENTRIES - 1) ? ENTRIES : 0;
      },
      close: () => void l.close(),
    };
  };
}

describe('stick-table keys cut from padded headers', () => {
  const forwardedFor = (i: number) => request(i, { 'X-Forwarded-For': `${padding(i, '198.51.100.7, ')}${ipv6(i)}, 10.0.0.1` });

  it.each([
    ['sourceIp, client address cut from a 1–4 KB X-Forwarded-For', stickiness({ sourceIp: {} }, forwardedFor)],
    ['header, value of a request with 1–4 KB of other headers', stickiness({ header: 'x-session' }, (i) => request(i, { 'X-Session': sessionId(i) }))],
    [
      'learnCookie, session id cut from a 1–4 KB Set-Cookie line',
      stickiness(
        { learnCookie: 'JSESSIONID' },
        (i) => request(i, {}),
        (i) => [wire(`JSESSIONID=${sessionId(i)}; Path=/; HttpOnly; ${padding(i, 'x-ext=1; ')}SameSite=Lax`)],
      ),
    ],
    ['rate limiter by source-ip, address cut from a 1–4 KB X-Forwarded-For', limiter('source-ip', forwardedFor)],
    [
      'rate limiter by header, key cut from a 1–4 KB API-key header',
      limiter({ header: 'x-api-key' }, (i) => request(i, { 'X-Api-Key': `${sessionId(i)}${padding(i, 'k')}` })),
    ],
  ])('keeps each entry under 600 bytes — %s', (_mode, make) => {
    const bytes = bytesPerEntry(make);
    expect(bytes).toBeGreaterThan(0);
    expect(bytes).toBeLessThan(BOUND);
  });

  it('measures what it claims: the same entries keyed by sliced strings cost more than the bound', () => {
    const bytes = bytesPerEntry(() => {
      const map = new Map<string, string>();
      return {
        record: (i: number) => {
          const line = wire(`JSESSIONID=${sessionId(i)}; Path=/; ${padding(i, 'x-ext=1; ')}`);
          map.set(`ck:${line.slice(11, 11 + sessionId(i).length)}`, 'b');
        },
        size: () => map.size,
        close: () => map.clear(),
      };
    });
    expect(bytes).toBeGreaterThan(BOUND);
  });
});
