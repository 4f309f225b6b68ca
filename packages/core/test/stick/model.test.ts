import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareStickEntries, StickTable, type StickEntry } from '../../src/stick';
import { FakeClock } from '../../src/testing/fake-clock';

const START = 1_700_000_000_000;
const TTL = 1000;
const NODE = 'self';

/**
 * The reference: a plain map of the winning write per key, with the documented rules spelled out
 * naively — local stamps after the live entry they replace, remote entries by last-writer-wins,
 * expired entries invisible and replaced by anything. No capacity (the run stays below it).
 */
class Model {
  now = START;
  readonly entries = new Map<string, StickEntry<string>>();

  live(key: string): StickEntry<string> | undefined {
    const entry = this.entries.get(key);
    return entry !== undefined && entry.expiresAt > this.now ? entry : undefined;
  }
  localWrite(key: string, value: string | undefined): void {
    const current = this.live(key);
    const updatedAt = current !== undefined && current.updatedAt >= this.now ? current.updatedAt + 1 : this.now;
    const stamp = { key, updatedAt, expiresAt: this.now + TTL, origin: NODE };
    this.entries.set(key, value === undefined ? { ...stamp, deleted: true } : { ...stamp, value });
  }
  visible(): Record<string, string> {
    const result: Record<string, string> = {};
    for (const key of [...this.entries.keys()].sort()) {
      const entry = this.live(key);
      if (entry !== undefined && entry.deleted !== true) result[key] = entry.value;
    }
    return result;
  }
}

interface Real {
  clock: FakeClock;
  table: StickTable<string>;
}

type Command = fc.AsyncCommand<Model, Real>;

const check = (model: Model, real: Real) => {
  const visible: Record<string, string> = {};
  for (const entry of real.table.entries().sort((a, b) => (a.key < b.key ? -1 : 1))) {
    if (entry.deleted !== true) visible[entry.key] = entry.value;
  }
  expect(visible).toEqual(model.visible());
};

class SetCommand implements Command {
  constructor(
    readonly key: string,
    readonly value: string,
  ) {}
  check = () => true;
  async run(model: Model, real: Real) {
    real.table.set(this.key, this.value);
    model.localWrite(this.key, this.value);
    expect(real.table.get(this.key)).toBe(this.value);
  }
  toString = () => `set(${this.key}, ${this.value})`;
}

class DeleteCommand implements Command {
  constructor(readonly key: string) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const wasLive = model.live(this.key)?.deleted === undefined && model.live(this.key) !== undefined;
    expect(real.table.delete(this.key)).toBe(wasLive);
    model.localWrite(this.key, undefined);
  }
  toString = () => `delete(${this.key})`;
}

class TouchCommand implements Command {
  constructor(readonly key: string) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const entry = model.live(this.key);
    const touchable = entry !== undefined && entry.deleted !== true;
    expect(real.table.touch(this.key)).toBe(touchable);
    if (touchable) model.localWrite(this.key, entry.value);
  }
  toString = () => `touch(${this.key})`;
}

class GetCommand implements Command {
  constructor(readonly key: string) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const entry = model.live(this.key);
    const got = real.table.get(this.key);
    expect(got).toBe(entry?.deleted === true ? undefined : entry?.value);
    // No expired read, ever: whatever get returns is live by the clock right now.
    if (got !== undefined) expect(entry!.expiresAt).toBeGreaterThan(real.clock.now());
    expect(real.table.has(this.key)).toBe(got !== undefined);
  }
  toString = () => `get(${this.key})`;
}

class MergeCommand implements Command {
  constructor(
    readonly key: string,
    readonly age: number,
    readonly life: number,
    readonly origin: string,
    readonly value: string | undefined,
  ) {}
  check = () => true;
  async run(model: Model, real: Real) {
    const stamp = { key: this.key, updatedAt: model.now + this.age, expiresAt: model.now + this.life, origin: this.origin };
    const entry: StickEntry<string> = this.value === undefined ? { ...stamp, deleted: true } : { ...stamp, value: this.value };
    real.table.merge([entry]);
    const current = model.live(this.key);
    if (entry.expiresAt > model.now && (current === undefined || compareStickEntries(current, entry) < 0)) {
      model.entries.set(this.key, entry);
    }
    check(model, real);
  }
  toString = () => `merge(${this.key}, age ${this.age}, life ${this.life}, ${this.origin}, ${String(this.value)})`;
}

class AdvanceCommand implements Command {
  constructor(readonly ms: number) {}
  check = () => true;
  async run(model: Model, real: Real) {
    await real.clock.advance(this.ms);
    model.now += this.ms;
    check(model, real);
  }
  toString = () => `advance(${this.ms})`;
}

describe('StickTable against a reference model', () => {
  it('behaves like a map of last-writer-wins registers with expiry under any sequence of commands', async () => {
    const key = fc.constantFrom('a', 'b', 'c', 'd');
    const value = fc.constantFrom('b1', 'b2', 'b3');
    const commands = fc.commands(
      [
        fc.tuple(key, value).map(([k, v]) => new SetCommand(k, v)),
        key.map((k) => new DeleteCommand(k)),
        key.map((k) => new TouchCommand(k)),
        key.map((k) => new GetCommand(k)),
        fc
          .record({
            key,
            age: fc.integer({ min: -3 * TTL, max: 3 }),
            life: fc.integer({ min: -10, max: 2 * TTL }),
            origin: fc.constantFrom('peer-a', 'self', 'zz'),
            value: fc.option(value, { nil: undefined }),
          })
          .map((r) => new MergeCommand(r.key, r.age, r.life, r.origin, r.value)),
        fc.oneof(fc.constant(0), fc.constant(1), fc.integer({ min: 2, max: 1500 })).map((ms) => new AdvanceCommand(ms)),
      ],
      { maxCommands: 80, size: 'max' },
    );
    await fc.assert(
      fc.asyncProperty(commands, async (cmds) => {
        const clock = new FakeClock(START);
        const table = new StickTable<string>({ capacity: 16, ttlMs: TTL, nodeId: NODE, clock, sweepMs: 900 });
        await fc.asyncModelRun(() => ({ model: new Model(), real: { clock, table } }), cmds);
      }),
      { seed: 7, numRuns: 300 },
    );
  });
});
