-- GCRA over one bucket, on the caller's clock: the function shared by ratelimit.lua and
-- register.lua (prepended to each when they are loaded; see storage/redis.py). ratelimit.py
-- explains the theory and why the time comes from the app server, not from Redis TIME;
-- ratelimit.decide() implements the same arithmetic for the embedded store.
-- key: the bucket (a hash: one field per limit, holding its TAT in milliseconds, and 'clock', the
-- latest time it was charged at).
-- argv[first]: now (epoch ms, the caller's clock), then n, then for each limit: field, emission
-- interval (ms), burst window (ms).
-- Returns the reply {allowed (1/0), index of the reported limit (1-based), remaining, seconds to
-- reset, seconds to retry, milliseconds to retry} and, when allowed, a function that charges the
-- bucket (nil when refused: a refused request charges nothing).
local function gcra(key, argv, first)
  local now = tonumber(argv[first])
  -- The bucket's time never runs backwards: workers read their clocks before the round trip, so
  -- two requests can arrive in the other order (a burst of N at once would then admit N - 1).
  local clock = tonumber(redis.call('HGET', key, 'clock') or '0')
  if now < clock then now = clock end
  local n = tonumber(argv[first + 1])
  local fields, intervals, periods, new_tats, ahead = {}, {}, {}, {}, {}
  local worst, worst_retry, longest = 0, 0, 0
  for i = 1, n do
    local base = first + 2 + (i - 1) * 3
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
    local values = {'clock', now}
    for i = 1, n do
      values[#values + 1] = fields[i]
      values[#values + 1] = new_tats[i]
    end
    redis.call('HSET', key, unpack(values))
    redis.call('PEXPIRE', key, longest)
  end
  return {1, binding, least, math.ceil(ahead[binding] / 1000), 0, 0}, charge
end
