import { afterEach, describe, expect, it, vi } from 'vitest';
import { createCoarseNow } from '../src/clock';
import { coarseClock, createLoadBalancer, realClock } from '../src/index';

/** A coarse `now` over a hand-driven time and timer queue. */
function harness() {
  let time = 1_000;
  let bypass = false;
  const armed: (() => void)[] = [];
  const reads = { count: 0 };
  const now = createCoarseNow(
    () => {
      reads.count++;
      return time;
    },
    (expire) => armed.push(expire),
    () => bypass,
  );
  return {
    now,
    reads,
    armed,
    setTime: (t: number) => (time = t),
    setBypass: (b: boolean) => (bypass = b),
    fire: () => armed.splice(0).forEach((expire) => expire()),
  };
}

describe('createCoarseNow (the cache behind coarseClock)', () => {
  it('serves the cached time until its expiry fires, then reads afresh; never ahead of the time', () => {
    const h = harness();
    expect(h.now()).toBe(1_000);
    expect(h.armed).toHaveLength(1);
    h.setTime(1_007);
    expect(h.now()).toBe(1_000);
    expect(h.now()).toBe(1_000);
    expect(h.reads.count).toBe(1);
    expect(h.armed).toHaveLength(1);
    h.fire();
    expect(h.now()).toBe(1_007);
    expect(h.reads.count).toBe(2);
    expect(h.armed).toHaveLength(1);
  });

  it('reads the time again after 256 cached reads, even if its expiry never fires', () => {
    const h = harness();
    const seen: number[] = [];
    for (let i = 0; i < 600; i++) {
      h.setTime(1_000 + i / 8);
      seen.push(h.now());
    }
    // Reads 0, 256 and 512 go to the time source; the rest are served from the cache.
    expect(h.reads.count).toBe(3);
    expect([...new Set(seen)]).toEqual([1_000, 1_032, 1_064]);
    // The expiry is pending all along and not yet overdue: no second timer is armed.
    expect(h.armed).toHaveLength(1);
  });

  it('arms a new expiry when the pending one is long overdue (lost)', () => {
    const h = harness();
    h.now();
    h.armed.length = 0; // the timer is lost
    h.setTime(1_500);
    for (let i = 0; i < 256; i++) h.now();
    expect(h.now()).toBe(1_500);
    expect(h.armed).toHaveLength(1);
    h.fire();
    h.setTime(1_501);
    expect(h.now()).toBe(1_501);
  });

  it('reads the time on every call while bypassed', () => {
    const h = harness();
    h.setBypass(true);
    h.now();
    h.setTime(2_000);
    expect(h.now()).toBe(2_000);
    expect(h.reads.count).toBe(2);
    expect(h.armed).toHaveLength(0);
  });
});

describe('coarseClock', () => {
  afterEach(() => {
    vi.useRealTimers();
    vi.restoreAllMocks();
  });

  it('is the default clock of a load balancer; realClock stays exact', () => {
    expect(createLoadBalancer({ backends: [] }).clock).toBe(coarseClock);
    vi.spyOn(Date, 'now').mockReturnValueOnce(111).mockReturnValueOnce(222);
    expect(realClock.now()).toBe(111);
    expect(realClock.now()).toBe(222);
  });

  it('follows fake timers and a spied Date.now exactly, so tests that move the time see it', () => {
    vi.useFakeTimers({ now: 1_000_000 });
    expect(coarseClock.now()).toBe(1_000_000);
    vi.setSystemTime(1_000_007);
    expect(coarseClock.now()).toBe(1_000_007);
    vi.useRealTimers();
    vi.spyOn(Date, 'now').mockReturnValue(42);
    expect(coarseClock.now()).toBe(42);
  });

  it('is never ahead of Date.now()', () => {
    for (let i = 0; i < 1_000; i++) expect(coarseClock.now()).toBeLessThanOrEqual(Date.now());
  });

  it('times a lease across turns of the event loop', async () => {
    const lb = createLoadBalancer({ backends: [{ id: 'a', address: '127.0.0.1:1' }] });
    const lease = lb.acquire()!;
    await new Promise((resolve) => setTimeout(resolve, 30));
    lease.release();
    // Started at a cached time no later than the real one, ended at a fresh one.
    expect(lb.backends[0]!.latencyEwma).toBeGreaterThanOrEqual(29);
  });
});
