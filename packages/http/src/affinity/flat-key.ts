/**
 * Table keys that own their characters.
 *
 * A stick-table key is usually cut from a longer string: a cookie value out of a `Cookie` line, a
 * session id out of a backend's `Set-Cookie`, an address out of `X-Forwarded-For`, a header value.
 * In V8, `s.slice(a, b)` of 13 characters or more is a SLICED string that points into `s`, and
 * `prefix + value` of 13 or more is a CONS string (a rope) that points at both halves; either keeps
 * the whole parent alive for as long as the key lives. A table entry that should cost ~100–300
 * bytes then holds a kilobyte-sized header for its whole TTL — measured at 1,175 bytes per entry
 * with a 1 KB `Cookie` line, against ~300 for the same key as a flat string — and a client that pads
 * its headers multiplies the table's memory by ten.
 *
 * `flatKey` builds the key with `Array.prototype.join`, which V8 implements by allocating ONE
 * sequential string and copying the parts into it (no rope, no slice), so the key retains nothing
 * but its own characters. It reuses one two-slot array, so it allocates only the key itself, and
 * clears the slots afterwards so the array does not keep the last value alive either.
 * `test/affinity/flat-keys.test.ts` measures the retained heap per entry for every keyed mode and
 * the rate limiter with 1–4 KB headers; `bench/stick-table.bench.mjs` reports it beside the table.
 */

const PARTS: string[] = ['', ''];

/**
 * `prefix + value` as a flat string that references neither argument. `prefix` must be non-empty
 * (with one non-empty part, `join` may hand back that part itself, slice and all).
 */
export function flatKey(prefix: string, value: string): string {
  PARTS[0] = prefix;
  PARTS[1] = value;
  const key = PARTS.join('');
  PARTS[0] = '';
  PARTS[1] = '';
  return key;
}
