/**
 * Decisions that explain themselves. Every `acquire` can say which backend it chose and why: the
 * reason, the algorithm, the key, the attempt, how many backends were eligible, and — when a sticky
 * client had to be moved — which backend it was stuck to and why that one was not used. Decisions
 * are built only when asked for (`lease.decision`, or a `'decision'` listener), so the hot path pays
 * nothing for them.
 */

/** Why a backend was chosen. */
export type DecisionReason =
  /** The affinity key's stick-table entry named a backend that is up or draining. */
  | 'sticky'
  /** A hashing balancer mapped the request key to the backend. */
  | 'hashed'
  /** The balancer chose among eligible primaries. */
  | 'balanced'
  /** No primary was eligible (or too few were healthy) and a backup was chosen. */
  | 'backup'
  /** Fewer than `panicThreshold` of primaries are healthy: all primaries are candidates again. */
  | 'panic'
  /** A retry, or a sticky client moved off a backend that could not take it. */
  | 'redispatched';

/** Why a sticky backend was not used. */
export type StickyMissCause = 'down' | 'maintenance' | 'ejected' | 'unknown' | 'excluded';

export interface Decision {
  readonly backendId: string;
  readonly reason: DecisionReason;
  /** The balancer's name (`'p2c'`, `'maglev'`, …). */
  readonly algorithm: string;
  /** The hash key given to `acquire`, if any. */
  readonly key?: string;
  /** 0 for a first attempt, n for the n-th retry. */
  readonly attempt: number;
  /** How many backends the balancer chose among. */
  readonly eligible: number;
  /** Clock ms at which the decision was made. */
  readonly at: number;
  /** For `'redispatched'` sticky clients: the backend they were stuck to, and why it was not used. */
  readonly previous?: { readonly backendId: string; readonly cause: StickyMissCause };
}

/** One sentence a human can read in a log: `b2 by p2c among 3 eligible backends (balanced)`. */
export function describeDecision(decision: Decision): string {
  const parts = [`${decision.backendId} by ${decision.reason === 'sticky' ? 'stick-table' : decision.algorithm}`];
  if (decision.reason !== 'sticky') parts.push(`among ${decision.eligible} eligible backend${decision.eligible === 1 ? '' : 's'}`);
  let why: string = decision.reason;
  if (decision.attempt > 0) why += `, attempt ${decision.attempt + 1}`;
  if (decision.previous) why += `, was on ${decision.previous.backendId} (${decision.previous.cause})`;
  if (decision.key !== undefined) why += `, key ${JSON.stringify(decision.key.length > 40 ? `${decision.key.slice(0, 37)}...` : decision.key)}`;
  parts.push(`(${why})`);
  return parts.join(' ');
}
