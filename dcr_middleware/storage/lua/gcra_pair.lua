-- GCRA over a request's own bucket and, when given, a second bucket charged with it (the wider
-- IPv6 prefix of the client's /64): both must allow, and only then are both charged. Prepended
-- after gcra.lua to ratelimit.lua and register.lua; ratelimit.combine() is the Python twin.
-- argv[first]: now, n, then n (field, interval, window) for key; right after them, when wide_key
-- is given: now, m, then m triples for wide_key (gcra()'s layout, once per bucket). Returns gcra()'s reply (its limit index counted over
-- both groups, own first) and the charge function (nil when refused).
local function gcra_pair(key, wide_key, argv, first)
  local reply, charge = gcra(key, argv, first)
  local n = tonumber(argv[first + 1])
  local second = first + 2 + 3 * n
  if not wide_key or argv[second] == nil then return reply, charge end
  local wide, wide_charge = gcra(wide_key, argv, second)
  wide[2] = wide[2] + n
  if charge and wide_charge then
    if wide[3] < reply[3] then reply = wide end
    return reply, function() charge(); wide_charge() end
  end
  if charge or (not wide_charge and wide[6] > reply[6]) then return wide, nil end
  return reply, nil
end
