-- GCRA over one bucket, on the Redis server's clock: the function shared by ratelimit.lua and
-- register.lua (prepended to each when they are loaded; see storage/redis.py). ratelimit.py
-- explains the theory; ratelimit.decide() implements the same arithmetic for the embedded store.
-- key: the bucket (a hash: one field per limit, holding its TAT in milliseconds).
-- argv[first]: n, then for each limit: field, emission interval (ms), burst window (ms).
-- Returns the reply {allowed (1/0), index of the reported limit (1-based), remaining, seconds to
-- reset, seconds to retry, milliseconds to retry} and, when allowed, a function that charges the
-- bucket (nil when refused: a refused request charges nothing).
local function gcra(key, argv, first)
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local n = tonumber(argv[first])
  local fields, intervals, periods, new_tats, ahead = {}, {}, {}, {}, {}
  local worst, worst_retry, longest = 0, 0, 0
  for i = 1, n do
    local base = first + 1 + (i - 1) * 3
    fields[i], intervals[i], periods[i] = argv[base], tonumber(argv[base + 1]), tonumber(argv[base + 2])
    local tat = tonumber(redis.call('HGET', key, fields[i]) or '0')
    if tat < now then tat = now end
    new_tats[i] = tat + intervals[i]
    ahead[i] = new_tats[i] - now
    local retry = ahead[i] - periods[i]
    if retry > worst_retry then worst, worst_retry = i, retry end
    if periods[i] > longest then longest = periods[i] end
  end
  if worst > 0 then
    local wait = math.ceil(worst_retry / 1000)
    return {0, worst, 0, wait, wait, worst_retry}, nil
  end
  local binding, least = 1, nil
  for i = 1, n do
    local remaining = math.floor((periods[i] - ahead[i]) / intervals[i])
    if least == nil or remaining < least then binding, least = i, remaining end
  end
  local function charge()
    for i = 1, n do redis.call('HSET', key, fields[i], new_tats[i]) end
    redis.call('PEXPIRE', key, longest)
  end
  return {1, binding, least, math.ceil(ahead[binding] / 1000), 0, 0}, charge
end
