-- Delete an idle client (dcr-middleware clients purge), only if it is still the record the
-- purge read and was not used since: a client looked up or updated meanwhile is kept.
-- KEYS[1]: the client's key; KEYS[2]: its last-use key. ARGV[1]: the record read; ARGV[2]: the
-- last-use value read ('' when there was none). Returns 1 when deleted, else 0.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1], KEYS[2])
return 1
