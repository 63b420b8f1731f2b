-- raise (quorum mode, round two, on the nodes whose candidate was lower):
-- make the fence chosen from a majority's candidates this grant's fence on
-- this node, and lift the slot's counter to it, only while the node's key
-- holds this grant's token. ARGV[2] is the fence; the "acquired" event
-- round one wrote here (ARGV[8]) is replaced by one with this fence.
-- Returns 1, or 0 when the key is not this grant's.
local v = redis.call("GET", KEYS[1])
if not v then return 0 end
local g = grant(v)
if g.token ~= ARGV[1] or g.kind == "bare" then return 0 end
local fence = tonumber(ARGV[2])
if tonumber(redis.call("GET", KEYS[2]) or "0") < fence then
  redis.call("SET", KEYS[2], int(fence))
end
g.fence = fence
if g.kind == "old" then
  if tonumber(redis.call("GET", KEYS[4]) or "0") < fence then
    redis.call("SET", KEYS[4], int(fence))
  end
  redis.call("HSET", KEYS[5], "fence", int(fence))
else
  redis.call("SET", KEYS[1], encode(g), "KEEPTTL")
end
if ARGV[8] ~= "" then
  redis.call("XDEL", KEYS[3], ARGV[8])
end
emit("acquired", fence, g.owner, g.ttl)
return 1
