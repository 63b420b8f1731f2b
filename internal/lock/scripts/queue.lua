-- queue: a replica's look at its fair waiters' places in the name's queue,
-- sent about every quarter second for all its waiters of the name at once
-- (ARGV[1]: their tokens, separated by spaces): it renews their liveness,
-- or with mode letter x takes them out. Each look also settles the record
-- (expired holders out, the queue's head granted when its turn came), so a
-- holder that expired hands the name on within a look even if its replica
-- is gone.
-- Returns Redis's time in ms, then three numbers per token: {1, fence,
-- pttl} when it holds the name (granted meanwhile, even when leaving),
-- {2, position, 0} while it waits, {0, 0, 0} when it is in neither place
-- (its liveness ran out).
local R = rich()
local now = nowMs()
local want, tokens = {}, {}
for tk in string.gmatch(ARGV[1], "%S+") do
  want[tk] = true
  table.insert(tokens, tk)
end
local v = redis.call("GET", KEYS[1])
local rec
if v and isRich(v) then
  rec = R.decode(v)
  R.prune(rec, now)
  for i = #rec.q, 1, -1 do
    local w = rec.q[i]
    if want[w.t] then
      if has("x") then
        table.remove(rec.q, i)
      else
        w.d = now + spec.live
      end
    end
  end
  R.promote(rec, now)
  R.save(rec, now)
end
local out = {now}
for _, tk in ipairs(tokens) do
  local code, a, b = 0, 0, 0
  local h = rec and R.holderOf(rec, tk)
  if h then
    code, a, b = 1, tonumber(h.f), h.d - now
  elseif rec then
    for i, w in ipairs(rec.q) do
      if w.t == tk then
        code, a = 2, i
        break
      end
    end
  end
  table.insert(out, code)
  table.insert(out, a)
  table.insert(out, b)
end
return out
