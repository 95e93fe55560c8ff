"""The local target's topology: how many of each component, on which hosts and regions."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from harness.config import Settings
from harness.targets import _redis
from harness.targets._layout import ONE_REGION, Layout, load_layout
from harness.util.errors import ConfigError, InfraError
from harness.util.net import free_port

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
API_DRAIN_S = 1.5
CAPABILITIES = (
    "kill-process",
    "freeze-process",
    "cpu-hog",
    "disk-fill",
    "rolling-restart",
    "api-abuse",  # abusive clients of the API: a rate-limit storm
)
NETNS_CAPABILITIES = ("partition",)
# Documented default ports, used inside namespaces (each host has all of its ports to itself).
DEFAULT_PORTS = {
    "redis": 6379,
    "sentinel": 26379,
    "api": 8080,
    "controller": 8081,
    "agent": 8082,
    "haproxy": 8000,
    "haproxy-stats": 8404,
    "blackbox": 9115,
    "prometheus": 9090,
    "alertmanager": 9093,
    "alert-sink": 9095,  # the webhook receiver writing alerts.jsonl
}
# The host each process runs on in a namespaced topology (by process name; else its own name).
SHARED_HOSTS = {
    "haproxy": "lb",
    "blackbox": "ops",
    "prometheus": "ops",
    "alertmanager": "ops",
    "alert-sink": "ops",
}


@dataclass(frozen=True)
class Place:
    """Where one process runs: its address, how to start it there, how its ports are chosen."""

    host: str
    address: str
    prefix: tuple[str, ...] = ()

    def port(self, service: str) -> int:
        return DEFAULT_PORTS[service] if self.prefix else free_port(self.address)


def host_of(process: str) -> str:
    """The host a process runs on: a region's balancer ``eu-haproxy`` on ``eu-lb``."""
    if process in SHARED_HOSTS:
        return SHARED_HOSTS[process]
    if process.endswith("-haproxy"):
        return process.removesuffix("haproxy") + "lb"
    return process


# Processes a fault may kill and the target restarts (the off-the-shelf parts are not restarted).
REFPLAT_ROLES = frozenset({"api", "controller", "agent"})
BINARIES = (
    "redis-server",
    "haproxy",
    "prometheus",
    "prometheus-blackbox-exporter",
    "prometheus-alertmanager",
)


@dataclass(frozen=True)
class LocalTopology:
    """How many of each component the local target runs."""

    api_replicas: int = 2
    controller_replicas: int = 2
    node_agents: int = 3
    ready_timeout_s: float = 60.0
    network: str = "loopback"
    redis_fsync: str = "everysec"
    redis_replicas: int = 0
    redis_sentinels: int = 0
    api_probes: int = 1
    session_disk_quota_mib: int = 10240
    audit: bool = False  # the API replicas and controllers write the sealed audit log
    # Regions and where Redis runs; the counts above are per region (see _layout).
    layout: Layout = ONE_REGION

    @classmethod
    def from_settings(cls, settings: Settings, *, repo_root: Path = REPO_ROOT) -> LocalTopology:
        layout = ONE_REGION
        layout_file = settings.topology.layout
        if (repo_root / layout_file).is_file() or layout_file.is_absolute():
            layout = load_layout(layout_file, repo_root=repo_root)
        replicas, sentinels = settings.redis.replicas, settings.redis.sentinels
        if layout.regions:
            if replicas or sentinels:
                raise ConfigError(
                    f"profile {settings.name}: redis.replicas and redis.sentinels are placed by "
                    f"the layout {layout_file} (per region); remove them from the profile."
                )
            replicas, sentinels = layout.redis_replicas, layout.redis_sentinels
        return cls(
            api_replicas=settings.topology.api_replicas,
            controller_replicas=settings.topology.controller_replicas,
            node_agents=settings.topology.node_agents,
            ready_timeout_s=settings.timeouts.ready_s,
            network=settings.topology.network,
            redis_fsync=settings.redis.fsync,
            redis_replicas=replicas,
            redis_sentinels=sentinels,
            api_probes=settings.probes.api_per_second,
            session_disk_quota_mib=settings.topology.session_disk_quota_mib,
            audit=settings.topology.audit,
            layout=layout,
        )

    @property
    def regions(self) -> tuple[str, ...]:
        """The regions' names; ``("",)`` for the one unnamed region of a one-region layout."""
        return self.layout.region_names

    def redis_names(self) -> list[str]:
        """Redis servers' process (and host) names, the primary first."""
        if self.layout.regions:
            return [name for name, _ in self.layout.redis_hosts()]
        return _redis.redis_names(self.redis_replicas)

    def sentinel_names(self) -> list[str]:
        if self.layout.regions:
            return [name for name, _ in self.layout.sentinel_hosts()]
        return _redis.sentinel_names(self.redis_sentinels)

    def region_of(self, host: str) -> str:
        """The region a host belongs to ("" outside every region, and in one region)."""
        head = host.split("-", 1)[0]
        return head if self.layout.regions and head in self.regions and "-" in host else ""

    def host_names(self) -> list[str]:
        """The hosts of a namespaced topology, in start order."""
        if self.layout.regions:
            return self._region_host_names()
        return [
            *_redis.redis_names(self.redis_replicas),
            *_redis.sentinel_names(self.redis_sentinels),
            *(f"api-{i}" for i in range(1, self.api_replicas + 1)),
            "lb",
            *(f"controller-{i}" for i in range(1, self.controller_replicas + 1)),
            *(f"agent-{i}" for i in range(1, self.node_agents + 1)),
            "ops",
        ]

    def _region_host_names(self) -> list[str]:
        names: list[str] = []
        redis = self.layout.redis_hosts() + self.layout.sentinel_hosts()
        for region in self.regions:
            names += [name for name, where in redis if where == region]
            names += [f"{region}-api-{i}" for i in range(1, self.api_replicas + 1)]
            names.append(f"{region}-lb")
            names += [f"{region}-controller-{i}" for i in range(1, self.controller_replicas + 1)]
            names += [f"{region}-agent-{i}" for i in range(1, self.node_agents + 1)]
        return [*names, "lb", "ops"]

    @property
    def redis_failover(self) -> bool:
        """Sentinels watch the primary and a replica can take over: ``redis-failover``."""
        return self.redis_sentinels > 0 and self.redis_replicas > 0


def find_binaries() -> dict[str, str]:
    """Locate the Debian binaries the local target runs; raise InfraError naming what is missing."""
    found = {
        name: shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin") for name in BINARIES
    }
    missing = sorted(name for name, path in found.items() if path is None)
    if missing:
        raise InfraError(
            f"The local target needs {', '.join(missing)}; run scripts/setup.sh "
            "(make test and make certify do) or install the Debian packages."
        )
    return {name: path for name, path in found.items() if path is not None}


@dataclass(frozen=True)
class RedisAccess:
    """How refplat processes reach Redis (their flags), its first URL, its ``target.json`` keys."""

    url: str
    args: list[str]
    extra: dict[str, str]
    sentinels: list[tuple[str, int]] = field(default_factory=list)
