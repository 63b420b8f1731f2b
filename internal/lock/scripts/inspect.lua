-- inspect: who holds the lock. Returns {0} when free, {1, owner, fence,
-- pttl, token} for one plain holder (the token only tells apart grants on
-- different quorum nodes and never leaves lockd), or {2, record, now in
-- ms} for a record of richer grants, which lockd reads (rich.go).
local v = redis.call("GET", KEYS[1])
if not v then return {0} end
if isRich(v) then
  return {2, v, nowMs()}
end
local g = grant(v)
return {1, g.owner, g.fence, redis.call("PTTL", KEYS[1]), g.token}
