"""The Pods of one kube runtime as the runtime sees them: a cache kept by a real watch.

:class:`PodWatch` runs in a thread (the ``kubernetes`` client blocks): it lists the Pods of a
label selector, then watches from the list's ``resourceVersion``; each watch ends after
``WATCH_TIMEOUT_S`` (which bounds shutdown) and the next resumes from the last version seen
(bookmarks included). A 410 Gone (the version left the apiserver's window) means a fresh list;
any other error a list after an exponential backoff. Every change is handed to the event loop
as an immutable :class:`PodView` (never the client's mutable object).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch

from refplat.kubepod import SERVER_ID_LABEL

log = logging.getLogger(__name__)

CALL_TIMEOUT_S = 10.0
WATCH_TIMEOUT_S = 4  # a watch ends (and resumes) this often: bounds shutdown and staleness
WATCH_BACKOFF_S = (0.2, 10.0)


@dataclass(frozen=True)
class PodView:
    """What the runtime needs of one Pod (never the client's mutable object)."""

    name: str
    server_id: str
    phase: str
    ready: bool
    ip: str | None
    deleting: bool
    created: float
    reason: str = ""

    @classmethod
    def of(cls, pod: Any) -> PodView | None:
        """The view of a ``V1Pod``; None for a Pod without the server-id label."""
        meta, status = pod.metadata, pod.status
        server_id = (meta.labels or {}).get(SERVER_ID_LABEL) if meta else None
        if meta is None or not server_id:
            return None
        conditions = (status.conditions if status else None) or []
        created = meta.creation_timestamp.timestamp() if meta.creation_timestamp else time.time()
        return cls(
            name=meta.name,
            server_id=server_id,
            phase=(status.phase if status else None) or "Pending",
            ready=any(c.type == "Ready" and c.status == "True" for c in conditions),
            ip=(status.pod_ip if status else None) or None,
            deleting=meta.deletion_timestamp is not None,
            created=created,
            reason=(status.reason if status else None) or "",
        )

    @property
    def serving(self) -> bool:
        """Running, Ready, with an IP and not being deleted: the game server is up."""
        return self.phase == "Running" and self.ready and bool(self.ip) and not self.deleting

    @property
    def failed(self) -> bool:
        """Ended (Failed, e.g. Evicted, or Succeeded): it will not serve again."""
        return self.phase in ("Failed", "Succeeded")


def kube_client(kubeconfig: Path | None) -> k8s.ApiClient:
    """An API client from ``kubeconfig``, else the in-cluster ServiceAccount, else ~/.kube."""
    if kubeconfig is None:
        configuration = k8s.Configuration()
        try:
            k8s_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
            return k8s.ApiClient(configuration)
        except k8s_config.ConfigException:
            pass
    path = str(kubeconfig) if kubeconfig is not None else None
    api: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=path
    )
    return api


class PodWatch:
    """A thread that keeps a Pod cache on the event loop: list, then resumed watches."""

    def __init__(
        self,
        core: k8s.CoreV1Api,
        *,
        namespace: str,
        selector: str,
        loop: asyncio.AbstractEventLoop,
        on_change: Callable[[dict[str, PodView] | None, PodView | None, bool], None],
    ) -> None:
        self._core = core
        self._namespace = namespace
        self._selector = selector
        self._loop = loop
        self._on_change = on_change
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-watch", daemon=True)
        self.contact_at = 0.0  # monotonic time of the apiserver's last answer

    def start(self) -> None:
        """Start watching in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the thread (a watch ends within WATCH_TIMEOUT_S)."""
        self._stopping.set()
        self._thread.join(WATCH_TIMEOUT_S + CALL_TIMEOUT_S)

    def _run(self) -> None:
        delay = WATCH_BACKOFF_S[0]
        while not self._stopping.is_set():
            try:
                version = self._list()
                delay = WATCH_BACKOFF_S[0]
                while not self._stopping.is_set():
                    version = self._watch(version)
            except k8s.ApiException as exc:
                if exc.status != 410:
                    log.warning("pod watch failed, relist in %.1f s: %s", delay, exc.reason)
                    delay = self._pause(delay)
            except Exception as exc:
                log.warning("pod watch failed, relist in %.1f s: %s", delay, exc)
                delay = self._pause(delay)

    def _pause(self, delay: float) -> float:
        self._stopping.wait(delay)
        return min(WATCH_BACKOFF_S[1], delay * 2)

    def _list(self) -> str:
        pods = self._core.list_namespaced_pod(
            self._namespace, label_selector=self._selector, _request_timeout=CALL_TIMEOUT_S
        )
        views = {v.name: v for p in pods.items if (v := PodView.of(p)) is not None}
        self.contact_at = time.monotonic()
        self._post(views, None, False)
        return str(pods.metadata.resource_version) if pods.metadata else ""

    def _watch(self, version: str) -> str:
        """One watch from ``version`` until the server ends it; the version to resume from."""
        stream = k8s_watch.Watch()  # type: ignore[no-untyped-call]
        for event in stream.stream(  # type: ignore[no-untyped-call]
            self._core.list_namespaced_pod,
            self._namespace,
            label_selector=self._selector,
            resource_version=version,
            allow_watch_bookmarks=True,
            timeout_seconds=WATCH_TIMEOUT_S,
            _request_timeout=WATCH_TIMEOUT_S + CALL_TIMEOUT_S,
        ):
            self.contact_at = time.monotonic()
            if event["type"] in ("ADDED", "MODIFIED", "DELETED"):
                view = PodView.of(event["object"])
                if view is not None:
                    self._post(None, view, event["type"] == "DELETED")
            if self._stopping.is_set():
                stream.stop()  # type: ignore[no-untyped-call]
        self.contact_at = time.monotonic()
        return str(stream.resource_version or version)

    def _post(self, listed: dict[str, PodView] | None, view: PodView | None, gone: bool) -> None:
        try:
            self._loop.call_soon_threadsafe(self._on_change, listed, view, gone)
        except RuntimeError:  # the loop closed: the runtime is stopping
            self._stopping.set()
