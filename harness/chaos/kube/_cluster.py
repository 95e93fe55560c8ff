"""What the kube activities share: the run's cluster client, its game servers and their Pods.

Everything is found through ``target.json`` (``Endpoints.extra``): the namespace of the run and
the admin kubeconfig. The client is built from that file alone (never ``$KUBECONFIG`` or
``~/.kube/config``), so an activity cannot act on another cluster than the run's.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from harness.chaos import _target
from harness.chaos._target import ActivityFailed
from harness.model import Endpoints
from harness.util.errors import DriverError

CALL_TIMEOUT_S = 10.0
GAMESERVER_SELECTOR = "app.kubernetes.io/name=gameserver"
SERVER_ID_LABEL = "gsharness.io/server-id"
SEEDED_REGION = "local"  # the harness seeds its servers there; the load's operator uses "churn"
PLACED = ("Ready", "Allocated")
VICTIMS_FILE = "kube-victims.json"


@dataclass(frozen=True)
class KubeRun:
    """The run's cluster coordinates, read from ``target.json``."""

    endpoints: Endpoints
    namespace: str
    kubeconfig: str
    context: str

    def client(self) -> k8s.ApiClient:
        api: k8s.ApiClient = k8s_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=self.kubeconfig, context=self.context or None
        )
        return api

    @property
    def run_dir(self) -> Path:
        return Path(self.endpoints.run_dir)


def load(target_file: str) -> KubeRun:
    """The run of ``target_file``; ActivityFailed when it is not a kube target."""
    endpoints = _target.load(target_file)
    extra = endpoints.extra
    if not extra.get("kube_namespace") or not extra.get("kube_kubeconfig"):
        raise ActivityFailed(
            f"Target {endpoints.run_id} ({endpoints.target}) has no Kubernetes namespace; the "
            "k8s-* experiments need `harness certify --target kube` or `harness up --target "
            "kube`."
        )
    return KubeRun(
        endpoints=endpoints,
        namespace=extra["kube_namespace"],
        kubeconfig=extra["kube_kubeconfig"],
        context=extra.get("kube_context", ""),
    )


@dataclass(frozen=True)
class Placed:
    """One game server and its live Pod (None: no Pod, or one being deleted)."""

    server_id: str
    state: str
    pod: Any  # V1Pod

    @property
    def node(self) -> str:
        return str(self.pod.spec.node_name or "") if self.pod is not None else ""

    @property
    def serving(self) -> bool:
        pod = self.pod
        if pod is None or pod.status is None or pod.status.phase != "Running":
            return False
        conditions = pod.status.conditions or []
        return any(c.type == "Ready" and c.status == "True" for c in conditions)


def servers(run: KubeRun, *, seeded_only: bool = True) -> list[dict[str, Any]]:
    """The game servers the harness seeded (region ``local``; else all), from the API."""
    try:
        items = _target.list_servers(run.endpoints)
    except DriverError as exc:
        raise ActivityFailed(f"listing game servers failed: {exc}") from exc
    return [s for s in items if not seeded_only or s.get("region") == SEEDED_REGION]


def placed(run: KubeRun, core: k8s.CoreV1Api, *, seeded_only: bool = True) -> list[Placed]:
    """The servers (the seeded ones, else all) with their live Pods."""
    pods: Any = core.list_namespaced_pod(
        run.namespace, label_selector=GAMESERVER_SELECTOR, _request_timeout=CALL_TIMEOUT_S
    )
    live = {
        p.metadata.labels[SERVER_ID_LABEL]: p
        for p in pods.items
        if p.metadata.deletion_timestamp is None
    }
    return [
        Placed(s["id"], s["state"], live.get(s["id"]))
        for s in servers(run, seeded_only=seeded_only)
    ]


def save_victims(run: KubeRun, fault_name: str, victims: list[Placed], *, node: str) -> None:
    """What a fault took away (server id -> Pod uid), for the probes that check the repair."""
    path = run.run_dir / VICTIMS_FILE
    known = json.loads(path.read_text()) if path.is_file() else {}
    known[fault_name] = {
        "at": time.time(),
        "node": node,
        "pods": {v.server_id: v.pod.metadata.uid for v in victims},
    }
    path.write_text(json.dumps(known, indent=1))


def victims(run: KubeRun, fault_name: str) -> dict[str, Any]:
    """The last victims of ``fault_name`` (empty when it has not run)."""
    path = run.run_dir / VICTIMS_FILE
    found: dict[str, Any] = (json.loads(path.read_text()) if path.is_file() else {}).get(
        fault_name, {}
    )
    return found


def record(run: KubeRun, fault_name: str, event: str, *, target: str, detail: str) -> float:
    """Append a fault event to the run's timeline; return its instant."""
    appended = _target.timeline(run.endpoints).append(
        {"kind": "fault", "name": fault_name, "event": event, "target": target, "detail": detail}
    )
    return appended["at"]


def pending(run: KubeRun, fault_name: str) -> bool:
    """Whether ``fault_name`` was injected after its last recovery (as the probes judge it)."""
    if not fault_name:
        return False
    events = [e for e in _target.timeline(run.endpoints).faults() if e.get("name") == fault_name]
    return bool(events) and events[-1].get("event") == "injected"


def remember(run: KubeRun, file_name: str, fault_name: str, facts: dict[str, Any] | None) -> None:
    """Keep (``facts``) or forget (None) what a fault changed, in ``file_name`` of the run dir,
    for the probe that checks the repair and the rollback that undoes it."""
    path = run.run_dir / file_name
    known = json.loads(path.read_text()) if path.is_file() else {}
    if facts is None:
        known.pop(fault_name, None)
    else:
        known[fault_name] = {"at": time.time(), **facts}
    path.write_text(json.dumps(known, indent=1))


def recalled(run: KubeRun, file_name: str, fault_name: str) -> dict[str, Any]:
    """What :func:`remember` kept for ``fault_name`` (empty: nothing)."""
    path = run.run_dir / file_name
    found: dict[str, Any] = (json.loads(path.read_text()) if path.is_file() else {}).get(
        fault_name, {}
    )
    return found
