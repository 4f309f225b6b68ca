/**
 * The state a balanced dispatcher shares between its requests: the load balancer, one undici
 * `Pool` per instance (created on first use, closed once the load balancer has drained and removed
 * the instance — undici's `BalancedPool` keeps its pools the same way), the retry budget, the wait
 * queue for instances at their `maxConnections`, and the set of requests in flight that `close()`
 * waits for and `destroy()` aborts.
 */
import type { Backend, LoadBalancer } from '@fulcrum/core';
import type { Dispatcher, Pool } from 'undici';
import { createBackendPool } from '../proxy/pool';
import { WaitQueue } from '../proxy/queue';
import { RetryBudget } from '../retry/budget';
import type { NormalizedDispatcherOptions } from './options';

/** What the engine needs of a request in flight. */
export interface ActiveRequest {
  abort(reason: Error): void;
}

type PoolEvent = 'connect' | 'disconnect' | 'connectionError' | 'drain';
const POOL_EVENTS: readonly PoolEvent[] = ['connect', 'disconnect', 'connectionError', 'drain'];

export class DispatcherEngine {
  readonly lb: LoadBalancer;
  readonly config: NormalizedDispatcherOptions;
  readonly budget: RetryBudget;
  readonly queue: WaitQueue;
  readonly active = new Set<ActiveRequest>();
  readonly #owner: Dispatcher;
  readonly #ownsBalancer: boolean;
  readonly #pools = new Map<Backend, Pool>();
  readonly #onRemoved: (backend: Backend) => void;
  #whenIdle: (() => void)[] = [];
  closing = false;
  destroyed = false;

  constructor(owner: Dispatcher, lb: LoadBalancer, owned: boolean, config: NormalizedDispatcherOptions) {
    this.#owner = owner;
    this.lb = lb;
    this.#ownsBalancer = owned;
    this.config = config;
    this.budget = new RetryBudget(config.shared.budgetPercent, config.shared.budgetMinConcurrency);
    this.queue = new WaitQueue(config.shared.maxQueue, config.shared.queueTimeoutMs);
    this.#onRemoved = (backend) => {
      const pool = this.#pools.get(backend);
      if (pool === undefined) return;
      this.#pools.delete(backend);
      // The load balancer removes an instance only once its last lease is released: nothing is in flight.
      pool.close().catch(() => undefined);
    };
    lb.on('removed', this.#onRemoved);
  }

  /** The keep-alive pool of an instance, created on first use. */
  pool(backend: Backend): Pool {
    let pool = this.#pools.get(backend);
    if (pool === undefined) {
      pool = createBackendPool(backend, this.config.shared, { allowH2: this.config.allowH2 });
      // Connection events reach the dispatcher's listeners as an Agent reports them: origin, then
      // the chain of dispatchers from the outermost.
      const owner = this.#owner as unknown as NodeJS.EventEmitter;
      const source = pool as unknown as NodeJS.EventEmitter;
      for (const event of POOL_EVENTS) {
        source.on(event, (origin: URL, targets: readonly Dispatcher[], error?: Error) => {
          if (owner.listenerCount(event) > 0) owner.emit(event, origin, [this.#owner, ...targets], error);
        });
      }
      this.#pools.set(backend, pool);
    }
    return pool;
  }

  /** A lease was released: a queued request may now fit. */
  released(): void {
    if (this.queue.length > 0) this.queue.wake();
  }

  /** A request ended. */
  finished(request: ActiveRequest): void {
    this.active.delete(request);
    if (this.active.size === 0 && this.#whenIdle.length > 0) {
      for (const resolve of this.#whenIdle.splice(0)) resolve();
    }
  }

  report(error: unknown, backendId: string | undefined): void {
    const onError = this.config.shared.onError;
    if (onError === undefined) return;
    try {
      onError(error, backendId === undefined ? { phase: 'upstream' } : { phase: 'upstream', backendId });
    } catch {
      // A logging callback must not break a request.
    }
  }

  /** Let the requests in flight (and queued) finish, then close every pool. */
  async close(): Promise<void> {
    this.closing = true;
    if (this.active.size > 0) await new Promise<void>((resolve) => this.#whenIdle.push(resolve));
    await this.#shutPools((pool) => pool.close());
  }

  /** Abort every request with `reason` and destroy every pool. */
  async destroy(reason: Error): Promise<void> {
    this.closing = true;
    this.destroyed = true;
    for (const request of [...this.active]) request.abort(reason);
    this.queue.close();
    await this.#shutPools((pool) => pool.destroy(reason));
  }

  async #shutPools(shut: (pool: Pool) => Promise<void>): Promise<void> {
    this.lb.off('removed', this.#onRemoved);
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map((pool) => shut(pool).catch(() => undefined)));
    if (this.#ownsBalancer) this.lb.close();
  }
}
