"""The Lua scripts that make each write atomic and fenced.

``PUBLISH`` appends a batch of an account's events: for each, it checks the writer's
lease (the fencing token is part of the lease's value: a writer whose lease was taken
over by a peer holds an older token and is refused), checks that the snapshot is in
the state the writer believes (else ``conflict``: the writer resyncs), XADDs the entry
with the event id it derives from the snapshot's counters, trims the stream, and
updates the snapshot hash and its ``_last`` in the same step (an open position's
last event under ``p:<key>``, a flat one's close under ``c:<key>``: the state a worker
taking the account over recovers from, :mod:`.prior`). A consumer that reads the
hash therefore always gets a state and the exact stream id it is as of.
"""

from __future__ import annotations

#: KEYS: events stream, snapshot hash, lease, accounts set.
#: ARGV: lease value, maxlen, minid ("" for none), exchange, account, then per item 7
#:   values: type ("lifecycle", "status", "past"), key (position key or feed), kind,
#:   expected "present:lc:n" (lifecycle only), id base, body, signature.
#: Returns {"ok", sid...} | {"fenced", holder, sid...} | {"conflict", index, sid...}.
PUBLISH = r"""
local lease = redis.call('GET', KEYS[3])
if lease ~= ARGV[1] then
  return {'fenced', lease or ''}
end
local stream, snap = KEYS[1], KEYS[2]
local out = {'ok'}
local last = redis.call('HGET', snap, '_last') or '0-0'
if redis.call('HEXISTS', snap, '_exchange') == 0 then
  redis.call('HSET', snap, '_exchange', ARGV[4], '_account', ARGV[5])
  redis.call('SADD', KEYS[4], ARGV[5])
end
local i = 6
while i + 6 <= #ARGV do
  local typ, key, kind, expect, idbase, body, sig =
    ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], ARGV[i+5], ARGV[i+6]
  local eid
  if typ == 'lifecycle' then
    local present = redis.call('HEXISTS', snap, 'p:' .. key)
    local lc = tonumber(redis.call('HGET', snap, 'lc:' .. key) or '0')
    local n = tonumber(redis.call('HGET', snap, 'n:' .. key) or '0')
    if expect ~= (present .. ':' .. lc .. ':' .. n) then
      out[1] = 'conflict'
      table.insert(out, 2, tostring((i - 6) / 7))
      break
    end
    if kind == 'opened' then lc = lc + 1; n = 0 else n = n + 1 end
    eid = idbase .. ':' .. lc .. ':' .. n
    if kind == 'closed' then
      redis.call('HDEL', snap, 'p:' .. key, 'g:' .. key)
      redis.call('HSET', snap, 'c:' .. key, body)
    else
      redis.call('HSET', snap, 'p:' .. key, body, 'g:' .. key, sig)
    end
    redis.call('HSET', snap, 'lc:' .. key, lc, 'n:' .. key, n)
  elseif typ == 'status' then
    local n = redis.call('HINCRBY', snap, 'sn:' .. key, 1)
    eid = idbase .. ':' .. n
    redis.call('HSET', snap, 's:' .. key, body)
  else
    eid = idbase
  end
  last = redis.call('XADD', stream, 'MAXLEN', '~', ARGV[2], '*',
                    'id', eid, 'kind', kind, 'prev', last, 'body', body)
  table.insert(out, last)
  i = i + 7
end
if ARGV[3] ~= '' then
  redis.call('XTRIM', stream, 'MINID', '~', ARGV[3])
end
redis.call('HSET', snap, '_last', last)
return out
"""

#: KEYS: marks stream, lease. ARGV: lease value, maxlen, then bodies.
#: Returns the number written, or -1 when fenced.
MARKS = r"""
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return -1
end
for i = 3, #ARGV do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'body', ARGV[i])
end
return #ARGV - 2
"""

#: KEYS: lease, fence counter. ARGV: owner, ttl ms. Returns the new token, or nil.
ACQUIRE = r"""
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ':' .. token, 'PX', ARGV[2])
return token
"""

#: KEYS: lease. ARGV: lease value, ttl ms. Returns 1 if renewed, 0 if not ours.
RENEW = r"""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""

#: KEYS: lease. ARGV: lease value. Returns 1 if released.
RELEASE = r"""
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
