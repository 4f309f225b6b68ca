/**
 * What the stats surfaces read: one load balancer, or several named pools. Both `statsPage()` and
 * `prometheus()` take either form and turn it, once, into a list of `{ name, lb }`.
 *
 * A single load balancer is shown under its own `name` (core's default `'default'`), so the output
 * has the same shape either way — a dashboard or an alert rule written for one pool keeps working
 * when a second one is added. Pool names are free text (they are the keys of the caller's object):
 * every renderer escapes them, none trusts them.
 */
import { InvalidOptionError } from '@fulcrum/core';
import type { LoadBalancer, LoadBalancerSnapshot } from '@fulcrum/core';

/** One load balancer, or pools by name. */
export type StatsSource = LoadBalancer | Readonly<Record<string, LoadBalancer>>;

/** A named pool. */
export interface StatsPool {
  readonly name: string;
  readonly lb: LoadBalancer;
}

const MAX_POOLS = 1000;
const MAX_NAME = 256;

// Duck-typed rather than `instanceof`: two installed copies of @fulcrum/core (a common monorepo
// accident) must still work together, as core's own error guards do.
function isLoadBalancer(value: unknown): value is LoadBalancer {
  if (typeof value !== 'object' || value === null) return false;
  const candidate = value as Partial<Record<'snapshot' | 'on' | 'off', unknown>>;
  return typeof candidate.snapshot === 'function' && typeof candidate.on === 'function' && typeof candidate.off === 'function';
}

/** Validate `source` into pools; `path` names the argument in errors (`statsPage(source)`). */
export function normalizeStatsSource(path: string, source: unknown): readonly StatsPool[] {
  const expected = 'must be a LoadBalancer or an object of pool names to LoadBalancers';
  if (isLoadBalancer(source)) return Object.freeze([Object.freeze({ name: source.name, lb: source })]);
  if (typeof source !== 'object' || source === null || Array.isArray(source)) throw new InvalidOptionError(path, source, expected);
  const entries = Object.entries(source);
  if (entries.length === 0 || entries.length > MAX_POOLS) {
    throw new InvalidOptionError(path, source, `${expected}, with 1–${MAX_POOLS} pools`);
  }
  return Object.freeze(
    entries.map(([name, lb]) => {
      if (name.length === 0 || name.length > MAX_NAME)
        throw new InvalidOptionError(`${path}[${JSON.stringify(name)}]`, name, `pool names must be 1–${MAX_NAME} characters`);
      if (!isLoadBalancer(lb)) throw new InvalidOptionError(`${path}[${JSON.stringify(name)}]`, lb, 'must be a LoadBalancer');
      return Object.freeze({ name, lb });
    }),
  );
}

/**
 * Every pool's `snapshot()`, keyed by pool name. The object has no prototype, so a pool called
 * `__proto__` is a pool like any other (JSON.stringify writes it as a plain key).
 */
export function snapshotPools(pools: readonly StatsPool[]): Record<string, LoadBalancerSnapshot> {
  const snapshots = Object.create(null) as Record<string, LoadBalancerSnapshot>;
  for (const { name, lb } of pools) snapshots[name] = lb.snapshot();
  return snapshots;
}

/**
 * Listeners by name whose HTTP/2 counters the stats show (`createProxyServer` servers): an object, or
 * a function returning one (read at each render, for a caller whose listeners change).
 */
export type StatsFrontends = Readonly<Record<string, object>> | (() => Readonly<Record<string, object>>);

/** Validate the `frontends` option into a function giving the current listeners (or `undefined`). */
export function normalizeFrontends(path: string, frontends: unknown): (() => Readonly<Record<string, object>>) | undefined {
  if (frontends === undefined) return undefined;
  if (typeof frontends === 'function') return frontends as () => Readonly<Record<string, object>>;
  if (typeof frontends !== 'object' || frontends === null || Array.isArray(frontends)) {
    throw new InvalidOptionError(path, frontends, 'must be an object of listener names to createProxyServer servers, or a function returning one');
  }
  const entries = Object.entries(frontends);
  if (entries.length > MAX_POOLS) throw new InvalidOptionError(path, frontends, `must name at most ${MAX_POOLS} listeners`);
  for (const [name, listener] of entries) {
    if (name.length === 0 || name.length > MAX_NAME)
      throw new InvalidOptionError(`${path}[${JSON.stringify(name)}]`, name, `listener names must be 1–${MAX_NAME} characters`);
    if (typeof listener !== 'object' || listener === null)
      throw new InvalidOptionError(`${path}[${JSON.stringify(name)}]`, listener, 'must be a createProxyServer server');
  }
  const fixed = Object.freeze({ ...frontends }) as Readonly<Record<string, object>>;
  return () => fixed;
}
