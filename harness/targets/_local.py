"""The ``local`` target: every component a real process on this machine, on loopback.

Redis, the refplat API replicas behind HAProxy, the controller replicas, the node agents, the
blackbox exporter and Prometheus. Two networks: ``loopback`` (every process on 127.0.0.1, ports
chosen free at run time; no partitions) and ``netns`` (root only: each host its own network
namespace on a bridged fabric, documented default ports, ``partition`` offered).
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from harness.config import Settings
from harness.drivers.process import CHAOS_LEDGER, Supervisor, stop_ledger
from harness.model import Endpoints, HostInfo, ProcessInfo
from harness.targets import _configs, _redis
from harness.targets._netns import Fabric, netns_supported
from harness.targets._redis import redis_argv
from harness.util.errors import InfraError
from harness.util.http import wait_http_ok
from harness.util.net import free_port, wait_for_port

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
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
}
# The host each process runs on in a namespaced topology (by process name; else its own name).
SHARED_HOSTS = {"haproxy": "lb", "blackbox": "ops", "prometheus": "ops"}


@dataclass(frozen=True)
class _Place:
    """Where one process runs: its address, how to start it there, how its ports are chosen."""

    host: str
    address: str
    prefix: tuple[str, ...] = ()

    def port(self, service: str) -> int:
        return DEFAULT_PORTS[service] if self.prefix else free_port(self.address)


# Processes a fault may kill and the target restarts (the off-the-shelf parts are not restarted).
REFPLAT_ROLES = frozenset({"api", "controller", "agent"})
BINARIES = ("redis-server", "haproxy", "prometheus", "prometheus-blackbox-exporter")


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

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalTopology:
        return cls(
            api_replicas=settings.topology.api_replicas,
            controller_replicas=settings.topology.controller_replicas,
            node_agents=settings.topology.node_agents,
            ready_timeout_s=settings.timeouts.ready_s,
            network=settings.topology.network,
            redis_fsync=settings.redis.fsync,
            redis_replicas=settings.redis.replicas,
            redis_sentinels=settings.redis.sentinels,
            api_probes=settings.probes.api_per_second,
            session_disk_quota_mib=settings.topology.session_disk_quota_mib,
        )

    def host_names(self) -> list[str]:
        """The hosts of a namespaced topology, in start order."""
        return [
            *_redis.redis_names(self.redis_replicas),
            *_redis.sentinel_names(self.redis_sentinels),
            *(f"api-{i}" for i in range(1, self.api_replicas + 1)),
            "lb",
            *(f"controller-{i}" for i in range(1, self.controller_replicas + 1)),
            *(f"agent-{i}" for i in range(1, self.node_agents + 1)),
            "ops",
        ]

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
class _RedisAccess:
    """How refplat processes reach Redis (their flags), its first URL, its ``target.json`` keys."""

    url: str
    args: list[str]
    extra: dict[str, str]
    sentinels: list[tuple[str, int]] = field(default_factory=list)


class LocalTarget:
    """Deploys refplat as supervised processes; a context manager that always tears down."""

    name = "local"

    def __init__(
        self, *, run_id: str, run_dir: Path, topology: LocalTopology, detach: bool = False
    ) -> None:
        self.run_id = run_id
        self.run_dir = run_dir
        self.topology = topology
        self.detach = detach
        self.supervisor = Supervisor(run_dir, detach=detach)
        self.fabric = Fabric(run_id=run_id, run_dir=run_dir) if self.namespaced else None
        self._endpoints: Endpoints | None = None
        self._urls: dict[str, str] = {}
        # Where Locust serves its metrics for Prometheus (host, port); chosen at deploy.
        self.locust_metrics: tuple[str, int] | None = None

    @property
    def namespaced(self) -> bool:
        """Whether each host gets its own network namespace: asked for, and possible here.

        Without root (or without ``ip`` and ``nft``) a netns topology falls back to loopback
        and the target lacks ``partition`` (see :attr:`capability_gaps`).
        """
        return self.topology.network == "netns" and netns_supported()

    @property
    def capability_gaps(self) -> dict[str, str]:
        """Why the target lacks a capability the profile asked for, by capability."""
        if self.topology.network == "netns" and not self.namespaced:
            return {
                "partition": (
                    f"network namespaces need root with `ip` and `nft` (this is uid "
                    f"{os.geteuid()}); the hosts fell back to loopback addresses"
                )
            }
        return {}

    @property
    def capabilities(self) -> frozenset[str]:
        extra = NETNS_CAPABILITIES if self.namespaced else ()
        redis = ("redis-failover",) if self.topology.redis_failover else ()
        return frozenset((*CAPABILITIES, *extra, *redis))

    def __enter__(self) -> LocalTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.detach:
            self.teardown()

    def _place(self, process: str) -> _Place:
        if self.fabric is None:
            return _Place(host="", address=HOST)
        host = self.fabric.hosts[SHARED_HOSTS.get(process, process)]
        return _Place(host=host.name, address=host.address, prefix=tuple(host.prefix()))

    def _start(self, name: str, argv: list[str], *, role: str) -> None:
        self.supervisor.start(name, [*self._place(name).prefix, *argv], role=role)

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise InfraError("The local target has not been deployed yet.")
        return self._endpoints

    def teardown(self) -> None:
        stop_ledger(self.run_dir / _redis.RESTART_LEDGER)  # Redis servers a fault action restarted
        stop_ledger(self.run_dir / CHAOS_LEDGER)  # replicas and hogs chaos activities started
        self.supervisor.stop_all()
        if self.fabric is not None:
            self.fabric.teardown()

    def deploy(self) -> Endpoints:
        """Start every component and wait until each is ready; return its connection details."""
        bins = find_binaries()
        if self.fabric is not None:
            self.fabric.create(self.topology.host_names())
        elif self.topology.network == "netns":
            log.warning("topology.network=netns: %s", self.capability_gaps["partition"])
        secrets_dir = self.run_dir / "secrets"
        secrets_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(secrets_dir, 0o700)
        admin_token_file = secrets_dir / "admin-token"
        admin_token_file.write_text(secrets.token_urlsafe(32))
        os.chmod(admin_token_file, 0o600)
        # Game servers' world files: every process of the local target shares this filesystem.
        data_dir = self.run_dir / "data"
        data_dir.mkdir(exist_ok=True)
        redis = self._start_redis(bins["redis-server"])
        apis = self._start_refplat(
            "api",
            self.topology.api_replicas,
            redis.args,
            lambda name: [
                "--instance",
                name,
                "--admin-token-file",
                str(admin_token_file),
                "--data-dir",
                str(data_dir),
                "--session-disk-quota-bytes",
                str(self.topology.session_disk_quota_mib * 1024 * 1024),
                # Unready for a moment after SIGTERM, so HAProxy stops sending it requests first.
                "--drain-s",
                str(API_DRAIN_S),
            ],
        )
        api_url, haproxy_stats = self._start_haproxy(bins["haproxy"], apis)
        controllers = self._start_refplat(
            "controller",
            self.topology.controller_replicas,
            redis.args,
            lambda name: ["--id", name, "--data-dir", str(data_dir)],
        )
        agents = self._start_refplat(
            "agent",
            self.topology.node_agents,
            redis.args,
            lambda name: ["--node", name, "--address", self._place(name).address],
        )
        prometheus_url, sd_file = self._start_observability(
            bins,
            api_url=api_url,
            haproxy_stats=haproxy_stats,
            jobs={"refplat-api": apis, "refplat-controller": controllers, "refplat-agent": agents},
        )
        if redis.sentinels:  # they discover each other meanwhile (hello messages every 2 s)
            self._await_sentinels(redis.sentinels)
        self._endpoints = Endpoints(
            run_id=self.run_id,
            target=self.name,
            run_dir=str(self.run_dir),
            api_url=api_url,
            admin_token_file=str(admin_token_file),
            redis_url=redis.url,
            prometheus_url=prometheus_url,
            timeline_file=str(self.run_dir / "timeline.jsonl"),
            capabilities=tuple(sorted(self.capabilities)),
            processes=self._process_infos(),
            hosts=tuple(
                HostInfo(name=h.name, namespace=h.namespace, address=h.address)
                for h in (self.fabric.hosts.values() if self.fabric else ())
            ),
            extra={"gameservers_sd_file": str(sd_file), **redis.extra},
        )
        return self._endpoints

    def _process_infos(self) -> tuple[ProcessInfo, ...]:
        return tuple(
            ProcessInfo(
                name=p.name,
                role=p.role,
                pid=p.pid,
                url=self._urls.get(p.name, ""),
                host=self._place(p.name).host,
            )
            for p in self.supervisor.processes.values()
        )

    def restart(self, name: str) -> Endpoints:
        """Start the refplat process ``name`` again after a fault killed it (as systemd or a
        kubelet would), wait until it is healthy, and return the endpoints with its new pid."""
        proc = self.supervisor.processes.get(name)
        if proc is None or proc.role not in REFPLAT_ROLES:
            raise InfraError(f"{name!r} is not a refplat process of this run; cannot restart it.")
        pid = self.supervisor.restart(name).pid
        self._await_http(name, f"{self._urls[name]}/healthz")
        processes = tuple(
            replace(p, pid=pid) if p.name == name else p for p in self.endpoints.processes
        )
        self._endpoints = replace(self.endpoints, processes=processes)
        return self._endpoints

    # --- components -------------------------------------------------------------------------

    def _start_redis(self, binary: str) -> _RedisAccess:
        """The primary, its replicas and the sentinels; how refplat processes reach them."""
        names = _redis.redis_names(self.topology.redis_replicas)
        primary = self._start_redis_server(binary, names[0], replicaof=None)
        for name in names[1:]:
            self._start_redis_server(binary, name, replicaof=primary)
        if replicas := len(names) - 1:  # writes WAIT for one: they need it streaming
            self._await(
                names[0], lambda t: _redis.await_replicas(primary, replicas=replicas, timeout_s=t)
            )
        url = f"redis://{primary[0]}:{primary[1]}/0"
        wait = ["--redis-wait-replicas", "1"] if self.topology.redis_replicas else []
        if not self.topology.redis_sentinels:
            return _RedisAccess(url=url, args=["--redis-url", url, *wait], extra={})
        sentinels = [
            self._start_sentinel(binary, name, primary=primary)
            for name in _redis.sentinel_names(self.topology.redis_sentinels)
        ]
        where = [f"{host}:{port}" for host, port in sentinels]
        args = [a for w in where for a in ("--redis-sentinel", w)]
        return _RedisAccess(
            url=url,
            args=[*args, "--redis-master", _redis.MASTER_NAME, *wait],
            extra={"redis_master": _redis.MASTER_NAME, "redis_sentinels": ",".join(where)},
            sentinels=sentinels,
        )

    def _start_redis_server(
        self, binary: str, name: str, *, replicaof: tuple[str, int] | None
    ) -> tuple[str, int]:
        place = self._place(name)
        port = place.port("redis")
        data = self.run_dir / name
        data.mkdir(exist_ok=True)
        argv = redis_argv(
            binary, address=place.address, port=port, data=data, fsync=self.topology.redis_fsync
        )
        if replicaof is not None:
            argv += ["--replicaof", replicaof[0], str(replicaof[1])]
        self._start(name, argv, role="redis")
        self._urls[name] = f"redis://{place.address}:{port}"
        self._await_port(name, place.address, port)
        return place.address, port

    def _start_sentinel(
        self, binary: str, name: str, *, primary: tuple[str, int]
    ) -> tuple[str, int]:
        place = self._place(name)
        port = place.port("sentinel")
        data = self.run_dir / name
        data.mkdir(exist_ok=True)
        conf = data / "sentinel.conf"
        conf.write_text(
            _redis.sentinel_conf(
                address=place.address,
                port=port,
                data=data,
                primary=primary,
                sentinels=self.topology.redis_sentinels,
            )
        )
        self._start(name, [binary, str(conf), "--sentinel"], role="sentinel")
        self._urls[name] = f"redis://{place.address}:{port}"
        self._await_port(name, place.address, port)
        return place.address, port

    def _await_sentinels(self, sentinels: list[tuple[str, int]]) -> None:
        """Wait until every sentinel knows every replica and every other sentinel."""
        replicas = self.topology.redis_replicas
        self._await(
            _redis.sentinel_names(len(sentinels))[0],
            lambda t: _redis.await_settled(sentinels, replicas=replicas, timeout_s=t),
        )

    def _start_refplat(
        self, role: str, count: int, redis_args: list[str], extra: Callable[[str], list[str]]
    ) -> list[str]:
        addrs = []
        for i in range(1, count + 1):
            name = f"{role}-{i}"
            place = self._place(name)
            port = place.port(role)
            argv = [
                sys.executable,
                "-m",
                "refplat",
                role,
                *redis_args,
                "--listen",
                f"{place.address}:{port}",
                *extra(name),
            ]
            self._start(name, argv, role=role)
            self._urls[name] = f"http://{place.address}:{port}"
            addrs.append(f"{place.address}:{port}")
        for i, addr in enumerate(addrs, start=1):
            self._await_http(f"{role}-{i}", f"http://{addr}/healthz")
        return addrs

    def _start_haproxy(self, binary: str, apis: list[str]) -> tuple[str, str]:
        place = self._place("haproxy")
        front, stats = place.port("haproxy"), place.port("haproxy-stats")
        host = place.address
        cfg = self.run_dir / "haproxy.cfg"
        cfg.write_text(
            _configs.haproxy_cfg(
                frontend=f"{host}:{front}",
                stats=f"{host}:{stats}",
                backends=[(f"api-{i}", a) for i, a in enumerate(apis, start=1)],
            )
        )
        self._start("haproxy", [binary, "-db", "-f", str(cfg)], role="loadbalancer")
        self._urls["haproxy"] = f"http://{host}:{stats}"
        api_url = f"http://{host}:{front}"
        # Ready through the balancer means at least one API replica passed its health check.
        self._await_http("haproxy", f"{api_url}/readyz")
        return api_url, f"{host}:{stats}"

    def _start_observability(
        self,
        bins: dict[str, str],
        *,
        api_url: str,
        haproxy_stats: str,
        jobs: dict[str, list[str]],
    ) -> tuple[str, Path]:
        place = self._place("prometheus")
        host = place.address
        bb_port, prom_port = place.port("blackbox"), place.port("prometheus")
        bb_cfg = self.run_dir / "blackbox.yml"
        bb_cfg.write_text(_configs.blackbox_yml())
        self._start(
            "blackbox",
            [
                bins["prometheus-blackbox-exporter"],
                f"--config.file={bb_cfg}",
                f"--web.listen-address={host}:{bb_port}",
                f"--timeout-offset={_configs.BLACKBOX_TIMEOUT_OFFSET_S}",
            ],
            role="blackbox",
        )
        self._urls["blackbox"] = f"http://{host}:{bb_port}"
        sd_file = self.run_dir / "gameservers.json"
        sd_file.write_text("[]")
        prom_cfg = self.run_dir / "prometheus.yml"
        # Locust runs in the root namespace; Prometheus reaches it over the fabric's root end.
        load_host = self.fabric.root_address if self.fabric is not None else HOST
        self.locust_metrics = (load_host, free_port())
        prom_cfg.write_text(
            _configs.prometheus_yml(
                jobs={**jobs, "haproxy": [haproxy_stats]},
                blackbox=f"{host}:{bb_port}",
                api_health_url=f"{api_url}/healthz",
                gameservers_sd_file=str(sd_file),
                api_probes=self.topology.api_probes,
                locust=f"{load_host}:{self.locust_metrics[1]}",
            )
        )
        (self.run_dir / "prometheus").mkdir(exist_ok=True)
        self._start(
            "prometheus",
            [
                bins["prometheus"],
                f"--config.file={prom_cfg}",
                f"--storage.tsdb.path={self.run_dir / 'prometheus'}",
                f"--web.listen-address={host}:{prom_port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=7d",
                "--log.level=warn",
            ],
            role="prometheus",
        )
        prometheus_url = f"http://{host}:{prom_port}"
        self._urls["prometheus"] = prometheus_url
        self._await_http("blackbox", f"http://{host}:{bb_port}/-/healthy")
        self._await_http("prometheus", f"{prometheus_url}/-/ready")
        return prometheus_url, sd_file

    # --- readiness ----------------------------------------------------------------------------

    def _await_port(self, name: str, address: str, port: int) -> None:
        self._await(name, lambda t: wait_for_port(address, port, timeout_s=t, what=name))

    def _await_http(self, name: str, url: str) -> None:
        self._await(name, lambda t: wait_http_ok(url, timeout_s=t, what=name))

    def _await(self, name: str, wait: Callable[[float], None]) -> None:
        """Wait in short slices so a process that died is reported at once with its log."""
        deadline = time.monotonic() + self.topology.ready_timeout_s
        while True:
            self.supervisor.check_alive(name)
            remaining = deadline - time.monotonic()
            try:
                wait(min(1.0, max(0.1, remaining)))
                return
            except TimeoutError as exc:
                if remaining <= 1.0:
                    raise InfraError(
                        f"{exc}; see {self.run_dir / 'logs' / (name + '.log')}"
                    ) from exc
