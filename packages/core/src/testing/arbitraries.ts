/**
 * fast-check arbitraries for load-balancing tests: backend ids and specs (weights including 0 and
 * fractions, backups, connection caps), request keys (ASCII, any Unicode, IPs, UUIDs), health-check
 * event schedules and membership changes. They generate plain data — specs, not `Backend` objects —
 * so a failing case prints readably and shrinks well; turn specs into backends with `createBackends`.
 *
 * fast-check is an optional peer dependency of `@fulcrum/core`: only this testing entry imports it.
 */
import fc from 'fast-check';
import type { BackendSpec } from '../backend';

/** The characters a backend id may use (see `BACKEND_ID_PATTERN`). */
const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-'.split('');

const HOST_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789'.split('');

const anyCodePoint = fc.integer({ min: 0, max: 0x10ffff }).map((codePoint) => String.fromCodePoint(codePoint));

/** Ids `membershipChanges` and `healthEvents` use when none are given. */
export const DEFAULT_TEST_IDS: readonly string[] = Object.freeze(['b0', 'b1', 'b2', 'b3', 'b4', 'b5', 'b6', 'b7']);

/** A scheduled health-check result: at `at` ms, the probe of `backendId` passed or failed. */
export interface HealthEvent {
  at: number;
  backendId: string;
  pass: boolean;
}

/**
 * One operation on a set of backends, as a test generates it; apply it with `applyMembershipChange`.
 * (Not core's `MembershipChange`, which reports what `LoadBalancer.update()` did.)
 */
export type MembershipOp = { op: 'add'; spec: BackendSpec } | { op: 'remove'; id: string } | { op: 'setWeight'; id: string; weight: number };

/** Options of `backendSpec` and `backendSpecs`. */
export interface BackendSpecOptions {
  /** Include weight 0 ("no new traffic") among the weights. Default true. */
  withZeroWeights?: boolean;
  /** Sometimes mark a spec `backup: true`. Default true. */
  withBackups?: boolean;
  /** Sometimes give a spec a `maxConnections` cap (1–8). Default true. */
  withMaxConnections?: boolean;
  /** Where ids come from. Default `backendId()`. */
  id?: fc.Arbitrary<string>;
}

/** Options of `backendSpecs`. */
export interface BackendSpecsOptions extends BackendSpecOptions {
  /** Default 0. */
  minLength?: number;
  /** Default 8. */
  maxLength?: number;
}

/** A valid backend id: 1–64 characters of [A-Za-z0-9._:-]. */
export function backendId(): fc.Arbitrary<string> {
  return fc.string({ unit: fc.constantFrom(...ID_CHARS), minLength: 1, maxLength: 64 });
}

/**
 * A weight: an integer 1–10, a fraction in [0.1, 10] (two decimals), or — unless
 * `withZeroWeights: false` — 0 (about one time in six).
 */
export function weight(options: { withZeroWeights?: boolean } = {}): fc.Arbitrary<number> {
  const positive = [
    { arbitrary: fc.integer({ min: 1, max: 10 }), weight: 3 },
    { arbitrary: fc.integer({ min: 10, max: 1000 }).map((n) => n / 100), weight: 2 },
  ];
  if (options.withZeroWeights === false) return fc.oneof(...positive);
  return fc.oneof(...positive, { arbitrary: fc.constant(0), weight: 1 });
}

/** A valid backend address: `http://10.x.y.z:port`, `https://name.internal:port` or `host:port`. */
export function address(): fc.Arbitrary<string> {
  const octet = fc.integer({ min: 0, max: 255 });
  const port = fc.integer({ min: 1, max: 65535 });
  // A letter, then letters and digits: a valid DNS label (built from units: cheap to construct).
  const host = fc.string({ unit: fc.constantFrom(...HOST_CHARS), maxLength: 14 }).map((rest) => `h${rest}`);
  return fc.oneof(
    fc.tuple(octet, octet, octet, port).map(([a, b, c, p]) => `http://10.${a}.${b}.${c}:${p}`),
    fc.tuple(host, port).map(([h, p]) => `https://${h}.internal:${p}`),
    fc.tuple(host, port).map(([h, p]) => `${h}:${p}`),
  );
}

/** One valid `BackendSpec`; optional fields (weight, backup, maxConnections, zone) are sometimes absent. */
export function backendSpec(options: BackendSpecOptions = {}): fc.Arbitrary<BackendSpec> {
  const model: { [K in keyof BackendSpec]-?: fc.Arbitrary<BackendSpec[K]> } = {
    id: options.id ?? backendId(),
    address: address(),
    weight: weight(options),
    backup: options.withBackups === false ? fc.constant(false) : fc.boolean(),
    maxConnections: options.withMaxConnections === false ? fc.constant(undefined) : fc.integer({ min: 1, max: 8 }),
    zone: fc.constantFrom('zone-a', 'zone-b', 'zone-c'),
    metadata: fc.constant(undefined),
  };
  return fc.record(model, { requiredKeys: ['id', 'address'] }).map((spec) => {
    // Absent rather than `undefined`, like a spec written by hand.
    const clean: BackendSpec = { id: spec.id, address: spec.address };
    if (spec.weight !== undefined) clean.weight = spec.weight;
    if (spec.backup === true) clean.backup = true;
    if (spec.maxConnections !== undefined) clean.maxConnections = spec.maxConnections;
    if (spec.zone !== undefined) clean.zone = spec.zone;
    return clean;
  });
}

/** A list of valid specs with unique ids (what `createLoadBalancer({ backends })` accepts). */
export function backendSpecs(options: BackendSpecsOptions = {}): fc.Arbitrary<BackendSpec[]> {
  return fc.uniqueArray(backendSpec(options), {
    selector: (spec) => spec.id,
    minLength: options.minLength ?? 0,
    maxLength: options.maxLength ?? 8,
  });
}

/**
 * A request key as hashing balancers receive them: printable ASCII, any Unicode (astral planes,
 * combining marks, lone surrogates), whole graphemes, IPv4/IPv6 addresses, UUIDs, and the empty
 * string.
 */
export function key(): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ maxLength: 40 }),
    // Any code point, lone surrogates included (fast-check's 'binary' unit does the same but costs
    // about a second to construct on first use).
    fc.string({ unit: anyCodePoint, maxLength: 20 }),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.ipV4(),
    fc.ipV6(),
    fc.uuid(),
  );
}

/** A list of keys (see `key`). Defaults: `minLength` 0, `maxLength` 32, `unique` false. */
export function keys(options: { minLength?: number; maxLength?: number; unique?: boolean } = {}): fc.Arbitrary<string[]> {
  const constraints = { minLength: options.minLength ?? 0, maxLength: options.maxLength ?? 32 };
  return options.unique ? fc.uniqueArray(key(), constraints) : fc.array(key(), constraints);
}

/**
 * A schedule of health-check results, sorted by time: each event comes 0–`maxGapMs` ms after the
 * previous one (several can share a time), for one of `ids`. Defaults: `ids` `DEFAULT_TEST_IDS`,
 * `start` 0, `maxGapMs` 10,000, `minLength` 0, `maxLength` 32.
 */
export function healthEvents(
  options: { ids?: readonly string[]; start?: number; maxGapMs?: number; minLength?: number; maxLength?: number } = {},
): fc.Arbitrary<HealthEvent[]> {
  const ids = nonEmptyIds(options.ids, 'healthEvents');
  const start = options.start ?? 0;
  const step = fc.record({
    gap: fc.integer({ min: 0, max: options.maxGapMs ?? 10_000 }),
    backendId: fc.constantFrom(...ids),
    pass: fc.boolean(),
  });
  return fc.array(step, { minLength: options.minLength ?? 0, maxLength: options.maxLength ?? 32 }).map((steps) => {
    let at = start;
    return steps.map(({ gap, backendId: id, pass }) => {
      at += gap;
      return { at, backendId: id, pass };
    });
  });
}

/** One membership change over the ids in `ids` (see `membershipChanges`). */
export function membershipChange(options: { ids?: readonly string[]; withZeroWeights?: boolean } = {}): fc.Arbitrary<MembershipOp> {
  const ids = nonEmptyIds(options.ids, 'membershipChange');
  const id = fc.constantFrom(...ids);
  return fc.oneof(
    fc
      .tuple(id, address(), weight(options))
      .map(([specId, specAddress, specWeight]): MembershipOp => ({ op: 'add', spec: { id: specId, address: specAddress, weight: specWeight } })),
    id.map((specId): MembershipOp => ({ op: 'remove', id: specId })),
    fc.tuple(id, weight(options)).map(([specId, specWeight]): MembershipOp => ({ op: 'setWeight', id: specId, weight: specWeight })),
  );
}

/**
 * A sequence of changes to a set of backends drawn from a fixed universe of ids, as service discovery
 * and an operator would make them: adds (including re-adds of removed ids), removes, weight changes.
 * Changes that do not apply (adding an id already present, removing or re-weighting an absent one)
 * are kept — a robust consumer ignores them — and `applyMembershipChange` treats them as no-ops.
 * Defaults: `ids` `DEFAULT_TEST_IDS`, `withZeroWeights` true, `minLength` 0, `maxLength` 16.
 */
export function membershipChanges(
  options: { ids?: readonly string[]; withZeroWeights?: boolean; minLength?: number; maxLength?: number } = {},
): fc.Arbitrary<MembershipOp[]> {
  return fc.array(membershipChange(options), { minLength: options.minLength ?? 0, maxLength: options.maxLength ?? 16 });
}

/**
 * Apply one change to a list of specs, returning a new list (the input is not modified): `add`
 * appends unless the id is present, `remove` drops the id, `setWeight` replaces its weight; a change
 * naming an absent id (or adding a present one) returns an unchanged copy.
 */
export function applyMembershipChange(specs: readonly BackendSpec[], change: MembershipOp): BackendSpec[] {
  switch (change.op) {
    case 'add':
      return specs.some((s) => s.id === change.spec.id) ? [...specs] : [...specs, change.spec];
    case 'remove':
      return specs.filter((s) => s.id !== change.id);
    case 'setWeight':
      return specs.map((s) => (s.id === change.id ? { ...s, weight: change.weight } : s));
  }
}

function nonEmptyIds(ids: readonly string[] | undefined, caller: string): readonly string[] {
  const chosen = ids ?? DEFAULT_TEST_IDS;
  if (chosen.length === 0) throw new RangeError(`${caller}: ids must not be empty`);
  return chosen;
}

/**
 * The arbitraries as one object, for `import { arbitraries } from '@fulcrum/core/testing'`:
 * `arbitraries.backendSpecs({ withZeroWeights: false })`, `arbitraries.keys()`, …
 */
export const arbitraries = Object.freeze({
  backendId,
  weight,
  address,
  backendSpec,
  backendSpecs,
  key,
  keys,
  healthEvents,
  membershipChange,
  membershipChanges,
});
