-- Multi-tier, all-or-nothing sliding-window limiter with refunds and a priority queue of waiters.
-- ARGV[1] op, ARGV[2] namespace, ARGV[3] now override ('' = server TIME), ARGV[4] margin, then per op.
-- Tier spec: key, kind ('requests'|'tokens'|'concurrency'), limit, window (0 for concurrency).
-- Window tier K: K:z (zset entry -> time), K:a (hash entry -> amount), K:tot (live total).
-- Concurrency tier K: K:c (zset lease -> expiry). Queue of scope S: ns:q:S (zset waiter -> rank),
-- ns:qe (hash waiter -> expiry). Keys are built here from the namespace: one Redis, not a cluster.
local op, ns, margin = ARGV[1], ARGV[2], tonumber(ARGV[4])
local now
if ARGV[3] ~= '' then now = tonumber(ARGV[3]) else
  local t = redis.call('TIME'); now = tonumber(t[1]) + tonumber(t[2]) / 1000000 end
local function fmt(x) return string.format('%.6f', x) end

local function expire(k, window)
  local z, edge, freed = k .. ':z', fmt(now - window - margin), 0
  while true do
    local old = redis.call('ZRANGEBYSCORE', z, '-inf', edge, 'LIMIT', 0, 500)
    if #old == 0 then break end
    local amounts = redis.call('HMGET', k .. ':a', unpack(old))
    for _, a in ipairs(amounts) do freed = freed + (tonumber(a) or 0) end
    redis.call('ZREM', z, unpack(old)); redis.call('HDEL', k .. ':a', unpack(old))
  end
  if freed > 0 then return redis.call('DECRBY', k .. ':tot', freed) end
  return tonumber(redis.call('GET', k .. ':tot') or '0')
end

local function held(k)
  redis.call('ZREMRANGEBYSCORE', k .. ':c', '-inf', fmt(now))
  return redis.call('ZCARD', k .. ':c')
end

local function wait_hint(k, total, amount, limit, window)
  local excess, freed = total + amount - limit, 0
  local rows = redis.call('ZRANGE', k .. ':z', 0, 4999, 'WITHSCORES')
  for i = 1, #rows, 2 do
    freed = freed + (tonumber(redis.call('HGET', k .. ':a', rows[i])) or 0)
    if freed >= excess then return math.max(tonumber(rows[i + 1]) + window + margin - now, 0) end
  end
  return -1
end

local function touch(k, window)
  local ttl = math.ceil(window + margin) + 60
  redis.call('EXPIRE', k .. ':z', ttl); redis.call('EXPIRE', k .. ':a', ttl); redis.call('EXPIRE', k .. ':tot', ttl)
end

local function tiers_from(i, n)
  local out = {}
  for j = 0, n - 1 do
    local b = i + j * 4
    out[#out + 1] = {key = ARGV[b], kind = ARGV[b + 1], limit = tonumber(ARGV[b + 2]), window = tonumber(ARGV[b + 3])}
  end
  return out, i + n * 4
end

local function register(id, score, scopes, ttl)
  for _, s in ipairs(scopes) do redis.call('ZADD', ns .. ':q:' .. s, score, id) end
  redis.call('HSET', ns .. ':qe', id, fmt(now + ttl))
end

if op == 'acquire' then
  -- lease_s, waiter_ttl, n_waiters, then per waiter (in serving order):
  -- id, rank score, tokens, n_scopes, scopes..., n_tiers, tiers...
  -- Returns per waiter: admitted (0/1), wait hint ('-1' unknown), blocking tier key or 'waiter'/'skipped'.
  local lease_s, wttl, n = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
  local totals, slots, best, blocked, out, i = {}, {}, {}, {}, {}, 8
  local function best_in(s)  -- best live queued waiter of scope s: {id, score} or false
    if best[s] == nil then
      local q = ns .. ':q:' .. s
      best[s] = false
      while true do
        local head = redis.call('ZRANGE', q, 0, 0, 'WITHSCORES')
        if #head == 0 then break end
        local exp = tonumber(redis.call('HGET', ns .. ':qe', head[1]) or '0')
        if exp <= now then redis.call('ZREM', q, head[1]) else best[s] = {head[1], tonumber(head[2])}; break end
      end
    end
    return best[s]
  end
  for _ = 1, n do
    local id, score, tokens, ns_count = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3])
    local scopes = {}
    for j = 1, ns_count do scopes[j] = ARGV[i + 3 + j] end
    local tiers, nexti = tiers_from(i + 5 + ns_count, tonumber(ARGV[i + 4 + ns_count]))
    i = nexti
    local verdict = nil
    for _, s in ipairs(scopes) do if blocked[s] then verdict = {0, '-1', 'skipped'} end end
    if verdict == nil then
      for _, s in ipairs(scopes) do
        local b = best_in(s)
        if b and b[1] ~= id and (b[2] < score or (b[2] == score and b[1] < id)) then verdict = {0, '-1', 'waiter'} end
      end
    end
    if verdict == nil then
      for _, t in ipairs(tiers) do
        if t.kind == 'concurrency' then
          if slots[t.key] == nil then slots[t.key] = held(t.key) end
          if slots[t.key] >= t.limit then verdict = {0, '-1', t.key}; break end
        else
          if totals[t.key] == nil then totals[t.key] = expire(t.key, t.window) end
          local amount = 1
          if t.kind == 'tokens' then amount = tokens end
          if totals[t.key] + amount > t.limit then
            verdict = {0, fmt(wait_hint(t.key, totals[t.key], amount, t.limit, t.window)), t.key}; break
          end
        end
      end
    end
    if verdict == nil then
      for _, t in ipairs(tiers) do
        if t.kind == 'concurrency' then
          redis.call('ZADD', t.key .. ':c', fmt(now + lease_s), id); redis.call('EXPIRE', t.key .. ':c', math.ceil(lease_s) + 60)
          slots[t.key] = slots[t.key] + 1
        else
          local amount = 1
          if t.kind == 'tokens' then amount = tokens end
          redis.call('ZADD', t.key .. ':z', fmt(now), id); redis.call('HSET', t.key .. ':a', id, amount)
          totals[t.key] = redis.call('INCRBY', t.key .. ':tot', amount); touch(t.key, t.window)
        end
      end
      for _, s in ipairs(scopes) do
        redis.call('ZREM', ns .. ':q:' .. s, id)
        local b = best[s]
        if b and b[1] == id then best[s] = nil end
      end
      redis.call('HDEL', ns .. ':qe', id)
      verdict = {1, '0', ''}
    elseif verdict[3] ~= 'skipped' then
      for _, s in ipairs(scopes) do blocked[s] = true end
      register(id, score, scopes, wttl)
    end
    out[#out + 1] = verdict[1]; out[#out + 1] = verdict[2]; out[#out + 1] = verdict[3]
  end
  out[#out + 1] = fmt(now)
  return out
elseif op == 'register' then
  -- ttl, then groups of: id, score, n_scopes, scopes...
  local ttl, i = tonumber(ARGV[5]), 6
  while i <= #ARGV do
    local id, score, n = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    local scopes = {}
    for j = 1, n do scopes[j] = ARGV[i + 2 + j] end
    register(id, score, scopes, ttl); i = i + 3 + n
  end
  return 1
elseif op == 'withdraw' then
  -- n_ids, ids..., scopes...
  local n = tonumber(ARGV[5])
  for j = 1, n do
    redis.call('HDEL', ns .. ':qe', ARGV[5 + j])
    for s = 6 + n, #ARGV do redis.call('ZREM', ns .. ':q:' .. ARGV[s], ARGV[5 + j]) end
  end
  return 1
elseif op == 'adjust' then
  -- lease id, mode ('settle' with used | 'refund' | 'keep'), used, n_tiers, tiers...
  local id, mode, used = ARGV[5], ARGV[6], tonumber(ARGV[7])
  local tiers = tiers_from(9, tonumber(ARGV[8]))
  for _, t in ipairs(tiers) do
    if t.kind == 'concurrency' then redis.call('ZREM', t.key .. ':c', id)
    elseif mode ~= 'keep' and not (mode == 'settle' and t.kind == 'requests') then
      local old = tonumber(redis.call('HGET', t.key .. ':a', id) or 'nil')
      if old ~= nil then
        if mode == 'refund' then
          redis.call('ZREM', t.key .. ':z', id); redis.call('HDEL', t.key .. ':a', id)
          redis.call('DECRBY', t.key .. ':tot', old)
        else
          redis.call('HSET', t.key .. ':a', id, used); redis.call('INCRBY', t.key .. ':tot', used - old)
        end
      end
    end
  end
  return 1
elseif op == 'renew' then
  -- lease_s, n_keys, keys..., ids...
  local lease_s, n = tonumber(ARGV[5]), tonumber(ARGV[6])
  for j = 1, n do
    for i = 7 + n, #ARGV do redis.call('ZADD', ARGV[6 + j] .. ':c', 'XX', fmt(now + lease_s), ARGV[i]) end
  end
  return 1
elseif op == 'hold' then
  -- tier (4 fields), used_by_server, reset_s
  local t = tiers_from(5, 1)[1]
  local used, reset = tonumber(ARGV[9]), tonumber(ARGV[10])
  local total = expire(t.key, t.window)
  local extra = math.min(used, t.limit) - total
  if extra <= 0 then return 0 end
  local member = 'observed:' .. redis.call('INCR', ns .. ':observed')
  redis.call('ZADD', t.key .. ':z', fmt(now + math.min(math.max(reset, 0), t.window) - t.window - margin), member)
  redis.call('HSET', t.key .. ':a', member, extra); redis.call('INCRBY', t.key .. ':tot', extra); touch(t.key, t.window)
  return extra
elseif op == 'usage' then
  local tiers = tiers_from(6, tonumber(ARGV[5]))
  local out = {}
  for _, t in ipairs(tiers) do
    if t.kind == 'concurrency' then out[#out + 1] = held(t.key) else out[#out + 1] = expire(t.key, t.window) end
  end
  return out
end
return redis.error_reply('unknown op ' .. tostring(op))
