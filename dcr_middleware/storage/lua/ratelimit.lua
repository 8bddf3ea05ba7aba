-- GCRA rate-limit check for one bucket, on the Redis server's clock (see ratelimit.py for the
-- theory; this script and ratelimit.decide() implement the same arithmetic).
-- KEYS[1]: the bucket (a hash: one field per limit, holding its TAT in milliseconds).
-- ARGV: n, then for each limit: field, emission interval (ms), burst window (ms: count times
-- the interval, Limit.window_ms).
-- Returns {allowed (1/0), index of the reported limit (1-based), remaining, seconds to reset,
-- seconds to retry}. Buckets are charged only when every limit allows.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local n = tonumber(ARGV[1])
local new_tats, ahead = {}, {}
local worst, worst_retry = 0, 0
local longest = 0
for i = 1, n do
  local base = 2 + (i - 1) * 3
  local interval, period = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  local tat = tonumber(redis.call('HGET', KEYS[1], ARGV[base]) or '0')
  if tat < now then tat = now end
  new_tats[i] = tat + interval
  ahead[i] = new_tats[i] - now
  local retry = ahead[i] - period
  if retry > worst_retry then worst, worst_retry = i, retry end
  if period > longest then longest = period end
end
if worst > 0 then
  local wait = math.ceil(worst_retry / 1000)
  return {0, worst, 0, wait, wait}
end
local binding, least = 1, nil
for i = 1, n do
  local base = 2 + (i - 1) * 3
  local interval, period = tonumber(ARGV[base + 1]), tonumber(ARGV[base + 2])
  local remaining = math.floor((period - ahead[i]) / interval)
  if least == nil or remaining < least then binding, least = i, remaining end
  redis.call('HSET', KEYS[1], ARGV[base], new_tats[i])
end
redis.call('PEXPIRE', KEYS[1], longest)
return {1, binding, least, math.ceil(ahead[binding] / 1000), 0}
