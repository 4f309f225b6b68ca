import { describe, expect, it } from 'vitest';
import {
  isBackendFailure,
  MAX_TIMER_MS,
  normalizeHealthOptions,
  normalizeOutlierOptions,
  normalizePanicThreshold,
  normalizeSlowStartOptions,
} from '../../src/health';
import { InvalidOptionError, isInvalidOptionError } from '../../src/errors';

const probe = async () => true;

/** Run `fn`, expect an `InvalidOptionError` for `path`, and return its message. */
function rejection(fn: () => unknown, path: string): string {
  try {
    fn();
  } catch (error) {
    expect(isInvalidOptionError(error)).toBe(true);
    expect(error).toBeInstanceOf(InvalidOptionError);
    expect((error as InvalidOptionError).path).toBe(path);
    const { message } = error as Error;
    expect(message.startsWith(`${path}: `)).toBe(true);
    return message;
  }
  throw new Error(`expected an InvalidOptionError for ${path}`);
}

describe('normalizeHealthOptions', () => {
  it('fills HAProxy-derived defaults into a frozen config', () => {
    const config = normalizeHealthOptions({ probe });
    expect(config).toEqual({
      probe,
      rise: 2,
      fall: 3,
      intervalMs: 2000,
      fastIntervalMs: 2000,
      downIntervalMs: 2000,
      timeoutMs: 1000,
      jitter: 0.1,
      initialState: 'up',
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('defaults the fast and down intervals to intervalMs, as HAProxy defaults fastinter and downinter to inter', () => {
    expect(normalizeHealthOptions({ probe, intervalMs: 200 })).toMatchObject({ intervalMs: 200, fastIntervalMs: 200, downIntervalMs: 200 });
    expect(normalizeHealthOptions({ probe, intervalMs: 30_000 })).toMatchObject({ fastIntervalMs: 30_000, downIntervalMs: 30_000 });
    expect(normalizeHealthOptions({ probe, intervalMs: 500, downIntervalMs: 5000 })).toMatchObject({ fastIntervalMs: 500, downIntervalMs: 5000 });
    expect(normalizeHealthOptions({ probe, fastIntervalMs: 250, downIntervalMs: 60_000 })).toMatchObject({
      fastIntervalMs: 250,
      downIntervalMs: 60_000,
    });
  });

  it('means "no active checks" when health is undefined', () => {
    expect(normalizeHealthOptions(undefined)).toBeUndefined();
  });

  it('refuses a missing or non-function probe, naming health.probe', () => {
    expect(rejection(() => normalizeHealthOptions({}), 'health.probe')).toContain('must be a function');
    rejection(() => normalizeHealthOptions({ probe: '/health' }), 'health.probe');
  });

  it('refuses rise or fall below 1 or fractional', () => {
    rejection(() => normalizeHealthOptions({ probe, rise: 0 }), 'health.rise');
    rejection(() => normalizeHealthOptions({ probe, fall: 0 }), 'health.fall');
    rejection(() => normalizeHealthOptions({ probe, rise: 1.5 }), 'health.rise');
    rejection(() => normalizeHealthOptions({ probe, fall: '3' }), 'health.fall');
  });

  it('refuses intervals and timeouts that are not finite, not positive, or beyond what setTimeout honours', () => {
    for (const key of ['intervalMs', 'fastIntervalMs', 'downIntervalMs', 'timeoutMs']) {
      for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, MAX_TIMER_MS + 1, '2000']) {
        const message = rejection(() => normalizeHealthOptions({ probe, [key]: bad }), `health.${key}`);
        expect(message).toContain('must be a finite number > 0');
      }
    }
    expect(normalizeHealthOptions({ probe, intervalMs: MAX_TIMER_MS })?.intervalMs).toBe(MAX_TIMER_MS);
  });

  it('refuses jitter outside [0, 0.5]', () => {
    rejection(() => normalizeHealthOptions({ probe, jitter: -0.01 }), 'health.jitter');
    rejection(() => normalizeHealthOptions({ probe, jitter: 0.51 }), 'health.jitter');
    expect(normalizeHealthOptions({ probe, jitter: 0 })?.jitter).toBe(0);
    expect(normalizeHealthOptions({ probe, jitter: 0.5 })?.jitter).toBe(0.5);
  });

  it('refuses an unknown initial state and accepts HAProxy’s four', () => {
    expect(rejection(() => normalizeHealthOptions({ probe, initialState: 'starting' }), 'health.initialState')).toContain("'fully-down'");
    for (const initialState of ['fully-up', 'up', 'down', 'fully-down']) {
      expect(normalizeHealthOptions({ probe, initialState })?.initialState).toBe(initialState);
    }
  });

  it('refuses unknown keys, listing the allowed ones, so typos do not pass silently', () => {
    const message = rejection(() => normalizeHealthOptions({ probe, interval: 2000 }), 'health.interval');
    expect(message).toContain('is not an option');
    expect(message).toContain('intervalMs');
    expect(message).toContain('fastIntervalMs');
  });

  it('refuses a non-object and prefixes errors with the given path', () => {
    rejection(() => normalizeHealthOptions(null), 'health');
    rejection(() => normalizeHealthOptions([probe]), 'health');
    rejection(() => normalizeHealthOptions({ probe, rise: 0 }, 'pools.web.health'), 'pools.web.health.rise');
  });
});

describe('normalizeOutlierOptions', () => {
  it('fills Envoy’s defaults into a frozen config', () => {
    const config = normalizeOutlierOptions({});
    expect(config).toEqual({
      intervalMs: 10_000,
      baseEjectionMs: 30_000,
      maxEjectionMs: 300_000,
      maxEjectionPercent: 10,
      alwaysEjectOneHost: true,
      consecutiveFailures: 5,
      enforceConsecutiveFailures: true,
      successRateStdevFactor: 1.9,
      successRateRequestVolume: 100,
      successRateMinimumHosts: 5,
      enforceSuccessRate: true,
      failurePercentageThreshold: 85,
      failurePercentageRequestVolume: 50,
      failurePercentageMinimumHosts: 5,
      enforceFailurePercentage: false,
      isFailure: isBackendFailure,
    });
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('means "no outlier detection" when outlier is undefined', () => {
    expect(normalizeOutlierOptions(undefined)).toBeUndefined();
  });

  it('defaults maxEjectionMs to the base ejection time when the base is above 300 s, as Envoy does', () => {
    expect(normalizeOutlierOptions({ baseEjectionMs: 600_000 })?.maxEjectionMs).toBe(600_000);
  });

  it('refuses maxEjectionMs below baseEjectionMs, naming outlier.maxEjectionMs', () => {
    const message = rejection(() => normalizeOutlierOptions({ baseEjectionMs: 60_000, maxEjectionMs: 30_000 }), 'outlier.maxEjectionMs');
    expect(message).toContain('outlier.baseEjectionMs');
    rejection(() => normalizeOutlierOptions({ maxEjectionMs: 10_000 }), 'outlier.maxEjectionMs');
  });

  it('refuses percentages outside [0, 100]', () => {
    for (const key of ['maxEjectionPercent', 'failurePercentageThreshold']) {
      rejection(() => normalizeOutlierOptions({ [key]: -1 }), `outlier.${key}`);
      rejection(() => normalizeOutlierOptions({ [key]: 100.5 }), `outlier.${key}`);
      rejection(() => normalizeOutlierOptions({ [key]: Number.NaN }), `outlier.${key}`);
    }
    expect(normalizeOutlierOptions({ maxEjectionPercent: 0 })?.maxEjectionPercent).toBe(0);
    expect(normalizeOutlierOptions({ maxEjectionPercent: 100 })?.maxEjectionPercent).toBe(100);
  });

  it('refuses non-positive or non-finite durations and zero or fractional counts', () => {
    rejection(() => normalizeOutlierOptions({ intervalMs: 0 }), 'outlier.intervalMs');
    rejection(() => normalizeOutlierOptions({ intervalMs: Number.POSITIVE_INFINITY }), 'outlier.intervalMs');
    rejection(() => normalizeOutlierOptions({ baseEjectionMs: -1 }), 'outlier.baseEjectionMs');
    rejection(() => normalizeOutlierOptions({ consecutiveFailures: 0 }), 'outlier.consecutiveFailures');
    rejection(() => normalizeOutlierOptions({ successRateRequestVolume: 2.5 }), 'outlier.successRateRequestVolume');
    rejection(() => normalizeOutlierOptions({ successRateMinimumHosts: 0 }), 'outlier.successRateMinimumHosts');
    rejection(() => normalizeOutlierOptions({ failurePercentageMinimumHosts: -3 }), 'outlier.failurePercentageMinimumHosts');
    rejection(() => normalizeOutlierOptions({ successRateStdevFactor: -0.1 }), 'outlier.successRateStdevFactor');
  });

  it('refuses non-boolean switches and a non-function isFailure', () => {
    rejection(() => normalizeOutlierOptions({ enforceFailurePercentage: 'yes' }), 'outlier.enforceFailurePercentage');
    rejection(() => normalizeOutlierOptions({ alwaysEjectOneHost: 1 }), 'outlier.alwaysEjectOneHost');
    rejection(() => normalizeOutlierOptions({ isFailure: 'status >= 500' }), 'outlier.isFailure');
  });

  it('refuses unknown keys, listing the allowed ones', () => {
    const message = rejection(() => normalizeOutlierOptions({ consecutive5xx: 5 }), 'outlier.consecutive5xx');
    expect(message).toContain('consecutiveFailures');
  });
});

describe('isBackendFailure (the default failure classifier)', () => {
  it('counts connect errors, resets, timeouts and 5xx, and nothing else', () => {
    expect(isBackendFailure({ ok: false, error: 'connect' })).toBe(true);
    expect(isBackendFailure({ ok: false, error: 'reset' })).toBe(true);
    expect(isBackendFailure({ ok: false, error: 'timeout' })).toBe(true);
    expect(isBackendFailure({ ok: false, error: 'status', status: 503 })).toBe(true);
    expect(isBackendFailure({ ok: true, status: 500 })).toBe(true);
    expect(isBackendFailure({ ok: false, error: 'status', status: 404 })).toBe(false);
    expect(isBackendFailure({ ok: false, error: 'aborted' })).toBe(false);
    expect(isBackendFailure({ ok: true, status: 200 })).toBe(false);
    expect(isBackendFailure({ ok: true })).toBe(false);
  });
});

describe('normalizeSlowStartOptions', () => {
  it('requires windowMs and fills Envoy’s aggression and floor', () => {
    const config = normalizeSlowStartOptions({ windowMs: 30_000 });
    expect(config).toEqual({ windowMs: 30_000, aggression: 1, minWeightPercent: 10 });
    expect(Object.isFrozen(config)).toBe(true);
    expect(normalizeSlowStartOptions(undefined)).toBeUndefined();
    expect(rejection(() => normalizeSlowStartOptions({}), 'slowStart.windowMs')).toContain('required');
  });

  it('refuses a non-positive window or aggression and a floor outside [0, 100]', () => {
    rejection(() => normalizeSlowStartOptions({ windowMs: 0 }), 'slowStart.windowMs');
    rejection(() => normalizeSlowStartOptions({ windowMs: Number.NaN }), 'slowStart.windowMs');
    rejection(() => normalizeSlowStartOptions({ windowMs: 1000, aggression: 0 }), 'slowStart.aggression');
    rejection(() => normalizeSlowStartOptions({ windowMs: 1000, minWeightPercent: 150 }), 'slowStart.minWeightPercent');
    rejection(() => normalizeSlowStartOptions({ windowMs: 1000, window: 5 }), 'slowStart.window');
  });
});

describe('normalizePanicThreshold', () => {
  it('defaults to 0.5, accepts 0..1 (0 disables) and refuses anything else', () => {
    expect(normalizePanicThreshold(undefined)).toBe(0.5);
    expect(normalizePanicThreshold(0)).toBe(0);
    expect(normalizePanicThreshold(1)).toBe(1);
    rejection(() => normalizePanicThreshold(-0.1), 'panicThreshold');
    rejection(() => normalizePanicThreshold(50), 'panicThreshold');
    rejection(() => normalizePanicThreshold(Number.NaN), 'panicThreshold');
    rejection(() => normalizePanicThreshold('0.5'), 'panicThreshold');
  });
});
