-- Take one place under the global client cap (DCR_MAX_CLIENTS) atomically.
-- KEYS[1]: the client counter; ARGV[1]: the cap. Returns 1 when a place was taken, else 0.
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count >= tonumber(ARGV[1]) then
  return 0
end
redis.call('INCR', KEYS[1])
return 1
