/**
 * Passive outlier detection: eject a backend whose real traffic goes bad, without waiting for a probe.
 *
 * Source: Envoy's outlier detection (`source/common/upstream/outlier_detection_impl.cc`, "Outlier
 * detection" in the architecture docs). Three rules, evaluated as Envoy does:
 *
 * - Consecutive failures: `consecutiveFailures` (default 5) failures in a row eject at once, on the
 *   `record()` that reaches the count. The counter restarts after every ejection attempt (allowed or
 *   not) and when the backend returns, so a backend is not re-ejected by one more failure.
 * - Success rate, every `intervalMs` (default 10 s) over that interval's counts: among the backends
 *   that are not ejected and saw at least `successRateRequestVolume` (100) requests, if there are at
 *   least `successRateMinimumHosts` (5), eject each whose success rate (%) is below
 *   `mean − successRateStdevFactor × stdev` (population stdev, factor 1.9).
 * - Failure percentage, same sweep: among the non-ejected backends with at least
 *   `failurePercentageRequestVolume` (50) requests, if there are at least
 *   `failurePercentageMinimumHosts` (5), eject each whose failure percentage is ≥
 *   `failurePercentageThreshold` (85). Detected but not enforced unless `enforceFailurePercentage`.
 *
 * Ejection time: the backend's multiplier goes up by one on each ejection (while `multiplier × base <
 * max + base`, Envoy's bound) and the ejection lasts `min(baseEjectionMs × multiplier, maxEjectionMs)`
 * (30 s, 60 s, 90 s … capped at 300 s). On each sweep, a backend that is not ejected and has been back
 * for at least one interval has its multiplier decreased by one, so a backend that stays healthy
 * returns to short ejections. Un-ejection happens on the first sweep at or after `until` (Envoy
 * checks on its interval timer too); `Backend.isEjected(now)` is already false from `until`, so the
 * load balancer may route to it before the sweep confirms with `onRestore`.
 *
 * The cap: an ejection happens only if, counting it, at most `maxEjectionPercent` (10%) of the
 * backends would be ejected — Envoy's rule. With fewer than 10 backends and the default 10%, nothing
 * is ejected unless `alwaysEjectOneHost` (Envoy's `always_eject_one_host`, default false) lets a
 * single ejection through when none is active. Rules run in the order above; backends in the order
 * they were added.
 *
 * Which outcomes count: `isFailure(outcome)` (default: connect error, reset, timeout, status ≥ 500).
 * An outcome that is not a failure and was aborted by the client is not counted at all — it says
 * nothing about the backend. Envoy's enforcing percentages are simplified to on/off switches.
 *
 * The detector never writes `Backend` fields: it reports through `onEject` / `onRestore`.
 */
import type { Backend } from '../backend';
import type { Outcome } from '../balancers/balancer';
import type { Clock, Timer } from '../clock';
import type { EjectionCause, NormalizedOutlierOptions } from './options';

export type { EjectionCause };

export interface OutlierDetectorDeps {
  clock: Clock;
  /** `backend` is ejected until clock time `until` (ms). Set `ejectedUntil`, emit `'ejected'`. */
  onEject(backend: Backend, cause: EjectionCause, until: number): void;
  /** `backend` is back (sweep after `until`, or `restore()`). Clear `ejectedUntil`, emit `'restored'`. */
  onRestore(backend: Backend): void;
}

/** One backend's outlier state, as plain data (for snapshots and tests). */
export interface OutlierHostState {
  readonly ejected: boolean;
  /** Clock ms the current ejection ends; 0 when not ejected. */
  readonly until: number;
  /** The ejection-time multiplier: the next ejection lasts min(base × (multiplier + 1), max). */
  readonly multiplier: number;
  /** Times ejected since added. */
  readonly ejections: number;
  readonly consecutiveFailures: number;
  /** Successes and failures counted in the current interval. */
  readonly successes: number;
  readonly failures: number;
}

interface HostRecord {
  readonly backend: Backend;
  ejected: boolean;
  until: number;
  multiplier: number;
  ejections: number;
  /** When the backend last returned; `undefined` until its first return. */
  restoredAt: number | undefined;
  consecutiveFailures: number;
  successes: number;
  failures: number;
}

/**
 * ```ts
 * const detector = new OutlierDetector(config, { clock, onEject, onRestore });
 * detector.add(backend);
 * detector.record(backend, { ok: false, status: 503 }); // from Lease.release
 * detector.close();
 * ```
 */
export class OutlierDetector {
  readonly #config: NormalizedOutlierOptions;
  readonly #deps: OutlierDetectorDeps;
  readonly #hosts = new Map<Backend, HostRecord>();
  #ejectedCount = 0;
  #timer: Timer | undefined;
  #closed = false;

  /** Starts the sweep timer (every `config.intervalMs`) at once. */
  constructor(config: NormalizedOutlierOptions, deps: OutlierDetectorDeps) {
    this.#config = config;
    this.#deps = deps;
    this.#arm();
  }

  /** How many backends are ejected now (until the sweep that restores them). */
  get ejectedCount(): number {
    return this.#ejectedCount;
  }

  /** True after `close()`. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Start monitoring `backend`. Adding one already monitored, or after `close()`, does nothing. */
  add(backend: Backend): void {
    if (this.#closed || this.#hosts.has(backend)) return;
    this.#hosts.set(backend, {
      backend,
      ejected: false,
      until: 0,
      multiplier: 0,
      ejections: 0,
      restoredAt: undefined,
      consecutiveFailures: 0,
      successes: 0,
      failures: 0,
    });
  }

  /** Stop monitoring `backend` and forget its state. No `onRestore` is called for it. */
  remove(backend: Backend): void {
    const host = this.#hosts.get(backend);
    if (host === undefined) return;
    if (host.ejected) this.#ejectedCount--;
    this.#hosts.delete(backend);
  }

  /** Stop the sweep timer. Idempotent; `record` is ignored afterwards. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) this.#deps.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Count one request's outcome against `backend` (call from `Lease.release`). Unknown backends are ignored. */
  record(backend: Backend, outcome: Outcome): void {
    if (this.#closed) return;
    const host = this.#hosts.get(backend);
    if (host === undefined) return;
    const failed = this.#config.isFailure(outcome);
    if (!failed) {
      if (outcome.error === 'aborted') return;
      host.successes++;
      host.consecutiveFailures = 0;
      return;
    }
    host.failures++;
    if (host.ejected) return;
    host.consecutiveFailures++;
    if (host.consecutiveFailures >= this.#config.consecutiveFailures) {
      host.consecutiveFailures = 0;
      if (this.#config.enforceConsecutiveFailures) this.#eject(host, 'consecutive-failures', this.#deps.clock.now());
    }
  }

  /**
   * End `backend`'s ejection now and call `onRestore` (Envoy's
   * `successful_active_health_check_uneject_host`: call it when an active check passes). Returns
   * false when the backend was not ejected.
   */
  restore(backend: Backend): boolean {
    const host = this.#hosts.get(backend);
    if (this.#closed || host === undefined || !host.ejected) return false;
    this.#restore(host, this.#deps.clock.now());
    return true;
  }

  /** A copy of `backend`'s state, or `undefined` when it is not monitored. */
  stateOf(backend: Backend): OutlierHostState | undefined {
    const host = this.#hosts.get(backend);
    if (host === undefined) return undefined;
    const { ejected, until, multiplier, ejections, consecutiveFailures, successes, failures } = host;
    return { ejected, until, multiplier, ejections, consecutiveFailures, successes, failures };
  }

  #arm(): void {
    this.#timer = this.#deps.clock.setTimeout(() => {
      this.#timer = undefined;
      if (this.#closed) return;
      try {
        this.#sweep();
      } finally {
        if (!this.#closed) this.#arm();
      }
    }, this.#config.intervalMs);
  }

  #sweep(): void {
    const now = this.#deps.clock.now();
    const hosts = [...this.#hosts.values()];
    for (const host of hosts) {
      if (host.ejected && now >= host.until && this.#isMonitored(host)) this.#restore(host, now);
    }
    // The interval's counts are read once and reset, whatever the callbacks below do.
    const counts = hosts.map((host) => {
      const sample = { host, successes: host.successes, failures: host.failures };
      host.successes = 0;
      host.failures = 0;
      return sample;
    });
    this.#sweepSuccessRate(counts, now);
    this.#sweepFailurePercentage(counts, now);
    const { intervalMs } = this.#config;
    for (const host of hosts) {
      if (!host.ejected && host.multiplier > 0 && host.restoredAt !== undefined && now - host.restoredAt >= intervalMs) {
        host.multiplier--;
      }
    }
  }

  #sweepSuccessRate(counts: readonly IntervalCount[], now: number): void {
    const { successRateRequestVolume, successRateMinimumHosts, successRateStdevFactor, enforceSuccessRate } = this.#config;
    if (!enforceSuccessRate) return;
    const valid = eligible(counts, successRateRequestVolume);
    if (valid.length === 0 || valid.length < successRateMinimumHosts) return;
    const rates = valid.map(successRate);
    const mean = rates.reduce((sum, rate) => sum + rate, 0) / rates.length;
    const variance = rates.reduce((sum, rate) => sum + (rate - mean) ** 2, 0) / rates.length;
    const threshold = mean - successRateStdevFactor * Math.sqrt(variance);
    valid.forEach((count, i) => {
      if ((rates[i] as number) < threshold && this.#isMonitored(count.host) && !count.host.ejected) {
        this.#eject(count.host, 'success-rate', now);
      }
    });
  }

  #sweepFailurePercentage(counts: readonly IntervalCount[], now: number): void {
    const { failurePercentageRequestVolume, failurePercentageMinimumHosts, failurePercentageThreshold, enforceFailurePercentage } = this.#config;
    if (!enforceFailurePercentage) return;
    const valid = eligible(counts, failurePercentageRequestVolume);
    if (valid.length === 0 || valid.length < failurePercentageMinimumHosts) return;
    for (const count of valid) {
      if (100 - successRate(count) >= failurePercentageThreshold && this.#isMonitored(count.host) && !count.host.ejected) {
        this.#eject(count.host, 'failure-percentage', now);
      }
    }
  }

  #isMonitored(host: HostRecord): boolean {
    return !this.#closed && this.#hosts.get(host.backend) === host;
  }

  #eject(host: HostRecord, cause: EjectionCause, now: number): void {
    const { maxEjectionPercent, alwaysEjectOneHost, baseEjectionMs, maxEjectionMs } = this.#config;
    const allowed = (100 * (this.#ejectedCount + 1)) / this.#hosts.size <= maxEjectionPercent || (alwaysEjectOneHost && this.#ejectedCount === 0);
    if (!allowed) return;
    if (host.multiplier * baseEjectionMs < maxEjectionMs + baseEjectionMs) host.multiplier++;
    host.ejected = true;
    host.ejections++;
    host.until = now + Math.min(baseEjectionMs * host.multiplier, maxEjectionMs);
    host.consecutiveFailures = 0;
    this.#ejectedCount++;
    this.#deps.onEject(host.backend, cause, host.until);
  }

  #restore(host: HostRecord, now: number): void {
    host.ejected = false;
    host.until = 0;
    host.restoredAt = now;
    host.consecutiveFailures = 0;
    this.#ejectedCount--;
    this.#deps.onRestore(host.backend);
  }
}

interface IntervalCount {
  readonly host: HostRecord;
  readonly successes: number;
  readonly failures: number;
}

/** Backends not ejected at the sweep with at least `volume` requests in the interval. */
function eligible(counts: readonly IntervalCount[], volume: number): IntervalCount[] {
  return counts.filter((count) => !count.host.ejected && count.successes + count.failures >= volume);
}

/** Success rate in percent, as Envoy computes it. */
function successRate(count: IntervalCount): number {
  return (100 * count.successes) / (count.successes + count.failures);
}
