-- Take one use of a minted initial access token, atomically: of two requests racing for the
-- last use exactly one wins. An expired token is gone (the key carries its expiry).
-- KEYS[1]: the token's hash. Returns 1 when a use was taken (or uses are unlimited), else 0.
local uses = redis.call('HGET', KEYS[1], 'uses')
if not uses then
  return 0
end
uses = tonumber(uses)
if uses < 0 then
  return 1
end
if uses == 0 then
  return 0
end
redis.call('HINCRBY', KEYS[1], 'uses', -1)
return 1
