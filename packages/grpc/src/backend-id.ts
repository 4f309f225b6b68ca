/**
 * A backend id for a resolved gRPC endpoint, derived from its address alone, so every client that
 * resolves the same addresses uses the same ids — which is what makes hashing by a metadata key
 * send a key to the same backend from every client (Maglev, the ring hash and rendezvous hash ids).
 *
 * Ids are 1–64 characters of [A-Za-z0-9._:-] (`BackendSpec.id`). An IPv4 `host:port` is used as it
 * is; other characters (IPv6 brackets, the slashes of a Unix socket path) become `_`; an address
 * longer than 64 characters becomes `addr-` and its MurmurHash3 in hex.
 */
import { murmur3 } from '@fulcrum/core';
import { experimental } from '@grpc/grpc-js';

const NOT_ID = /[^A-Za-z0-9._:-]/g;

/** The address a backend is shown and hashed by: the endpoint's first address. */
export function endpointAddress(endpoint: experimental.Endpoint): string {
  const first = endpoint.addresses[0];
  return first === undefined ? '' : experimental.subchannelAddressToString(first);
}

export function backendIdFor(address: string): string {
  const id = address.replace(NOT_ID, '_');
  if (id.length >= 1 && id.length <= 64) return id;
  return `addr-${murmur3(address).toString(16).padStart(8, '0')}`;
}

const HOST_PORT = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?):(\d{1,5})$/;

/**
 * `BackendSpec.address` must be an http(s) origin or `host:port`: a TCP address is its own; a Unix
 * socket path has neither, so it is shown under the reserved `.invalid` name (RFC 6761) and its
 * real path is kept in the backend's `metadata.grpcAddress`.
 */
export function specAddressFor(address: string): string {
  const match = HOST_PORT.exec(address);
  return match !== null && Number(match[1]) >= 1 && Number(match[1]) <= 65535 ? address : 'unix.invalid:1';
}
