-- acquire: take the lock if it is free, give it the next fence of its slot
-- and record the grant; if it is held, say by whom. A call retried after it
-- won finds its own token and answers the same grant again.
-- Returns {1, fence, pttl, event id} or {0, holder fence, pttl, holder
-- owner, holder token}; the token tells lockd whether a majority refused
-- for the same grant, and never leaves it. With several nodes the fence
-- is this node's candidate. Shared locks, semaphores, fair waits and
-- lock-delays, and any request meeting their record, go to richAcquire.
local v = redis.call("GET", KEYS[1])
if richRequest(v) or (v and isRich(v)) then
  return rich().acquire(v)
end
if v then
  local g = grant(v)
  local pttl = redis.call("PTTL", KEYS[1])
  if g.token == ARGV[1] then
    return {1, g.fence, pttl, ""}
  end
  if has("c") then
    emit("contended", g.fence, ARGV[3], pttl)
  end
  if has("w") and g.kind == "v1" and not g.waited then
    redis.call("SET", KEYS[1], "*" .. v, "KEEPTTL")
  end
  return {0, g.fence, pttl, g.owner, g.token}
end

local fence, at = nextFence()
local ttl = tonumber(ARGV[2])
local g = {fence = fence, ttl = ttl, at = at, token = ARGV[1], owner = ARGV[3], waited = has("q")}
if has("k") then
  -- Old layout, so that older replicas can extend and release this grant.
  redis.call("SET", KEYS[1], g.token, "PX", ttl)
  redis.call("HSET", KEYS[5], "token", g.token, "owner", g.owner, "fence", int(fence), "ttl_ms", int(ttl), "at", int(math.floor(g.at / 1000)))
  redis.call("PEXPIRE", KEYS[5], 7200000)
else
  redis.call("SET", KEYS[1], encode(g), "PX", ttl)
end
return {1, fence, ttl, emit("acquired", fence, g.owner, ttl)}
