"""The kube runtime: a node of the platform whose game servers are Pods in one namespace.

It takes the node agent's place (see :mod:`refplat.agent`) for one platform node: it heartbeats
the node, so the controller schedules servers onto it and its lost-node logic keeps working, and
it converges the Pods of the node's servers, level-triggered, from two caches: the servers
(an informer on ``refplat:node:{name}:dirty``, see :mod:`refplat.informer`) and the Pods (a
real watch with resourceVersion resume and a relist on 410 Gone, see :mod:`refplat.kubewatch`).
A pass runs on every change of either, at least every ``poll_interval_s``, and after a failure
waits with exponential backoff; a failed server backs off on its own. Each pass maps every
server of the node, with its Pod, to one action (agent-owned transitions of
:mod:`refplat.states`):

- Starting without a Pod: create one (see :mod:`refplat.kubepod`); Starting with a Running and
  Ready Pod: Ready, with the Pod's IP as address and the game port (``POD_READY``: the same
  transition and checks as ``MARK_READY``, which cannot set the address); Starting with a
  failed Pod, or a Pod the apiserver refuses: Error (``MARK_ERROR``);
- Ready or Allocated whose Pod is gone (deleted or being deleted, evicted, failed): a lost
  server (``POD_LOST``: Unhealthy with ``lost`` set; it leaves the Ready pool and keeps its
  session), and the Pod is deleted; the controller then handles it as a server of a lost node
  (back to Creating, scheduled again, so a new Pod replaces the old; its session re-placed or
  ended by policy);
- Ready or Allocated whose Pod is Running but no longer Ready: Unhealthy (``MARK_UNHEALTHY``,
  as a listener that stopped serving on the local runtime: its session ends ServerLost), and
  the Pod is deleted; a restart through the api brings a new Pod;
- Stopped, Unhealthy, Error: no Pod; Shutdown: no Pod, then the record goes
  (``REMOVE_SHUTDOWN``); a Pod of a server no longer on this node is deleted.

If the apiserver has not answered for ``API_STALE_S`` the runtime stops heartbeating, so the
controller declares the node lost and its servers go back to Creating.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web
from kubernetes import client as k8s

from refplat.backoff import KeyBackoff
from refplat.informer import node_informer
from refplat.kubepod import (
    GAME_PORT,
    NODE_LABEL,
    SERVER_ID_LABEL,
    PodSpecSettings,
    owner_config_map,
    pod_manifest,
)
from refplat.kubewatch import CALL_TIMEOUT_S, PodView, PodWatch
from refplat.metrics import AgentMetrics, metrics_handler
from refplat.model import GameServer, GameServerState
from refplat.runtime import HostPort, run_until_stopped, serving, sleep_or_stop
from refplat.scripts import script
from refplat.states import Owner
from refplat.store import Store

log = logging.getLogger(__name__)

API_STALE_S = 20.0  # no answer from the apiserver for this long: stop heartbeating
PASS_BACKOFF_S = (0.2, 10.0)
FULL_SYNC_S = 10.0
MAX_CALLS_IN_FLIGHT = 8
# Servers converged at once in a pass. Unbounded, a pass over thousands of servers that turn
# Ready together opened one Redis connection per server and hit the pool's limit ("Too many
# connections"), each failure then backing off: at 1,000 Pods most servers lost seconds.
MAX_STEPS_IN_FLIGHT = 32
PERMANENT_STATUSES = frozenset({400, 403, 404, 422})  # a create that will not succeed by waiting
RUNNING = frozenset({GameServerState.READY, GameServerState.ALLOCATED})

POD_READY = script(
    """
local sid, node, port, address = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local key = skey(sid)
if hget(key, 'state') ~= 'Starting' or hget(key, 'node') ~= node then return 0 end
bump(key, 'state', 'Ready', 'address', address, 'port', port, 'restart', '')
ready_add(key, sid)
return 1
""",
    owner=Owner.AGENT,
)


@dataclass(frozen=True)
class KubeRuntimeSettings:
    """Command-line settings of one kube runtime."""

    node: str
    namespace: str
    listen: HostPort
    pod: PodSpecSettings
    heartbeat_interval_s: float = 1.0
    poll_interval_s: float = 0.5


class KubeRuntime:
    """One kube runtime process: heartbeats, the Pod watch and the converge loop."""

    def __init__(self, *, store: Store, api: k8s.ApiClient, settings: KubeRuntimeSettings) -> None:
        self._store = store
        self._api = api
        self._core = k8s.CoreV1Api(api)
        self._settings = settings
        self.metrics = AgentMetrics()
        self.pods: dict[str, PodView] = {}
        self._synced = False
        self._owner: dict[str, Any] = {}
        self._wake = asyncio.Event()
        self._backoff = KeyBackoff()
        self._calls = asyncio.Semaphore(MAX_CALLS_IN_FLIGHT)
        self._steps = asyncio.Semaphore(MAX_STEPS_IN_FLIGHT)
        self._watch: PodWatch | None = None
        self._informer = node_informer(store, settings.node, full_every_s=FULL_SYNC_S)

    @property
    def selector(self) -> str:
        """The label selector of this runtime's Pods."""
        return f"{SERVER_ID_LABEL},{NODE_LABEL}={self._settings.node}"

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; the Pods stay (a restarted runtime adopts them)."""
        self._watch = PodWatch(
            self._core,
            namespace=self._settings.namespace,
            selector=self.selector,
            loop=asyncio.get_running_loop(),
            on_change=self._pods_changed,
        )
        self._watch.start()
        try:
            async with serving(self.web_app(), self._settings.listen):
                await run_until_stopped(stop, self._heartbeat_loop, self._sync_loop)
        finally:
            await asyncio.to_thread(self._watch.stop)

    def web_app(self) -> web.Application:
        """The HTTP app: /healthz and /metrics."""
        app = web.Application()
        app.router.add_get("/healthz", _healthz)
        app.router.add_get("/metrics", metrics_handler(self.metrics.registry))
        return app

    def _pods_changed(
        self, listed: dict[str, PodView] | None, view: PodView | None, gone: bool
    ) -> None:
        if listed is not None:
            self.pods = listed
            self._synced = True
        elif view is not None and gone:
            self.pods.pop(view.name, None)
        elif view is not None:
            self.pods[view.name] = view
        self._wake.set()

    def _api_fresh(self) -> bool:
        watch = self._watch
        return watch is not None and time.monotonic() - watch.contact_at <= API_STALE_S

    async def _heartbeat_loop(self, stop: asyncio.Event) -> None:
        node = self._settings.node
        while not stop.is_set():
            if self._api_fresh():
                try:
                    await self._store.run("HEARTBEAT", node, "")  # Pods have their own IPs
                    self.metrics.heartbeats.inc()
                except Exception as exc:
                    self.metrics.heartbeat_failures.inc()
                    log.warning("heartbeat of node %s failed: %s", node, exc)
            elif self._synced:
                log.warning("no answer from the apiserver for %g s: no heartbeat", API_STALE_S)
            if await sleep_or_stop(stop, self._settings.heartbeat_interval_s):
                return

    async def _sync_loop(self, stop: asyncio.Event) -> None:
        delay = PASS_BACKOFF_S[0]
        while not stop.is_set():
            wait = self._settings.poll_interval_s
            try:
                await self.sync()
                delay = PASS_BACKOFF_S[0]
            except Exception as exc:
                self.metrics.sync_errors.inc()
                self._informer.invalidate()
                log.warning(
                    "sync of node %s failed, retry in %.1f s: %s", self._settings.node, delay, exc
                )
                wait, delay = delay, min(PASS_BACKOFF_S[1], delay * 2)
            self._wake.clear()
            if stop.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    async def sync(self) -> None:
        """One level-triggered pass over every server of the node and every Pod of it."""
        if not self._synced:
            return
        await self._informer.refresh()
        servers = dict(self._informer.servers)
        by_server: dict[str, list[PodView]] = {}
        for pod in self.pods.values():
            if not pod.deleting:
                by_server.setdefault(pod.server_id, []).append(pod)
        if any(
            s.state is GameServerState.STARTING and s.id not in by_server for s in servers.values()
        ):  # Pods to create: their owner must exist (someone may have deleted it)
            self._owner = await self._call(self._ensure_owner)
        steps: list[Awaitable[None]] = []
        for server in servers.values():
            if self._backoff.due(server.id):
                steps.append(self._converge_key(server, by_server.get(server.id, [])))
        for server_id, pods in by_server.items():
            if server_id not in servers:
                steps += [self._delete(pod) for pod in pods]
        self._backoff.retain(servers)
        await asyncio.gather(*(self._bounded(step) for step in steps))
        self.metrics.game_servers.set(sum(1 for p in self.pods.values() if p.serving))

    async def _bounded(self, step: Awaitable[None]) -> None:
        async with self._steps:
            await step

    async def _converge_key(self, server: GameServer, pods: list[PodView]) -> None:
        try:
            await self._converge(server, pods)
        except Exception as exc:
            delay = self._backoff.failed(server.id)
            log.warning("converging server %s failed, retry in %.1f s: %s", server.id, delay, exc)
        else:
            self._backoff.forget(server.id)

    async def _converge(self, server: GameServer, pods: list[PodView]) -> None:
        live = sorted(pods, key=lambda p: (p.created, p.name))
        pod, extra = (live[0], live[1:]) if live else (None, [])
        for duplicate in extra:  # two creates raced with a relist: keep the oldest
            await self._delete(duplicate)
        if server.state is GameServerState.STARTING:
            await self._starting(server, pod)
        elif server.state in RUNNING:
            await self._running(server, pod)
        else:
            if pod is not None:
                await self._delete(pod)
            if server.state is GameServerState.SHUTDOWN:
                await self._store.run("REMOVE_SHUTDOWN", server.id, self._settings.node)
                log.info("game server %s shut down and removed", server.id)

    async def _starting(self, server: GameServer, pod: PodView | None) -> None:
        node = self._settings.node
        if pod is None:
            await self._create(server)
        elif pod.serving:
            if await self._store.run_source(
                "POD_READY", POD_READY, server.id, node, GAME_PORT, pod.ip or ""
            ):
                log.info("game server %s is Ready in pod %s at %s", server.id, pod.name, pod.ip)
        elif pod.failed:
            if await self._store.run("MARK_ERROR", server.id, node):
                log.warning(
                    "game server %s is in Error: pod %s %s %s",
                    server.id,
                    pod.name,
                    pod.phase,
                    pod.reason,
                )
            await self._delete(pod)

    async def _running(self, server: GameServer, pod: PodView | None) -> None:
        if pod is not None and pod.serving:
            return
        node = self._settings.node
        if pod is None or pod.failed:  # Pods being deleted are not passed here (see sync)
            why = "pod deleted" if pod is None else f"pod {pod.reason or pod.phase}"
            if await self._store.run("POD_LOST", server.id, node, why):
                log.warning(
                    "game server %s lost its pod (%s): the controller replaces it", server.id, why
                )
        elif await self._store.run("MARK_UNHEALTHY", server.id, node):
            log.warning("game server %s is Unhealthy: pod %s is not Ready", server.id, pod.name)
        if pod is not None:
            await self._delete(pod)

    async def _create(self, server: GameServer) -> None:
        body = pod_manifest(
            server, settings=self._settings.pod, node=self._settings.node, owner=self._owner
        )
        try:
            created = await self._call(
                self._core.create_namespaced_pod,
                self._settings.namespace,
                body,
                _request_timeout=CALL_TIMEOUT_S,
            )
        except k8s.ApiException as exc:
            if exc.status not in PERMANENT_STATUSES:
                raise
            if await self._store.run("MARK_ERROR", server.id, self._settings.node):
                log.warning(
                    "game server %s is in Error: its pod was refused: %s", server.id, exc.body
                )
            return
        view = PodView.of(created)
        if view is not None:  # the watch may lag: a second pass must not create another
            self.pods.setdefault(view.name, view)
        log.info("created pod %s for game server %s", created.metadata.name, server.id)

    async def _delete(self, pod: PodView) -> None:
        try:
            await self._call(
                self._core.delete_namespaced_pod,
                pod.name,
                self._settings.namespace,
                _request_timeout=CALL_TIMEOUT_S,
            )
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
        if pod.name in self.pods:
            self.pods[pod.name] = replace(pod, deleting=True)
        log.info("deleted pod %s of game server %s", pod.name, pod.server_id)

    def _ensure_owner(self) -> dict[str, Any]:
        """The owner reference to this runtime's ConfigMap (created when missing)."""
        name, namespace = owner_config_map(self._settings.node), self._settings.namespace
        try:
            found = self._core.read_namespaced_config_map(
                name, namespace, _request_timeout=CALL_TIMEOUT_S
            )
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
            labels = {"app.kubernetes.io/name": "refplat", NODE_LABEL: self._settings.node}
            body = k8s.V1ConfigMap(
                metadata=k8s.V1ObjectMeta(name=name, labels=labels), data={"node": name}
            )
            found = self._core.create_namespaced_config_map(
                namespace, body, _request_timeout=CALL_TIMEOUT_S
            )
        uid = found.metadata.uid if found.metadata else None
        if not uid:
            raise RuntimeError(f"ConfigMap {namespace}/{name} has no uid")
        return {"apiVersion": "v1", "kind": "ConfigMap", "name": name, "uid": uid}

    async def _call(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A blocking client call in a thread, at most MAX_CALLS_IN_FLIGHT at once."""
        async with self._calls:
            return await asyncio.to_thread(func, *args, **kwargs)


async def _healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
