import { describe, expect, it, vi } from 'vitest';
import { createBalancer, createSeededRandom, defaultRandom } from '../src/index';
import { createBackends } from '../src/testing/index';

describe('defaultRandom', () => {
  it('returns numbers in [0, 1), evenly spread', () => {
    const buckets = new Array<number>(16).fill(0);
    const draws = 160_000;
    for (let i = 0; i < draws; i++) {
      const x = defaultRandom();
      expect(x >= 0 && x < 1).toBe(true);
      buckets[Math.floor(x * 16)]!++;
    }
    // 10,000 expected per bucket; 6 standard deviations is about ±580.
    for (const count of buckets) expect(Math.abs(count - 10_000)).toBeLessThan(600);
  });

  it('is not Math.random and does not follow it', () => {
    expect(defaultRandom).not.toBe(Math.random);
    const a = Array.from({ length: 8 }, () => defaultRandom());
    expect(new Set(a).size).toBe(8);
  });

  it('is what balancers use when given no random option, without calling Math.random', () => {
    const backends = createBackends(Array.from({ length: 8 }, (_, i) => ({ id: `b${i}`, address: `10.0.0.${i + 1}:80` })));
    const spy = vi.spyOn(Math, 'random');
    try {
      for (const name of ['random', 'p2c', 'peak-ewma']) {
        const balancer = createBalancer(name);
        balancer.update(backends);
        const seen = new Set<string>();
        for (let i = 0; i < 800; i++) seen.add(balancer.pick()!.id);
        expect(seen.size, name).toBe(8);
      }
      expect(spy).not.toHaveBeenCalled();
    } finally {
      spy.mockRestore();
    }
  });
});

describe('createSeededRandom', () => {
  it('keeps the sequence recorded seeds depend on', () => {
    const r = createSeededRandom(42);
    expect(Array.from({ length: 5 }, () => r())).toEqual([
      0.8537391759455204, 0.17948746006004512, 0.7235875325277448, 0.10284933634102345, 0.9578618782106787,
    ]);
    const zero = createSeededRandom(0);
    expect(Array.from({ length: 3 }, () => zero())).toEqual([0.11025513336062431, 0.9230146396439523, 0.5345051249023527]);
  });
});
