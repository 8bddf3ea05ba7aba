-- Compare-and-set one client record: replace it (or delete it, when ARGV[2] is empty) only if it
-- is still the record the request read, so concurrent updates never overwrite each other
-- silently. KEYS[1]: the client's key; ARGV[1]: the record read; ARGV[2]: the new record or ''.
-- Returns 1 when done, 0 when the record changed (or is gone) since it was read.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
