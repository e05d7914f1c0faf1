-- Corral's claim arbiter: every stock decision of one activity, atomically, in Redis.
-- Loaded once (SCRIPT LOAD) and called by EVALSHA. The rules mirror
-- corral_actors::claims::StockBook; its unit tests are the reference.
--
-- KEYS (one activity, all under <prefix>claims:{<activity>}: so they share a cluster slot):
--   1 free   hash  item -> free slots
--   2 avail  set   items with a free slot
--   3 users  hash  user -> active (held + confirmed) claims
--   4 keys   hash  "user|key" -> "h|item" held, "c|item" confirmed, "r|item" released,
--                  "x|refusal" refused
--   5 meta   hash  ready, rules, epoch, left, held
-- The counters are built under an epoch: a fencing number kept in SQL (`claim_epochs`) and
-- raised before every rebuild. A hold row commits only if the epoch it was decided under is
-- still SQL's, so a decision taken by counters that Redis has since lost can never become a
-- hold next to the slots the rebuilt counters hand out again.
-- ARGV[1] = op, ARGV[2] = expiry of every key (epoch ms: past the activity's end), then per op:
--   claims  per_user_limit (user key item('' = any))*
--                               -> {epoch, then two entries per claim in order:
--                                   "take" item | "seen" item | "refused" why}
--                                  | {""} when there are no counters (not built, or lost)
--   ready   rules               -> {epoch} when counters stand under `rules`, else {""}
--   release user key            -> {"1"} | {"0"}      a hold expired or was cancelled
--   confirm user key            -> {"1"} | {"0"}      a hold was paid
--   retake  user key item       -> {"1"} | {"0"}      a lapsed hold was paid: take a slot again
--   init    rules epoch n_items (item slots)* (user key item state)*
--                               -> {"1"} applied | {"0"} kept: counters stand under the same
--                                  rules and an epoch at least as new (`rules` names the items
--                                  and their slots; counters kept under other rules are
--                                  rebuilt: edits change them before the start alone, when
--                                  nothing can be held)
--   stock                       -> {left, held} | {"uninit"} when there are no counters
local free, avail, users, keys, meta = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local op, expire_at = ARGV[1], ARGV[2]

local function touch()
  for i = 1, 5 do redis.call('PEXPIREAT', KEYS[i], expire_at) end
end

local function occupy(user, item, state)
  if redis.call('HINCRBY', free, item, -1) <= 0 then redis.call('SREM', avail, item) end
  redis.call('HINCRBY', users, user, 1)
  redis.call('HINCRBY', meta, 'left', -1)
  if state == 'h' then redis.call('HINCRBY', meta, 'held', 1) end
end

local function vacate(user, item)
  redis.call('HINCRBY', free, item, 1)
  redis.call('SADD', avail, item)
  if redis.call('HINCRBY', users, user, -1) <= 0 then redis.call('HDEL', users, user) end
  redis.call('HINCRBY', meta, 'left', 1)
  redis.call('HINCRBY', meta, 'held', -1)
end

if op == 'stock' then
  local m = redis.call('HMGET', meta, 'ready', 'left', 'held')
  if not m[1] then return {'uninit'} end
  return {tostring(m[2] or 0), tostring(m[3] or 0)}
end

if op == 'ready' then
  local kept = redis.call('HMGET', meta, 'ready', 'rules', 'epoch')
  if kept[1] and kept[2] == ARGV[3] then return {kept[3] or '0'} end
  return {''}
end

if op == 'init' then
  local rules, epoch = ARGV[3], tonumber(ARGV[4])
  local kept = redis.call('HMGET', meta, 'ready', 'rules', 'epoch')
  if kept[1] and kept[2] == rules and tonumber(kept[3] or '0') >= epoch then return {'0'} end
  redis.call('DEL', free, avail, users, keys, meta)
  local n = tonumber(ARGV[5])
  local left, held = 0, 0
  local i = 6
  for _ = 1, n do
    redis.call('HSET', free, ARGV[i], ARGV[i + 1])
    left = left + tonumber(ARGV[i + 1])
    i = i + 2
  end
  while i <= #ARGV do
    local user, key, item, state = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    redis.call('HSET', keys, user .. '|' .. key, state .. '|' .. item)
    if state == 'h' or state == 'c' then
      redis.call('HINCRBY', free, item, -1)
      redis.call('HINCRBY', users, user, 1)
      left = left - 1
      if state == 'h' then held = held + 1 end
    end
    i = i + 4
  end
  local all = redis.call('HGETALL', free)
  for j = 1, #all, 2 do
    if tonumber(all[j + 1]) > 0 then redis.call('SADD', avail, all[j]) end
  end
  redis.call('HSET', meta, 'ready', '1', 'rules', rules, 'epoch', epoch, 'left', left, 'held', held)
  touch()
  return {'1'}
end

-- Decides one claim (the rules of StockBook::decide); writes but does not touch().
local function claim_one(user, key, want, limit)
  local k = user .. '|' .. key
  local prev = redis.call('HGET', keys, k)
  if prev then
    local state, item = string.match(prev, '^(%a)|(.*)$')
    if state == 'x' then return 'refused', item end
    return 'seen', item
  end
  local why = nil
  if want == '' then
    want = redis.call('SRANDMEMBER', avail)
    if not want then why = 'sold_out' end
  else
    local left = redis.call('HGET', free, want)
    if not left then why = 'no_such_item'
    elseif tonumber(left) <= 0 then why = 'sold_out' end
  end
  if not why and tonumber(redis.call('HGET', users, user) or '0') >= limit then
    why = 'limit_reached'
  end
  if why then
    redis.call('HSET', keys, k, 'x|' .. why)
    return 'refused', why
  end
  occupy(user, want, 'h')
  redis.call('HSET', keys, k, 'h|' .. want)
  return 'take', want
end

if op == 'claims' then
  local kept = redis.call('HMGET', meta, 'ready', 'epoch')
  if not kept[1] then return {''} end
  local out = {kept[2] or '0'}
  local limit = tonumber(ARGV[3])
  local wrote = false
  for i = 4, #ARGV, 3 do
    local kind, value = claim_one(ARGV[i], ARGV[i + 1], ARGV[i + 2], limit)
    wrote = wrote or kind ~= 'seen'
    out[#out + 1] = kind
    out[#out + 1] = value
  end
  if wrote then touch() end
  return out
end

local user, key = ARGV[3], ARGV[4]
local k = user .. '|' .. key
local prev = redis.call('HGET', keys, k)
local state, item = nil, nil
if prev then state, item = string.match(prev, '^(%a)|(.*)$') end

if op == 'release' then
  if state ~= 'h' then return {'0'} end
  vacate(user, item)
  redis.call('HSET', keys, k, 'r|' .. item)
  return {'1'}
end

if op == 'confirm' then
  if state ~= 'h' then return {'0'} end
  redis.call('HINCRBY', meta, 'held', -1)
  redis.call('HSET', keys, k, 'c|' .. item)
  return {'1'}
end

if op == 'retake' then
  local want = ARGV[5]
  if tonumber(redis.call('HGET', free, want) or '0') <= 0 then return {'0'} end
  occupy(user, want, 'c')
  redis.call('HSET', keys, k, 'c|' .. want)
  touch()
  return {'1'}
end

return redis.error_reply('unknown claim op ' .. tostring(op))
