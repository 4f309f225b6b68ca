import { describe, expect, it } from 'vitest';
import type { Balancer } from '../../src/balancers/balancer';
import { KeylessRoundRobin, eligibleById } from '../../src/balancers/hashed-members';
import { Maglev } from '../../src/balancers/maglev';
import { Rendezvous } from '../../src/balancers/rendezvous';
import { RingHash } from '../../src/balancers/ring-hash';
import { backend } from './fixtures';

// What the three hashing balancers share; the rest of what they promise in common (eligibility,
// the same key for any listing order, retries) is checkBalancer's, run on every built-in in
// test/testing/built-ins.test.ts.

const HASHING: [string, () => Balancer][] = [
  ['maglev', () => new Maglev({ tableSize: 1009 })],
  ['ring-hash', () => new RingHash()],
  ['rendezvous', () => new Rendezvous()],
];

describe('the hashing balancers’ shared members', () => {
  it('places the backends with a positive effective weight, in id order whatever the listing order', () => {
    const listed = [backend('c'), backend('a', 0), backend('d', 2), backend('b', 0.5)];
    expect(eligibleById(listed).map((b) => b.id)).toEqual(['b', 'c', 'd']);
    expect(eligibleById([...listed].reverse()).map((b) => b.id)).toEqual(['b', 'c', 'd']);
  });

  it('KeylessRoundRobin cycles through the backends and starts over on reset', () => {
    const members = ['a', 'b', 'c'].map((id) => backend(id));
    const keyless = new KeylessRoundRobin();
    expect(Array.from({ length: 4 }, () => keyless.next(members)?.id)).toEqual(['a', 'b', 'c', 'a']);
    keyless.reset();
    expect(keyless.next(members)?.id).toBe('a');
  });

  it.each(HASHING)('%s spreads key-less requests round-robin over its eligible backends in id order, whatever their weights', (_name, make) => {
    const balancer = make();
    balancer.update(['c', 'a', 'idle', 'd', 'b'].map((id) => backend(id, id === 'a' ? 5 : id === 'idle' ? 0 : 1)));
    expect(Array.from({ length: 8 }, () => balancer.pick()?.id)).toEqual(['a', 'b', 'c', 'd', 'a', 'b', 'c', 'd']);
    // A new membership starts the cycle over.
    balancer.update(['b', 'a'].map((id) => backend(id)));
    expect(Array.from({ length: 3 }, () => balancer.pick()?.id)).toEqual(['a', 'b', 'a']);
  });

  it.each(HASHING)('%s answers undefined to a key-less pick when no backend has a positive weight', (_name, make) => {
    const balancer = make();
    balancer.update([backend('a', 0)]);
    expect(balancer.pick()).toBeUndefined();
  });
});
