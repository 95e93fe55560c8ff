"""Targets: where the system under test runs, behind one protocol."""

from __future__ import annotations

from typing import Protocol

from harness.model import Endpoints
from harness.targets._kubecluster import KubeCluster, kube_bin_dir
from harness.targets._local import REFPLAT_ROLES, LocalTarget, LocalTopology, find_binaries
from harness.targets._netns import Fabric, Host, netns_supported, remove_namespaces

TARGETS = ("local", "kube", "kind")


class Target(Protocol):
    """Deploy, report endpoints and capabilities, tear down (also on Ctrl-C, via ``__exit__``)."""

    name: str
    capabilities: frozenset[str]

    def deploy(self) -> Endpoints: ...

    @property
    def endpoints(self) -> Endpoints: ...

    def teardown(self) -> None: ...


__all__ = [
    "REFPLAT_ROLES",
    "TARGETS",
    "Fabric",
    "Host",
    "KubeCluster",
    "LocalTarget",
    "LocalTopology",
    "Target",
    "find_binaries",
    "kube_bin_dir",
    "netns_supported",
    "remove_namespaces",
]
