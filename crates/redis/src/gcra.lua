-- The GCRA decision of one request against several policies, taken atomically
-- (Redis runs a script alone) and all-or-nothing: the new theoretical arrival
-- times are written only when every policy allows the request.
--
-- KEYS[i]                 the key of check i
-- ARGV[1]                 now, in whole microseconds since the Unix epoch
-- ARGV[2i], ARGV[2i + 1]  check i's emission interval and tolerance, in microseconds
--
-- Returns {allowed (1 or 0), stored_1, ..., stored_n}: the theoretical arrival
-- time each check was decided against (false for a key holding none), so the
-- caller rebuilds every decision with the very function the in-memory store uses.
--
-- Times are integers below 2^53, exact in Lua's doubles (the caller checks that);
-- they are written with %.0f because tostring would round them to 14 digits.
local now = tonumber(ARGV[1])
local pending = {}
local reply = {1}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i])
  local tolerance = tonumber(ARGV[2 * i + 1])
  -- A key named twice is decided the second time against the first decision.
  local stored = pending[key]
  if stored == nil then
    local raw = redis.call('GET', key)
    if raw then
      stored = tonumber(raw)
    end
  end
  reply[i + 1] = stored or false
  local new_tat = math.max(stored or now, now) + interval
  if new_tat - now <= tolerance then
    pending[key] = new_tat
  else
    reply[1] = 0
  end
end
if reply[1] == 1 then
  for key, tat in pairs(pending) do
    -- Once its theoretical arrival time has passed a key says nothing a missing
    -- key would not, so it may expire then; it is kept a second longer, because
    -- Redis expires it by its own clock, and a key gone before the deciding
    -- clock (an instance's, slightly behind Redis's) reaches its time would let a
    -- request through early. Kept longer, it decides as a missing key would.
    local ttl_ms = math.max(1, math.ceil((tat - now) / 1000)) + 1000
    redis.call('SET', key, string.format('%.0f', tat), 'PX', string.format('%.0f', ttl_ms))
  end
end
return reply
