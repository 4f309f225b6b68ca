import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  applyAdminDirectives,
  checkPhase,
  fullHealth,
  initialHealth,
  reduceHealth,
  resolveState,
  type AdminState,
  type HealthCounterConfig,
  type HealthObservation,
  type HealthStatus,
  type InitialHealthState,
} from '../../src/health';
import { PROPERTY_RUNS } from './helpers';

const defaults: HealthCounterConfig = { rise: 2, fall: 3 };

function run(status: HealthStatus, observations: string, config = defaults): HealthStatus[] {
  const out: HealthStatus[] = [];
  for (const c of observations) {
    status = reduceHealth(status, c === 'p' ? 'pass' : 'fail', config);
    out.push(status);
  }
  return out;
}

describe('the health counter (HAProxy check.c)', () => {
  it('starts an up backend at health = rise, so the first failure takes it down', () => {
    const start = initialHealth(defaults);
    expect(start).toEqual({ health: 2, up: true });
    expect(reduceHealth(start, 'fail', defaults)).toEqual({ health: 0, up: false });
  });

  it('offers HAProxy init-states fully-up, up, down and fully-down', () => {
    expect(initialHealth(defaults, 'fully-up')).toEqual({ health: 4, up: true });
    expect(initialHealth(defaults, 'up')).toEqual({ health: 2, up: true });
    expect(initialHealth(defaults, 'down')).toEqual({ health: 1, up: false });
    expect(initialHealth(defaults, 'fully-down')).toEqual({ health: 0, up: false });
    expect(initialHealth(defaults, true)).toEqual(initialHealth(defaults, 'up'));
    expect(initialHealth(defaults, false)).toEqual(initialHealth(defaults, 'fully-down'));
  });

  it('takes a fully up backend down after exactly fall consecutive failures', () => {
    const states = run(initialHealth(defaults, 'fully-up'), 'fff');
    expect(states.map((s) => s.health)).toEqual([3, 2, 0]);
    expect(states.map((s) => s.up)).toEqual([true, true, false]);
  });

  it('brings a fully down backend up after exactly rise passes, jumping to full health', () => {
    const states = run(initialHealth(defaults, 'fully-down'), 'pp');
    expect(states).toEqual([
      { health: 1, up: false },
      { health: 4, up: true },
    ]);
  });

  it('restarts the climb from 0 when a check fails below rise', () => {
    const config = { rise: 3, fall: 2 };
    const states = run(initialHealth(config, 'fully-down'), 'ppfp', config);
    expect(states.map((s) => s.health)).toEqual([1, 2, 0, 1]);
  });

  it('restores full health with a single pass while the backend is still up', () => {
    const states = run(initialHealth(defaults, 'fully-up'), 'ffpfff');
    expect(states.map((s) => s.health)).toEqual([3, 2, 4, 3, 2, 0]);
  });

  it('stays put at the bounds and returns the same object when nothing changes', () => {
    const full = initialHealth(defaults, 'fully-up');
    expect(reduceHealth(full, 'pass', defaults)).toBe(full);
    const zero = initialHealth(defaults, 'fully-down');
    expect(reduceHealth(zero, 'fail', defaults)).toBe(zero);
  });

  it('works with rise 1 and fall 1 (a single check decides)', () => {
    const config = { rise: 1, fall: 1 };
    expect(run(initialHealth(config), 'fpfp', config)).toEqual([
      { health: 0, up: false },
      { health: 1, up: true },
      { health: 0, up: false },
      { health: 1, up: true },
    ]);
  });

  it('clamps a status restored from elsewhere into range before reducing it', () => {
    expect(reduceHealth({ health: 99, up: true }, 'fail', defaults)).toEqual({ health: 3, up: true });
    expect(reduceHealth({ health: -5, up: true }, 'pass', defaults)).toEqual({ health: 1, up: false });
    expect(reduceHealth({ health: Number.NaN, up: true }, 'pass', defaults)).toEqual({ health: 1, up: false });
  });

  it('keeps its state as plain JSON', () => {
    const status = run(initialHealth(defaults), 'ffp').at(-1) as HealthStatus;
    expect(JSON.parse(JSON.stringify(status))).toEqual(status);
  });

  it('names the interval phase from the counter: full is up, 0 is down, between is transitioning', () => {
    expect(checkPhase({ health: 4, up: true }, defaults)).toBe('up');
    expect(checkPhase({ health: 3, up: true }, defaults)).toBe('transitioning');
    expect(checkPhase({ health: 2, up: true }, defaults)).toBe('transitioning');
    expect(checkPhase({ health: 1, up: false }, defaults)).toBe('transitioning');
    expect(checkPhase({ health: 0, up: false }, defaults)).toBe('down');
  });
});

describe('admin states above the counter', () => {
  const up: HealthStatus = { health: 4, up: true };
  const down: HealthStatus = { health: 0, up: false };

  it('resolves maintenance first, then down, then draining, then up', () => {
    expect(resolveState('maintenance', up)).toBe('maintenance');
    expect(resolveState('maintenance', down)).toBe('maintenance');
    expect(resolveState('draining', down)).toBe('down');
    expect(resolveState('draining', up)).toBe('draining');
    expect(resolveState('ready', up)).toBe('up');
    expect(resolveState('ready', down)).toBe('down');
  });

  it('applies agent-check words with maintenance over drain over ready', () => {
    const admins: AdminState[] = ['ready', 'draining', 'maintenance'];
    for (const admin of admins) {
      expect(applyAdminDirectives(admin, {})).toBe(admin);
      expect(applyAdminDirectives(admin, { ready: true })).toBe('ready');
      expect(applyAdminDirectives(admin, { drain: true })).toBe('draining');
      expect(applyAdminDirectives(admin, { maintenance: true })).toBe('maintenance');
      expect(applyAdminDirectives(admin, { drain: true, ready: true })).toBe('draining');
      expect(applyAdminDirectives(admin, { maintenance: true, drain: true, ready: true })).toBe('maintenance');
    }
  });
});

/**
 * The reference: the same behaviour told differently. An up backend has a number of failures it can
 * still absorb (`credit`, 1..fall; any pass restores all of it); a down one a number of passes it
 * still needs (`need`, 1..rise; any failure resets it).
 */
interface Reference {
  up: boolean;
  credit: number;
  need: number;
}

function referenceStart(config: HealthCounterConfig, initial: InitialHealthState): Reference {
  switch (initial) {
    case 'fully-up':
      return { up: true, credit: config.fall, need: 0 };
    case 'up':
      return { up: true, credit: 1, need: 0 };
    case 'down':
      return { up: false, credit: 0, need: 1 };
    case 'fully-down':
      return { up: false, credit: 0, need: config.rise };
  }
}

function referenceStep(model: Reference, observation: HealthObservation, config: HealthCounterConfig): void {
  if (model.up) {
    if (observation === 'pass') model.credit = config.fall;
    else if (--model.credit === 0) Object.assign(model, { up: false, need: config.rise });
  } else if (observation === 'fail') {
    model.need = config.rise;
  } else if (--model.need === 0) {
    Object.assign(model, { up: true, credit: config.fall });
  }
}

/** HAProxy's health value for a reference state. */
function referenceHealth(model: Reference, config: HealthCounterConfig): number {
  return model.up ? config.rise + model.credit - 1 : config.rise - model.need;
}

class Observe implements fc.Command<Reference, { status: HealthStatus; config: HealthCounterConfig }> {
  constructor(readonly observation: HealthObservation) {}
  check(): boolean {
    return true;
  }
  run(model: Reference, real: { status: HealthStatus; config: HealthCounterConfig }): void {
    const { config } = real;
    real.status = reduceHealth(real.status, this.observation, config);
    referenceStep(model, this.observation, config);
    const { health, up } = real.status;
    expect(Number.isInteger(health)).toBe(true);
    expect(health).toBeGreaterThanOrEqual(0);
    expect(health).toBeLessThanOrEqual(fullHealth(config));
    expect(up).toBe(health >= config.rise);
    expect(up).toBe(model.up);
    expect(health).toBe(referenceHealth(model, config));
  }
  toString(): string {
    return this.observation;
  }
}

describe('the health counter against a reference model', () => {
  it('agrees with the credit/need model on arbitrary pass/fail sequences', () => {
    const initialStates: InitialHealthState[] = ['fully-up', 'up', 'down', 'fully-down'];
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.constantFrom(...initialStates),
        fc.commands([fc.constant(new Observe('pass')), fc.constant(new Observe('fail'))], { maxCommands: 60 }),
        (rise, fall, initial, commands) => {
          const config = { rise, fall };
          const status = initialHealth(config, initial);
          const model = referenceStart(config, initial);
          expect(status.health).toBe(referenceHealth(model, config));
          fc.modelRun(() => ({ model, real: { status, config } }), commands);
        },
      ),
      PROPERTY_RUNS,
    );
  });

  it('never changes state on a pass while down-and-climbing or on a fail while up-and-refilling, except at the thresholds', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.array(fc.constantFrom<HealthObservation>('pass', 'fail'), { maxLength: 80 }),
        (rise, fall, observations) => {
          const config = { rise, fall };
          let status = initialHealth(config, 'fully-up');
          let passes = 0;
          let fails = 0;
          for (const observation of observations) {
            const before = status;
            status = reduceHealth(status, observation, config);
            if (observation === 'pass') {
              passes++;
              fails = 0;
            } else {
              fails++;
              passes = 0;
            }
            // A transition happens only on the rise-th consecutive pass or within the fall-th failure.
            if (!before.up && status.up) expect(passes).toBeGreaterThanOrEqual(rise);
            if (before.up && !status.up) expect(fails).toBeLessThanOrEqual(fall);
            // fall consecutive failures always leave the backend down; rise consecutive passes up.
            if (fails >= fall) expect(status.up).toBe(false);
            if (passes >= rise) expect(status.up).toBe(true);
          }
        },
      ),
      PROPERTY_RUNS,
    );
  });
});
