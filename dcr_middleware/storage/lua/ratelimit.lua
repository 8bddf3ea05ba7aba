-- Rate-limit check for one bucket (gcra.lua is prepended): charge one request if every limit
-- allows it. KEYS[1]: the bucket; ARGV: now (epoch ms), n, then (field, interval ms, window ms)
-- per limit.
-- Returns gcra()'s reply.
local reply, charge = gcra(KEYS[1], ARGV, 1)
if charge then charge() end
return reply
