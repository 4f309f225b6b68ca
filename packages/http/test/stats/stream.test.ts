// streamBody, public since the CLI streams its workers' summed stats with it: the pieces of a
// generator arrive as one body over many turns of the event loop, HEAD gets the headers only, and
// `done` runs once whichever way the response ends.
import { isInvalidOptionError } from '@fulcrum/core';
import { afterEach, describe, expect, it } from 'vitest';
import { streamBody } from '../../src/stats';
import { request, serve } from './http-client';

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** 20,000 lines of 64 characters: about 1.3 MB, so about 20 chunks of 64 KB. */
function* lines(): Generator<string> {
  for (let i = 0; i < 20_000; i++) yield `${String(i).padStart(8, '0')} ${'x'.repeat(54)}\n`;
}
const whole = [...lines()].join('');

describe('streamBody', () => {
  it('sends every piece of the body in order, HEAD only the headers, and runs done once for each', async () => {
    const done: string[] = [];
    const server = await serve((req, res) => streamBody(req, res, 200, { 'content-type': 'text/plain' }, lines(), () => done.push(req.method!)));
    cleanups.push(() => server.close());
    const get = await request(`${server.url}/`);
    expect(get.status).toBe(200);
    expect(get.headers['content-type']).toBe('text/plain');
    expect(get.headers['cache-control']).toBe('no-store');
    expect(get.body).toBe(whole);
    const head = await request(`${server.url}/`, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
    expect(done).toEqual(['GET', 'HEAD']);
  });

  it('destroys the socket when the body throws: a truncated body must not look complete', async () => {
    function* failing(): Generator<string> {
      yield* lines();
      throw new Error('render failed');
    }
    const server = await serve((req, res) => streamBody(req, res, 200, {}, failing()));
    cleanups.push(() => server.close());
    await expect(request(`${server.url}/`)).rejects.toThrow(/aborted|socket hang up|ECONNRESET/);
  });

  it('refuses a stallTimeoutMs out of range, naming it', () => {
    for (const stall of [5, 3_600_001, 1.5, Number.NaN]) {
      let thrown: unknown;
      try {
        streamBody({} as never, {} as never, 200, {}, lines(), undefined, stall);
      } catch (error) {
        thrown = error;
      }
      expect(isInvalidOptionError(thrown)).toBe(true);
      expect((thrown as { path: string }).path).toBe('stallTimeoutMs');
    }
  });
});
