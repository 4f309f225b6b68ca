/**
 * Registration of the `fulcrum` policy with grpc-js (`experimental.registerLoadBalancerType`).
 * Idempotent: a second call changes nothing. Channels select the policy by service config.
 */
import { experimental } from '@grpc/grpc-js';
import { POLICY_NAME } from './config';
import { FulcrumLoadBalancer, FulcrumLoadBalancingConfig } from './policy';

let registered = false;

/** Register the `fulcrum` policy with this process's `@grpc/grpc-js`. Call once before creating channels. */
export function registerFulcrumPolicy(): void {
  if (registered) return;
  experimental.registerLoadBalancerType(POLICY_NAME, FulcrumLoadBalancer, FulcrumLoadBalancingConfig);
  registered = true;
}
