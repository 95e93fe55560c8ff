"""The node agent: heartbeats for its node and runs the game servers assigned to it.

Every poll it reads the servers that changed on its node (``refplat:node:{name}:dirty``,
with a full list of ``refplat:node:{name}:servers`` every ``FULL_SYNC_S``) and converges its
local listeners on them (the transitions are those of :mod:`refplat.states`, owner ``agent``):

- a Starting server gets a Server List Ping listener (kernel-chosen port) and is set Ready
  by compare-and-set, or Error when the listener cannot be started;
- a Ready or Allocated server without a local listener (after an agent restart), or with a
  restart requested, gets a new listener on a new port (opened before the old one closes),
  and the port moves (an Allocated server's session follows);
- a Ready or Allocated server whose listener fails the self check is set Unhealthy. The check
  runs every ``health_interval_s``: the listener must serve and its socket must be listening
  in the kernel; every ``CONNECT_CHECK_EVERY``-th check also opens a connection to it (a
  connection per server per interval cost ~0.1 core per 1,000 servers);
- a Stopped, Unhealthy, Error or Creating server loses its listener; a Shutdown server loses
  its listener and its record; a server no longer assigned here loses its listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import resource
import socket
from dataclasses import dataclass

from aiohttp import web

from refplat.informer import node_informer
from refplat.metrics import AgentMetrics, metrics_handler
from refplat.model import GameServer, GameServerState
from refplat.runtime import HostPort, run_until_stopped, serving, sleep_or_stop
from refplat.slp import StatusInfo, bound_port, start_listener
from refplat.store import Store

log = logging.getLogger(__name__)

PROTOCOL_BY_VERSION = {"1.20.4": 765, "1.20.6": 766, "1.21": 767, "1.21.1": 767}
DEFAULT_PROTOCOL = 767
MAX_PLAYERS = 1
SELF_CHECK_TIMEOUT_S = 1.0
CONNECT_CHECK_EVERY = 6  # with the default 5 s interval: a real connection every 30 s
FULL_SYNC_S = 10.0  # a full list of the node's servers at least this often (see Agent.sync)
RUNNING_STATES = frozenset({GameServerState.READY, GameServerState.ALLOCATED})


@dataclass(frozen=True)
class AgentSettings:
    """Command-line settings of one node agent."""

    node: str
    address: str
    listen: HostPort
    heartbeat_interval_s: float = 1.0
    poll_interval_s: float = 0.3
    health_interval_s: float = 5.0


def status_of(server: GameServer) -> StatusInfo:
    """What a game server answers to a status request."""
    return StatusInfo(
        version_name=server.version,
        protocol=PROTOCOL_BY_VERSION.get(server.version, DEFAULT_PROTOCOL),
        players_online=1 if server.state is GameServerState.ALLOCATED else 0,
        players_max=MAX_PLAYERS,
        description=f"refplat game server {server.id}",
    )


class Agent:
    """One node agent process."""

    def __init__(self, *, store: Store, settings: AgentSettings) -> None:
        self._store = store
        self._settings = settings
        self.metrics = AgentMetrics()
        self._listeners: dict[str, asyncio.Server] = {}
        self._status: dict[str, StatusInfo] = {}
        self._checked_at: dict[str, float] = {}
        self._checks: dict[str, int] = {}  # self checks run per server (see _self_check)
        self._informer = node_informer(store, settings.node, full_every_s=FULL_SYNC_S)

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then close every listener."""
        raise_open_files_limit()
        async with serving(self.web_app(), self._settings.listen):
            await run_until_stopped(stop, self._heartbeat_loop, self._sync_loop)
            self.close()

    def close(self) -> None:
        """Close every game-server listener of this agent."""
        for server_id in list(self._listeners):
            self._close(server_id)

    def web_app(self) -> web.Application:
        """The HTTP app: /healthz and /metrics."""
        app = web.Application()
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/metrics", metrics_handler(self.metrics.registry))
        return app

    async def _heartbeat_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._store.run("HEARTBEAT", self._settings.node, self._settings.address)
                self.metrics.heartbeats.inc()
            except Exception as exc:
                self.metrics.heartbeat_failures.inc()
                log.warning("heartbeat of node %s failed: %s", self._settings.node, exc)
            if await sleep_or_stop(stop, self._settings.heartbeat_interval_s):
                return

    async def _sync_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sync()
            except Exception as exc:
                self.metrics.sync_errors.inc()
                log.warning("sync of node %s failed: %s", self._settings.node, exc)
            if await sleep_or_stop(stop, self._settings.poll_interval_s):
                return

    async def sync(self) -> None:
        """Converge local listeners on the servers assigned to this node.

        A watch, not a poll of everything (see :mod:`refplat.informer`): each sync re-reads
        only the servers marked dirty for this node, converges those, and runs the due
        health checks of the others from the cache; after a failed sync it lists everything.
        """
        try:
            changed = await self._informer.refresh()
            for server in list(self._informer.servers.values()):
                if server.id in changed or self._health_due(server):
                    await self._converge(server)
        except Exception:
            self._informer.invalidate()
            raise
        for server_id in [sid for sid in self._listeners if sid not in self._informer.servers]:
            self._close(server_id)
        self.metrics.game_servers.set(len(self._listeners))

    def _health_due(self, server: GameServer) -> bool:
        if server.state not in RUNNING_STATES:
            return False
        last = self._checked_at.get(server.id, 0.0)
        return asyncio.get_running_loop().time() - last >= self._settings.health_interval_s

    async def _converge(self, server: GameServer) -> None:
        if server.state is GameServerState.STARTING:
            await self._start(server)
        elif server.state in RUNNING_STATES:
            await self._keep_running(server)
        else:
            self._close(server.id)
            if server.state is GameServerState.SHUTDOWN:
                await self._store.run("REMOVE_SHUTDOWN", server.id, self._settings.node)
                log.info("game server %s shut down and removed", server.id)
        if server.id in self._listeners:
            self._status[server.id] = status_of(server)

    async def _start(self, server: GameServer) -> None:
        node = self._settings.node
        listener = self._listeners.get(server.id)
        if listener is not None and not listener.is_serving():
            self._close(server.id)
        try:
            port = await self._ensure_listener(server)
        except OSError as exc:
            if await self._store.run("MARK_ERROR", server.id, node):
                log.warning("game server %s is in Error: no listener: %s", server.id, exc)
            return
        if await self._store.run("MARK_READY", server.id, node, port):
            log.info("game server %s is Ready on port %d", server.id, port)

    async def _keep_running(self, server: GameServer) -> None:
        node = self._settings.node
        listener = self._listeners.get(server.id)
        if listener is not None and not await self._self_check(server.id, listener):
            if await self._store.run("MARK_UNHEALTHY", server.id, node):
                log.warning("game server %s is Unhealthy: its listener fails", server.id)
            self._close(server.id)
            return
        if listener is not None and server.restart is None:
            return
        try:
            port = await self._recycle(server)
        except OSError as exc:
            if await self._store.run("MARK_UNHEALTHY", server.id, node):
                log.warning("game server %s is Unhealthy: no listener: %s", server.id, exc)
            return
        await self._store.run("MOVE_PORT", server.id, node, port, server.restart or "")
        log.info("game server %s restarted on port %d", server.id, port)

    async def _self_check(self, server_id: str, listener: asyncio.Server) -> bool:
        """Whether the listener serves and accepts a connection (every health interval)."""
        if not listener.is_serving():
            return False
        now = asyncio.get_running_loop().time()
        if now - self._checked_at.get(server_id, 0.0) < self._settings.health_interval_s:
            return True
        self._checked_at[server_id] = now
        count = self._checks.get(server_id, 0) + 1
        self._checks[server_id] = count
        if count % CONNECT_CHECK_EVERY != 0:
            return _listening(listener)
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self._settings.address, bound_port(listener)),
                SELF_CHECK_TIMEOUT_S,
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True

    async def _recycle(self, server: GameServer) -> int:
        """A new listener (a new port) for the server; the old one closes after."""
        old = self._listeners.pop(server.id, None)
        try:
            return await self._ensure_listener(server)
        finally:
            if old is not None:
                old.close()

    async def _ensure_listener(self, server: GameServer) -> int:
        listener = self._listeners.get(server.id)
        if listener is None:
            initial = status_of(server)
            self._status[server.id] = initial
            listener = await start_listener(
                host=self._settings.address,
                port=0,
                status=functools.partial(self._status_for, server.id, initial),
            )
            self._listeners[server.id] = listener
            self._checked_at[server.id] = asyncio.get_running_loop().time()
        return bound_port(listener)

    def _status_for(self, server_id: str, fallback: StatusInfo) -> StatusInfo:
        self.metrics.status_requests.inc()
        return self._status.get(server_id, fallback)

    def _close(self, server_id: str) -> None:
        listener = self._listeners.pop(server_id, None)
        if listener is not None:
            listener.close()
            log.info("closed the listener of game server %s", server_id)
        self._status.pop(server_id, None)
        self._checked_at.pop(server_id, None)
        self._checks.pop(server_id, None)


def _listening(listener: asyncio.Server) -> bool:
    """Whether every socket of ``listener`` is open and listening in the kernel."""
    try:
        return all(
            sock.fileno() != -1 and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
            for sock in listener.sockets
        )
    except OSError:
        return False


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit (one descriptor per listener); log it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if resource.RLIM_INFINITY not in (soft, hard) and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open files limit from %d: %s", soft, exc)
    log.info("open files limit %d (about that many game servers fit on this node)", soft)
    return soft


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
