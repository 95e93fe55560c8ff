"""How every refplat process reaches Redis, and how a write waits until it is durable.

Two ways to reach the master: a plain URL (``--redis-url``), or Redis Sentinel
(``--redis-sentinel HOST:PORT``, repeatable, with ``--redis-master NAME``). Through Sentinel the
connection pool asks the sentinels for the master's address on every new connection, so after a
failover the next command (or its bounded retry) reaches the promoted replica.

``--redis-wait-replicas N`` makes every acknowledged write wait for ``N`` replicas: the write and
a ``WAIT N timeout`` go down the same connection in one pipeline (``WAIT`` counts only the writes
of its own connection). Fewer acknowledgements raise :class:`ReplicationError`: the write is
applied on the master but not durable, and the api answers 503.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelManagedConnection as AsyncSentinelConnection
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

from refplat.runtime import HostPort

REDIS_TIMEOUT_S = 2.0
ONE_SHOT_TIMEOUT_S = 5.0  # one-shot commands read whole lists (the audit log)
SENTINEL_TIMEOUT_S = 0.5
DEFAULT_WAIT_TIMEOUT_MS = 1000
# Reconnect (and re-ask the sentinels) on connection errors: about 3 s of backoff in all,
# enough to ride out a Sentinel failover, bounded so a dead Redis fails a request quickly.
RETRIES = 6
RETRY_BASE_S = 0.05
RETRY_CAP_S = 1.0


class ReplicationError(RedisError):
    """A write reached the master but fewer replicas than required acknowledged it."""


# Errors meaning "Redis cannot take this request now": the api answers them with 503.
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    ReplicationError,
    RedisConnectionError,
    RedisTimeoutError,
)


def unavailable_message(exc: Exception) -> str:
    """The sentence a client sees for one of :data:`UNAVAILABLE_ERRORS`."""
    if isinstance(exc, ReplicationError):
        return str(exc)
    return f"Redis is unavailable ({exc}); retry shortly"


@dataclass(frozen=True)
class ReplicaWait:
    """After each write, ``WAIT`` for ``replicas`` replicas, at most ``timeout_ms``."""

    replicas: int
    timeout_ms: int = DEFAULT_WAIT_TIMEOUT_MS

    def check(self, acknowledged: int) -> None:
        """Raise :class:`ReplicationError` when too few replicas acknowledged the write."""
        if acknowledged < self.replicas:
            raise ReplicationError(
                f"the write is applied on the Redis master but only {acknowledged} of "
                f"{self.replicas} required replica(s) acknowledged it within {self.timeout_ms} ms, "
                "so it is not durable; check that the Redis replica is up and replicating, "
                "then retry"
            )


@dataclass(frozen=True)
class RedisSettings:
    """Where the Redis master is (a URL, or sentinels and a master name) and the write WAIT."""

    url: str | None = None
    sentinels: tuple[HostPort, ...] = ()
    master: str | None = None
    wait: ReplicaWait | None = None

    def __post_init__(self) -> None:
        if self.url is None and not self.sentinels:
            raise ValueError(
                "no Redis given; pass --redis-url URL, or --redis-sentinel HOST:PORT "
                "(repeatable) with --redis-master NAME"
            )
        if self.url is not None and self.sentinels:
            raise ValueError(
                "--redis-url and --redis-sentinel exclude each other; pass only one of them"
            )
        if self.sentinels and not self.master:
            raise ValueError(
                "--redis-sentinel needs --redis-master NAME, the master name the sentinels monitor"
            )
        if self.url is not None and self.master is not None:
            raise ValueError("--redis-master applies only with --redis-sentinel; drop it")

    @property
    def socket_timeout_s(self) -> float:
        """Each command's bound; a ``WAIT`` may block for its own timeout on top."""
        extra = self.wait.timeout_ms / 1000 if self.wait else 0.0
        return REDIS_TIMEOUT_S + extra

    def describe(self) -> str:
        """Where the master is, for log lines (no password)."""
        if self.url is not None:
            return self.url.split("@")[-1]
        where = ",".join(f"{s.host}:{s.port}" for s in self.sentinels)
        return f"master {self.master!r} via sentinels {where}"


def _settings(target: str | RedisSettings) -> RedisSettings:
    return RedisSettings(url=target) if isinstance(target, str) else target


def _client_kwargs(settings: RedisSettings) -> dict[str, Any]:
    return {
        "decode_responses": True,
        "socket_timeout": settings.socket_timeout_s,
        "socket_connect_timeout": REDIS_TIMEOUT_S,
    }


def _sentinel_kwargs(*, asynchronous: bool) -> dict[str, Any]:
    """Each Sentinel is asked once per discovery, without retries: redis-py's default retry
    (exponential from 1 s, three times) made a cut-off Sentinel at the head of the list cost
    ~10 s per discovery before the next one was asked (a region outage)."""
    retry = AsyncRetry(NoBackoff(), 0) if asynchronous else Retry(NoBackoff(), 0)
    return {
        "socket_timeout": SENTINEL_TIMEOUT_S,
        "socket_connect_timeout": SENTINEL_TIMEOUT_S,
        "retry": retry,
    }


def _backoff() -> ExponentialWithJitterBackoff:
    return ExponentialWithJitterBackoff(base=RETRY_BASE_S, cap=RETRY_CAP_S)


class _MasterConnection(AsyncSentinelConnection):
    """Reconnects through the sentinels, never to the address it last had.

    redis-py (8.1) reconnects a dropped connection in ``send_packed_command`` straight to its
    stored address, so after a failover it could write to the old primary once that restarts,
    before the sentinels demote it (redis/redis-py#3874). ``connect`` asks the sentinels.
    """

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self.is_connected:
            await self.connect()  # type: ignore[no-untyped-call]
        await super().send_packed_command(command, check_health)


class _SyncMasterConnection(SentinelManagedConnection):
    """The blocking twin of :class:`_MasterConnection`."""

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if not self._sock:
            self.connect()  # type: ignore[no-untyped-call]
        super().send_packed_command(command, check_health)  # type: ignore[no-untyped-call]


class _SentinelMaster(aioredis.Redis):
    """The master client of a Sentinel; closing it closes the sentinel clients too."""

    sentinel_manager: AsyncSentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        await super().aclose(close_connection_pool)
        if self.sentinel_manager is not None:
            await self.sentinel_manager.aclose()


class _SyncSentinelMaster(redis.Redis):
    """The blocking master client of a Sentinel; closing it closes the sentinel clients too."""

    sentinel_manager: Sentinel | None = None

    def close(self) -> None:
        super().close()
        manager = self.sentinel_manager
        for client in manager.sentinels if manager is not None else ():
            client.close()


def connect(target: str | RedisSettings) -> aioredis.Redis:
    """An asyncio client of the master whose every call is bounded by a timeout."""
    settings = _settings(target)
    kwargs = {**_client_kwargs(settings), "retry": AsyncRetry(_backoff(), RETRIES)}
    if settings.url is not None:
        client: aioredis.Redis = aioredis.from_url(settings.url, **kwargs)
        return client
    sentinel = AsyncSentinel(
        [(s.host, s.port) for s in settings.sentinels],
        sentinel_kwargs=_sentinel_kwargs(asynchronous=True),
    )  # type: ignore[no-untyped-call]
    master: _SentinelMaster = sentinel.master_for(
        str(settings.master),
        redis_class=_SentinelMaster,
        connection_class=_MasterConnection,
        **kwargs,
    )
    master.sentinel_manager = sentinel
    return master


def connect_sync(target: str | RedisSettings, *, decode: bool = True) -> redis.Redis:
    """A blocking client of the master (for one-shot commands), bounded by timeouts.

    With ``decode=False`` replies stay bytes (``DUMP`` payloads are binary).
    """
    settings = _settings(target)
    kwargs = {
        **_client_kwargs(settings),
        "decode_responses": decode,
        "socket_timeout": ONE_SHOT_TIMEOUT_S,
        "retry": Retry(_backoff(), RETRIES),
    }
    if settings.url is not None:
        client: redis.Redis = redis.Redis.from_url(settings.url, **kwargs)
        return client
    sentinel = Sentinel(
        [(s.host, s.port) for s in settings.sentinels],
        sentinel_kwargs=_sentinel_kwargs(asynchronous=False),
    )  # type: ignore[no-untyped-call]
    master: _SyncSentinelMaster = sentinel.master_for(  # type: ignore[no-untyped-call]
        str(settings.master),
        redis_class=_SyncSentinelMaster,
        connection_class=_SyncMasterConnection,
        **kwargs,
    )
    master.sentinel_manager = sentinel
    return master


async def eval_durably(
    client: aioredis.Redis,
    wait: ReplicaWait,
    source: str,
    args: Sequence[str | int | float],
    keys: Sequence[str] = (),
) -> Any:
    """Run the Lua ``source`` and ``WAIT`` on one connection; raise when not durable."""
    async with client.pipeline(transaction=False) as pipe:
        pipe.eval(source, len(keys), *keys, *args)
        pipe.execute_command("WAIT", wait.replicas, wait.timeout_ms)
        try:
            result, acknowledged = await pipe.execute()
        except ResponseError as exc:
            if "WAIT cannot be used with replica" not in str(exc):
                raise
            raise ReplicationError(
                "the Redis master was demoted to a replica during the write, so it is not "
                "durable; retry (the client reconnects to the new master)"
            ) from exc
    wait.check(int(acknowledged))
    return result


# Command line


def host_port_arg(text: str) -> HostPort:
    """An argparse type for ``HOST:PORT``."""
    try:
        return HostPort.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int_at_least(minimum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return value

    return parse


def add_redis_arguments(parser: argparse.ArgumentParser, *, wait: bool = True) -> None:
    """Add the flags that say how to reach Redis (and, with ``wait``, the write WAIT)."""
    group = parser.add_argument_group("Redis (give --redis-url, or --redis-sentinel)")
    group.add_argument("--redis-url", metavar="URL", help="the Redis master, redis://HOST:PORT/DB")
    group.add_argument(
        "--redis-sentinel",
        action="append",
        type=host_port_arg,
        metavar="HOST:PORT",
        help="a Sentinel to ask for the master (repeat for each sentinel)",
    )
    group.add_argument("--redis-master", metavar="NAME", help="the master name sentinels monitor")
    if not wait:
        return
    group.add_argument(
        "--redis-wait-replicas",
        type=_int_at_least(0),
        default=0,
        metavar="N",
        help="acknowledge a write only once N replicas have it (WAIT); default 0",
    )
    group.add_argument(
        "--redis-wait-timeout-ms",
        type=_int_at_least(1),
        default=DEFAULT_WAIT_TIMEOUT_MS,
        metavar="MS",
        help=f"how long a write waits for the replicas; default {DEFAULT_WAIT_TIMEOUT_MS}",
    )


def redis_settings(args: argparse.Namespace) -> RedisSettings:
    """The :class:`RedisSettings` of parsed flags; ValueError naming the problem."""
    replicas = int(getattr(args, "redis_wait_replicas", 0) or 0)
    timeout_ms = int(getattr(args, "redis_wait_timeout_ms", DEFAULT_WAIT_TIMEOUT_MS))
    return RedisSettings(
        url=getattr(args, "redis_url", None),
        sentinels=tuple(getattr(args, "redis_sentinel", None) or ()),
        master=getattr(args, "redis_master", None),
        wait=ReplicaWait(replicas=replicas, timeout_ms=timeout_ms) if replicas else None,
    )
