-- Rate-limit check for one bucket (gcra.lua and gcra_pair.lua are prepended): charge one request
-- if every limit allows it. KEYS[1]: the bucket; KEYS[2] (optional): a second bucket charged with
-- it (the wider IPv6 prefix). ARGV: now (epoch ms, the caller's clock), n, then (field, interval
-- ms, window ms) per limit of KEYS[1]; then, with KEYS[2], now again, m and its m triples.
-- Returns gcra()'s reply.
local reply, charge = gcra_pair(KEYS[1], KEYS[2], ARGV, 1)
if charge then charge() end
return reply
