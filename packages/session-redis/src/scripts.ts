/**
 * The Lua scripts the store and the replicator run in Redis. A script runs atomically (no other
 * command interleaves), which is what makes the conditional writes below safe against races that a
 * read-then-write from Node could lose — the technique of Redis's own docs for compare-and-set and of
 * redlock's release script. Each script touches one key (or two keys that share a hash tag), so it
 * works on Redis Cluster. They are registered with ioredis's `defineCommand`, which sends EVALSHA
 * and falls back to EVAL when the server does not have the script cached yet (after a restart or a
 * failover); command names carry a `fulcrum` prefix so they cannot clash with the application's.
 *
 * Written for Redis 6.2/7.0 (no HEXPIRE, no functions): only GET/SET/PTTL/PEXPIRE/HGET/HSET/HDEL,
 * sorted sets, TIME and PUBLISH.
 */

/**
 * Touch, first step: decide whether the extension is worth a write, and hand back the stored text
 * when it is, so that the store can put the new cookie into it (express-session's MemoryStore
 * stores the touched cookie, and `store.get()` must show the expiry that is in force).
 * KEYS[1] session key; ARGV[1] new TTL in ms; ARGV[2] throttle in ms.
 * Returns 0 when the key is gone (a touch never recreates a session), 1 when throttled, and the
 * stored text when the touch is due. A key without an expiry (written by another tool) is always due,
 * and so is every touch with a throttle of 0.
 */
export const TOUCH_READ_LUA = `
local pttl = redis.call('PTTL', KEYS[1])
if pttl == -2 then return 0 end
local throttle = tonumber(ARGV[2])
if pttl >= 0 and throttle > 0 and tonumber(ARGV[1]) - pttl < throttle then return 1 end
return redis.call('GET', KEYS[1])
`;

/**
 * Touch, second step: write the session with its new cookie and expiry only if the stored text is
 * still what the first step read (compare-and-set on the whole value). A `set` or `destroy` that
 * came in between wins: the touch then writes nothing, and never recreates a destroyed session.
 * KEYS[1] session key; ARGV[1] the text read; ARGV[2] the new text; ARGV[3] TTL in ms.
 * Returns 2 when written, 3 when the value changed or vanished meanwhile.
 */
export const TOUCH_WRITE_LUA = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 3 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 2
`;

/**
 * Optimistic set: compare the version the writer read with the stored one, then write atomically.
 * The version is the first member of the stored JSON object (`{"<field>":<n>,…}`), so reading it is
 * an anchored pattern match, not a JSON decode of the whole session.
 * KEYS[1] session key; ARGV[1] expected version, or '' for an unconditional write; ARGV[2] the JSON
 * text of the session without its version and without the opening brace ('}' or ',"a":1,…}');
 * ARGV[3] TTL in ms; ARGV[4] the version field name (checked to be [A-Za-z_][A-Za-z0-9_]*).
 * Returns {1, newVersion} when written, {0, storedVersion} when the session changed, {-1, 0} when it
 * is gone but the writer had read a version (destroyed or expired meanwhile: never recreated).
 */
export const OPTIMISTIC_SET_LUA = `
local current = redis.call('GET', KEYS[1])
local stored = 0
if current then
  stored = tonumber(string.match(current, '^{"' .. ARGV[4] .. '":(%d+)')) or 0
end
if ARGV[1] ~= '' then
  local expected = tonumber(ARGV[1])
  if not current then
    if expected > 0 then return {-1, 0} end
  elseif stored ~= expected then
    return {0, stored}
  end
end
local version = stored + 1
redis.call('SET', KEYS[1], '{"' .. ARGV[4] .. '":' .. string.format('%d', version) .. ARGV[2], 'PX', ARGV[3])
return {1, version}
`;

/**
 * Replicator merge: apply a batch of stick-table entries to the snapshot hash with the stick-table
 * merge rule (core's `compareWrites`: last writer wins by updatedAt, then origin, then tombstone over
 * value, then later expiresAt, then larger value JSON), index their expiry in a sorted set, purge
 * what has expired, keep both keys alive as long as their longest entry, and PUBLISH the entries
 * that won — all in one round trip per batch.
 *
 * KEYS[1] hash (entry key → entry JSON); KEYS[2] sorted set (entry key, score expiresAt).
 * ARGV[1] channel; ARGV[2] max entries purged per call; then 7 arguments per entry: key, updatedAt,
 * origin, '1'|'0' (tombstone), expiresAt, value JSON ('' for a tombstone), entry JSON (value last).
 * Numbers travel as JS's shortest round-trip decimal text; Lua reads them back as the same doubles.
 * Strings compare byte by byte (Redis sets the C library's collation from the environment, so Lua's
 * `<` on strings is locale dependent); for ASCII origins this equals JavaScript's order.
 * Returns the number of entries that won.
 */
export const MERGE_LUA = `
local function bytecmp(a, b)
  if a == b then return 0 end
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y and -1 or 1 end
  end
  return #a < #b and -1 or 1
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local won = {}
local maxExpires = 0
for i = 3, #ARGV, 7 do
  local key, updatedAt, origin = ARGV[i], tonumber(ARGV[i + 1]), ARGV[i + 2]
  local deleted, expiresAt, valueJson, entryJson = ARGV[i + 3] == '1', tonumber(ARGV[i + 4]), ARGV[i + 5], ARGV[i + 6]
  if expiresAt > now then
    local wins = true
    local existing = redis.call('HGET', KEYS[1], key)
    if existing then
      local e = cjson.decode(existing)
      if e.expiresAt > now then
        local eDeleted = e.deleted == true
        if updatedAt ~= e.updatedAt then wins = updatedAt > e.updatedAt
        else
          local c = bytecmp(origin, e.origin)
          if c ~= 0 then wins = c > 0
          elseif deleted ~= eDeleted then wins = deleted
          elseif expiresAt ~= e.expiresAt then wins = expiresAt > e.expiresAt
          elseif deleted then wins = false
          else wins = bytecmp(valueJson, string.match(existing, ',"value":(.*)}$') or '') > 0 end
        end
      end
    end
    if wins then
      redis.call('HSET', KEYS[1], key, entryJson)
      redis.call('ZADD', KEYS[2], expiresAt, key)
      won[#won + 1] = entryJson
      if expiresAt > maxExpires then maxExpires = expiresAt end
    end
  end
end
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[2]))
if #expired > 0 then
  redis.call('HDEL', KEYS[1], unpack(expired))
  redis.call('ZREM', KEYS[2], unpack(expired))
end
if maxExpires > 0 then
  for k = 1, 2 do
    local pttl = redis.call('PTTL', KEYS[k])
    if pttl < 0 or now + pttl < maxExpires then redis.call('PEXPIREAT', KEYS[k], string.format('%d', math.ceil(maxExpires))) end
  end
end
if #won > 0 then redis.call('PUBLISH', ARGV[1], '[' .. table.concat(won, ',') .. ']') end
return #won
`;

/** Purge expired snapshot entries. KEYS as MERGE_LUA; ARGV[1] max entries. Returns how many went. */
export const PURGE_LUA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
if #expired > 0 then
  redis.call('HDEL', KEYS[1], unpack(expired))
  redis.call('ZREM', KEYS[2], unpack(expired))
end
return #expired
`;
