import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  createLoadBalancer,
  describeDecision,
  isFulcrumError,
  isInvalidOptionError,
  registerBalancer,
  type AffinityTable,
  type Backend,
  type Balancer,
  type Decision,
  type LoadBalancer,
} from '@fulcrum/core';
import { FakeClock, seededRandom } from '@fulcrum/core/testing';

const three = [
  { id: 'a', address: 'http://127.0.0.1:3001' },
  { id: 'b', address: 'http://127.0.0.1:3002' },
  { id: 'c', address: 'http://127.0.0.1:3003' },
];

class MapTable implements AffinityTable {
  readonly map = new Map<string, string>();
  get(key: string) {
    return this.map.get(key);
  }
  set(key: string, id: string) {
    this.map.set(key, id);
  }
}

function pickIds(lb: LoadBalancer, n: number, context = {}): string[] {
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const lease = lb.acquire(context);
    ids.push(lease ? lease.backend.id : '-');
    lease?.release();
  }
  return ids;
}

function invalid(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(isInvalidOptionError(error)).toBe(true);
    return (error as Error).message;
  }
  throw new Error('expected an InvalidOptionError');
}

describe('createLoadBalancer validation', () => {
  it('names the duplicate id and both positions', () => {
    const message = invalid(() => createLoadBalancer({ backends: [three[0]!, { ...three[1]!, id: 'a' }] }));
    expect(message).toContain('backends[1].id');
    expect(message).toContain('"a"');
    expect(message).toContain('backends[0]');
  });

  it.each([
    [Number.NaN, 'NaN'],
    [-1, '-1'],
    [Number.POSITIVE_INFINITY, 'Infinity'],
    ['2', '"2"'],
  ])('refuses weight %s and names the field and the value', (weight, shown) => {
    const message = invalid(() => createLoadBalancer({ backends: [{ id: 'a', address: 'h:1', weight: weight as number }] }));
    expect(message).toContain('backends[0].weight');
    expect(message).toContain(shown);
  });

  it.each(['', 'has space', 'slash/inside', 'x'.repeat(65), 'é'])('refuses the id %j', (id) => {
    expect(invalid(() => createLoadBalancer({ backends: [{ id, address: 'h:1' }] }))).toContain('backends[0].id');
  });

  it.each(['localhost', 'h:0', 'h:70000', 'ftp://h:21', 'http://user:pw@h:1', 'http://h:1/path', 'http://', ':80'])('refuses the address %j', (address) => {
    expect(invalid(() => createLoadBalancer({ backends: [{ id: 'a', address }] }))).toContain('backends[0].address');
  });

  it.each(['http://10.0.0.5:8080', 'https://api.example.com', 'http://[::1]:80/', 'db-1.internal:3306', '[fe80::1]:443'])(
    'accepts the address %j',
    (address) => {
      expect(createLoadBalancer({ backends: [{ id: 'a', address }] }).backends[0]!.address).toBe(address);
    },
  );

  it('refuses unknown options so typos do not pass silently', () => {
    expect(invalid(() => createLoadBalancer({ backends: [], algorithim: 'p2c' } as never))).toContain('algorithim');
  });

  it('refuses an unknown algorithm and lists the known ones', () => {
    const message = invalid(() => createLoadBalancer({ backends: three, algorithm: 'fastest' }));
    expect(message).toContain('"fastest"');
    expect(message).toContain("'maglev'");
  });

  it('refuses a panic threshold outside 0..1', () => {
    expect(invalid(() => createLoadBalancer({ backends: three, panicThreshold: 1.5 }))).toContain('panicThreshold');
  });
});

describe('acquire and release', () => {
  it('counts inflight requests and releases them once', () => {
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin' });
    const lease = lb.acquire()!;
    expect(lease.backend.inflight).toBe(1);
    lease.release({ ok: false, error: 'reset' });
    lease.release();
    expect(lease.backend.inflight).toBe(0);
    expect(lease.backend.requests).toBe(1);
    expect(lease.backend.failures).toBe(1);
    expect(lease.released).toBe(true);
  });

  it('spreads round-robin over every backend', () => {
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin' });
    expect(new Set(pickIds(lb, 3))).toEqual(new Set(['a', 'b', 'c']));
  });

  it('explains its decision', () => {
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin', clock: new FakeClock(1000) });
    const decision = lb.acquire()!.decision;
    expect(decision).toMatchObject({ reason: 'balanced', algorithm: 'round-robin', attempt: 0, eligible: 3, at: 1000 });
    expect(describeDecision(decision)).toMatch(/^[abc] by round-robin among 3 eligible backends \(balanced\)$/);
  });

  it('says a hashing balancer hashed the key', () => {
    const lb = createLoadBalancer({ backends: three, algorithm: 'maglev' });
    const lease = lb.acquire({ key: 'user-42' })!;
    expect(lease.decision).toMatchObject({ reason: 'hashed', key: 'user-42' });
    expect(lb.acquire({ key: 'user-42' })!.backend).toBe(lease.backend);
  });

  it('records latency from the measured duration', () => {
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin' });
    const lease = lb.acquire()!;
    lease.release({ ok: true, durationMs: 42 });
    expect(lease.backend.latencyEwma).toBe(42);
  });

  it('takes the duration from the clock when none is given', async () => {
    const clock = new FakeClock(0);
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin', clock });
    const lease = lb.acquire()!;
    await clock.advance(250);
    lease.release();
    expect(lease.backend.latencyEwma).toBe(250);
  });

  it('emits decisions only to listeners, equal to the lease decision', () => {
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin' });
    const seen: Decision[] = [];
    lb.on('decision', (d) => seen.push(d));
    const lease = lb.acquire()!;
    expect(seen).toEqual([lease.decision]);
  });

  it('returns undefined after close', () => {
    const lb = createLoadBalancer({ backends: three });
    lb.close();
    expect(lb.acquire()).toBeUndefined();
  });
});

describe('eligibility tiers', () => {
  const withBackup = [...three, { id: 'spare', address: 'http://127.0.0.1:3009', backup: true }];

  it('never sends traffic to a backup while a primary can serve', () => {
    const lb = createLoadBalancer({ backends: withBackup, algorithm: 'round-robin' });
    expect(pickIds(lb, 30)).not.toContain('spare');
  });

  it('falls back to backups when no primary is eligible', () => {
    const lb = createLoadBalancer({ backends: withBackup, algorithm: 'round-robin' });
    for (const id of ['a', 'b', 'c']) lb.maintain(id);
    const lease = lb.acquire()!;
    expect(lease.backend.id).toBe('spare');
    expect(lease.decision.reason).toBe('backup');
    expect(lb.tier).toBe('backup');
  });

  it('returns undefined when nothing is eligible', () => {
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin' });
    for (const id of ['a', 'b', 'c']) lb.maintain(id);
    expect(lb.acquire()).toBeUndefined();
    expect(lb.tier).toBe('none');
    lb.ready('b');
    expect(lb.acquire()!.backend.id).toBe('b');
  });

  it('returns undefined for an empty set', () => {
    expect(createLoadBalancer({ backends: [] }).acquire()).toBeUndefined();
  });

  it('gives a zero-weight backend no new unsticky traffic', () => {
    const lb = createLoadBalancer({ backends: three, algorithm: 'weighted-round-robin' });
    lb.setWeight('b', 0);
    expect(pickIds(lb, 20)).not.toContain('b');
  });

  it('keeps a draining backend out of new traffic', () => {
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin' });
    const states: string[] = [];
    lb.on('state', (id, from, to, cause) => states.push(`${id} ${from}->${to} ${cause}`));
    lb.drain('a');
    expect(pickIds(lb, 20)).not.toContain('a');
    expect(states).toEqual(['a up->draining admin']);
  });
});

describe('stickiness', () => {
  it('keeps a client on its backend', () => {
    const table = new MapTable();
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin', stickTable: table });
    const first = lb.acquire({ affinityKey: 'client-1' })!;
    first.release();
    const ids = pickIds(lb, 10, { affinityKey: 'client-1' });
    expect(new Set(ids)).toEqual(new Set([first.backend.id]));
    expect(lb.acquire({ affinityKey: 'client-1' })!.decision.reason).toBe('sticky');
  });

  it('keeps sticky clients on a draining backend', () => {
    const table = new MapTable();
    table.set('client-1', 'b');
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin', stickTable: table });
    lb.drain('b');
    expect(lb.acquire({ affinityKey: 'client-1' })!.backend.id).toBe('b');
  });

  it('moves a sticky client off a backend in maintenance and rewrites the entry', () => {
    const table = new MapTable();
    table.set('client-1', 'b');
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin', stickTable: table });
    lb.maintain('b');
    const lease = lb.acquire({ affinityKey: 'client-1' })!;
    expect(lease.backend.id).not.toBe('b');
    expect(lease.decision.reason).toBe('redispatched');
    expect(lease.decision.previous).toEqual({ backendId: 'b', cause: 'maintenance' });
    expect(table.get('client-1')).toBe(lease.backend.id);
  });

  it('re-picks for an entry naming an unknown backend (a forged or stale id)', () => {
    const table = new MapTable();
    table.set('client-1', '../../etc/passwd');
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin', stickTable: table });
    const lease = lb.acquire({ affinityKey: 'client-1' })!;
    expect(['a', 'b', 'c']).toContain(lease.backend.id);
    expect(lease.decision.previous).toEqual({ backendId: '../../etc/passwd', cause: 'unknown' });
  });

  it('lets a sticky backend with weight 0 keep its clients', () => {
    const table = new MapTable();
    table.set('client-1', 'c');
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin', stickTable: table });
    lb.setWeight('c', 0);
    expect(lb.acquire({ affinityKey: 'client-1' })!.backend.id).toBe('c');
  });
});

describe('retries', () => {
  it('avoids excluded backends while another exists', () => {
    const lb = createLoadBalancer({ backends: three, algorithm: 'maglev' });
    const first = lb.acquire({ key: 'k' })!;
    const second = lb.acquire({ key: 'k', exclude: [first.backend] })!;
    expect(second.backend).not.toBe(first.backend);
    expect(second.decision).toMatchObject({ reason: 'redispatched', attempt: 1 });
    const third = lb.acquire({ key: 'k', exclude: [first.backend, second.backend.id] })!;
    expect(new Set([first.backend.id, second.backend.id, third.backend.id]).size).toBe(3);
  });

  it('falls back to an excluded backend when it is the only one left', () => {
    const lb = createLoadBalancer({ backends: [three[0]!], algorithm: 'p2c' });
    const lease = lb.acquire({ exclude: ['a'] })!;
    expect(lease.backend.id).toBe('a');
  });

  it('never returns an excluded backend while another is eligible, whatever the algorithm', () => {
    for (const algorithm of [
      'round-robin',
      'weighted-round-robin',
      'least-connections',
      'p2c',
      'peak-ewma',
      'random',
      'ring-hash',
      'maglev',
      'rendezvous',
      'bounded-load',
    ]) {
      const lb = createLoadBalancer({ backends: three, algorithm, random: seededRandom(5), clock: new FakeClock() });
      for (let i = 0; i < 30; i++) {
        const lease = lb.acquire({ key: `k${i}`, exclude: ['a', 'b'] })!;
        expect(lease.backend.id, algorithm).toBe('c');
        lease.release();
      }
    }
  });
});

describe('membership', () => {
  it('lists the live backends after every kind of membership change, one frozen list until the next change', () => {
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin' });
    const ids = () => lb.backends.map((b) => b.id);
    const first = lb.backends;
    expect(Object.isFrozen(first)).toBe(true);
    expect(lb.backends).toBe(first);
    lb.add({ id: 'd', address: 'http://127.0.0.1:3004' });
    expect(ids()).toEqual(['a', 'b', 'c', 'd']);
    // A backend with a request in flight stays listed until the request ends.
    const lease = lb.acquire({ stickyBackendId: 'b' })!;
    expect(lease.backend.id).toBe('b');
    void lb.remove('b');
    expect(ids()).toEqual(['a', 'b', 'c', 'd']);
    lease.release({ ok: true });
    expect(ids()).toEqual(['a', 'c', 'd']);
    // Emptying a large pool in one update (the list is rebuilt once, on the next read, not per backend).
    const many = Array.from({ length: 5000 }, (_, i) => ({ id: `m${i}`, address: `http://10.0.${i >> 8}.${i & 255}:80` }));
    lb.update(many);
    expect(lb.backends).toHaveLength(5000);
    lb.update([]);
    expect(lb.backends).toEqual([]);
    lb.close();
  });

  it('adds and removes backends, with events', async () => {
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin' });
    const added: string[] = [];
    const removed: string[] = [];
    lb.on('added', (b) => added.push(b.id));
    lb.on('removed', (b) => removed.push(b.id));
    lb.add({ id: 'd', address: 'http://127.0.0.1:3004' });
    expect(new Set(pickIds(lb, 4))).toEqual(new Set(['a', 'b', 'c', 'd']));
    await lb.remove('a');
    expect(pickIds(lb, 9)).not.toContain('a');
    expect(added).toEqual(['d']);
    expect(removed).toEqual(['a']);
    expect(lb.backends.map((b) => b.id)).toEqual(['b', 'c', 'd']);
  });

  it('refuses to add an id that exists', () => {
    const lb = createLoadBalancer({ backends: three });
    expect(invalid(() => lb.add({ id: 'a', address: 'h:1' }))).toContain('backend.id');
  });

  it('refuses admin actions on an unknown id', () => {
    const lb = createLoadBalancer({ backends: three });
    expect(invalid(() => lb.drain('zz'))).toContain('"zz"');
    expect(() => lb.remove('zz')).toThrow(/id/);
  });

  it('waits for in-flight requests before a removal completes', async () => {
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin' });
    const lease = lb.acquire()!;
    let done = false;
    const removal = lb.remove(lease.backend.id).then(() => {
      done = true;
    });
    await Promise.resolve();
    expect(done).toBe(false);
    expect(lease.backend.state).toBe('draining');
    expect(lb.snapshot().backends.find((b) => b.id === lease.backend.id)!.removing).toBe(true);
    lease.release();
    await removal;
    expect(done).toBe(true);
    expect(lb.backends).not.toContain(lease.backend);
  });

  it('syncs the whole set, keeping the Backend object of an unchanged id', async () => {
    const lb = createLoadBalancer({ backends: three, algorithm: 'weighted-round-robin' });
    const b = lb.get('b');
    const change = lb.update([
      { id: 'b', address: 'http://127.0.0.1:3002', weight: 3 },
      { id: 'c', address: 'http://127.0.0.1:3003' },
      { id: 'd', address: 'http://127.0.0.1:3004' },
    ]);
    expect(change).toEqual({ added: ['d'], removed: ['a'], updated: ['b'] });
    expect(lb.get('b')).toBe(b);
    expect(b!.weight).toBe(3);
    const ids = pickIds(lb, 5);
    expect(ids.filter((id) => id === 'b')).toHaveLength(3);
    expect(ids).not.toContain('a');
  });

  it('treats a changed address as a new backend under the same id', () => {
    const lb = createLoadBalancer({ backends: three });
    const old = lb.get('a')!;
    lb.update([{ id: 'a', address: 'http://127.0.0.1:4001' }, three[1]!, three[2]!]);
    expect(lb.get('a')).not.toBe(old);
    expect(lb.get('a')!.address).toBe('http://127.0.0.1:4001');
  });

  it('validates a whole update before changing anything', () => {
    const lb = createLoadBalancer({ backends: three });
    expect(invalid(() => lb.update([three[0]!, { id: 'x', address: 'nope' }]))).toContain('backends[1].address');
    expect(lb.backends.map((b) => b.id)).toEqual(['a', 'b', 'c']);
  });
});

describe('snapshot', () => {
  it('is plain JSON describing every backend', () => {
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin', clock: new FakeClock(5), name: 'web' });
    lb.acquire();
    const snap = lb.snapshot();
    expect(JSON.parse(JSON.stringify(snap))).toEqual(snap);
    expect(snap).toMatchObject({ at: 5, name: 'web', algorithm: 'round-robin', tier: 'primary', eligible: 3 });
    expect(snap.backends.map((b) => b.id)).toEqual(['a', 'b', 'c']);
    expect(snap.backends.reduce((n, b) => n + b.inflight, 0)).toBe(1);
    expect(snap.backends[0]).toMatchObject({ state: 'up', weight: 1, effectiveWeight: 1, ejected: false, maxConnections: null });
  });
});

describe('custom balancers', () => {
  it('accepts a Balancer object and calls its hooks', () => {
    const calls: string[] = [];
    let set: readonly Backend[] = [];
    const custom: Balancer = {
      name: 'last',
      update(backends) {
        set = backends;
      },
      pick() {
        return set[set.length - 1];
      },
      acquired(b) {
        calls.push(`+${b.id}`);
      },
      released(b, outcome) {
        calls.push(`-${b.id}:${outcome.ok}`);
      },
    };
    const lb = createLoadBalancer({ backends: three, algorithm: custom });
    lb.acquire()!.release({ ok: false });
    expect(calls).toEqual(['+c', '-c:false']);
    expect(lb.algorithm).toBe('last');
  });

  it('builds registered balancers by name', () => {
    registerBalancer('always-first', () => {
      let set: readonly Backend[] = [];
      return { name: 'always-first', update: (b) => void (set = b), pick: () => set[0] };
    });
    const lb = createLoadBalancer({ backends: three, algorithm: 'always-first' });
    expect(pickIds(lb, 3)).toEqual(['a', 'a', 'a']);
  });

  it('refuses to replace a built-in', () => {
    expect(invalid(() => registerBalancer('maglev', () => ({}) as Balancer))).toContain('built-in');
  });
});

describe('replayability', () => {
  it('makes the same decisions from the same state, clock and random sequence', () => {
    fc.assert(
      fc.property(fc.integer(), fc.constantFrom('p2c', 'random', 'peak-ewma', 'least-connections'), (seed, algorithm) => {
        const run = () => {
          const lb = createLoadBalancer({ backends: three, algorithm, random: seededRandom(seed), clock: new FakeClock(0) });
          const open: { release(o?: { ok: boolean; durationMs?: number }): void }[] = [];
          const out: string[] = [];
          for (let i = 0; i < 50; i++) {
            const lease = lb.acquire()!;
            out.push(lease.backend.id);
            open.push(lease);
            if (i % 3 === 0) open.shift()!.release({ ok: true, durationMs: i });
          }
          return out.join(',');
        };
        expect(run()).toBe(run());
      }),
      { seed: 20261123, numRuns: 50 },
    );
  });
});

describe('errors', () => {
  it('recognises its errors across copies by code', () => {
    try {
      createLoadBalancer({ backends: 'nope' as never });
    } catch (error) {
      expect(isFulcrumError(error, 'FULCRUM_INVALID_OPTION')).toBe(true);
      expect(isFulcrumError({ code: 'FULCRUM_INVALID_OPTION' })).toBe(false);
      return;
    }
    throw new Error('expected a throw');
  });
});

describe('sticky backend ids and connection caps', () => {
  it('honours a sticky backend id from outside (a verified cookie) and says so', () => {
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin' });
    const lease = lb.acquire({ stickyBackendId: 'c' })!;
    expect(lease.backend.id).toBe('c');
    expect(lease.decision.reason).toBe('sticky');
  });

  it('re-picks when the sticky backend id is unknown or in maintenance', () => {
    const lb = createLoadBalancer({ backends: three, algorithm: 'round-robin' });
    lb.maintain('c');
    const lease = lb.acquire({ stickyBackendId: 'c' })!;
    expect(lease.backend.id).not.toBe('c');
    expect(lease.decision.previous).toEqual({ backendId: 'c', cause: 'maintenance' });
    expect(lb.acquire({ stickyBackendId: 'nope' })!.decision.previous).toEqual({ backendId: 'nope', cause: 'unknown' });
  });

  it('skips backends at maxConnections and returns undefined when all are full', () => {
    const lb = createLoadBalancer({
      backends: three.map((b) => ({ ...b, maxConnections: 1 })),
      algorithm: 'round-robin',
    });
    const held = [lb.acquire({ skipFull: true })!, lb.acquire({ skipFull: true })!, lb.acquire({ skipFull: true })!];
    expect(new Set(held.map((l) => l.backend.id)).size).toBe(3);
    expect(lb.acquire({ skipFull: true })).toBeUndefined();
    expect(lb.tier).toBe('primary');
    held[1]!.release();
    expect(lb.acquire({ skipFull: true })!.backend.id).toBe(held[1]!.backend.id);
  });

  it('keeps a sticky client waiting for its full backend rather than moving it', () => {
    const lb = createLoadBalancer({ backends: three.map((b) => ({ ...b, maxConnections: 1 })), algorithm: 'p2c' });
    const held = lb.acquire({ stickyBackendId: 'a', skipFull: true })!;
    expect(lb.acquire({ stickyBackendId: 'a', skipFull: true })).toBeUndefined();
    held.release();
    expect(lb.acquire({ stickyBackendId: 'a', skipFull: true })!.backend.id).toBe('a');
  });
});
