-- Give back one place under the global client cap (DCR_MAX_CLIENTS), never going below zero
-- (only clients that took a place give one back; the floor guards a counter reset by hand).
-- KEYS[1]: the client counter. Returns the count after the call.
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then
  return redis.call('DECR', KEYS[1])
end
return count
