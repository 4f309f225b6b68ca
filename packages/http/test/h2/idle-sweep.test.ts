import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { IdleSweep, type IdleWatched } from '../../src/h2/idle-sweep';

/** A stream as the exchange is one: zeroes its ticks at each chunk, notes when it was cut. */
class Stream implements IdleWatched {
  idleTicks = 0;
  cutAt: number | undefined;
  idleTimedOut(): void {
    this.cutAt = Date.now();
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe('IdleSweep', () => {
  it('cuts a stream between idleMs and 1.2 × idleMs after its last chunk, never before (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5000 }),
        fc.array(fc.integer({ min: 0, max: 3000 }), { maxLength: 8 }),
        fc.integer({ min: 0, max: 5000 }),
        (idleMs, gaps, startAt) => {
          vi.useFakeTimers({ now: 0 });
          const sweep = new IdleSweep(idleMs);
          // Another stream keeps the timer running before this one is watched: its ticks are not aligned with it.
          const other = new Stream();
          sweep.watch(other);
          vi.advanceTimersByTime(startAt);
          other.idleTicks = 0;
          const stream = new Stream();
          sweep.watch(stream);
          let last = Date.now();
          for (const gap of gaps) {
            vi.advanceTimersByTime(gap);
            if (stream.cutAt !== undefined) break;
            stream.idleTicks = 0;
            last = Date.now();
          }
          vi.advanceTimersByTime(2 * idleMs + 10);
          sweep.unwatch(other);
          if (stream.cutAt === undefined) throw new Error('never cut');
          const silent = stream.cutAt - last;
          expect(silent).toBeGreaterThanOrEqual(idleMs);
          expect(silent).toBeLessThanOrEqual(Math.ceil(idleMs / 5) * 6);
          vi.useRealTimers();
        },
      ),
      { seed: 17, numRuns: 300 },
    );
  });

  it('stops its timer at the first tick with no stream to watch', () => {
    vi.useFakeTimers({ now: 0 });
    const sweep = new IdleSweep(1000);
    const a = new Stream();
    const b = new Stream();
    expect(sweep.ticking).toBe(false);
    sweep.watch(a);
    sweep.watch(b);
    expect(vi.getTimerCount()).toBe(1);
    sweep.unwatch(a);
    sweep.unwatch(b);
    // Still running until a tick finds nothing: a call watched and let go at once starts no timer.
    expect(sweep.ticking).toBe(true);
    sweep.watch(a);
    sweep.unwatch(a);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(200);
    expect(sweep.ticking).toBe(false);
    expect(vi.getTimerCount()).toBe(0);
    // A cut stream leaves the set.
    sweep.watch(a);
    vi.advanceTimersByTime(1200);
    expect(a.cutAt).toBeDefined();
    expect(sweep.size).toBe(0);
    sweep.close();
    expect(vi.getTimerCount()).toBe(0);
  });

  it('does not hold the process open', () => {
    const timers = (): number => process.getActiveResourcesInfo().filter((name) => name === 'Timeout').length;
    const before = timers();
    const sweep = new IdleSweep(60_000);
    sweep.watch(new Stream());
    expect(sweep.ticking).toBe(true);
    expect(timers()).toBe(before);
    sweep.close();
  });
});
