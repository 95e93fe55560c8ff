"""The disk quota of each session: exact usage of its world files, kept in Redis.

One hash per session, ``refplat:quota:{session}``: ``used`` (bytes), ``dir`` (the session's
directory under the data root, ``<node>/<server>/<session>``, fixed at its first write),
``f:<path>`` (the size of each stored file) and ``p:<path>`` (``<reserved>:<deadline>``
while a write or delete of that path is in flight).

A mutation of a file is three steps: :meth:`Quota.begin` reserves the growth
``max(new - old, 0)`` (refusing when it would pass the quota, when the session is not
Active or not the caller's, or when the path is busy), the caller writes the disk, then
:meth:`Quota.commit` applies the rest (``new - old - reserved``; a delete is ``new = 0``)
or :meth:`Quota.abort` refunds the reservation. At rest ``used`` is the sum of the stored
sizes; in flight it is the larger of before and after. A reservation older than its lease
(a writer that died) is refunded by the next write of the same path.

Ending a session (any script's ``end_session``) adds it to ``refplat:quota:ended``;
:meth:`Quota.forget` deletes its hash once its directory is gone.
"""

from __future__ import annotations

from dataclasses import dataclass

from refplat import scripts
from refplat.store import PREFIX, Store

DEFAULT_QUOTA_BYTES = 10 * 1024**3
WRITE_LEASE_S = 300.0
DELETE = -1

BEGIN = """
local sess, tenant, path = ARGV[1], ARGV[2], ARGV[3]
local size, quota, lease = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local sk = P .. 'session:' .. sess
if hget(sk, 'state') ~= 'Active' or hget(sk, 'tenant') ~= tenant then
  return {'inactive', '', 0}
end
local qk = P .. 'quota:' .. sess
local t = now()
local pending = redis.call('HGET', qk, 'p:' .. path)
if pending then
  local reserved, deadline = string.match(pending, '^(%d+):(.+)$')
  if tonumber(deadline) > t then return {'busy', '', 0} end
  redis.call('HINCRBY', qk, 'used', -tonumber(reserved))
  redis.call('HDEL', qk, 'p:' .. path)
end
local used = tonumber(redis.call('HGET', qk, 'used') or '0')
local old = tonumber(redis.call('HGET', qk, 'f:' .. path) or '-1')
if size < 0 and old < 0 then return {'missing', '', used} end
local grow = math.max(size - math.max(old, 0), 0)
if used + grow > quota then return {'full', '', used} end
local dir = redis.call('HGET', qk, 'dir')
if not dir then
  local sid = hget(sk, 'server_id')
  dir = hget(skey(sid), 'node') .. '/' .. sid .. '/' .. sess
end
redis.call('HSET', qk, 'dir', dir, 'used', used + grow, 'p:' .. path, grow .. ':' .. fmt(t + lease))
return {'ok', dir, used + grow}
"""

COMMIT = """
local sess, path, size = ARGV[1], ARGV[2], tonumber(ARGV[3])
local qk = P .. 'quota:' .. sess
if redis.call('EXISTS', qk) == 0 then return {'inactive', 0} end
local active = hget(P .. 'session:' .. sess, 'state') == 'Active'
local pending = redis.call('HGET', qk, 'p:' .. path)
local reserved = 0
if pending then reserved = tonumber(string.match(pending, '^(%d+):')) end
local old = tonumber(redis.call('HGET', qk, 'f:' .. path) or '0')
local used = redis.call('HINCRBY', qk, 'used', math.max(size, 0) - old - reserved)
redis.call('HDEL', qk, 'p:' .. path)
if size < 0 then redis.call('HDEL', qk, 'f:' .. path)
else redis.call('HSET', qk, 'f:' .. path, size) end
if not active then
  redis.call('SADD', P .. 'quota:ended', sess)
  return {'inactive', used}
end
return {'ok', used}
"""

ABORT = """
local sess, path = ARGV[1], ARGV[2]
local qk = P .. 'quota:' .. sess
local pending = redis.call('HGET', qk, 'p:' .. path)
if not pending then return 0 end
redis.call('HINCRBY', qk, 'used', -tonumber(string.match(pending, '^(%d+):')))
redis.call('HDEL', qk, 'p:' .. path)
return 1
"""

FORGET = """
local sess = ARGV[1]
if hget(P .. 'session:' .. sess, 'state') == 'Active' then return 0 end
redis.call('DEL', P .. 'quota:' .. sess)
redis.call('SREM', P .. 'quota:ended', sess)
return 1
"""


@dataclass(frozen=True)
class Reservation:
    """The answer of :meth:`Quota.begin`: ``ok``, ``inactive``, ``busy``, ``missing``, ``full``."""

    outcome: str
    directory: str
    used_bytes: int


class Quota:
    """Disk usage per session against one quota (bytes), shared by every api replica."""

    def __init__(
        self,
        *,
        store: Store,
        quota_bytes: int = DEFAULT_QUOTA_BYTES,
        write_lease_s: float = WRITE_LEASE_S,
    ) -> None:
        if quota_bytes < 0:
            raise ValueError(f"the session disk quota must be >= 0 bytes, got {quota_bytes}")
        self._store = store
        self.quota_bytes = quota_bytes
        self._write_lease_s = write_lease_s

    async def begin(self, *, session: str, tenant: str, path: str, size: int) -> Reservation:
        """Reserve the growth of writing ``size`` bytes to ``path`` (``DELETE``: deleting)."""
        args = (session, tenant, path, size, self.quota_bytes, self._write_lease_s)
        outcome, directory, used = await self._run("BEGIN", BEGIN, *args)
        return Reservation(outcome=str(outcome), directory=str(directory), used_bytes=int(used))

    async def commit(self, *, session: str, path: str, size: int) -> bool:
        """Account a finished write (or ``DELETE``); False when the session is no longer Active."""
        outcome, _ = await self._run("COMMIT", COMMIT, session, path, size)
        return str(outcome) == "ok"

    async def abort(self, *, session: str, path: str) -> None:
        """Refund the reservation of a failed write or delete."""
        await self._run("ABORT", ABORT, session, path)

    async def usage(self, session: str) -> int:
        """Bytes used by the session's files (0 when it has none)."""
        return int(await self._store.redis.hget(_key(session), "used") or 0)

    async def stored_size(self, *, session: str, path: str) -> int | None:
        """The size of a stored file, or None when the session has no such file."""
        value = await self._store.redis.hget(_key(session), f"f:{path}")
        return int(value) if value is not None else None

    async def directory(self, session: str) -> str | None:
        """The session's directory under the data root, once it has written a file."""
        value = await self._store.redis.hget(_key(session), "dir")
        return str(value) if value is not None else None

    async def ended(self) -> list[str]:
        """Sessions that ended with files: their directories are to be deleted."""
        return sorted(str(s) for s in await self._store.redis.smembers(f"{PREFIX}quota:ended"))

    async def forget(self, session: str) -> bool:
        """Drop the usage of an ended session (after its directory is deleted)."""
        return bool(await self._run("FORGET", FORGET, session))

    async def _run(self, name: str, body: str, *args: str | int | float) -> list[str | int]:
        result: list[str | int] = await self._store.run_source(
            f"QUOTA_{name}", scripts.script(body), *args
        )
        return result if isinstance(result, list) else [result]


def _key(session: str) -> str:
    return f"{PREFIX}quota:{session}"
