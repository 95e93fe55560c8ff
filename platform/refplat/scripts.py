"""Lua scripts: every state write of the platform is one atomic compare-and-set script.

Each script is ``local OWNER = '<owner>'``, the shared :data:`PRELUDE` (key names, the
transition tables generated from :mod:`refplat.states`, helpers) and a short body. A state
write goes through ``bump``, which refuses (raises ``FORBIDDEN``) any ``from -> to`` that is
not a row of the table for the script's owner; scripts check ``allowed`` first and answer 0
(or ``conflict``) before writing anything, so the refusal in ``bump`` is a safety net.
Scripts build key names from the ``refplat:`` prefix themselves, which is fine for one
Redis primary (not for Redis Cluster). Controller scripts start with :data:`FENCE`: the
caller's ``id`` and ``epoch`` must match the current lease, or the script fails with
``FENCED`` and writes nothing.
"""

from __future__ import annotations

import functools

from refplat.states import Owner, lua_source

PRELUDE = (
    """
local P = 'refplat:'
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function fmt(x) return string.format('%.6f', x) end
local function hget(key, field)
  local v = redis.call('HGET', key, field)
  if not v then return '' end
  return v
end
local function skey(sid) return P .. 'server:' .. sid end
"""
    + lua_source()
    + """
-- The controller and the agent of a node re-read only the servers in their dirty sets
-- (plus a periodic full list): see refplat.informer.
local function mark_dirty(node, sid)
  if node ~= '' then redis.call('SADD', P .. 'node:' .. node .. ':dirty', sid) end
end
local SERVER_PREFIX_LEN = string.len(P .. 'server:')
-- Servers by state, of every tenant and of each tenant, so that a list filtered by state reads
-- only the servers in that state (see Store.page_servers).
local function state_sets(tenant, state)
  return P .. 'state:' .. state, P .. 'tenant:' .. tenant .. ':state:' .. state
end
local function state_index(key, sid, from, to)
  local t = hget(key, 'tenant')
  if from ~= '' then
    local a, b = state_sets(t, from)
    redis.call('SREM', a, sid); redis.call('SREM', b, sid)
  end
  if to ~= '' then
    local a, b = state_sets(t, to)
    redis.call('SADD', a, sid); redis.call('SADD', b, sid)
  end
end
local function bump(key, ...)
  local args = {...}
  local old_state, new_state = hget(key, 'state'), nil
  for i = 1, #args - 1, 2 do
    if args[i] == 'state' then
      local from, to = old_state, args[i + 1]
      if from ~= to and not allowed(from, to) then
        error(redis.error_reply('FORBIDDEN ' .. key .. ' ' .. from .. ' -> ' .. to
          .. ' by ' .. tostring(OWNER)))
      end
      new_state = to
    end
  end
  local old_node = hget(key, 'node')
  redis.call('HSET', key, ...)
  redis.call('HINCRBY', key, 'rv', 1)
  local sid, new_node = string.sub(key, SERVER_PREFIX_LEN + 1), hget(key, 'node')
  if new_state and new_state ~= old_state then state_index(key, sid, old_state, new_state) end
  redis.call('SADD', P .. 'servers:dirty', sid)
  mark_dirty(old_node, sid)
  if new_node ~= old_node then mark_dirty(new_node, sid) end
end
local function ready_sets(key)
  local t = hget(key, 'tenant')
  return P .. 'ready:' .. t, P .. 'ready:' .. t .. ':' .. hget(key, 'region')
end
local function ready_add(key, sid)
  local a, b = ready_sets(key)
  redis.call('SADD', a, sid); redis.call('SADD', b, sid)
end
local function ready_rem(key, sid)
  local a, b = ready_sets(key)
  redis.call('SREM', a, sid); redis.call('SREM', b, sid)
end
local function delete_server(sid)
  local key = skey(sid)
  ready_rem(key, sid)
  local node = hget(key, 'node')
  mark_dirty(node, sid)
  redis.call('SADD', P .. 'servers:dirty', sid)
  if node ~= '' then redis.call('SREM', P .. 'node:' .. node .. ':servers', sid) end
  redis.call('SREM', P .. 'tenant:' .. hget(key, 'tenant') .. ':servers', sid)
  redis.call('SREM', P .. 'servers', sid)
  state_index(key, sid, hget(key, 'state'), '')
  redis.call('DEL', key)
end
local function end_session(sess, reason, t)
  local key = P .. 'session:' .. sess
  local st = hget(key, 'state')
  if st == '' or st == 'Ended' then return 0 end
  if not session_allowed(st, 'Ended') then
    error(redis.error_reply('FORBIDDEN ' .. key .. ' ' .. st .. ' -> Ended by ' .. tostring(OWNER)))
  end
  redis.call('HSET', key, 'state', 'Ended', 'reason', reason, 'ended_at', fmt(t))
  redis.call('ZREM', P .. 'sessions:active', sess)
  if redis.call('EXISTS', P .. 'quota:' .. sess) == 1 then
    redis.call('SADD', P .. 'quota:ended', sess)
  end
  local sid = hget(key, 'server_id')
  local sk = skey(sid)
  if hget(sk, 'state') == 'Allocated' and hget(sk, 'session') == sess then
    bump(sk, 'state', 'Ready', 'session', '')
    ready_add(sk, sid)
  end
  return 1
end
-- A server whose node (or Pod) was lost goes back to Creating, off its node, out of the Ready
-- pool; its session, if any, is noted in ``lost`` for place_lost_sessions.
local function release_server(key, sid, lost)
  local sess = hget(key, 'session')
  ready_rem(key, sid)
  bump(key, 'state', 'Creating', 'node', '', 'address', '', 'port', '', 'session', '',
    'restart', '', 'lost', '')
  if sess ~= '' then table.insert(lost, {sess, hget(key, 'tenant'), hget(key, 'region')}) end
end
-- Policy 'replace': a session whose server was lost moves to a Ready server of the same
-- tenant and region (released servers left the pool already) and stays Active; without one,
-- or with policy 'end', it ends ServerLost. Returns the replaced and the ended session ids.
local function place_lost_sessions(lost, policy, t)
  local replaced, ended = {}, {}
  for _, item in ipairs(lost) do
    local sess, tenant, region = item[1], item[2], item[3]
    local skey_ = P .. 'session:' .. sess
    local moved = false
    if policy == 'replace' and hget(skey_, 'state') == 'Active' then
      local pool = P .. 'ready:' .. tenant .. ':' .. region
      while not moved do
        local sid = redis.call('SRANDMEMBER', pool)
        if not sid then break end
        local key = skey(sid)
        if hget(key, 'state') == 'Ready' and hget(key, 'session') == '' then
          ready_rem(key, sid)
          bump(key, 'state', 'Allocated', 'session', sess)
          redis.call('HSET', skey_, 'server_id', sid, 'address', hget(key, 'address'),
            'port', hget(key, 'port'), 'replaced_at', fmt(t))
          redis.call('HINCRBY', skey_, 'replacements', 1)
          moved = true
        else
          redis.call('SREM', pool, sid)
        end
      end
    end
    if moved then
      table.insert(replaced, sess)
    elseif end_session(sess, 'ServerLost', t) == 1 then
      table.insert(ended, sess)
    end
  end
  return replaced, ended
end
"""
)

FENCE = """
local cid, epoch = ARGV[1], ARGV[2]
if redis.call('GET', P .. 'leader:epoch') ~= epoch
   or redis.call('GET', P .. 'leader:lease') ~= cid .. ':' .. epoch then
  return redis.error_reply('FENCED epoch ' .. epoch .. ' of ' .. cid .. ' is not current')
end
"""

CREATE_TENANT = """
local tid, name, token_hash = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', P .. 'tenant:' .. tid) == 1 then return 0 end
redis.call('HSET', P .. 'tenant:' .. tid, 'id', tid, 'name', name)
redis.call('SADD', P .. 'tenants', tid)
redis.call('SET', P .. 'token:' .. token_hash, tid)
return 1
"""

CREATE_SERVER = """
local sid, tenant, region, version = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local memory, disk = ARGV[5], ARGV[6]
local key = skey(sid)
if redis.call('EXISTS', key) == 1 then return 0 end
redis.call('HSET', key, 'id', sid, 'tenant', tenant, 'region', region, 'version', version,
  'state', 'Creating', 'node', '', 'address', '', 'port', '', 'session', '', 'restart', '',
  'memory_mib', memory, 'disk_quota_mib', disk, 'rv', 1)
redis.call('SADD', P .. 'servers', sid)
redis.call('SADD', P .. 'servers:dirty', sid)
redis.call('SADD', P .. 'tenant:' .. tenant .. ':servers', sid)
state_index(key, sid, '', 'Creating')
return 1
"""

SHUTDOWN_SERVER = """
local sid, tenant = ARGV[1], ARGV[2]
local key = skey(sid)
local st = hget(key, 'state')
if st == '' or (tenant ~= '' and hget(key, 'tenant') ~= tenant) then return 0 end
if st == 'Shutdown' then return 1 end
if not allowed(st, 'Shutdown') then return 0 end
local sess = hget(key, 'session')
ready_rem(key, sid)
bump(key, 'state', 'Shutdown', 'session', '', 'restart', '')
if sess ~= '' then end_session(sess, 'Evicted', now()) end
return 1
"""

ALLOCATE = """
local tenant, region, sess, ttl, idem = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local idem_key = P .. 'idem:' .. tenant .. ':' .. idem
if idem ~= '' then
  local existing = redis.call('GET', idem_key)
  if existing then return {'existing', existing} end
end
-- A client that retries this script after a lost reply must not get a second server.
if redis.call('EXISTS', P .. 'session:' .. sess) == 1 then return {'existing', sess} end
local pool = P .. 'ready:' .. tenant
if region ~= '' then pool = pool .. ':' .. region end
while true do
  local sid = redis.call('SRANDMEMBER', pool)
  if not sid then return {'none', ''} end
  local key = skey(sid)
  if hget(key, 'state') == 'Ready' and hget(key, 'session') == '' then
    local t = now()
    ready_rem(key, sid)
    bump(key, 'state', 'Allocated', 'session', sess)
    redis.call('HSET', P .. 'session:' .. sess, 'id', sess, 'tenant', tenant, 'server_id', sid,
      'address', hget(key, 'address'), 'port', hget(key, 'port'), 'state', 'Active',
      'reason', '', 'created_at', fmt(t), 'expires_at', fmt(t + ttl))
    redis.call('SADD', P .. 'sessions', sess)
    redis.call('SADD', P .. 'tenant:' .. tenant .. ':sessions', sess)
    redis.call('ZADD', P .. 'sessions:active', t + ttl, sess)
    if idem ~= '' then redis.call('SET', idem_key, sess, 'EX', 86400) end
    return {'created', sess}
  end
  redis.call('SREM', pool, sid)
end
"""

END_SESSION = """
local sess, tenant, reason = ARGV[1], ARGV[2], ARGV[3]
local key = P .. 'session:' .. sess
if hget(key, 'state') == '' or (tenant ~= '' and hget(key, 'tenant') ~= tenant) then
  return 0
end
end_session(sess, reason, now())
return 1
"""

HEARTBEAT = """
local node, address = ARGV[1], ARGV[2]
redis.call('HSET', P .. 'node:' .. node, 'name', node, 'address', address,
  'heartbeat_at', fmt(now()), 'state', 'Live')
redis.call('SADD', P .. 'nodes', node)
return 1
"""

MARK_READY = """
local sid, node, port = ARGV[1], ARGV[2], ARGV[3]
local key = skey(sid)
if hget(key, 'state') ~= 'Starting' or hget(key, 'node') ~= node then return 0 end
bump(key, 'state', 'Ready', 'port', port, 'restart', '')
ready_add(key, sid)
return 1
"""

MARK_ERROR = """
local sid, node = ARGV[1], ARGV[2]
local key = skey(sid)
if hget(key, 'state') ~= 'Starting' or hget(key, 'node') ~= node then return 0 end
bump(key, 'state', 'Error', 'port', '', 'restart', '')
return 1
"""

MARK_UNHEALTHY = """
local sid, node = ARGV[1], ARGV[2]
local key = skey(sid)
local st = hget(key, 'state')
if hget(key, 'node') ~= node or not allowed(st, 'Unhealthy') then return 0 end
local sess = hget(key, 'session')
ready_rem(key, sid)
bump(key, 'state', 'Unhealthy', 'session', '', 'port', '', 'restart', '', 'lost', '')
if sess ~= '' then end_session(sess, 'ServerLost', now()) end
return 1
"""

# The kube runtime: the server's Pod is gone (deleted, evicted, failed). It leaves the Ready pool
# as Unhealthy with ``lost`` set and keeps its session: the controller handles it as a server of
# a lost node (CTL_SERVER_LOST: back to Creating, its session re-placed or ended by policy).
POD_LOST = """
local sid, node, why = ARGV[1], ARGV[2], ARGV[3]
local key = skey(sid)
local st = hget(key, 'state')
if hget(key, 'node') ~= node or not allowed(st, 'Unhealthy') then return 0 end
ready_rem(key, sid)
bump(key, 'state', 'Unhealthy', 'port', '', 'restart', '', 'lost', why)
return 1
"""

MOVE_PORT = """
local sid, node, port, restart = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local key = skey(sid)
local st = hget(key, 'state')
if (st ~= 'Ready' and st ~= 'Allocated') or hget(key, 'node') ~= node then return 0 end
bump(key, 'port', port)
if restart ~= '' and hget(key, 'restart') == restart then redis.call('HSET', key, 'restart', '') end
local sess = hget(key, 'session')
if sess ~= '' then redis.call('HSET', P .. 'session:' .. sess, 'port', port) end
return 1
"""

POWER = """
local sid, tenant, signal = ARGV[1], ARGV[2], ARGV[3]
local key = skey(sid)
local st = hget(key, 'state')
if st == '' or (tenant ~= '' and hget(key, 'tenant') ~= tenant) then return {'missing', ''} end
if POWER[signal] == nil or not POWER[signal][st] then return {'conflict', st} end
if signal == 'restart' and RESTART_IN_PLACE[st] then
  bump(key, 'restart', hget(key, 'rv'))
  return {'ok', st}
end
local to = 'Stopped'
if signal ~= 'stop' then
  to = 'Starting'
  if hget(key, 'node') == '' then to = 'Creating' end
end
if not allowed(st, to) then return {'conflict', st} end
local sess = hget(key, 'session')
ready_rem(key, sid)
bump(key, 'state', to, 'session', '', 'port', '', 'restart', '', 'lost', '')
if sess ~= '' then end_session(sess, 'Evicted', now()) end
return {'ok', to}
"""

REMOVE_SHUTDOWN = """
local sid, node = ARGV[1], ARGV[2]
local key = skey(sid)
if hget(key, 'state') ~= 'Shutdown' or hget(key, 'node') ~= node then return 0 end
delete_server(sid)
return 1
"""

CTL_SCHEDULE = """
local sid, node = ARGV[3], ARGV[4]
local key, nkey = skey(sid), P .. 'node:' .. node
if hget(key, 'state') ~= 'Creating' or hget(key, 'node') ~= '' then return 0 end
if hget(nkey, 'state') ~= 'Live' then return 0 end
bump(key, 'state', 'Starting', 'node', node, 'address', hget(nkey, 'address'), 'port', '')
redis.call('SADD', P .. 'node:' .. node .. ':servers', sid)
return 1
"""

CTL_NODE_LOST = """
local node, timeout, policy = ARGV[3], tonumber(ARGV[4]), ARGV[5] or 'end'
-- Silence counts from the later of the last heartbeat and the leader's first pass (ARGV[6]).
local since = tonumber(ARGV[6] or '0') or 0
local nkey = P .. 'node:' .. node
local t = now()
local seen = math.max(tonumber(hget(nkey, 'heartbeat_at')), since)
if hget(nkey, 'state') ~= 'Live' or t - seen <= timeout then
  return {0, {}, {}}
end
redis.call('HSET', nkey, 'state', 'Lost')
local members = redis.call('SMEMBERS', P .. 'node:' .. node .. ':servers')
local lost = {}
for _, sid in ipairs(members) do
  local key = skey(sid)
  local st = hget(key, 'state')
  redis.call('SREM', P .. 'node:' .. node .. ':servers', sid)
  if st == 'Shutdown' then
    delete_server(sid)
  elseif st == 'Stopped' then
    bump(key, 'node', '', 'address', '', 'port', '', 'restart', '')
  elseif allowed(st, 'Creating') then
    release_server(key, sid, lost)
  end
end
local replaced, ended = place_lost_sessions(lost, policy, t)
return {#members + 1, replaced, ended}
"""

CTL_SERVER_LOST = """
local sid, policy = ARGV[3], ARGV[4] or 'end'
local key = skey(sid)
if hget(key, 'state') ~= 'Unhealthy' or hget(key, 'lost') == '' then return {0, {}, {}} end
local node = hget(key, 'node')
if node ~= '' then redis.call('SREM', P .. 'node:' .. node .. ':servers', sid) end
local lost = {}
release_server(key, sid, lost)
local replaced, ended = place_lost_sessions(lost, policy, now())
return {1, replaced, ended}
"""

CTL_EXPIRE_SESSION = """
local sess = ARGV[3]
local key = P .. 'session:' .. sess
if hget(key, 'state') ~= 'Active' then
  redis.call('ZREM', P .. 'sessions:active', sess)
  return 0
end
local t = now()
if tonumber(hget(key, 'expires_at')) > t then return 0 end
return end_session(sess, 'Expired', t)
"""

CTL_REMOVE_ORPHAN = """
local sid = ARGV[3]
local key = skey(sid)
local node = hget(key, 'node')
if hget(key, 'state') ~= 'Shutdown' then return 0 end
if node ~= '' and hget(P .. 'node:' .. node, 'state') == 'Live' then return 0 end
delete_server(sid)
return 1
"""

LEASE_ACQUIRE = """
local cid, ttl_ms = ARGV[1], ARGV[2]
if redis.call('EXISTS', P .. 'leader:lease') == 1 then return 0 end
local epoch = redis.call('INCR', P .. 'leader:epoch')
redis.call('SET', P .. 'leader:lease', cid .. ':' .. epoch, 'PX', ttl_ms)
return epoch
"""

LEASE_RENEW = """
local cid, epoch, ttl_ms = ARGV[1], ARGV[2], ARGV[3]
if redis.call('GET', P .. 'leader:lease') ~= cid .. ':' .. epoch then return 0 end
redis.call('PEXPIRE', P .. 'leader:lease', ttl_ms)
return 1
"""

LEASE_RELEASE = """
local cid, epoch = ARGV[1], ARGV[2]
if redis.call('GET', P .. 'leader:lease') ~= cid .. ':' .. epoch then return 0 end
redis.call('DEL', P .. 'leader:lease')
return 1
"""


AGENT_SCRIPTS = frozenset(
    {
        "HEARTBEAT",
        "MARK_READY",
        "MARK_ERROR",
        "MARK_UNHEALTHY",
        "POD_LOST",
        "MOVE_PORT",
        "REMOVE_SHUTDOWN",
    }
)
API_SCRIPTS = frozenset(
    {"CREATE_TENANT", "CREATE_SERVER", "SHUTDOWN_SERVER", "ALLOCATE", "END_SESSION", "POWER"}
)


def owner_of(name: str) -> Owner | None:
    """Who runs the named script (None: it changes no state, e.g. the lease scripts)."""
    if name.startswith("CTL_"):
        return Owner.CONTROLLER
    if name in AGENT_SCRIPTS:
        return Owner.AGENT
    return Owner.API if name in API_SCRIPTS else None


def script(body: str, *, fenced: bool = False, owner: Owner | None = None) -> str:
    """The full source of one script: owner, prelude, optional fence, body."""
    declared = f"'{owner.value}'" if owner is not None else "nil"
    return f"local OWNER = {declared}\n" + PRELUDE + (FENCE if fenced else "") + body


@functools.cache
def source(name: str) -> str:
    """The full source of the script named ``name`` in this module (e.g. ``"POWER"``)."""
    body = globals()[name]
    if not isinstance(body, str) or not name.isupper():
        raise KeyError(f"{name} is not a script of refplat.scripts")
    return script(body, fenced=name.startswith("CTL_"), owner=owner_of(name))
