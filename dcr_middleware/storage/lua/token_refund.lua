-- Give back one use of a minted initial access token (the Redis Cluster path: a registration
-- took the use in its own call, then was refused at the client cap or lost its id). Never to an
-- unlimited token (uses < 0), nor to one revoked or expired meanwhile (the key is gone).
-- KEYS[1]: the token's hash. Returns 1 when a use was given back, else 0.
local uses = redis.call('HGET', KEYS[1], 'uses')
if not uses or tonumber(uses) < 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'uses', 1)
return 1
