/**
 * The health state machine: HAProxy's rise/fall counter as a pure reducer over plain JSON data, with
 * the admin states (`draining`, `maintenance`) layered above it.
 *
 * Source: HAProxy `src/check.c` (`set_server_check_status`, `check_notify_failure`/`_success`,
 * `srv_getinter`) and `src/server.c` (server init, `init-state`). The counter arithmetic is kept
 * separate from the decision to change state, as HAProxy does:
 *
 * - `health` is an integer in `[0, rise + fall − 1]`; the backend is up iff `health ≥ rise`.
 * - A failed check decrements `health` (nothing happens at 0); if that leaves it below `rise`, it
 *   drops straight to 0. So an up backend at full health goes down after exactly `fall` consecutive
 *   failures, and one that was still climbing (below `rise`) starts over after any failure.
 * - A passed check increments `health` (nothing happens at full); reaching `rise` jumps to full
 *   (`rise + fall − 1`). So a backend at 0 comes up after exactly `rise` consecutive passes, any pass
 *   while up restores full health, and a risen backend needs `fall` failures in a row to go down.
 * - The check interval depends on where the counter is (`srv_getinter`): full → `inter` ("up"),
 *   0 while down → `downinter` ("down"), anything in between → `fastinter` ("transitioning").
 *
 * Initial state (HAProxy's `init-state`, default `up`): `'up'` starts at `health = rise` — "up, but
 * will fall down at first failure", HAProxy's comment and behaviour since 1.x: traffic flows at once,
 * and the first failed check takes the backend out. `'fully-up'` starts at full (falls after `fall`
 * failures), `'down'` at `rise − 1` (one pass brings it up), `'fully-down'` at 0 (needs `rise` passes).
 *
 * Defaults `rise: 2`, `fall: 3` are HAProxy's (`DEF_RISETIME`, `DEF_FALLTIME`): one lucky pass does not
 * bring a backend back, and one lost packet does not take a healthy one out.
 *
 * Admin states sit above the counter: maintenance first, then down, then draining (see
 * `resolveState`). Checks keep running in every admin state so the counter is current when the
 * operator returns the backend to service.
 */
import type { BackendState } from '../backend';

/** The rise/fall thresholds of the counter. */
export interface HealthCounterConfig {
  /** Consecutive passes that bring a down backend up. Integer ≥ 1, default 2 (HAProxy). */
  readonly rise: number;
  /** Consecutive failures that take a fully up backend down. Integer ≥ 1, default 3 (HAProxy). */
  readonly fall: number;
}

/** The default counter thresholds, HAProxy's. */
export const DEFAULT_HEALTH_COUNTER: HealthCounterConfig = Object.freeze({ rise: 2, fall: 3 });

/** Plain data: safe to serialise, replicate and restore. */
export interface HealthStatus {
  /** The counter, an integer in `[0, rise + fall − 1]`. */
  readonly health: number;
  /** `health ≥ rise`. */
  readonly up: boolean;
}

/** One check result (an active probe, or an observed request when used passively). */
export type HealthObservation = 'pass' | 'fail';

/**
 * Where a backend starts (HAProxy's `init-state`): `'up'` (default) is up and goes down at the first
 * failure; `'fully-up'` goes down after `fall` failures; `'down'` comes up after one pass;
 * `'fully-down'` comes up after `rise` passes.
 */
export type InitialHealthState = 'fully-up' | 'up' | 'down' | 'fully-down';

/** Operator (or agent) intent, above the health verdict. */
export type AdminState = 'ready' | 'draining' | 'maintenance';

/**
 * The phase that picks the check interval (HAProxy's `srv_getinter`): `'up'` at full health,
 * `'down'` at 0, `'transitioning'` anywhere in between.
 */
export type CheckPhase = 'up' | 'transitioning' | 'down';

/** The counter's maximum: `rise + fall − 1`. */
export function fullHealth(config: HealthCounterConfig): number {
  return config.rise + config.fall - 1;
}

/**
 * The status a backend starts with. `initial` is an `InitialHealthState`, or a boolean: `true`
 * (default) is `'up'` — HAProxy's default, up until the first failure — and `false` is
 * `'fully-down'` — down until `rise` passes.
 */
export function initialHealth(config: HealthCounterConfig, initial: boolean | InitialHealthState = true): HealthStatus {
  const state: InitialHealthState = initial === true ? 'up' : initial === false ? 'fully-down' : initial;
  let health: number;
  switch (state) {
    case 'fully-up':
      health = fullHealth(config);
      break;
    case 'up':
      health = config.rise;
      break;
    case 'down':
      health = config.rise - 1;
      break;
    case 'fully-down':
      health = 0;
      break;
  }
  return status(health, config);
}

/**
 * Fold one observation into the counter (HAProxy's `set_server_check_status`). Pure: returns a new
 * status, or the same object when nothing changed. A status from elsewhere (a restored snapshot, a
 * changed config) is first clamped into `[0, rise + fall − 1]` and its `up` recomputed.
 */
export function reduceHealth(current: HealthStatus, observation: HealthObservation, config: HealthCounterConfig): HealthStatus {
  const full = fullHealth(config);
  const raw = Number.isFinite(current.health) ? Math.round(current.health) : 0;
  const health = Math.min(full, Math.max(0, raw));
  let next = health;
  if (observation === 'fail') {
    if (health > 0) {
      next = health - 1;
      if (next < config.rise) next = 0;
    }
  } else if (health < full) {
    next = health + 1;
    if (next >= config.rise) next = full;
  }
  const up = next >= config.rise;
  if (next === current.health && up === current.up) return current;
  return status(next, config);
}

/** The interval phase of a status (HAProxy's `srv_getinter`); feed it to `HealthChecker`'s `phase`. */
export function checkPhase(current: HealthStatus, config: HealthCounterConfig): CheckPhase {
  if (current.health >= fullHealth(config)) return 'up';
  if (current.health <= 0) return 'down';
  return 'transitioning';
}

/**
 * The backend state the load balancer publishes: `'maintenance'` first (the operator's word is
 * final), then `'down'` when the counter says so, then `'draining'`, else `'up'`.
 *
 * Down wins over draining on purpose: a draining backend still serves its sticky clients, and a
 * dead one must not (HAProxy shows a drained server that fails its checks as DOWN, and sends
 * persistent traffic only to usable servers).
 */
export function resolveState(admin: AdminState, current: HealthStatus): BackendState {
  if (admin === 'maintenance') return 'maintenance';
  if (!current.up) return 'down';
  if (admin === 'draining') return 'draining';
  return 'up';
}

/** The agent-check directives a probe result may carry (a `ProbeResult` fits). */
export interface AdminDirectives {
  readonly maintenance?: boolean;
  readonly drain?: boolean;
  readonly ready?: boolean;
}

/**
 * Apply agent-check directives to an admin state, HAProxy's agent words: `maint` → maintenance,
 * `drain` → draining, `ready` → ready (leaves both). When several are set the strongest wins
 * (maintenance, then drain, then ready); with none, the admin state is unchanged.
 */
export function applyAdminDirectives(admin: AdminState, directives: AdminDirectives): AdminState {
  if (directives.maintenance === true) return 'maintenance';
  if (directives.drain === true) return 'draining';
  if (directives.ready === true) return 'ready';
  return admin;
}

function status(health: number, config: HealthCounterConfig): HealthStatus {
  return { health, up: health >= config.rise };
}
