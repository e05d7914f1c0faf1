-- One user's request budget for the whole cluster: a token bucket in a hash at KEYS[1]
-- (fields `tokens`, `at` in ms of Redis's clock, so nodes' clocks do not matter).
-- ARGV: refill per second, burst, what one node spent since it last settled.
-- Answers the tokens left, in thousandths (negative when the user's nodes together spent
-- more than the bucket held). The key expires once it would have refilled anyway.
local per_sec = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local spent = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local held = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(held[1]) or burst
local at = tonumber(held[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * per_sec / 1000) - spent
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', now)
local ttl = 3600000
if per_sec > 0 then
  ttl = math.ceil(math.max(0, burst - tokens) / per_sec * 1000) + 1000
end
redis.call('PEXPIRE', KEYS[1], ttl)
return math.floor(tokens * 1000)
