-- Richer grants: shared locks, semaphores, fair queues and lock-delays.
-- Put after common.lua in front of every /v1 script.
--
-- A name held so keeps everything in its one key, lock:NAME, as a JSON
-- record (a value starting with "{", which no plain grant, old-layout
-- token or redsync value does):
--   k  kind: "l" lock, "s" semaphore      n  a semaphore's limit
--   h  holders: {t token, f fence (a decimal string: JSON numbers here
--      keep 14 digits), o owner, m mode "x" exclusive or "s" shared,
--      l ttl ms, a granted at (Redis ms), d deadline (Redis ms), y lock-delay ms}
--   q  the fair queue, oldest first: {t, o, m, l, y as above, i waiter id,
--      r replica, d liveness deadline (Redis ms)}
--   z  a lock-delay in force until (Redis ms)
-- Holders expire one by one at their deadlines, which every script reads
-- with Redis's clock; the key itself expires at the last moment anything
-- in it matters (the latest deadline, delay or liveness), so once all
-- holders and waiters are gone and no delay is in force, no key is left.
-- A plain exclusive lock without fairness or delay keeps the smaller
-- value of common.lua.

local function isRich(v)
  return string.sub(v, 1, 1) == "{"
end

-- spec is the request of ARGV[10] (see common.lua), or that of a plain
-- exclusive lock.
local spec = {kind = "l", mode = "x", limit = 0, delay = 0, id = "-", live = 1000}
if ARGV[10] then
  local k, md, lim, dl, id, live = string.match(ARGV[10], "^(%a) (%a) (%d+) (%d+) (%S+) (%d+)$")
  if not k then
    return redis.error_reply("ERR lockd: bad request spec")
  end
  spec = {kind = k, mode = md, limit = tonumber(lim), delay = tonumber(dl), id = id, live = tonumber(live)}
end

-- richRequest: does the request itself need a record? A fair exclusive
-- request needs one only to queue: on a free name it takes the plain
-- value, and behind a plain holder richAcquire makes the record.
local function richRequest(v)
  if spec.kind == "s" or spec.mode == "s" or spec.delay > 0 then
    return true
  end
  return v and has("f") and spec.id ~= "-" -- v is false when the key is missing
end

-- The rest is built only for a call that meets a record or asks for one:
-- each function defined is a closure made on every call, and defining
-- them all cost every plain acquire and release about a microsecond of
-- Redis's time. rich() builds them once per call that needs them.
local richLib
local function rich()
  if richLib then return richLib end

  local function decode(v)
    local rec = cjson.decode(v)
    rec.h = rec.h or {}
    rec.q = rec.q or {}
    rec.z = rec.z or 0
    return rec
  end

  local function kindName(k)
    if k == "s" then return "semaphore" end
    return "lock"
  end

  local function holderOf(rec, token)
    for _, h in ipairs(rec.h) do
      if h.t == token then return h end
    end
    return nil
  end

  -- prune drops the holders whose deadline passed (each one "expired"; one
  -- with a lock-delay closes the name until its deadline plus the delay)
  -- and the waiters whose liveness ran out.
  local function prune(rec, now)
    local live = {}
    for _, h in ipairs(rec.h) do
      if h.d > now then
        table.insert(live, h)
      else
        if (h.y or 0) > 0 then
          rec.z = math.max(rec.z, h.d + h.y)
        end
        emit("expired", tonumber(h.f), h.o, 0)
      end
    end
    rec.h = live
    local q = {}
    for _, w in ipairs(rec.q) do
      if w.d > now then table.insert(q, w) end
    end
    rec.q = q
    if rec.z <= now then rec.z = 0 end
  end

  -- fits: may a request of mode md hold the name besides its holders?
  local function fits(rec, md)
    if rec.k == "s" then return #rec.h < rec.n end
    if #rec.h == 0 then return true end
    if md ~= "s" then return false end
    for _, h in ipairs(rec.h) do
      if h.m ~= "s" then return false end
    end
    return true
  end

  -- hold makes w a holder with the next fence, and returns the fence and
  -- the "acquired" event's id.
  local function hold(rec, w, now)
    local fence = nextFence()
    table.insert(rec.h, {t = w.t, f = int(fence), o = w.o, m = w.m, l = w.l, a = now, d = now + w.l, y = w.y})
    return fence, emit("acquired", fence, w.o, w.l)
  end

  -- promote grants the name to the queue's head, and to the heads after it
  -- while they fit (shared waiters in a row; a semaphore's free permits),
  -- and tells their replicas with one message:
  -- "= now id fence [id fence...]". Nothing is granted during a lock-delay.
  local function promote(rec, now)
    local granted = {}
    while #rec.q > 0 and rec.z == 0 and fits(rec, rec.q[1].m) do
      local w = table.remove(rec.q, 1)
      local fence = hold(rec, w, now)
      table.insert(granted, w.i .. " " .. int(fence))
    end
    if #granted > 0 then
      announce("= " .. int(now) .. " " .. table.concat(granted, " "))
    end
  end

  -- settle brings rec up to now: prune, then promote.
  local function settle(rec, now)
    prune(rec, now)
    promote(rec, now)
  end

  -- save writes rec back, to expire when nothing in it matters any more, or
  -- deletes the key when that moment has come. It returns what it wrote.
  local function save(rec, now)
    local last = rec.z
    for _, h in ipairs(rec.h) do
      last = math.max(last, h.d + (h.y or 0))
    end
    for _, w in ipairs(rec.q) do
      last = math.max(last, w.d)
    end
    if last <= now then
      redis.call("DEL", KEYS[1])
      return ""
    end
    local out = {k = rec.k, n = rec.n}
    if #rec.h > 0 then out.h = rec.h end
    if #rec.q > 0 then out.q = rec.q end
    if rec.z > 0 then out.z = rec.z end
    local v = cjson.encode(out)
    redis.call("SET", KEYS[1], v, "PX", last - now)
    return v
  end

  -- soonest is the time until the first holder's deadline: when a refused
  -- request may find room.
  local function soonest(rec, now)
    local t
    for _, h in ipairs(rec.h) do
      if not t or h.d - now < t then t = h.d - now end
    end
    return t or 0
  end

  -- richAcquire is acquire.lua for a request or a record of richer grants.
  -- Returns, besides acquire's {1, fence, ttl, event id}:
  --   {0, fence, pttl, owner, token, record, now}  refused: the highest
  --       fence's holder, the time to the first deadline, and the record
  --   {2, position, now}   queued (fair): wait for the "=" message
  --   {-2, kind}  the name is held as the other kind
  --   {-3, limit}  a semaphore held with another limit
  --   {-4, ms}  a lock-delay is in force for ms more
  local function richAcquire(v)
    local now = nowMs()
    local rec
    if v and isRich(v) then
      rec = decode(v)
    elseif v then
      -- A plain holder: a grant of common.lua's layout, of the old one, or
      -- redsync's (the demo). Only the first can join a record, when a fair
      -- waiter queues behind it; the others are refused as acquire.lua does.
      local g = grant(v)
      local pttl = redis.call("PTTL", KEYS[1])
      if spec.kind == "s" then return {-2, "lock"} end
      if g.token == ARGV[1] then return {1, g.fence, pttl, ""} end
      if g.kind ~= "v1" or not has("f") or spec.id == "-" then
        if has("c") then emit("contended", g.fence, ARGV[3], pttl) end
        if has("w") and g.kind == "v1" and not g.waited then
          redis.call("SET", KEYS[1], "*" .. v, "KEEPTTL")
        end
        return {0, g.fence, pttl, g.owner, g.token}
      end
      rec = {k = "l", n = 0, z = 0, q = {},
        h = {{t = g.token, f = int(g.fence), o = g.owner, m = "x", l = g.ttl, a = math.floor(g.at / 1000), d = now + pttl, y = 0}}}
    else
      rec = {k = spec.kind, n = spec.limit, h = {}, q = {}, z = 0}
    end
    if rec.k ~= spec.kind then return {-2, kindName(rec.k)} end
    settle(rec, now)
    if rec.k == "s" and rec.n ~= spec.limit then
      if #rec.h > 0 or #rec.q > 0 or rec.z > 0 then
        save(rec, now)
        return {-3, rec.n}
      end
      rec.n = spec.limit
    end
    -- A retried call finds its own grant, or its own place in the queue.
    local mine = holderOf(rec, ARGV[1])
    if mine then
      save(rec, now)
      return {1, tonumber(mine.f), mine.d - now, ""}
    end
    for i, w in ipairs(rec.q) do
      if w.t == ARGV[1] then
        w.d = now + spec.live
        save(rec, now)
        return {2, i, now}
      end
    end
    local req = {t = ARGV[1], o = ARGV[3], m = spec.mode, l = tonumber(ARGV[2]), y = spec.delay}
    if rec.z == 0 and #rec.q == 0 and fits(rec, req.m) then
      local fence, id = hold(rec, req, now)
      save(rec, now)
      return {1, fence, req.l, id}
    end
    -- Refused. A fair request waits in the queue; so does any waiting
    -- request while a queue exists (none jumps it), and a waiting exclusive
    -- request held off by shared holders (it stops new shared grants).
    local join = has("f") or (has("w") and (#rec.q > 0 or (rec.k == "l" and req.m == "x" and #rec.h > 0 and fits(rec, "s"))))
    if join and spec.id ~= "-" then
      req.i, req.r, req.d = spec.id, ARGV[6], now + spec.live
      table.insert(rec.q, req)
      emit("queued", 0, ARGV[3], 0)
      save(rec, now)
      return {2, #rec.q, now}
    end
    local v2 = save(rec, now)
    if rec.z > 0 then return {-4, rec.z - now} end
    local top = rec.h[#rec.h] or {f = "0", o = "", t = ""}
    if has("c") then emit("contended", tonumber(top.f), ARGV[3], soonest(rec, now)) end
    return {0, tonumber(top.f), soonest(rec, now), top.o, top.t, v2, now}
  end

  -- richRelease is release.lua for a record: the holder of ARGV[1] leaves
  -- (without any lock-delay: it released), and the queue's head may follow
  -- it at once. Always announced: waiters of every kind listen.
  local function richRelease(v)
    local us = nowUs()
    local now, rec = math.floor(us / 1000), decode(v)
    if rec.k ~= spec.kind then return {-2, kindName(rec.k)} end
    prune(rec, now)
    local h
    for i, x in ipairs(rec.h) do
      if x.t == ARGV[1] then
        h = table.remove(rec.h, i)
        break
      end
    end
    if not h then
      promote(rec, now)
      save(rec, now)
      emit("lost", 0, "", 0)
      return {0}
    end
    emit("released", tonumber(h.f), h.o, 0)
    announce(h.f .. " " .. name)
    promote(rec, now)
    save(rec, now)
    -- µs held: a is in ms, so the hold may read up to 1 ms long.
    return {1, tonumber(h.f), h.a and us - h.a * 1000 or -1, h.o}
  end

  -- richExtend is extend.lua for a record.
  local function richExtend(v)
    local now, rec = nowMs(), decode(v)
    if rec.k ~= spec.kind then return {-2, kindName(rec.k)} end
    settle(rec, now)
    local h = holderOf(rec, ARGV[1])
    if not h then
      save(rec, now)
      emit("lost", 0, "", 0)
      return {0}
    end
    local ttl = tonumber(ARGV[2])
    if ttl == 0 then ttl = h.l end
    h.d = now + ttl
    save(rec, now)
    emit("extended", tonumber(h.f), h.o, ttl)
    return {1, tonumber(h.f), ttl, h.o, h.m or "", rec.n or 0}
  end

  richLib = {acquire = richAcquire, release = richRelease, extend = richExtend,
    decode = decode, prune = prune, promote = promote, settle = settle, save = save, holderOf = holderOf}
  return richLib
end
