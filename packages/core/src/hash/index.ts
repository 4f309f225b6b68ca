/** The one hash every hashing balancer uses, so two instances map a key to the same backend. */
export { hash32, xxhash32 } from './xxhash32';
