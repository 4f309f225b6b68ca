/** The one hash every hashing balancer uses, so two instances map a key to the same backend. */
export { hash32, hashPair, murmur3 } from './murmur3';
