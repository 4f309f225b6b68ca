/**
 * Recent transitions for the stats page: a fixed-size ring buffer fed by the load balancers'
 * events (`state`, `ejected`, `restored`, `added`, `removed`, `panic`).
 *
 * HAProxy's stats page shows only the present; its transitions go to the log. A page someone opens
 * after the fact ("why did b2 flap at 3 am?") is more useful with the last few transitions beside the
 * numbers, and a ring buffer bounds that memory whatever the churn (default 50 entries, about a
 * screen). Times are each load balancer's own clock (`lb.clock.now()`), the clock its snapshot and
 * `ejectedUntil` use, so the page can compare them. `seq` increases by one per event, so a client
 * can tell new entries from ones it has shown.
 */
import type { BackendState, EjectionCause, LoadBalancer, LoadBalancerEvents, StateCause } from '@fulcrum/core';
import type { StatsPool } from './source';

interface EventBase {
  /** Increases by one per recorded event, from 1. */
  seq: number;
  /** The load balancer's clock, in ms (epoch ms with the real clock). */
  at: number;
  pool: string;
  /** Under `fulcrum --workers`: the worker (slot) that recorded the event first. */
  worker?: number;
  /** Under `fulcrum --workers`: every worker that recorded it (a change applied by all of them is one event). */
  workers?: number[];
}

/** One recorded transition. */
export type StatsEvent =
  | (EventBase & { type: 'state'; backend: string; from: BackendState; to: BackendState; cause: StateCause })
  | (EventBase & { type: 'ejected'; backend: string; cause: EjectionCause; until: number })
  | (EventBase & { type: 'restored' | 'added' | 'removed'; backend: string })
  | (EventBase & { type: 'panic'; active: boolean; healthyFraction: number });

type Unsubscribe = () => void;

/** Distributes `Omit` over the union, so each variant keeps its own fields. */
type WithoutStamp<T> = T extends unknown ? Omit<T, 'seq' | 'at' | 'pool'> : never;

export class EventLog {
  readonly #buffer: (StatsEvent | undefined)[];
  #next = 0;
  #seq = 0;
  readonly #unsubscribes: Unsubscribe[] = [];

  /** Subscribe to every pool; keeps the last `capacity` events. */
  constructor(pools: readonly StatsPool[], capacity: number) {
    this.#buffer = new Array<StatsEvent | undefined>(capacity).fill(undefined);
    for (const { name, lb } of pools) this.#subscribe(name, lb);
  }

  /** The recorded events, oldest first. */
  list(): StatsEvent[] {
    const events: StatsEvent[] = [];
    const size = this.#buffer.length;
    for (let i = 0; i < size; i += 1) {
      const event = this.#buffer[(this.#next + i) % size];
      if (event !== undefined) events.push(event);
    }
    return events;
  }

  /** Stop listening. Recorded events stay readable. Idempotent. */
  close(): void {
    for (const unsubscribe of this.#unsubscribes.splice(0)) unsubscribe();
  }

  #record(pool: string, lb: LoadBalancer, event: WithoutStamp<StatsEvent>): void {
    this.#seq += 1;
    this.#buffer[this.#next] = { seq: this.#seq, at: lb.clock.now(), pool, ...event } as StatsEvent;
    this.#next = (this.#next + 1) % this.#buffer.length;
  }

  #subscribe(pool: string, lb: LoadBalancer): void {
    const on = <E extends keyof LoadBalancerEvents>(event: E, listener: LoadBalancerEvents[E]): void => {
      lb.on(event, listener as never);
      this.#unsubscribes.push(() => lb.off(event, listener as never));
    };
    on('state', (backend, from, to, cause) => this.#record(pool, lb, { type: 'state', backend, from, to, cause }));
    on('ejected', (backend, cause, until) => this.#record(pool, lb, { type: 'ejected', backend, cause, until }));
    on('restored', (backend) => this.#record(pool, lb, { type: 'restored', backend }));
    on('added', (backend) => this.#record(pool, lb, { type: 'added', backend: backend.id }));
    on('removed', (backend) => this.#record(pool, lb, { type: 'removed', backend: backend.id }));
    on('panic', (active, healthyFraction) => this.#record(pool, lb, { type: 'panic', active, healthyFraction }));
  }
}
