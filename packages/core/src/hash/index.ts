/** The one hash every hashing balancer uses, so two instances map a key to the same backend. */
export { xxhash32 } from './xxhash32';
