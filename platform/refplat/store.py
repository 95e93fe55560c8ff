"""The Redis model: reads, and writes through the Lua scripts of :mod:`refplat.scripts`.

Key names (all under ``refplat:``):

- ``tenant:{id}`` hash, ``tenants`` set, ``token:{sha256}`` -> tenant id
- ``server:{id}`` hash (with ``rv``), ``servers`` set, ``tenant:{id}:servers`` set,
  ``node:{name}:servers`` set, ``ready:{tenant}`` and ``ready:{tenant}:{region}`` sets
- ``session:{id}`` hash, ``sessions`` set, ``tenant:{id}:sessions`` set,
  ``sessions:active`` sorted set scored by expiry, ``idem:{tenant}:{key}`` -> session id
- ``node:{name}`` hash, ``nodes`` set
- ``leader:lease`` (``id:epoch``, with a TTL) and ``leader:epoch`` counter
- ``rl:token:{sha256}``, ``rl:session:{id}``: rate-limit state (see :mod:`refplat.ratelimit`)
- ``quota:{session}`` hash, ``quota:ended`` set: disk usage (see :mod:`refplat.quota`)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import ResponseError

from refplat import scripts
from refplat.model import EndReason, GameServer, Node, Session

PREFIX = "refplat:"
REDIS_TIMEOUT_S = 2.0


class FencedError(RuntimeError):
    """A controller wrote with an epoch that no longer holds the lease."""


def connect(url: str) -> aioredis.Redis:
    """A Redis client whose every call is bounded by a timeout."""
    client: aioredis.Redis = aioredis.from_url(
        url,
        decode_responses=True,
        socket_timeout=REDIS_TIMEOUT_S,
        socket_connect_timeout=REDIS_TIMEOUT_S,
    )
    return client


def token_hash(token: str) -> str:
    """The only form in which a tenant token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class Store:
    """Typed access to the platform state in Redis."""

    def __init__(self, client: aioredis.Redis) -> None:
        self.redis = client
        self._scripts: dict[str, AsyncScript] = {}

    async def run(self, name: str, *args: str | int | float) -> Any:
        """Run the script ``scripts.<name>`` with ``args`` as ARGV."""
        body = getattr(scripts, name)
        source = scripts.script(body, fenced=name.startswith("CTL_"))
        return await self.run_source(name, source, *args)

    async def run_source(self, name: str, source: str, *args: str | int | float) -> Any:
        """Run the Lua ``source`` (registered once under ``name``) with ``args`` as ARGV."""
        script = self._scripts.get(name)
        if script is None:
            script = self.redis.register_script(source)
            self._scripts[name] = script
        try:
            return await script(keys=[], args=list(args))
        except ResponseError as exc:
            if "FENCED" in str(exc):
                raise FencedError(str(exc)) from exc
            raise

    # Tenants and tokens

    async def create_tenant(self, *, tenant_id: str, name: str, token: str) -> None:
        """Store a tenant and the hash of its token."""
        await self.run("CREATE_TENANT", tenant_id, name, token_hash(token))

    async def tenant_for_token(self, token: str) -> str | None:
        """The tenant id a token belongs to, or None."""
        value = await self.redis.get(f"{PREFIX}token:{token_hash(token)}")
        return str(value) if value is not None else None

    # Game servers

    async def create_server(
        self, *, server_id: str, tenant: str, region: str, version: str
    ) -> None:
        """Store a new server in state Creating."""
        await self.run("CREATE_SERVER", server_id, tenant, region, version)

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
        ids = await self._members(index)
        raws = await self._hgetall_many([f"{PREFIX}server:{sid}" for sid in ids])
        return [GameServer.from_hash(raw) for raw in raws if raw]

    async def shutdown_server(self, *, server_id: str, tenant: str | None) -> bool:
        """Mark a server Shutdown (its session ends Evicted); False when not found."""
        return bool(await self.run("SHUTDOWN_SERVER", server_id, tenant or ""))

    # Sessions

    async def allocate(
        self, *, tenant: str, region: str | None, session_id: str, ttl_s: float, idem_key: str
    ) -> tuple[str, str]:
        """Allocate a Ready server; return ``(outcome, session id)``.

        The outcome is ``created``, ``existing`` (idempotency key seen) or ``none``.
        """
        outcome, sid = await self.run("ALLOCATE", tenant, region or "", session_id, ttl_s, idem_key)
        return str(outcome), str(sid)

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

    async def end_session(self, *, session_id: str, tenant: str | None, reason: EndReason) -> bool:
        """End a session (idempotent); False when not found."""
        return bool(await self.run("END_SESSION", session_id, tenant or "", reason.value))

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
