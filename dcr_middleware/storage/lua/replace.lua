-- Compare-and-set one client record: replace it (or delete it, when ARGV[2] is empty) only if it
-- is still the record the request read, so concurrent updates never overwrite each other
-- silently. A replace counts as a use: the idle TTL starts again and the last-use time is now.
-- KEYS[1]: the client's key; KEYS[2]: its last-use key. ARGV[1]: the record read; ARGV[2]: the
-- new record or ''; ARGV[3]: the idle TTL in ms (0: none).
-- Returns 1 when done, 0 when the record changed (or is gone) since it was read.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local ttl = tonumber(ARGV[3])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ttl)
  redis.call('SET', KEYS[2], now, 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('SET', KEYS[2], now)
end
return 1
