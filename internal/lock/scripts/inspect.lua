-- inspect: who holds the lock. Returns {0} when free, else {1, owner,
-- fence, pttl, token}; the token only tells apart grants on different
-- quorum nodes and never leaves lockd.
local v = redis.call("GET", KEYS[1])
if not v then return {0} end
local g = grant(v)
return {1, g.owner, g.fence, redis.call("PTTL", KEYS[1]), g.token}
