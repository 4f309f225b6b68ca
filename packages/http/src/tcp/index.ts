// The layer-4 (TCP) proxy of @fulcrum/http. Re-exports only; no logic lives here.
export { createTcpProxy } from './proxy';
export type { TcpProxyHandler, TcpProxyOptions } from './proxy';
export { PROXY_V2_SIGNATURE, proxyHeader, proxyHeaderV1, proxyHeaderV2 } from './proxy-protocol';
export type { ConnectionAddresses, ProxyProtocolVersion } from './proxy-protocol';
