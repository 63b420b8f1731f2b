-- queue: a fair waiter's look at its place in the name's queue, sent by its
-- replica about every quarter second: it renews the waiter's liveness, or
-- with mode letter x takes the waiter out. Each look also settles the
-- record (expired holders out, the queue's head granted when its turn
-- came), so a holder that expired hands the name on within a look even if
-- its replica is gone.
-- Returns {1, fence, pttl, now} when ARGV[1] holds the name (granted
-- meanwhile, even when leaving), {2, position, now} while it waits, {0}
-- when it is in neither place (its liveness ran out).
local v = redis.call("GET", KEYS[1])
if not v or not isRich(v) then return {0} end
local now, rec = nowMs(), decode(v)
prune(rec, now)
for i, w in ipairs(rec.q) do
  if w.t == ARGV[1] then
    if has("x") then
      table.remove(rec.q, i)
    else
      w.d = now + spec.live
    end
    break
  end
end
promote(rec, now)
save(rec, now)
local h = holderOf(rec, ARGV[1])
if h then return {1, tonumber(h.f), h.d - now, now} end
for i, w in ipairs(rec.q) do
  if w.t == ARGV[1] then return {2, i, now} end
end
return {0}
