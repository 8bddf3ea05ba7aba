-- Give back one place under the global client cap (DCR_MAX_CLIENTS), never going below zero:
-- deleting a client stored before the cap was set (so never counted) must not make room for one
-- more client than the cap. KEYS[1]: the client counter. Returns the count after the call.
local count = tonumber(redis.call('GET', KEYS[1]) or '0')
if count > 0 then
  return redis.call('DECR', KEYS[1])
end
return count
