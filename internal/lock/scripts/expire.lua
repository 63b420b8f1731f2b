-- expire: the granting replica's look at a lease whose time ran out. If the
-- grant of fence ARGV[2] still holds the lock (it was extended), return
-- its pttl; otherwise report it expired and return -1. In a record of
-- richer grants (a fair queue formed behind the lease) the look also
-- hands the name on to the queue's head.
local v = redis.call("GET", KEYS[1])
if v and isRich(v) then
  local R = rich()
  local now, rec = nowMs(), R.decode(v)
  R.settle(rec, now)
  local h = R.holderOf(rec, ARGV[1])
  R.save(rec, now)
  if h then return h.d - now end
  return -1
end
if v then
  local g = grant(v)
  if g.fence == tonumber(ARGV[2]) and g.token == ARGV[1] then
    return redis.call("PTTL", KEYS[1])
  end
end
emit("expired", tonumber(ARGV[2]), ARGV[3], 0)
return -1
