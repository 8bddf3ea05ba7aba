-- One registration, decided and stored in one round trip (gcra.lua and gcra_pair.lua are
-- prepended): the rate limit, a use of a minted initial access token, a place under the client
-- cap, and the create.
-- Every key is on one node (standalone Redis or Sentinel; on Redis Cluster the backend makes the
-- same decisions in separate calls instead).
-- KEYS: 1 the client's record, 2 the rate-limit bucket, 3 the client counter, 4 the minted token,
-- 5 (optional) a second bucket charged with KEYS[2] (the wider IPv6 prefix).
-- ARGV: 1 the record, 2 its idle TTL in ms (0: none), 3 the client cap (0: none), 4 take a
-- token use (1/0), 5 now (epoch ms, the caller's clock), 6 the number of limits (0: no rate
-- limit), then per limit (field, interval ms, window ms); with KEYS[5], then now again, the
-- number of its limits and their triples.
-- Returns {outcome, then gcra()'s reply when a limit was checked}; outcome: 1 created,
-- 2 rate limited, 3 at the client cap, 4 the id holds another client, 5 the token is used up.
-- Only a refusal by the rate limit itself, an id collision and a retry leave the bucket
-- uncharged. A minted token's use is taken only when the client is stored. Re-sending the
-- identical record (a retry after a lost reply) returns 1 again and charges nothing twice, so a
-- registration whose outcome is unknown is safe to retry.
local limited = tonumber(ARGV[6]) > 0
local reply, charge = {}, function() end
if limited then
  reply, charge = gcra_pair(KEYS[2], KEYS[5], ARGV, 5)
  if not charge then
    table.insert(reply, 1, 2)
    return reply
  end
end
local function answer(outcome)
  table.insert(reply, 1, outcome)
  return reply
end
local current = redis.call('GET', KEYS[1])
if current then
  if current == ARGV[1] then
    -- The retry comes on a fresh connection, and WAIT counts only the writes of its own
    -- connection: without a write here, the WAIT sent after this script would confirm at once a
    -- create that no replica may have received. Writing the same record again (its TTL kept)
    -- makes WAIT cover it (the replication stream is in order).
    redis.call('SET', KEYS[1], ARGV[1], 'KEEPTTL')
    return answer(1)
  end
  return answer(4)
end
-- The token is checked, then the cap, and only then are both taken: a registration refused at
-- the cap (or by any later rule) keeps its token use (nothing to give back: it was never taken).
local uses = nil
if ARGV[4] == '1' then
  uses = tonumber(redis.call('HGET', KEYS[4], 'uses') or '0')
  if uses == 0 then
    charge()
    return answer(5)
  end
end
local cap = tonumber(ARGV[3])
if cap > 0 then
  if tonumber(redis.call('GET', KEYS[3]) or '0') >= cap then
    charge()
    return answer(3)
  end
  redis.call('INCR', KEYS[3])
end
if uses and uses > 0 then redis.call('HINCRBY', KEYS[4], 'uses', -1) end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl)
else
  redis.call('SET', KEYS[1], ARGV[1])
end
charge()
return answer(1)
