-- Prepended to every /v1 script when it is loaded (see store.go).
--
-- KEYS[1] lock:NAME             the lock: one string key while held
-- KEYS[2] lockd:fence:{TAG}     the fence counter of the lock's cluster slot
-- KEYS[3] lockd:events          the capped events stream
-- KEYS[4] lockfence:NAME        of earlier releases: the name's own fence counter
-- KEYS[5] lockmeta:NAME         of earlier releases: the live grant's record (a hash)
-- Keys 4 and 5 are passed only where data of the old layout may exist.
--
-- ARGV[1] token   ARGV[2] ttl in ms (or a fence)   ARGV[3] owner
-- ARGV[4] unused (0)   ARGV[5] mode letters   ARGV[6] replica
-- ARGV[7] the released channel   ARGV[8] (raise only) the id of the event
-- to replace   ARGV[9] (Redis Cluster only; else "") the shards' home tags
-- ARGV[10] (richer grants and fair waits only, see rich.lua) the request:
-- "kind mode limit delay_ms waiter_id liveness_ms", e.g. "s x 5 0 - 1000"
-- In a Redis Cluster the events stream and the released channel are the
-- shard's own, "lockd:events:{TAG}" and "lockd:released:{TAG}", and KEYS
-- holds only keys 1 and 2 (see home).
-- Mode letters: c report a refusal as "contended"; k keep the old layout,
-- for a rolling upgrade with older replicas; n write no event; w someone
-- waits if refused, so mark the holder's grant for its release to wake
-- waiters; q others wait on this replica, so mark this grant too; l the
-- releasing replica granted the lease itself (its expiry watcher needs no
-- message); s quorum mode: fences are floored at whole seconds; f fair:
-- if refused, join the name's queue; x (queue.lua) leave the queue.
--
-- A /v1 grant is the value "fence:ttl_ms:token:owner", the numbers in
-- hexadecimal, with a "*" in front once someone waits for its release (mode
-- letters w and q): only then, or when another replica granted it, does
-- its release PUBLISH, so an uncontended release costs Redis no message.
-- The grant's time (Redis's clock) is the fence's microseconds, which it
-- usually equals (the fence is Redis's clock unless the slot's counter is
-- ahead of it); where the two differ in milliseconds, ttl_ms is followed
-- by the difference in ms with its sign, "7530+3e7". Kept so, a value with an
-- empty owner stays within 44 bytes, which Redis stores in one allocation
-- with the key's object (16 bytes fewer per lock than a longer value).
-- Builds before this one wrote "fence|ttl_ms|at_ms|token|owner" (at_ms on
-- lockd's clock); it is still read. A value with neither is a redsync
-- value (the demo's) or a grant of the old layout.

local name = string.sub(KEYS[1], 6)
local mode = ARGV[5]

local function has(letter)
  return string.find(mode, letter, 1, true) ~= nil
end

local function int(n)
  return string.format("%d", n)
end

-- grant reads a lock value: a table with fence, ttl, at (the grant's
-- time in µs, 0 when not known), token, owner, waited (someone waits for its release) and kind "v1", "old" (a grant of
-- the old layout) or "bare" (no grant: redsync).
local function grant(v)
  local w, f, t, sign, d, tok, o = string.match(v, "^(%*?)(%x+):(%x+)([+-]?)(%x*):([^:]*):(.*)$")
  if f then
    local fence = tonumber(f, 16)
    local at = fence
    if sign == "+" then
      at = at + tonumber(d, 16) * 1000
    elseif sign == "-" then
      at = at - tonumber(d, 16) * 1000
    end
    return {kind = "v1", waited = w ~= "", fence = fence, ttl = tonumber(t, 16), at = at, token = tok, owner = o}
  end
  w, f, t, d, tok, o = string.match(v, "^(%*?)(%x+)|(%x+)|(%x+)|([^|]*)|(.*)$")
  if f then
    return {kind = "v1", waited = w ~= "", fence = tonumber(f, 16), ttl = tonumber(t, 16), at = tonumber(d, 16) * 1000, token = tok, owner = o}
  end
  if #KEYS >= 5 then
    local m = redis.call("HMGET", KEYS[5], "token", "owner", "fence", "ttl_ms", "at")
    if m[1] == v and tonumber(m[4] or "") then
      return {kind = "old", fence = tonumber(m[3]) or 0, ttl = tonumber(m[4]), at = (tonumber(m[5]) or 0) * 1000, token = v, owner = m[2] or ""}
    end
  end
  return {kind = "bare", fence = 0, ttl = 0, at = 0, token = v, owner = ""}
end

-- hex is n in hexadecimal: the numbers of a grant are stored so, which
-- keeps them short.
local function hex(n)
  return string.format("%x", n)
end

local function encode(g)
  local d, at = "", math.floor(g.at / 1000) - math.floor(g.fence / 1000)
  if at > 0 then
    d = "+" .. hex(at)
  elseif at < 0 then
    d = "-" .. hex(-at)
  end
  return (g.waited and "*" or "") .. hex(g.fence) .. ":" .. hex(g.ttl) .. d .. ":" .. g.token .. ":" .. g.owner
end

-- onShard runs cmd on this node's own key (stream or channel) prefix..
-- "{TAG}" in a Redis Cluster: TAG is the first of ARGV[9] (lockd puts the
-- one it expects first) whose slot this node serves. A key of another node
-- is an error that pcall catches before anything is done, so the usual
-- case costs the one command, as on a single Redis. It returns nil when no
-- tag is served here (lockd's view of the slots is out of date, or the
-- shard's own slot is moving in a reshard): the event or the wake-up is
-- then lost, and waiters wait for the lease's end. Each call looks afresh:
-- while a slot moves, a channel may be served here and its stream, already
-- moved, not.
local function onShard(cmd, prefix, ...)
  for t in string.gmatch(ARGV[9], "%S+") do
    local r = redis.pcall(cmd, prefix .. "{" .. t .. "}", ...)
    if type(r) ~= "table" or not r.err then
      return r
    end
    if not string.find(r.err, "non local key", 1, true) then
      error(r) -- a real failure (memory, permissions): fail the script
    end
  end
  return nil
end

local clustered = ARGV[9] ~= nil and ARGV[9] ~= ""

-- announce tells every replica that the lock was released ("fence name"):
-- PUBLISH, or in a cluster SPUBLISH on the shard's channel.
local function announce(msg)
  if clustered then
    onShard("SPUBLISH", "lockd:released:", msg)
  else
    redis.call("PUBLISH", ARGV[7], msg)
  end
end

-- emit appends one event to the stream, in the same step as the change it
-- reports, so each lock's events are in the order of its changes. It
-- returns the entry's id ("" when events are off). The entry is compact
-- ("e" holds "type fence ttl_ms", then name, replica and owner); lockd
-- makes the JSON, and takes the time from the entry's id, when it reads
-- the stream (stream.go), so that the cost of formatting lands on readers,
-- not on every lock operation.
local function emit(typ, fence, owner, ttl)
  if has("n") then return "" end
  local fields = {"MAXLEN", "~", "10000", "*",
    "e", typ .. " " .. int(fence) .. " " .. int(ttl), "n", name, "r", ARGV[6], "o", owner}
  if clustered then
    return onShard("XADD", "lockd:events:", unpack(fields)) or ""
  end
  return redis.call("XADD", KEYS[3], unpack(fields))
end

-- nowUs is Redis's clock in microseconds, the clock of every grant's time
-- and deadline, so that a hold's duration does not depend on which
-- replica granted it and which released it.
local function nowUs()
  local t = redis.call("TIME")
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function nowMs()
  return math.floor(nowUs() / 1000)
end

-- nextFence takes the next fence of the lock's slot: one above the slot's
-- counter, and never below Redis's clock, in microseconds since the epoch
-- (in quorum mode, mode letter s, whole seconds in microseconds, so that
-- the nodes' candidates agree). A counter lost with Redis's data, or behind
-- on a replica promoted after a failover, so still restarts above every
-- fence given before. A name's counter of the old layout (KEYS[4]) is
-- honoured once, then retired; with mode letter k it is kept rising
-- instead, for older replicas running beside this one. It returns the
-- fence and the time of the grant (Redis's, in µs).
local function nextFence()
  local now = nowUs()
  local floor = now
  if has("s") then
    floor = now - now % 1000000
  end
  local fence = tonumber(redis.call("GET", KEYS[2]) or "0")
  local old = #KEYS >= 5 and redis.call("GET", KEYS[4])
  if old then
    fence = math.max(fence, tonumber(old))
  end
  fence = math.max(fence + 1, floor)
  redis.call("SET", KEYS[2], int(fence))
  if has("k") then
    redis.call("SET", KEYS[4], int(fence))
  elseif old then
    redis.call("DEL", KEYS[4], KEYS[5])
  end
  return fence, now
end

-- ours reads the lock value v for the holder of ARGV[1]: the grant, or
-- nil after reporting the caller's loss.
local function ours(v)
  if not v then
    emit("lost", 0, "", 0)
    return nil, 0
  end
  local g = grant(v)
  if g.token ~= ARGV[1] then
    emit("lost", 0, "", 0)
    return nil, 0
  end
  if g.kind == "bare" then
    return nil, -1 -- taken without a grant (the demo): not /v1's to change
  end
  return g
end
