import fc from 'fast-check';
import type { ForwardingContext } from '../../src/proxy/headers';

/** Every combination of the inputs the proxy's forwarding fields depend on (fast-check). */
export const forwardingContext: fc.Arbitrary<ForwardingContext> = fc.record({
  remoteAddress: fc.constantFrom('127.0.0.1', '::1', '10.1.2.3'),
  encrypted: fc.boolean(),
  peerTrusted: fc.boolean(),
  preserveHost: fc.boolean(),
  addForwarded: fc.boolean(),
  upgrade: fc.boolean(),
});
