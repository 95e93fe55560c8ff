"""Targets: where the system under test runs, behind one protocol."""

from __future__ import annotations

from typing import Protocol

from harness.drivers.process import Supervisor
from harness.model import Endpoints
from harness.targets._alerts import ALERTS_FILE, fired_alerts
from harness.targets._containers import ContainerProvider, container_engine_problem
from harness.targets._incluster import InClusterOptions, InClusterTarget, observability_binaries
from harness.targets._kind import KindOptions, KindTarget, kind_problem
from harness.targets._kindhost import NODE_PORTS, host_ports
from harness.targets._kube import KubeOptions, KubeTarget, find_kubectl
from harness.targets._kubecluster import KubeCluster, kube_bin_dir
from harness.targets._kwok import (
    KwokTarget,
    RunNamespace,
    check_kube_flags,
    record_node,
    release_namespace,
    restore_nodes,
)
from harness.targets._local import REFPLAT_ROLES, LocalTarget, LocalTopology, find_binaries
from harness.targets._localobs import PROMETHEUS_JOBS
from harness.targets._netns import Fabric, Host, netns_supported, remove_namespaces
from harness.targets._redis import RESTART_LEDGER

TARGETS = ("local", "kube", "kind")
# --target kube --overlay: kwok (the platform beside the cluster) or kind (inside it)
KUBE_OVERLAYS = ("kwok", "kind")


class Target(Protocol):
    """Deploy, report endpoints and capabilities, tear down (also on Ctrl-C, via ``__exit__``)."""

    name: str
    capabilities: frozenset[str]

    def deploy(self) -> Endpoints: ...

    @property
    def endpoints(self) -> Endpoints: ...

    def teardown(self) -> None: ...


class CertifiableTarget(Protocol):
    """What the certify engine needs of a target beyond deploying it: the supervisor that adopts
    the load generator and what chaos activities start, where Prometheus scrapes Locust, the
    capabilities (and why some are missing), the scrape jobs to wait for, restarting a refplat
    process a fault killed. LocalTarget, KwokTarget, InClusterTarget and KindTarget are."""

    @property
    def capabilities(self) -> frozenset[str]: ...

    @property
    def capability_gaps(self) -> dict[str, str]: ...

    @property
    def supervisor(self) -> Supervisor: ...

    @property
    def locust_metrics(self) -> tuple[str, int] | None: ...

    @property
    def prometheus_jobs(self) -> tuple[str, ...]: ...

    def deploy(self) -> Endpoints: ...

    def restart(self, name: str) -> Endpoints: ...

    def teardown(self) -> None: ...

    def __enter__(self) -> object: ...

    def __exit__(self, *exc: object) -> None: ...


__all__ = [
    "ALERTS_FILE",
    "KUBE_OVERLAYS",
    "NODE_PORTS",
    "PROMETHEUS_JOBS",
    "REFPLAT_ROLES",
    "RESTART_LEDGER",
    "TARGETS",
    "CertifiableTarget",
    "ContainerProvider",
    "Fabric",
    "Host",
    "InClusterOptions",
    "InClusterTarget",
    "KindOptions",
    "KindTarget",
    "KubeCluster",
    "KubeOptions",
    "KubeTarget",
    "KwokTarget",
    "LocalTarget",
    "LocalTopology",
    "RunNamespace",
    "Target",
    "check_kube_flags",
    "container_engine_problem",
    "find_binaries",
    "find_kubectl",
    "fired_alerts",
    "host_ports",
    "kind_problem",
    "kube_bin_dir",
    "netns_supported",
    "observability_binaries",
    "record_node",
    "release_namespace",
    "remove_namespaces",
    "restore_nodes",
]
