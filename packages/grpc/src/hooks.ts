/**
 * The way to reach the core `LoadBalancer` behind a channel. grpc-js creates the policy from a
 * service config, which is JSON: no object can be handed in. A listener registered here hears of
 * each load balancer the policy creates (one per channel, and a new one when the channel's config
 * changes), and can subscribe to its events (`decision`, `ejected`, `state`, …), read
 * `snapshot()` for stats, or render it with `@fulcrum/http`'s stats page and Prometheus output.
 */
import type { LoadBalancer } from '@fulcrum/core';
import { InvalidOptionError } from '@fulcrum/core';

export interface LoadBalancerInfo {
  /** The `name` of the policy's config (default `'grpc'`). */
  readonly name: string;
}

export type LoadBalancerListener = (lb: LoadBalancer, info: LoadBalancerInfo) => void;

const listeners = new Set<LoadBalancerListener>();

/** Hear of every load balancer the `fulcrum` policy creates from now on. Returns an unsubscribe function. */
export function onLoadBalancer(listener: LoadBalancerListener): () => void {
  if (typeof listener !== 'function') throw new InvalidOptionError('listener', listener, 'must be a function (lb, info) => void');
  listeners.add(listener);
  return () => {
    listeners.delete(listener);
  };
}

/** @internal */
export function notifyLoadBalancer(lb: LoadBalancer, info: LoadBalancerInfo): void {
  for (const listener of listeners) {
    try {
      listener(lb, info);
    } catch (error) {
      // A listener's bug must not break the channel; it is reported where Node reports the rest.
      queueMicrotask(() => {
        throw error;
      });
    }
  }
}
