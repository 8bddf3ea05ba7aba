-- Store a minted initial access token, expiring with its key, in one atomic step (a MULTI/EXEC
-- before: redis-py 7.1's asyncio cluster client cannot run a transaction).
-- KEYS[1]: the token's hash. ARGV[1]: its expiry (Unix seconds; 0: never), then the fields as
-- field, value pairs. An expiry already past leaves no token.
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if tonumber(ARGV[1]) > 0 then
  redis.call('EXPIREAT', KEYS[1], ARGV[1])
end
return 1
