/**
 * Balancers by name. `createBalancer('maglev', options)` builds a built-in; `registerBalancer` adds a
 * user's policy under a name of its own, so configuration files and `createLoadBalancer({ algorithm })`
 * can refer to it like a built-in (grpc-js's `registerLoadBalancerType`).
 */
import { InvalidOptionError } from '../errors';
import type { AlgorithmName, Balancer, BalancerFactory, BalancerOptions } from './balancer';
import { BoundedLoad } from './bounded-load';
import { FirstAvailable } from './first';
import { LeastConnections } from './least-connections';
import { Maglev } from './maglev';
import { PowerOfTwoChoices } from './p2c';
import { PeakEwma } from './peak-ewma';
import { WeightedRandom } from './random';
import { Rendezvous } from './rendezvous';
import { RingHash } from './ring-hash';
import { RoundRobin } from './round-robin';
import { SmoothWeightedRoundRobin } from './weighted-round-robin';

const builtIns: Record<AlgorithmName, BalancerFactory> = {
  'round-robin': () => new RoundRobin(),
  'weighted-round-robin': () => new SmoothWeightedRoundRobin(),
  'least-connections': () => new LeastConnections(),
  p2c: (options) => new PowerOfTwoChoices(options),
  'peak-ewma': (options) => new PeakEwma(options),
  random: (options) => new WeightedRandom(options),
  first: () => new FirstAvailable(),
  'ring-hash': (options) => new RingHash(options),
  maglev: (options) => new Maglev(options),
  rendezvous: () => new Rendezvous(),
  'bounded-load': (options) => new BoundedLoad(createBalancer(options.inner ?? 'ring-hash', options), options),
};

const registry = new Map<string, BalancerFactory>(Object.entries(builtIns));

export const ALGORITHM_NAMES: readonly AlgorithmName[] = Object.freeze(Object.keys(builtIns) as AlgorithmName[]);

const NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,63}$/;

/** Build a balancer by name: a built-in (`'p2c'`, `'maglev'`, …) or one added with `registerBalancer`. */
export function createBalancer(name: AlgorithmName | (string & {}), options: BalancerOptions = {}): Balancer {
  const factory = registry.get(name);
  if (!factory) {
    throw new InvalidOptionError('algorithm', name, `must be one of ${[...registry.keys()].map((n) => `'${n}'`).join(', ')}`);
  }
  return factory(options);
}

/** Add a policy under `name` (lowercase letters, digits and dashes). Built-in names cannot be replaced. */
export function registerBalancer(name: string, factory: BalancerFactory): void {
  if (typeof name !== 'string' || !NAME_PATTERN.test(name)) {
    throw new InvalidOptionError('name', name, 'must be 1–64 characters of a–z, 0–9 and "-", starting with a letter or digit');
  }
  if (name in builtIns) throw new InvalidOptionError('name', name, 'must not replace a built-in algorithm');
  if (typeof factory !== 'function') throw new InvalidOptionError('factory', factory, 'must be a function');
  registry.set(name, factory);
}

/** True when `name` is known to `createBalancer`. */
export function hasBalancer(name: string): boolean {
  return registry.has(name);
}
