-- acquire: take the lock if it is free, give it the next fence of its slot
-- and record the grant; if it is held, say by whom. A call retried after it
-- won finds its own token and answers the same grant again.
-- Returns {1, fence, pttl, event id} or {0, holder fence, pttl, holder
-- owner, holder token}; the token tells lockd whether a majority refused
-- for the same grant, and never leaves it. With several nodes the fence
-- is this node's candidate.
local v = redis.call("GET", KEYS[1])
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

-- The fence: one above the slot's counter, and never below Redis's clock,
-- in microseconds since the epoch (in quorum mode, mode letter s, whole
-- seconds in microseconds, so that the nodes' candidates agree). A counter
-- lost with Redis's data, or behind on a replica promoted after a
-- failover, so still restarts above every fence given before.
local now = redis.call("TIME")
local floor = tonumber(now[1]) * 1000000
if not has("s") then
  floor = floor + tonumber(now[2])
end
local fence = tonumber(redis.call("GET", KEYS[2]) or "0")
local old = #KEYS >= 5 and redis.call("GET", KEYS[4])
if old then
  -- A counter of the old layout is honoured once, then retired.
  fence = math.max(fence, tonumber(old))
end
fence = math.max(fence + 1, floor)
redis.call("SET", KEYS[2], int(fence))

local ttl = tonumber(ARGV[2])
local g = {fence = fence, ttl = ttl, at = tonumber(ARGV[4]), token = ARGV[1], owner = ARGV[3], waited = has("q")}
if has("k") then
  -- Old layout, so that older replicas can extend and release this grant.
  redis.call("SET", KEYS[1], g.token, "PX", ttl)
  redis.call("SET", KEYS[4], int(fence))
  redis.call("HSET", KEYS[5], "token", g.token, "owner", g.owner, "fence", int(fence), "ttl_ms", int(ttl), "at", int(g.at))
  redis.call("PEXPIRE", KEYS[5], 7200000)
else
  if old then
    redis.call("DEL", KEYS[4], KEYS[5])
  end
  redis.call("SET", KEYS[1], encode(g), "PX", ttl)
end
return {1, fence, ttl, emit("acquired", fence, g.owner, ttl)}
