"""Tunnels from this host to Services of a cluster: supervised ``kubectl port-forward``.

A real cluster rarely lets the host reach a Pod or a node port, but its apiserver always
reaches its Pods, so the in-cluster target opens one tunnel per Service it needs (the API, the
in-cluster Prometheus), each on a loopback port fixed for the run, and keeps it pointing at a
live Pod:

- kubectl forwards to **one** Pod. Given a Service, it picks one when it starts and stays with
  it; when that Pod goes (a scale-down, a drain, a deleted Pod), kubectl exits, or with some
  versions and runtimes hangs on. So the tunnel picks the Pod itself, from the Service's ready
  endpoints (EndpointSlices), runs ``kubectl port-forward pod/NAME LOCAL:PORT``, and checks every
  :data:`CHECK_S` that kubectl still runs and that its Pod is still a ready endpoint. A Pod that
  is terminating leaves the ready endpoints before it stops serving, so the tunnel usually moves
  to another Pod before the old one is gone.
- A move restarts kubectl on the same local port, so the URLs in ``Endpoints`` stay valid for
  the whole run. During the restart (a few hundred ms) and while the Service has no ready Pod,
  connections to the local port are refused: that gap is the tunnel's. Each move is logged as a
  warning and kept in :attr:`Tunnel.events` (the target writes them into the run directory,
  ``tunnels.json``), so a reader can set an availability dip against them. The tunnel gives up
  after :data:`MAX_RESTARTS` restarts.

kubectl's output goes to ``<run>/logs/port-forward-<service>.log``. Given the run's supervisor, the
tunnel has it adopt each kubectl it starts, so the ledger lists it and the next ``harness``
command stops it when the run was killed before its teardown.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kubernetes import client as k8s
from urllib3.exceptions import HTTPError

from harness.drivers.process import Supervisor
from harness.util.errors import InfraError
from harness.util.net import free_port
from harness.util.scratch import stop_process

log = logging.getLogger(__name__)
T = TypeVar("T")

HOST = "127.0.0.1"
READY_LINE = f"Forwarding from {HOST}:"
MAX_RESTARTS = 500  # a run of hours with a fault a minute stays well below this
CHECK_S = 0.5
START_TIMEOUT_S = 30.0  # kubectl forwarding once started: a second or two
WAIT_POD_S = 120.0  # for a ready endpoint when the tunnel opens
CALL_TIMEOUT_S = 5.0
POLL_S = 0.05


@dataclass(frozen=True)
class TunnelEvent:
    """Something that happened to a tunnel: ``at`` is wall-clock (Unix s)."""

    at: float
    service: str
    what: str  # "up", "moved", "lost", "gave up"
    detail: str = ""


class Tunnel:
    """A loopback port forwarding to port ``port`` (number or name) of Service ``service`` in
    ``namespace``, through a ready Pod behind it, from :meth:`start` until :meth:`stop`."""

    def __init__(
        self,
        *,
        kubectl: Path,
        kubeconfig: Path,
        context: str,
        namespace: str,
        service: str,
        port: int | str,
        log_dir: Path,
        api: Callable[[], k8s.ApiClient],
        supervisor: Supervisor | None = None,
    ) -> None:
        self.service = service
        self.namespace = namespace
        self.port = port
        self.local_port = free_port(HOST)
        self.kubectl_argv = [
            str(kubectl),
            f"--kubeconfig={kubeconfig}",
            *([f"--context={context}"] if context else []),
            f"--namespace={namespace}",
            "port-forward",
            f"--address={HOST}",
        ]
        self.log_path = log_dir / f"port-forward-{service}.log"
        self.events: list[TunnelEvent] = []
        self.pod = ""  # the Pod forwarded to now
        self._api_factory = api
        self._api: k8s.ApiClient | None = None
        self._pod_port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None
        self._restarts = 0
        # Each kubectl is adopted (``tunnel-<service>``): a killed run's next command stops it.
        self._supervisor = supervisor

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.local_port}"

    @property
    def moves(self) -> int:
        return sum(1 for e in self.events if e.what == "moved")

    def start(self) -> str:
        """Open the tunnel and keep it open; its URL. InfraError (with the reason and kubectl's
        last words) when no ready Pod turns up or kubectl does not forward."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._api = self._api_factory()
            self._pod_port = self._resolve_port()
            pod = self._await_pod(WAIT_POD_S)
            problem = self._open(pod)
        except BaseException:
            self.stop()
            raise
        if problem:
            self.stop()
            raise InfraError(
                f"`kubectl port-forward pod/{pod}` (service/{self.service} in {self.namespace}) "
                f"did not come up: {problem} (log: {self.log_path})."
            )
        self._event("up", f"{self.url} -> pod/{pod}:{self._pod_port}")
        self._watcher = threading.Thread(
            target=self._watch, name=f"tunnel-{self.service}", daemon=True
        )
        self._watcher.start()
        return self.url

    def stop(self) -> None:
        """Close the tunnel and wait for kubectl to exit; safe to call more than once."""
        self._stopping.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=CALL_TIMEOUT_S + 5)
        with self._lock:
            proc, self._proc = self._proc, None
        _end(proc)
        api, self._api = self._api, None
        if api is not None:
            api.close()  # type: ignore[no-untyped-call]

    # --- the Service's Pods -------------------------------------------------------------------

    def _resolve_port(self) -> int:
        """The Pod port behind the Service port ``self.port`` (a number or a port's name)."""
        assert self._api is not None
        try:
            svc: Any = k8s.CoreV1Api(self._api).read_namespaced_service(
                self.service, self.namespace, _request_timeout=CALL_TIMEOUT_S
            )
        except (k8s.ApiException, HTTPError, OSError) as exc:
            raise InfraError(
                f"service/{self.service} in {self.namespace}: cannot read it ({_why(exc)})."
            ) from exc
        for p in svc.spec.ports or []:
            if self.port in (p.port, p.name):
                target = p.target_port if p.target_port is not None else p.port
                if isinstance(target, int):
                    return target
                return self._named_port(str(target))
        raise InfraError(
            f"service/{self.service} in {self.namespace} has no port {self.port!r} "
            f"(ports: {', '.join(str(p.port) for p in svc.spec.ports or [])})."
        )

    def _named_port(self, name: str) -> int:
        """The number of the named target port, from the Service's EndpointSlices."""

        def find() -> tuple[int | None, str]:
            ports = [p.port for sl in self._slices() for p in sl.ports or [] if p.name == name]
            return (int(ports[0]) if ports and ports[0] else None), "no Pod ready behind it?"

        return self._until(f"no endpoint names its target port {name!r}", find, WAIT_POD_S)

    def _until(self, what: str, find: Callable[[], tuple[T | None, str]], timeout_s: float) -> T:
        """``find()``'s value once it has one (every CHECK_S); InfraError saying ``what`` and
        ``find``'s last reason after ``timeout_s``, or at once when the tunnel is stopped."""
        deadline = time.monotonic() + timeout_s
        while True:
            found, problem = find()
            if found is not None:
                return found
            if time.monotonic() >= deadline:
                raise InfraError(
                    f"service/{self.service} in {self.namespace}: {what} after {timeout_s:g} s "
                    f"({problem})."
                )
            if self._stopping.wait(CHECK_S):
                raise InfraError("stopped")

    def _slices(self) -> list[Any]:
        assert self._api is not None
        found: Any = k8s.DiscoveryV1Api(self._api).list_namespaced_endpoint_slice(
            self.namespace,
            label_selector=f"kubernetes.io/service-name={self.service}",
            _request_timeout=CALL_TIMEOUT_S,
        )
        return list(found.items)

    def _ready_pods(self) -> list[str]:
        """The Pods that are ready endpoints of the Service now (not terminating), by name."""
        pods = set()
        for sl in self._slices():
            for ep in sl.endpoints or []:
                ready = ep.conditions is None or ep.conditions.ready is not False
                ref = ep.target_ref
                if ready and ref is not None and ref.kind == "Pod" and ref.name:
                    pods.add(str(ref.name))
        return sorted(pods)

    def _await_pod(self, timeout_s: float, *, other_than: str = "") -> str:
        """A ready Pod of the Service (another than ``other_than`` when there is one)."""

        def find() -> tuple[str | None, str]:
            try:
                ready = self._ready_pods()
            except (k8s.ApiException, HTTPError, OSError) as exc:
                return None, f"cannot list its endpoints ({_why(exc)})"
            others = [p for p in ready if p != other_than]
            return ((others or ready)[0] if ready else None), "none ready"

        return self._until("no ready Pod behind it", find, timeout_s)

    # --- kubectl ------------------------------------------------------------------------------

    def _open(self, pod: str) -> str:
        """Start kubectl towards ``pod``; "" once it forwards, else why not."""
        start = self.log_path.stat().st_size if self.log_path.exists() else 0
        argv = [*self.kubectl_argv, f"pod/{pod}", f"{self.local_port}:{self._pod_port}"]
        with self.log_path.open("ab") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        with self._lock:
            if self._stopping.is_set():
                _end(proc)
                return "stopped"
            self._proc = proc
            if self._supervisor is not None:
                self._supervisor.adopt(
                    f"tunnel-{self.service}", proc, role="tunnel", log_path=self.log_path
                )
        self.pod = pod
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            said = self._said_since(start)
            if READY_LINE in said:
                return ""
            if proc.poll() is not None:
                return f"kubectl exited ({proc.returncode}): {_last_line(said)}"
            if time.monotonic() >= deadline:
                _end(proc)
                return f"no forwarding after {START_TIMEOUT_S:g} s: {_last_line(said)}"
            if self._stopping.wait(POLL_S):
                return "stopped"

    def _watch(self) -> None:
        """Every CHECK_S: move to another ready Pod when kubectl exited or its Pod is no longer
        a ready endpoint; until stopped or MAX_RESTARTS."""
        while not self._stopping.wait(CHECK_S):
            reason = self._why_move()
            if not reason:
                continue
            if self._restarts >= MAX_RESTARTS:
                self._event("gave up", f"{reason}; {MAX_RESTARTS} restarts already")
                return
            self._move(reason)

    def _why_move(self) -> str:
        """Why the tunnel must move now ("" when it need not)."""
        proc = self._proc
        if proc is not None and proc.poll() is not None:
            said = self._said_since(max(0, self.log_path.stat().st_size - 2000))
            return f"kubectl exited ({proc.returncode}): {_last_line(said)}"
        try:
            ready = self._ready_pods()
        except (k8s.ApiException, HTTPError, OSError):
            return ""  # the apiserver is busy or away: keep what works
        if self.pod not in ready:
            return f"pod/{self.pod} is no longer a ready endpoint"
        return ""

    def _move(self, reason: str) -> None:
        lost, old = time.monotonic(), self.pod
        while not self._stopping.is_set() and self._restarts < MAX_RESTARTS:
            self._restarts += 1
            try:
                pod = self._await_pod(WAIT_POD_S, other_than=old)
            except InfraError as exc:
                if self._stopping.is_set():
                    return  # stopped while waiting for a Pod: nothing was lost
                self._event("lost", f"{reason}; {exc}")
                continue
            with self._lock:
                proc, self._proc = self._proc, None
            _end(proc)
            problem = self._open(pod)
            if not problem:
                gap = time.monotonic() - lost
                self._event("moved", f"pod/{old} -> pod/{pod} in {gap:.2f} s ({reason})")
                return
            reason = problem
            self._stopping.wait(min(2.0, 0.1 * self._restarts))

    def _said_since(self, offset: int) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _event(self, what: str, detail: str) -> None:
        self.events.append(TunnelEvent(time.time(), self.service, what, detail))
        level = logging.INFO if what == "up" else logging.WARNING
        log.log(level, "tunnel to service/%s %s: %s", self.service, what, detail)


def _why(exc: BaseException) -> str:
    if isinstance(exc, k8s.ApiException):
        return f"HTTP {exc.status} {exc.reason}"
    return str(exc) or type(exc).__name__


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def _end(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        stop_process(proc, timeout_s=5)
