/** Test fixtures the balancer tests share. */
import fc from 'fast-check';
import { Backend, normalizeBackendSpec } from '../../src/backend';

/** A backend with `id` and `weight` (address unused: balancers never connect). */
export const backend = (id: string, weight = 1): Backend => new Backend(normalizeBackendSpec({ id, address: '127.0.0.1:1', weight }));

/** `count` distinct request keys; `salt` makes another set. */
export const keys = (count: number, salt = ''): string[] => Array.from({ length: count }, (_, i) => `user:${salt}${i}`);

/** What `fn` threw, or `undefined`. */
export function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return undefined;
}

/** Unique ids with integer weights 1..4: the weights sum to ≥ 1, where point counts are per backend. */
export const weightedSet = (min: number, max: number): fc.Arbitrary<Backend[]> =>
  fc
    .uniqueArray(fc.nat(1_000_000), { minLength: min, maxLength: max })
    .chain((ids) => fc.tuple(fc.constant(ids), fc.array(fc.integer({ min: 1, max: 4 }), { minLength: ids.length, maxLength: ids.length })))
    .map(([ids, weights]) => ids.map((id, i) => backend(`backend-${id}`, weights[i])));
