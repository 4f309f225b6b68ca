import { describe, expect, it } from 'vitest';
import { FakeClock } from '@fulcrum/core/testing';

describe('FakeClock', () => {
  it('starts at the given time and moves only when advanced', async () => {
    const clock = new FakeClock(1000);
    expect(clock.now()).toBe(1000);
    await clock.advance(250);
    expect(clock.now()).toBe(1250);
    expect(new FakeClock().now()).toBe(0);
  });

  it('runs due timers in time order, ties in scheduling order, with now() at each due time', async () => {
    const clock = new FakeClock();
    const seen: string[] = [];
    clock.setTimeout(() => seen.push(`c@${clock.now()}`), 30);
    clock.setTimeout(() => seen.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => seen.push(`b1@${clock.now()}`), 20);
    clock.setTimeout(() => seen.push(`b2@${clock.now()}`), 20);
    clock.setTimeout(() => seen.push(`late@${clock.now()}`), 31);
    await clock.advance(30);
    expect(seen).toEqual(['a@10', 'b1@20', 'b2@20', 'c@30']);
    expect(clock.now()).toBe(30);
    expect(clock.pending).toBe(1);
    await clock.advance(1);
    expect(seen.at(-1)).toBe('late@31');
  });

  it('runs timers scheduled during advance when they fall within the window', async () => {
    const clock = new FakeClock();
    const seen: number[] = [];
    const tick = () => {
      seen.push(clock.now());
      clock.setTimeout(tick, 100);
    };
    clock.setTimeout(tick, 100);
    await clock.advance(350);
    expect(seen).toEqual([100, 200, 300]);
    expect(clock.nextDueAt).toBe(400);
  });

  it('lets promise chains started by a timer settle before the next timer fires', async () => {
    const clock = new FakeClock();
    const seen: string[] = [];
    clock.setTimeout(() => {
      void (async () => {
        // A chain several microtasks deep, as a probe or a store write produces.
        for (let i = 0; i < 50; i++) await Promise.resolve();
        seen.push(`settled@${clock.now()}`);
        clock.setTimeout(() => seen.push(`follow-up@${clock.now()}`), 5);
      })();
    }, 10);
    clock.setTimeout(() => seen.push(`second@${clock.now()}`), 10);
    await clock.advance(20);
    expect(seen).toEqual(['settled@10', 'second@10', 'follow-up@15']);
  });

  it('settles promises before advance resolves, even with no timer due', async () => {
    const clock = new FakeClock();
    let done = false;
    void Promise.resolve()
      .then(() => Promise.resolve())
      .then(() => {
        done = true;
      });
    await clock.advance(0);
    expect(done).toBe(true);
  });

  it('cancels timers with clearTimeout and ignores unknown handles', async () => {
    const clock = new FakeClock();
    let fired = false;
    const timer = clock.setTimeout(() => {
      fired = true;
    }, 10);
    clock.clearTimeout(timer);
    clock.clearTimeout(timer);
    clock.clearTimeout('not a timer');
    await clock.advance(100);
    expect(fired).toBe(false);
    expect(clock.pending).toBe(0);
  });

  it('treats negative and NaN delays as 0, so advance(0) runs them', async () => {
    const clock = new FakeClock(5);
    const seen: number[] = [];
    clock.setTimeout(() => seen.push(clock.now()), -10);
    clock.setTimeout(() => seen.push(clock.now()), Number.NaN);
    await clock.advance(0);
    expect(seen).toEqual([5, 5]);
  });

  it('runAll runs everything, including timers scheduled by timers, and stops a runaway interval', async () => {
    const clock = new FakeClock();
    const seen: number[] = [];
    clock.setTimeout(() => {
      seen.push(clock.now());
      clock.setTimeout(() => seen.push(clock.now()), 1000);
    }, 50);
    await clock.runAll();
    expect(seen).toEqual([50, 1050]);
    expect(clock.now()).toBe(1050);

    const forever = () => clock.setTimeout(forever, 1);
    forever();
    await expect(clock.runAll(100)).rejects.toThrow(/keeps rescheduling/);
  });

  it('rejects advance when a timer throws, leaving the later timers scheduled', async () => {
    const clock = new FakeClock();
    clock.setTimeout(() => {
      throw new Error('boom');
    }, 10);
    clock.setTimeout(() => undefined, 20);
    await expect(clock.advance(30)).rejects.toThrow('boom');
    expect(clock.now()).toBe(10);
    expect(clock.pending).toBe(1);
  });

  it('rejects invalid arguments', async () => {
    expect(() => new FakeClock(Number.NaN)).toThrow(RangeError);
    await expect(new FakeClock().advance(-1)).rejects.toThrow(RangeError);
  });
});
