-- extend: reset the expiry of the grant of ARGV[1] to ARGV[2] ms, or to
-- its acquire's TTL when ARGV[2] is 0.
-- Returns {1, fence, ttl, owner}, {0} (not the holder) or {-1} (held
-- without a grant), or {-2, kind} when the name is held as the other kind.
-- A record's holder (rich.lua) adds its mode ("x" or "s") and a
-- semaphore's limit: {1, fence, ttl, owner, mode, limit}.
local v = redis.call("GET", KEYS[1])
if v and isRich(v) then
  return rich().extend(v)
end
if v and spec.kind == "s" then
  return {-2, "lock"}
end
local g, why = ours(v)
if not g then return {why} end
local ttl = tonumber(ARGV[2])
if ttl == 0 then ttl = g.ttl end
redis.call("PEXPIRE", KEYS[1], ttl)
if g.kind == "old" then
  redis.call("PEXPIRE", KEYS[5], 7200000)
end
emit("extended", g.fence, g.owner, ttl)
return {1, g.fence, ttl, g.owner}
