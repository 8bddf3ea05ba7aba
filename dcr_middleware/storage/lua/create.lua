-- Create one client record, never overwriting another client (the Redis Cluster path, where
-- register.lua's keys are on different nodes; elsewhere register.lua does this and more).
-- KEYS[1]: the client's key; ARGV[1]: the serialized record; ARGV[2]: its idle TTL in ms (0: none).
-- Returns 1 when the record is stored, 0 when the id belongs to another client.
-- Re-sending the identical record (a retry after a lost reply) returns 1 again, so a create
-- whose outcome is unknown is safe to retry.
local current = redis.call('GET', KEYS[1])
if not current then
  if tonumber(ARGV[2] or '0') > 0 then
    redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  else
    redis.call('SET', KEYS[1], ARGV[1])
  end
  return 1
end
if current == ARGV[1] then
  return 1
end
return 0
