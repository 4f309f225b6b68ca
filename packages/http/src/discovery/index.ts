// Service discovery feeding a load balancer's membership. Re-exports only; no logic lives here.
export { DnsDiscovery, DnsDiscoveryError, dnsDiscovery, isDnsDiscoveryError } from './dns-discovery';
export type { DnsDiscoveryEvents, DnsDiscoveryOptions, DnsResolver, DnsTarget } from './dns-discovery';
