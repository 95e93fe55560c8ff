"""The ``local`` target: every component a real process on this machine.

Redis (with replicas and Sentinels when asked), the refplat API replicas behind HAProxy, the
controller replicas, the node agents, and on ``ops`` the blackbox exporter, Alertmanager and
Prometheus. Two networks: ``loopback`` (every process on 127.0.0.1, ports chosen free at run
time; no partitions) and ``netns`` (root only: each host its own network namespace on a bridged
fabric, documented default ports, ``partition`` offered). The layout (profiles/topologies/)
may split the hosts into regions, each with its own balancer behind a global one. With
``topology.audit`` the run gets an audit key (``secrets/audit-keys``) and every API replica and
controller writes the sealed audit log (capability ``audit``).

The parts live beside this module: ``_localtopo`` (counts, names, hosts), ``_localbase``
(starting a process on its host, bounded waits), ``_localredis`` and ``_localobs``.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from harness.drivers.process import CHAOS_LEDGER, stop_ledger
from harness.model import Endpoints, HostInfo, ProcessInfo
from harness.targets import _configs, _redis
from harness.targets._localobs import LocalObservability
from harness.targets._localredis import LocalRedis
from harness.targets._localtopo import (
    API_DRAIN_S,
    BINARIES,
    CAPABILITIES,
    HOST,
    NETNS_CAPABILITIES,
    REFPLAT_ROLES,
    LocalTopology,
    find_binaries,
)
from harness.targets._redis import redis_argv
from harness.util.errors import InfraError

__all__ = [
    "API_DRAIN_S",
    "BINARIES",
    "HOST",
    "REFPLAT_ROLES",
    "LocalTarget",
    "LocalTopology",
    "find_binaries",
    "redis_argv",
]

log = logging.getLogger(__name__)

AUDIT_OFF = (
    "topology.audit is off in this profile: the platform writes no audit log "
    "(set topology: {audit: true} to run with the audit key)"
)


class LocalTarget(LocalRedis, LocalObservability):
    """Deploys refplat as supervised processes; a context manager that always tears down."""

    name = "local"

    @property
    def capability_gaps(self) -> dict[str, str]:
        """Why the target lacks a capability the profile asked for, by capability."""
        gaps: dict[str, str] = {}
        if self.topology.network == "netns" and not self.namespaced:
            gaps["partition"] = (
                f"network namespaces need root with `ip` and `nft` (this is uid "
                f"{os.geteuid()}); the hosts fell back to loopback addresses"
            )
        if len(self.topology.layout.regions) > 1 and not self.namespaced:
            gaps["region-outage"] = (
                "cutting a region off needs its hosts in network namespaces "
                f"(topology.network: netns, as root): {gaps.get('partition', 'loopback asked')}"
            )
        if not self.topology.audit:
            gaps["audit"] = AUDIT_OFF
        return gaps

    @property
    def capabilities(self) -> frozenset[str]:
        extra = NETNS_CAPABILITIES if self.namespaced else ()
        redis = ("redis-failover",) if self.topology.redis_failover else ()
        regions = (
            ("region-outage",) if self.namespaced and len(self.topology.layout.regions) > 1 else ()
        )
        audit = ("audit",) if self.topology.audit else ()
        return frozenset((*CAPABILITIES, *extra, *redis, *regions, *audit))

    def __enter__(self) -> LocalTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.detach:
            self.teardown()

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
        audit_key_file = secrets_dir / "audit-keys" if self.topology.audit else None
        if audit_key_file is not None:
            audit_key_file.write_text(_configs.audit_key_file_text())
            os.chmod(audit_key_file, 0o600)
        audit_flags = ["--audit-key-file", str(audit_key_file)] if audit_key_file else []
        # Game servers' world files: every process of the local target shares this filesystem.
        data_dir = self.run_dir / "data"
        data_dir.mkdir(exist_ok=True)
        redis = self._start_redis(bins["redis-server"])

        def api_flags(name: str) -> list[str]:
            return [
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
                *audit_flags,
            ]

        def controller_flags(name: str) -> list[str]:
            policy = self.topology.layout.lost_sessions
            flags = ["--id", name, "--data-dir", str(data_dir), "--lost-session-policy", policy]
            return [*flags, *audit_flags]

        apis: list[str] = []
        balancers: list[tuple[str, str]] = []  # each region's balancer: (region, host:port)
        lb_stats: list[str] = []
        for region in self.topology.regions:
            count = self.topology.api_replicas
            mine = self._start_refplat("api", count, redis.args, api_flags, region=region)
            apis += mine
            if region:  # each region's replicas behind its own balancer
                names = self._names("api", region, count)
                url, stats = self._start_haproxy(
                    bins["haproxy"], list(zip(names, mine, strict=True)), name=f"{region}-haproxy"
                )
                balancers.append((region, url.removeprefix("http://")))
                lb_stats.append(stats)
        if balancers:  # a global balancer in front of the regions' (as a GSLB would be)
            api_url, stats = self._start_haproxy(
                bins["haproxy"], balancers, name="haproxy", role="edge"
            )
        else:
            names = self._names("api", "", self.topology.api_replicas)
            api_url, stats = self._start_haproxy(
                bins["haproxy"], list(zip(names, apis, strict=True))
            )
        lb_stats.append(stats)
        controllers = [
            addr
            for region in self.topology.regions
            for addr in self._start_refplat(
                "controller",
                self.topology.controller_replicas,
                redis.args,
                controller_flags,
                region=region,
            )
        ]
        agents = self._start_agents(redis.args, data_dir)
        prometheus_url, sd_file = self._start_observability(
            bins,
            api_url=api_url,
            haproxy_stats=lb_stats[-1],
            jobs={
                "refplat-api": apis,
                "refplat-controller": controllers,
                "refplat-agent": agents,
                "haproxy": lb_stats,
            },
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
                HostInfo(
                    name=h.name,
                    namespace=h.namespace,
                    address=h.address,
                    region=self.topology.region_of(h.name),
                )
                for h in (self.fabric.hosts.values() if self.fabric else ())
            ),
            extra={
                "gameservers_sd_file": str(sd_file),
                "alertmanager_url": self._urls.get("alertmanager", ""),
                **redis.extra,
                **({"audit_key_file": str(audit_key_file)} if audit_key_file else {}),
                # Where the root namespace (the load generator) sits on the hosts' fabric.
                **({"fabric_root_address": self.fabric.root_address} if self.fabric else {}),
            },
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
    @staticmethod
    def _names(role: str, region: str, count: int) -> list[str]:
        prefix = f"{region}-" if region else ""
        return [f"{prefix}{role}-{i}" for i in range(1, count + 1)]

    def _start_refplat(
        self,
        role: str,
        count: int,
        redis_args: list[str],
        extra: Callable[[str], list[str]],
        *,
        region: str = "",
    ) -> list[str]:
        """Start ``count`` refplat ``role`` processes of ``region``; their ``host:port``s."""
        addrs = []
        names = self._names(role, region, count)
        for name in names:
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
        for name, addr in zip(names, addrs, strict=True):
            self._await_http(name, f"http://{addr}/healthz")
        return addrs

    def _start_agents(self, redis_args: list[str], data_dir: Path) -> list[str]:
        """The node agents (a subclass may run game servers elsewhere); their ``host:port``s."""
        del data_dir  # the agents of the local runtime share the run's filesystem through the API
        return [
            addr
            for region in self.topology.regions
            for addr in self._start_refplat(
                "agent",
                self.topology.node_agents,
                redis_args,
                lambda name: ["--node", name, "--address", self._place(name).address],
                region=region,
            )
        ]

    def _start_haproxy(
        self,
        binary: str,
        backends: list[tuple[str, str]],
        *,
        name: str = "haproxy",
        role: str = "loadbalancer",
    ) -> tuple[str, str]:
        """HAProxy ``name`` in front of ``backends`` (``(name, host:port)``): its URL and stats."""
        place = self._place(name)
        front, stats = place.port("haproxy"), place.port("haproxy-stats")
        host = place.address
        cfg = self.run_dir / f"{name}.cfg"
        cfg.write_text(
            _configs.haproxy_cfg(
                frontend=f"{host}:{front}", stats=f"{host}:{stats}", backends=backends
            )
        )
        self._start(name, [binary, "-db", "-f", str(cfg)], role=role)
        self._urls[name] = f"http://{host}:{stats}"
        api_url = f"http://{host}:{front}"
        # Ready through the balancer means at least one API replica passed its health check.
        self._await_http(name, f"{api_url}/readyz")
        return api_url, f"{host}:{stats}"
