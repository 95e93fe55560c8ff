"""The audit writer: appends sealed, chained records to Redis, safely across many writers.

Redis keys (under ``refplat:audit:``): ``log`` (list of record lines, oldest first), ``head``
(``seq:hexhash`` of the newest record; absent = genesis) and ``base`` (the chain point the
list starts after, advanced by :mod:`refplat.auditarchive`; absent = genesis).

Concurrency: an append is optimistic compare-and-set. The writer reads ``head`` and the Redis
``TIME``, seals the event as seq ``head.seq + 1`` chained after ``head.hash`` (encryption and
SHA-256 must run in the client: the key must never reach Redis, and Redis Lua has no
SHA-256), then one Lua script appends the line and moves ``head`` only if ``head`` is still
what the writer read; otherwise the writer re-reads and re-seals. So seqs are assigned
atomically in Redis, gap-free and in list order, across any number of api replicas and
controllers, and a writer that dies mid-append leaves nothing behind (an INCR-first design
would leave a gap that the verifier must report as a removal).

:class:`AuditLog.record` never raises: a failed append is logged and counted in
``refplat_audit_write_errors_total``; the mutation it describes has already happened.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, Counter

from refplat.audit import AuditAction, AuditEvent, ChainPoint, KeyRing, seal
from refplat.redisconn import ReplicaWait, eval_durably

log = logging.getLogger(__name__)

LOG_KEY = "refplat:audit:log"
HEAD_KEY = "refplat:audit:head"
BASE_KEY = "refplat:audit:base"
MAX_ATTEMPTS = 50
APPEND_TIMEOUT_S = 5.0
RETRY_JITTER_S = 0.002

APPEND = """
local head = redis.call('GET', KEYS[1])
if (head or '') ~= ARGV[1] then return 0 end
redis.call('RPUSH', KEYS[2], ARGV[2])
redis.call('SET', KEYS[1], ARGV[3])
return 1
"""


class AuditWriteError(RuntimeError):
    """An audit event could not be appended."""


class AuditSink(Protocol):
    """Where the api and the controller send audit events."""

    async def record(
        self,
        *,
        actor: str,
        action: AuditAction,
        object_id: str,
        details: Mapping[str, str] | None = None,
    ) -> None:
        """Append one event; never raise."""


class NoAudit:
    """The sink when auditing is off: drops every event."""

    async def record(
        self,
        *,
        actor: str,
        action: AuditAction,
        object_id: str,
        details: Mapping[str, str] | None = None,
    ) -> None:
        """Drop the event."""


def admin_or_tenant(tenant: str | None) -> str:
    """The actor of an api request: ``admin`` or ``tenant:<id>``."""
    return "admin" if tenant is None else f"tenant:{tenant}"


def controller_actor(controller_id: str, epoch: int) -> str:
    """The actor of a controller decision: ``controller:<id>@<epoch>``."""
    return f"controller:{controller_id}@{epoch}"


class KeyFile:
    """A key file, re-read whenever it changes on disk (so rotation needs no restart)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._stamp = self._stat()
        self._keys = KeyRing.load(path)

    def _stat(self) -> tuple[int, int]:
        stat = os.stat(self._path)
        return stat.st_mtime_ns, stat.st_size

    def keys(self) -> KeyRing:
        """The key ring as the file holds it now."""
        stamp = self._stat()
        if stamp != self._stamp:
            self._keys, self._stamp = KeyRing.load(self._path), stamp
            log.info("audit key file %s reloaded; current key %s", self._path, self._keys.current)
        return self._keys


class AuditLog:
    """The Redis audit log of one process."""

    def __init__(
        self,
        *,
        redis: aioredis.Redis,
        key_file: Path,
        registry: CollectorRegistry,
        wait: ReplicaWait | None = None,
    ) -> None:
        self._redis = redis
        self._wait = wait
        self._key_file = KeyFile(key_file)
        self._append = redis.register_script(APPEND)
        self.written = Counter("refplat_audit_events", "Audit events appended.", registry=registry)
        self.write_errors = Counter(
            "refplat_audit_write_errors",
            "Audit events that could not be appended.",
            registry=registry,
        )

    async def record(
        self,
        *,
        actor: str,
        action: AuditAction,
        object_id: str,
        details: Mapping[str, str] | None = None,
    ) -> None:
        """Append one event; on failure log it and count it, never raise."""
        try:
            await asyncio.wait_for(
                self.append(actor=actor, action=action, object_id=object_id, details=details),
                APPEND_TIMEOUT_S,
            )
        except Exception as exc:
            self.write_errors.inc()
            log.error("audit event %s %s by %s was not written: %s", action, object_id, actor, exc)
        else:
            self.written.inc()

    async def append(
        self,
        *,
        actor: str,
        action: AuditAction,
        object_id: str,
        details: Mapping[str, str] | None = None,
    ) -> int:
        """Append one event and return its seq; raise AuditWriteError under endless contention."""
        for attempt in range(MAX_ATTEMPTS):
            head_text, (seconds, micros) = await self._head_and_time()
            head = ChainPoint.parse(head_text)
            event = AuditEvent(
                seq=head.seq + 1,
                time=seconds + micros / 1e6,
                actor=actor,
                action=action.value,
                object_id=object_id,
                details=dict(details or {}),
            )
            record = seal(event, keys=self._key_file.keys(), prev=head.hash)
            new_head = ChainPoint(seq=record.seq, hash=record.chain_hash())
            args = [head_text or "", record.to_line(), new_head.text()]
            if await self._run_append(args):
                return record.seq
            await asyncio.sleep(random.uniform(0, RETRY_JITTER_S * (attempt + 1)))
        raise AuditWriteError(f"the audit head moved on each of {MAX_ATTEMPTS} attempts")

    async def _run_append(self, args: list[str]) -> Any:
        """The append script; with a replica wait, acknowledged only once replicated."""
        if self._wait is None:
            return await self._append(keys=[HEAD_KEY, LOG_KEY], args=args)
        return await eval_durably(self._redis, self._wait, APPEND, args, keys=[HEAD_KEY, LOG_KEY])

    async def _head_and_time(self) -> tuple[str | None, tuple[int, int]]:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(HEAD_KEY)
            pipe.time()
            head, now = await pipe.execute()
        text = head.decode() if isinstance(head, bytes) else head
        return text, (int(now[0]), int(now[1]))


def audit_sink(
    *,
    redis: aioredis.Redis,
    key_file: Path | None,
    registry: CollectorRegistry,
    wait: ReplicaWait | None = None,
) -> AuditSink:
    """An :class:`AuditLog` when a key file is given, else :class:`NoAudit`."""
    if key_file is None:
        return NoAudit()
    return AuditLog(redis=redis, key_file=key_file, registry=registry, wait=wait)
