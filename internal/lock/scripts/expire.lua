-- expire: the granting replica's look at a lease whose time ran out. If the
-- grant of fence ARGV[2] still holds the lock (it was extended), return
-- its pttl; otherwise report it expired and return -1.
local v = redis.call("GET", KEYS[1])
if v then
  local g = grant(v)
  if g.fence == tonumber(ARGV[2]) and g.token == ARGV[1] then
    return redis.call("PTTL", KEYS[1])
  end
end
emit("expired", tonumber(ARGV[2]), ARGV[3], 0)
return -1
