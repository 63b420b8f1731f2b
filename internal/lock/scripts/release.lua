-- release: delete the lock if ARGV[1] holds it, leaving no key that names
-- it. When someone waits, or another replica granted the lease and
-- watches its expiry, tell every replica with "fence name".
-- Returns {1, fence, µs held (-1 if not known), owner}, {0} or {-1} as
-- extend does.
local v = redis.call("GET", KEYS[1])
if v and isRich(v) then
  return rich().release(v)
end
if v and spec.kind == "s" then
  return {-2, "lock"}
end
local g, why = ours(v)
if not g then return {why} end
redis.call("DEL", KEYS[1])
if g.kind == "old" then
  redis.call("DEL", KEYS[5])
end
if g.waited or g.kind == "old" or not has("l") then
  announce(int(g.fence) .. " " .. name)
end
emit("released", g.fence, g.owner, 0)
local held = -1
if g.at > 0 then held = nowUs() - g.at end
return {1, g.fence, held, g.owner}
