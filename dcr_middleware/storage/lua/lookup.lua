-- Read one client record and note that it was used, writing at most once per refresh interval:
-- the record's idle TTL is renewed and its last-use time (epoch ms) stored beside it.
-- KEYS[1]: the client's record; KEYS[2]: its last-use key (same hash tag, same slot).
-- ARGV[1]: the idle TTL in ms (0: clients never expire); ARGV[2]: the refresh interval in ms.
-- Returns the record, or false when there is none. The writes are made with pcall: a Redis that
-- refuses writes (maxmemory reached with noeviction, min-replicas-to-write not met, a replica)
-- still answers the lookup; the use is noted at a later lookup.
local record = redis.call('GET', KEYS[1])
if not record then return false end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local used = tonumber(redis.call('GET', KEYS[2]) or '0')
if now - used >= tonumber(ARGV[2]) then
  local ttl = tonumber(ARGV[1])
  if ttl > 0 then
    redis.pcall('PEXPIRE', KEYS[1], ttl)
    redis.pcall('SET', KEYS[2], now, 'PX', ttl)
  else
    redis.pcall('SET', KEYS[2], now)
  end
end
return record
