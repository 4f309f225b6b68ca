/**
 * After every backend failed for a while and then recovered, equal backends share traffic equally
 * again — the scenario of undici issue #4839, where a balanced pool kept sending everything to
 * whichever backend came out of the outage on top. Run through the real load balancer, for every
 * load-aware and weighted algorithm, with and without active health checks; one request at a time,
 * as a lightly loaded service sends them, and then with 10 in flight.
 */
import { describe, expect, it } from 'vitest';
import { createLoadBalancer, type AlgorithmName, type Backend, type Lease, type LoadBalancer, type Outcome } from '@fulcrum/core';
import { FakeClock, seededRandom } from '@fulcrum/core/testing';

const ALGORITHMS: readonly AlgorithmName[] = ['round-robin', 'weighted-round-robin', 'least-connections', 'p2c', 'peak-ewma', 'random'];
const IDS = ['a', 'b', 'c'];
const STEP_MS = 10;

/** During the outage: a refuses connections at once, b times out after a second, c answers 503s. */
const OUTAGE: Record<string, Outcome> = {
  a: { ok: false, error: 'connect', durationMs: 1 },
  b: { ok: false, error: 'timeout', durationMs: 1000 },
  c: { ok: false, status: 503, error: 'status', durationMs: 4 },
};

/** Runs `count` requests, `concurrency` at a time; each takes STEP_MS of clock and ends with `outcome`. */
async function traffic(lb: LoadBalancer, clock: FakeClock, count: number, concurrency: number, outcome: (b: Backend) => Outcome): Promise<Map<string, number>> {
  const counts = new Map<string, number>(IDS.map((id) => [id, 0]));
  const open: Lease[] = [];
  for (let i = 0; i < count; i++) {
    if (open.length >= concurrency) {
      const done = open.shift()!;
      done.release(outcome(done.backend));
    }
    await clock.advance(STEP_MS);
    const lease = lb.acquire();
    expect(lease).toBeDefined();
    counts.set(lease!.backend.id, counts.get(lease!.backend.id)! + 1);
    open.push(lease!);
  }
  for (const lease of open) lease.release(outcome(lease.backend));
  return counts;
}

/** An equal share is 200 of 600; 5σ of a fair three-way random split is ±58. */
function expectEqualShares(counts: Map<string, number>): void {
  for (const id of IDS) {
    expect({ id, count: counts.get(id) }).toEqual({ id, count: expect.toSatisfy((n: number) => n >= 140 && n <= 260) });
  }
}

describe('recovery after every backend failed (undici #4839)', () => {
  for (const algorithm of ALGORITHMS) {
    for (const concurrency of [1, 10]) {
      for (const checks of [false, true]) {
        it(`${algorithm} shares equal backends equally again after an outage of all of them (${concurrency} in flight, ${checks ? 'with' : 'without'} health checks)`, async () => {
          const clock = new FakeClock(0);
          let outage = false;
          const lb = createLoadBalancer({
            backends: IDS.map((id) => ({ id, address: `http://127.0.0.1:${3000 + id.charCodeAt(0)}` })),
            algorithm,
            clock,
            random: seededRandom(4839),
            ...(checks ? { health: { probe: async () => !outage, intervalMs: 200, rise: 2, fall: 2, jitter: 0 } } : {}),
          });
          const ok = (): Outcome => ({ ok: true, status: 200, durationMs: STEP_MS });
          // From a fresh start every backend is unmeasured: each must get its share from the outset.
          expectEqualShares(await traffic(lb, clock, 600, concurrency, ok));
          outage = true;
          await traffic(lb, clock, 300, concurrency, (b) => OUTAGE[b.id]!);
          outage = false;
          // Long enough for the checks to see them up again (rise 2 at 200 ms).
          await clock.advance(1000);
          const counts = await traffic(lb, clock, 600, concurrency, ok);
          lb.close();
          expectEqualShares(counts);
        });
      }
    }
  }
});
