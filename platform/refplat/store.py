"""The Redis model: reads, and writes through the Lua scripts of :mod:`refplat.scripts`.

Key names (all under ``refplat:``):

- ``tenant:{id}`` hash, ``tenants`` set, ``token:{sha256}`` -> tenant id
- ``server:{id}`` hash (with ``rv``), ``servers`` set, ``tenant:{id}:servers`` set,
  ``state:{state}`` and ``tenant:{id}:state:{state}`` sets (servers by state),
  ``node:{name}:servers`` set, ``ready:{tenant}`` and ``ready:{tenant}:{region}`` sets
- ``servers:dirty`` and ``node:{name}:dirty`` sets: servers changed since the controller, or
  the node's agent, last looked (see :mod:`refplat.informer`)
- ``session:{id}`` hash, ``sessions`` set, ``tenant:{id}:sessions`` set,
  ``sessions:active`` sorted set scored by expiry, ``idem:{tenant}:{key}`` -> session id
- ``node:{name}`` hash, ``nodes`` set
- ``leader:lease`` (``id:epoch``, with a TTL) and ``leader:epoch`` counter
- ``rl:token:{sha256}``, ``rl:session:{id}``: rate-limit state (see :mod:`refplat.ratelimit`)
- ``quota:{session}`` hash, ``quota:ended`` set: disk usage (see :mod:`refplat.quota`)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError

from refplat import scripts
from refplat.model import (
    DEFAULT_DISK_QUOTA_MIB,
    DEFAULT_MEMORY_MIB,
    EndReason,
    GameServer,
    Node,
    Session,
)
from refplat.redisconn import RedisSettings, ReplicationError, ReplicaWait, eval_durably
from refplat.redisconn import connect as _connect
from refplat.states import PowerSignal

PREFIX = "refplat:"
# Scripts whose writes may be lost on a failover without harm, so they never WAIT for replicas:
# the GCRA rate-limit buckets (refplat.ratelimit) run on every request; a lost bucket only
# lets a client spend its burst once more.
SOFT_STATE_SCRIPTS = frozenset({"GCRA"})


PAGE_SCAN = 200
# How long an api replica trusts a token it has looked up. A token never changes tenant and
# there is no revocation endpoint; a token that disappears (a restore from an older backup)
# is still accepted for at most this long by a replica that saw it.
TOKEN_CACHE_TTL_S = 5.0
TOKEN_CACHE_SIZE = 10_000
T = TypeVar("T")


class FencedError(RuntimeError):
    """A controller wrote with an epoch that no longer holds the lease."""


class CursorError(ValueError):
    """A list cursor that this store did not hand out."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list ordered by id; ``next_cursor`` is None on the last page."""

    items: list[T]
    next_cursor: str | None


@dataclass(frozen=True)
class PowerResult:
    """What a power action did: ``ok``, ``missing`` (no such server) or ``conflict``."""

    outcome: str
    state: str


def encode_cursor(last_id: str) -> str:
    """The opaque cursor that continues a list after ``last_id``."""
    return base64.urlsafe_b64encode(f"after:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The id a cursor continues after; :class:`CursorError` when it is not ours."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise CursorError("not a cursor of this api") from None
    if not text.startswith("after:") or len(text) > 200:
        raise CursorError("not a cursor of this api")
    return text.removeprefix("after:")


def connect(target: str | RedisSettings) -> aioredis.Redis:
    """A bounded Redis client; see :func:`refplat.redisconn.connect` (kept for older callers)."""
    return _connect(target)


def token_hash(token: str) -> str:
    """The only form in which a tenant token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Store:
    """Typed access to the platform state in Redis."""

    def __init__(self, client: aioredis.Redis, *, wait: ReplicaWait | None = None) -> None:
        self.redis = client
        self._wait = wait
        self._scripts: dict[str, AsyncScript] = {}
        self._tenants: dict[str, tuple[str, float]] = {}  # token hash -> (tenant, looked up at)

    async def run(self, name: str, *args: str | int | float) -> Any:
        """Run the script ``scripts.<name>`` with ``args`` as ARGV."""
        return await self.run_source(name, scripts.source(name), *args)

    @property
    def wait(self) -> ReplicaWait | None:
        """How many replicas a write waits for (None: it does not wait)."""
        return self._wait

    async def run_source(self, name: str, source: str, *args: str | int | float) -> Any:
        """Run the Lua ``source`` (registered once under ``name``) with ``args`` as ARGV.

        With a :class:`ReplicaWait` the write is acknowledged only once enough replicas have
        it (else :class:`~refplat.redisconn.ReplicationError`), except for soft state.
        """
        try:
            if self._wait is not None and name not in SOFT_STATE_SCRIPTS:
                return await eval_durably(self.redis, self._wait, source, args)
            return await self._script(name, source)(keys=[], args=list(args))
        except ResponseError as exc:
            if "FENCED" in str(exc):
                raise FencedError(str(exc)) from exc
            raise

    def _script(self, name: str, source: str) -> AsyncScript:
        script = self._scripts.get(name)
        if script is None:
            script = self.redis.register_script(source)
            self._scripts[name] = script
        return script

    async def run_and_read(
        self, name: str, args: Sequence[str | int | float], hash_key: str
    ) -> tuple[Any, dict[str, str]]:
        """Run the script ``scripts.<name>``, then ``HGETALL hash_key``, in one round trip.

        The read comes after the script on the same connection, so it sees the script's
        writes (and, with a replica wait, only after the ``WAIT`` acknowledged them).
        """
        source = scripts.source(name)
        for _ in range(2):
            async with self.redis.pipeline(transaction=False) as pipe:
                if self._wait is not None:
                    pipe.eval(source, 0, *args)
                    pipe.execute_command("WAIT", self._wait.replicas, self._wait.timeout_ms)
                else:
                    pipe.evalsha(self._script(name, source).sha, 0, *args)
                pipe.hgetall(hash_key)
                replies = await pipe.execute(raise_on_error=False)
            first = replies[0]
            if isinstance(first, NoScriptError):  # Redis restarted or flushed its scripts
                await self.redis.script_load(source)
                continue
            for reply in replies:
                if isinstance(reply, ResponseError) and "WAIT cannot be used" in str(reply):
                    raise ReplicationError(
                        "the Redis master was demoted to a replica during the write, so it is "
                        "not durable; retry (the client reconnects to the new master)"
                    ) from reply
                if isinstance(reply, ResponseError) and "FENCED" in str(reply):
                    raise FencedError(str(reply)) from reply
                if isinstance(reply, Exception):
                    raise reply
            if self._wait is not None:
                self._wait.check(int(replies[1]))
            return first, _strs(replies[-1])
        raise NoScriptError(f"Redis forgot the script {name} twice in a row")

    # Tenants and tokens

    async def create_tenant(self, *, tenant_id: str, name: str, token: str) -> None:
        """Store a tenant and the hash of its token."""
        await self.run("CREATE_TENANT", tenant_id, name, token_hash(token))

    async def tenant_for_token(self, token: str) -> str | None:
        """The tenant id a token belongs to, or None (a found one is cached briefly)."""
        digest = token_hash(token)
        now = time.monotonic()
        cached = self._tenants.get(digest)
        if cached is not None and now - cached[1] < TOKEN_CACHE_TTL_S:
            return cached[0]
        value = await self.redis.get(f"{PREFIX}token:{digest}")
        if value is None:
            self._tenants.pop(digest, None)
            return None
        if len(self._tenants) >= TOKEN_CACHE_SIZE:
            self._tenants.clear()
        self._tenants[digest] = (str(value), now)
        return str(value)

    # Game servers

    async def create_server(
        self,
        *,
        server_id: str,
        tenant: str,
        region: str,
        version: str,
        memory_mib: int = DEFAULT_MEMORY_MIB,
        disk_quota_mib: int = DEFAULT_DISK_QUOTA_MIB,
    ) -> None:
        """Store a new server in state Creating."""
        args = (server_id, tenant, region, version, memory_mib, disk_quota_mib)
        await self.run("CREATE_SERVER", *args)

    async def get_server(self, server_id: str) -> GameServer | None:
        """One server, or None."""
        raw = _strs(await self.redis.hgetall(f"{PREFIX}server:{server_id}"))
        return GameServer.from_hash(raw) if raw else None

    async def list_servers(self, *, tenant: str | None = None) -> list[GameServer]:
        """All servers, or those of one tenant."""
        index = f"{PREFIX}tenant:{tenant}:servers" if tenant else f"{PREFIX}servers"
        return await self.servers_in(index)

    async def servers_in(self, index: str) -> list[GameServer]:
        """The servers whose ids are members of the set ``index``."""
        return [s for s in (await self.servers_by_id(await self._members(index))).values() if s]

    async def servers_by_id(self, ids: Sequence[str]) -> dict[str, GameServer | None]:
        """Each of ``ids`` with its server, or None when it no longer exists."""
        raws = await self._hgetall_many([f"{PREFIX}server:{sid}" for sid in ids])
        return {
            sid: GameServer.from_hash(raw) if raw else None
            for sid, raw in zip(ids, raws, strict=True)
        }

    async def take_set(self, key: str) -> list[str]:
        """The members of the set ``key``, which is emptied in the same transaction."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.smembers(key)
            pipe.delete(key)
            members, _ = await pipe.execute()
        return sorted(str(member) for member in members)

    async def page_servers(
        self,
        *,
        tenant: str | None,
        state: str | None = None,
        region: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[GameServer]:
        """One page of servers ordered by id, filtered by state and region.

        With a state, only the servers in that state's index are read (the scripts keep the
        indexes; ``keep`` re-checks each server), so a page costs O(matching), not O(all).
        """
        scope = f"{PREFIX}tenant:{tenant}:" if tenant else PREFIX
        index = f"{scope}state:{state}" if state else f"{scope}servers"

        def keep(server: GameServer) -> bool:
            return (state is None or server.state.value == state) and (
                region is None or server.region == region
            )

        return await self._page(
            index, "server", GameServer.from_hash, keep, limit=limit, cursor=cursor
        )

    async def shutdown_server(self, *, server_id: str, tenant: str | None) -> bool:
        """Mark a server Shutdown (its session ends Evicted); False when not found."""
        return bool(await self.run("SHUTDOWN_SERVER", server_id, tenant or ""))

    async def power(
        self, *, server_id: str, tenant: str | None, signal: PowerSignal
    ) -> PowerResult:
        """Apply a power signal (see :mod:`refplat.states`) by compare-and-set."""
        outcome, state = await self.run("POWER", server_id, tenant or "", signal.value)
        return PowerResult(outcome=str(outcome), state=str(state))

    # Sessions

    async def allocate(
        self, *, tenant: str, region: str | None, session_id: str, ttl_s: float, idem_key: str
    ) -> tuple[str, str]:
        """Allocate a Ready server; return ``(outcome, session id)``.

        The outcome is ``created``, ``existing`` (idempotency key seen) or ``none``.
        """
        outcome, sid = await self.run("ALLOCATE", tenant, region or "", session_id, ttl_s, idem_key)
        return str(outcome), str(sid)

    async def allocate_and_read(
        self, *, tenant: str, region: str | None, session_id: str, ttl_s: float, idem_key: str
    ) -> tuple[str, Session | None]:
        """:meth:`allocate`, and the session it names, in one round trip when it is new.

        The outcome is ``created``, ``existing`` (idempotency key seen) or ``none`` (then the
        session is None).
        """
        args = (tenant, region or "", session_id, ttl_s, idem_key)
        (outcome, sid), raw = await self.run_and_read(
            "ALLOCATE", args, f"{PREFIX}session:{session_id}"
        )
        outcome, sid = str(outcome), str(sid)
        if outcome == "none":
            return outcome, None
        if sid != session_id:  # an earlier request's session, named by the idempotency key
            return outcome, await self.get_session(sid)
        return outcome, Session.from_hash(raw) if raw else None

    async def get_session(self, session_id: str) -> Session | None:
        """One session, or None."""
        raw = _strs(await self.redis.hgetall(f"{PREFIX}session:{session_id}"))
        return Session.from_hash(raw) if raw else None

    async def list_sessions(self, *, tenant: str | None = None) -> list[Session]:
        """All sessions, or those of one tenant."""
        index = f"{PREFIX}tenant:{tenant}:sessions" if tenant else f"{PREFIX}sessions"
        ids = await self._members(index)
        raws = await self._hgetall_many([f"{PREFIX}session:{sid}" for sid in ids])
        return [Session.from_hash(raw) for raw in raws if raw]

    async def page_sessions(
        self,
        *,
        tenant: str | None,
        state: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Page[Session]:
        """One page of sessions ordered by id, filtered by state."""
        index = f"{PREFIX}tenant:{tenant}:sessions" if tenant else f"{PREFIX}sessions"

        def keep(session: Session) -> bool:
            return state is None or session.state.value == state

        return await self._page(
            index, "session", Session.from_hash, keep, limit=limit, cursor=cursor
        )

    async def end_session(self, *, session_id: str, tenant: str | None, reason: EndReason) -> bool:
        """End a session (idempotent); False when not found."""
        return bool(await self.run("END_SESSION", session_id, tenant or "", reason.value))

    async def end_and_read(
        self, *, session_id: str, tenant: str | None, reason: EndReason
    ) -> Session | None:
        """:meth:`end_session` and the session afterwards, in one round trip; None: not found."""
        args = (session_id, tenant or "", reason.value)
        ended, raw = await self.run_and_read("END_SESSION", args, f"{PREFIX}session:{session_id}")
        return Session.from_hash(raw) if ended and raw else None

    async def due_sessions(self) -> list[str]:
        """Ids of Active sessions whose expiry has passed (by the Redis clock)."""
        seconds, micros = await self.redis.time()
        now = seconds + micros / 1e6
        due = await self.redis.zrangebyscore(f"{PREFIX}sessions:active", 0, now)
        return [str(sid) for sid in due]

    # Nodes

    async def list_nodes(self) -> list[Node]:
        """Every node that ever registered."""
        names = await self._members(f"{PREFIX}nodes")
        raws = await self._hgetall_many([f"{PREFIX}node:{name}" for name in names])
        return [Node.from_hash(raw) for raw in raws if raw]

    async def node_server_counts(self, names: Sequence[str]) -> dict[str, int]:
        """How many servers are assigned to each node."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.scard(f"{PREFIX}node:{name}:servers")
            counts = await pipe.execute()
        return {name: int(count) for name, count in zip(names, counts, strict=True)}

    async def redis_time(self) -> float:
        """The Redis clock, the one all stored instants use."""
        seconds, micros = await self.redis.time()
        return float(seconds + micros / 1e6)

    async def _page(
        self,
        index: str,
        kind: str,
        build: Callable[[Mapping[str, str]], T],
        keep: Callable[[T], bool],
        *,
        limit: int,
        cursor: str | None,
    ) -> Page[T]:
        """Walk the ids of ``index`` after the cursor, in order, until ``limit + 1`` match.

        The ids are sorted client-side (the indexes are plain sets): fine at this scale.
        """
        after = decode_cursor(cursor) if cursor else None
        ids = [i for i in await self._members(index) if after is None or i > after]
        found: list[tuple[str, T]] = []
        for start in range(0, len(ids), PAGE_SCAN):
            chunk = ids[start : start + PAGE_SCAN]
            raws = await self._hgetall_many([f"{PREFIX}{kind}:{i}" for i in chunk])
            found += [
                (i, item)
                for i, raw in zip(chunk, raws, strict=True)
                if raw
                if keep(item := build(raw))
            ]
            if len(found) > limit:
                break
        more = len(found) > limit
        items = [item for _, item in found[:limit]]
        return Page(items=items, next_cursor=encode_cursor(found[limit - 1][0]) if more else None)

    async def _members(self, key: str) -> list[str]:
        return sorted(str(member) for member in await self.redis.smembers(key))

    async def _hgetall_many(self, keys: Sequence[str]) -> list[dict[str, str]]:
        if not keys:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            results = await pipe.execute()
        return [_strs(raw) for raw in results]


def _strs(raw: Mapping[Any, Any]) -> dict[str, str]:
    return {str(key): str(value) for key, value in raw.items()}
