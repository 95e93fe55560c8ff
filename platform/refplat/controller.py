"""The controller: one leader (see :mod:`refplat.lease`) runs a level-triggered reconcile loop.

Each pass lists nodes and due sessions, refreshes its cache of servers (an informer: only
changed servers are re-read, see :mod:`refplat.informer`), derives the work keys, and
reconciles each key with one fenced Lua script: a lost node releases its servers (back to
Creating; Stopped ones stay Stopped without a node) and ends their sessions (ServerLost) or,
by policy, moves each to a Ready server of its tenant and region; a server whose Pod was lost
(kube runtime: Unhealthy with ``lost`` set) is released the same way, alone; a Creating server is
scheduled onto the live node with the fewest servers; a due session ends (Expired); a
Shutdown server no live agent will remove is deleted. With a data directory, the world
files of ended sessions are deleted too (see :mod:`refplat.worldfiles`); with an archive
directory, the leader moves the audit log into compressed segments every interval (see
:mod:`refplat.auditarchive`). A failed key backs off; a fenced write makes the controller
step down.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import redis
from aiohttp import web

from refplat.audit import AuditAction, KeyRing
from refplat.auditarchive import archive
from refplat.auditlog import audit_sink, controller_actor
from refplat.backoff import KeyBackoff
from refplat.census import take_census
from refplat.datadir import DataDir
from refplat.informer import ALL_SERVERS, CONTROLLER_DIRTY, ServerInformer
from refplat.lease import Lease, Term
from refplat.metrics import ControllerMetrics, metrics_handler
from refplat.model import GameServer, GameServerState, Node, NodeState
from refplat.quota import Quota
from refplat.runtime import HostPort, run_until_stopped, serving, sleep_or_stop
from refplat.store import FencedError, Store
from refplat.worldfiles import sweep_ended

log = logging.getLogger(__name__)

RELEASE_TIMEOUT_S = 0.5
FULL_RELIST_S = 10.0  # the informer lists every server at least this often
# Failover: the standby acquires within lease TTL + one renew interval of the leader's
# last renewal (<= 3.5 s), then reconciles at once; the target is <= 5 s.
DEFAULT_LEASE_TTL_S = 3.0
DEFAULT_RENEW_INTERVAL_S = 0.5
# A node is Lost within this plus one reconcile interval of its last heartbeat (target <= 10 s).
DEFAULT_HEARTBEAT_TIMEOUT_S = 8.0


class LostSessionPolicy(enum.Enum):
    """What happens to a session whose server's node was lost."""

    END = "end"  # it ends ServerLost
    REPLACE = "replace"  # it moves to a Ready server of its tenant and region, else ends


@dataclass(frozen=True)
class ControllerSettings:
    """Command-line settings of one controller replica."""

    controller_id: str
    listen: HostPort
    lease_ttl_s: float = DEFAULT_LEASE_TTL_S
    renew_interval_s: float = DEFAULT_RENEW_INTERVAL_S
    heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S
    reconcile_interval_s: float = 0.5
    audit_key_file: Path | None = None
    data_dir: Path | None = None
    lost_session_policy: LostSessionPolicy = LostSessionPolicy.END
    audit_archive_dir: Path | None = None
    audit_archive_interval_s: float = 60.0


class LeaderLease(Protocol):
    """A leader lease: :class:`refplat.lease.Lease` (Redis) or ``refplat.kubelease.KubeLease``."""

    @property
    def term(self) -> Term | None: ...
    async def tick(self) -> bool: ...
    def step_down(self, *, reason: str) -> None: ...
    async def release(self) -> None: ...


class KeyKind(enum.Enum):
    """What a work key asks the controller to converge."""

    NODE_LOST = "NODE_LOST"
    SERVER_LOST = "SERVER_LOST"
    SCHEDULE = "SCHEDULE"
    EXPIRE_SESSION = "EXPIRE_SESSION"
    REMOVE_ORPHAN = "REMOVE_ORPHAN"


@dataclass(frozen=True)
class WorkKey:
    """One unit of reconcile work, named by kind and object id."""

    kind: KeyKind
    name: str


class Controller:
    """A controller replica: lease loop, reconcile loop and status endpoint."""

    def __init__(
        self,
        *,
        store: Store,
        settings: ControllerSettings,
        archive_redis: redis.Redis | None = None,
        lease: LeaderLease | None = None,
    ) -> None:
        if settings.audit_archive_dir is not None and (
            settings.audit_key_file is None or archive_redis is None
        ):
            raise ValueError("archiving the audit log needs --audit-key-file")
        self._archive_redis = archive_redis
        self._store = store
        self._settings = settings
        self._lease: LeaderLease = lease or Lease(
            store=store, holder=settings.controller_id, ttl_s=settings.lease_ttl_s
        )
        self.metrics = ControllerMetrics()
        self._backoff = KeyBackoff()
        self._wake = asyncio.Event()
        self._term_reconciled: Term | None = None
        self._published: Term | None = None
        self._live_counts: dict[str, int] = {}
        self._informer = ServerInformer(
            store,
            dirty_key=CONTROLLER_DIRTY,
            index_key=ALL_SERVERS,
            belongs=lambda _server: True,
            full_every_s=FULL_RELIST_S,
        )
        self._informer_term: Term | None = None
        # A new leader counts a node's silence from its own first pass at the latest (as the
        # Kubernetes node-lifecycle controller counts from when it saw a heartbeat): across a
        # failover, heartbeats could not be written either, and none of them is a node's loss.
        self._grace_term: Term | None = None
        self._grace_from = 0.0
        self._audit = audit_sink(
            redis=store.redis,
            key_file=settings.audit_key_file,
            registry=self.metrics.registry,
            wait=store.wait,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then release the lease."""
        async with serving(self.web_app(), self._settings.listen):
            loops = [self._lease_loop, self._reconcile_loop]
            if self._settings.audit_archive_dir is not None:
                loops.append(self._archive_loop)
            await run_until_stopped(stop, *loops)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._lease.release(), RELEASE_TIMEOUT_S)
            if self._archive_redis is not None:
                self._archive_redis.close()
        self._publish(None)

    def web_app(self) -> web.Application:
        """The HTTP app: /healthz, /status, /metrics."""
        app = web.Application()
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/status", self._status)
        app.router.add_get("/metrics", metrics_handler(self.metrics.registry))
        return app

    async def _status(self, _request: web.Request) -> web.Response:
        term = self._lease.term
        return web.json_response(
            {
                "id": self._settings.controller_id,
                "leader": term is not None,
                "epoch": term.epoch if term else None,
                "pid": os.getpid(),
            }
        )

    async def _lease_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            held_before = self._lease.term is not None
            try:
                held = await self._lease.tick()
            except Exception as exc:
                log.warning("lease renewal failed: %s", exc)
                held = self._lease.term is not None
            if held and not held_before:
                self._wake.set()
            self._publish(self._lease.term)
            if await sleep_or_stop(stop, self._settings.renew_interval_s):
                return

    async def _reconcile_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            term = self._lease.term
            if term is not None:
                await self._reconcile_as(term)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._settings.reconcile_interval_s)
            self._wake.clear()

    async def _archive_loop(self, stop: asyncio.Event) -> None:
        """As leader, move the audit log from Redis into a compressed segment every interval."""
        while not await sleep_or_stop(stop, self._settings.audit_archive_interval_s):
            if self._lease.term is not None:
                await self.archive_audit_log()

    async def archive_audit_log(self) -> int:
        """Archive the audit records now in Redis (verified first); return how many moved."""
        directory, key_file = self._settings.audit_archive_dir, self._settings.audit_key_file
        assert directory is not None and key_file is not None and self._archive_redis is not None
        try:
            keys = KeyRing.load(key_file)
            path, moved = await asyncio.to_thread(
                archive, self._archive_redis, keys=keys, directory=directory
            )
        except Exception as exc:
            self.metrics.audit_archive_errors.inc()
            log.warning("archiving the audit log failed: %s", exc)
            return 0
        if path is not None:
            self.metrics.audit_archived.inc(moved)
            log.info("archived %d audit records to %s", moved, path)
        return moved

    async def _reconcile_as(self, term: Term) -> None:
        started = time.perf_counter()
        try:
            await self.reconcile_pass(term)
        except FencedError as exc:
            self.metrics.fencing_rejections.inc()
            self._lease.step_down(reason=str(exc))
        except Exception as exc:
            self._informer.invalidate()
            self.metrics.reconcile_errors.labels(scope="pass").inc()
            log.warning("reconcile pass failed: %s", exc)
        else:
            self._completed(term)
        self.metrics.reconcile_duration.observe(time.perf_counter() - started)
        self._publish(self._lease.term)

    def _completed(self, term: Term) -> None:
        now = time.time()
        self.metrics.reconciles.inc()
        self.metrics.last_reconcile.set(now)
        if self._term_reconciled != term:
            self._term_reconciled = term
            self.metrics.first_reconcile.set(now)
            log.info("first reconcile of epoch %d completed", term.epoch)

    def _publish(self, term: Term | None) -> None:
        previous, self._published = self._published, term
        if previous is not None and previous != term:
            self.metrics.leader_changes.labels(event="lost").inc()
        if term is not None and previous != term:
            self.metrics.leader_changes.labels(event="acquired").inc()
        if term is None:
            self.metrics.census.clear()
        self.metrics.is_leader.set(1 if term else 0)
        self.metrics.epoch.set(term.epoch if term else 0)
        if term is None or self._term_reconciled != term:
            self.metrics.first_reconcile.set(0)
        if term is None:
            self._term_reconciled = None

    async def reconcile_pass(self, term: Term) -> None:
        """List the world once and reconcile every key derived from it."""
        nodes = await self._store.list_nodes()
        now = await self._store.redis_time()
        if self._grace_term != term:
            self._grace_term, self._grace_from = term, now
        live = [n for n in nodes if self._is_live(n, now)]
        keys = [
            WorkKey(KeyKind.NODE_LOST, n.name)
            for n in nodes
            if n.state is NodeState.LIVE and n not in live
        ]
        if self._informer_term != term:  # the cache may have gone stale while not leading
            self._informer.invalidate()
            self._informer_term = term
        await self._informer.refresh()
        servers = list(self._informer.servers.values())
        keys += [WorkKey(k, s.id) for s in servers if (k := _server_key(s)) is not None]
        keys += [WorkKey(KeyKind.EXPIRE_SESSION, sid) for sid in await self._store.due_sessions()]
        census = await take_census(self._store, nodes=nodes, servers=servers, now=now)
        self.metrics.census.publish(census)
        self._live_counts = await self._store.node_server_counts([n.name for n in live])
        self._backoff.retain(keys)
        due = [key for key in keys if self._backoff.due(key)]
        self.metrics.work_queue_depth.labels(state="due").set(len(due))
        for key in due:
            await self._reconcile_key(term, key)
        self.metrics.work_queue_depth.labels(state="backoff").set(len(self._backoff))
        if self._settings.data_dir is not None:
            await sweep_ended(quota=Quota(store=self._store), data=DataDir(self._settings.data_dir))

    def _is_live(self, node: Node, now: float) -> bool:
        fresh = now - max(node.heartbeat_at, self._grace_from) <= self._settings.heartbeat_timeout_s
        return node.state is NodeState.LIVE and fresh

    async def _reconcile_key(self, term: Term, key: WorkKey) -> None:
        try:
            await self.reconcile(term, key)
        except FencedError:
            raise
        except Exception as exc:
            delay = self._backoff.failed(key)
            self.metrics.reconcile_errors.labels(scope="key").inc()
            log.warning(
                "reconcile of %s %s failed, retry in %.1f s: %s",
                key.kind.value,
                key.name,
                delay,
                exc,
            )
        else:
            self._backoff.forget(key)

    async def reconcile(self, term: Term, key: WorkKey) -> None:
        """Converge one key with one fenced script (a no-op when already converged)."""
        fence = (term.holder, term.epoch)
        if key.kind is KeyKind.NODE_LOST:
            await self._node_lost(fence, key.name)
        elif key.kind is KeyKind.SERVER_LOST:
            await self._server_lost(fence, key.name)
        elif key.kind is KeyKind.SCHEDULE:
            await self._schedule(fence, key.name)
        elif key.kind is KeyKind.EXPIRE_SESSION:
            if await self._store.run("CTL_EXPIRE_SESSION", *fence, key.name):
                log.info("session %s expired", key.name)
                await self._audited(fence, AuditAction.CONTROLLER_SESSION_EXPIRED, key.name)
        elif await self._store.run("CTL_REMOVE_ORPHAN", *fence, key.name):
            log.info("removed shutdown server %s that had no live node", key.name)
            await self._audited(fence, AuditAction.CONTROLLER_REMOVE_ORPHAN, key.name)

    async def _node_lost(self, fence: tuple[str, int], node: str) -> None:
        timeout = self._settings.heartbeat_timeout_s
        policy = self._settings.lost_session_policy.value
        changed, replaced, ended = await self._store.run(
            "CTL_NODE_LOST", *fence, node, timeout, policy, self._grace_from
        )
        if not changed:
            return
        log.warning(
            "node %s lost its heartbeat; its servers go back to Creating; sessions re-placed: %d,"
            " ended ServerLost: %d",
            node,
            len(replaced),
            len(ended),
        )
        await self._audited(fence, AuditAction.CONTROLLER_NODE_LOST, node)
        await self._audit_replaced(fence, replaced)

    async def _server_lost(self, fence: tuple[str, int], server_id: str) -> None:
        """A server whose Pod was lost (kube runtime) is handled as one of a lost node's."""
        policy = self._settings.lost_session_policy.value
        changed, replaced, ended = await self._store.run(
            "CTL_SERVER_LOST", *fence, server_id, policy
        )
        if not changed:
            return
        log.warning(
            "server %s lost its pod; it goes back to Creating; sessions re-placed: %d,"
            " ended ServerLost: %d",
            server_id,
            len(replaced),
            len(ended),
        )
        await self._audited(fence, AuditAction.CONTROLLER_SERVER_LOST, server_id)
        await self._audit_replaced(fence, replaced)

    async def _audit_replaced(self, fence: tuple[str, int], replaced: list[Any]) -> None:
        for session_id in replaced:
            await self._audited(fence, AuditAction.CONTROLLER_SESSION_REPLACED, str(session_id))

    async def _schedule(self, fence: tuple[str, int], server_id: str) -> None:
        if not self._live_counts:
            return
        node = min(self._live_counts, key=lambda name: (self._live_counts[name], name))
        if await self._store.run("CTL_SCHEDULE", *fence, server_id, node):
            self._live_counts[node] += 1
            log.info("scheduled server %s onto node %s", server_id, node)
            await self._audited(fence, AuditAction.CONTROLLER_SCHEDULE, server_id, node=node)

    # Audit hook (see refplat.auditlog): one event per decision that changed state.

    async def _audited(
        self, fence: tuple[str, int], action: AuditAction, object_id: str, **details: str
    ) -> None:
        actor = controller_actor(*fence)
        await self._audit.record(actor=actor, action=action, object_id=object_id, details=details)


def _server_key(server: GameServer) -> KeyKind | None:
    if server.state is GameServerState.CREATING and server.node is None:
        return KeyKind.SCHEDULE
    if server.state is GameServerState.SHUTDOWN:
        return KeyKind.REMOVE_ORPHAN
    if server.state is GameServerState.UNHEALTHY and server.lost:
        return KeyKind.SERVER_LOST
    return None


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
