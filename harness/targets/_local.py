"""The ``local`` target: every component a real process on this machine, on loopback.

Redis, the refplat API replicas behind HAProxy, the controller replicas, the node agents, the
blackbox exporter and Prometheus, each on a port chosen free at run time. Network namespaces and
partitions come with the datacenter topology; on plain loopback ``partition`` is not offered.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from harness.config import Settings
from harness.drivers.process import Supervisor
from harness.model import Endpoints, ProcessInfo
from harness.targets import _configs
from harness.util.errors import InfraError
from harness.util.http import wait_http_ok
from harness.util.net import free_port, wait_for_port

log = logging.getLogger(__name__)

HOST = "127.0.0.1"
CAPABILITIES = ("kill-process", "freeze-process")
BINARIES = ("redis-server", "haproxy", "prometheus", "prometheus-blackbox-exporter")


@dataclass(frozen=True)
class LocalTopology:
    """How many of each component the local target runs."""

    api_replicas: int = 2
    controller_replicas: int = 2
    node_agents: int = 3
    ready_timeout_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalTopology:
        return cls(
            api_replicas=settings.topology.api_replicas,
            controller_replicas=settings.topology.controller_replicas,
            node_agents=settings.topology.node_agents,
            ready_timeout_s=settings.timeouts.ready_s,
        )


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


class LocalTarget:
    """Deploys refplat as supervised processes; a context manager that always tears down."""

    name = "local"
    capabilities = frozenset(CAPABILITIES)

    def __init__(
        self, *, run_id: str, run_dir: Path, topology: LocalTopology, detach: bool = False
    ) -> None:
        self.run_id = run_id
        self.run_dir = run_dir
        self.topology = topology
        self.supervisor = Supervisor(run_dir, detach=detach)
        self._endpoints: Endpoints | None = None
        self._urls: dict[str, str] = {}

    def __enter__(self) -> LocalTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.supervisor.__exit__(*exc)

    @property
    def endpoints(self) -> Endpoints:
        if self._endpoints is None:
            raise InfraError("The local target has not been deployed yet.")
        return self._endpoints

    def teardown(self) -> None:
        self.supervisor.stop_all()

    def deploy(self) -> Endpoints:
        """Start every component and wait until each is ready; return its connection details."""
        bins = find_binaries()
        secrets_dir = self.run_dir / "secrets"
        secrets_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(secrets_dir, 0o700)
        admin_token_file = secrets_dir / "admin-token"
        admin_token_file.write_text(secrets.token_urlsafe(32))
        os.chmod(admin_token_file, 0o600)
        redis_url = self._start_redis(bins["redis-server"])
        apis = self._start_refplat(
            "api",
            self.topology.api_replicas,
            redis_url,
            lambda name: ["--instance", name, "--admin-token-file", str(admin_token_file)],
        )
        api_url, haproxy_stats = self._start_haproxy(bins["haproxy"], apis)
        controllers = self._start_refplat(
            "controller", self.topology.controller_replicas, redis_url, lambda name: ["--id", name]
        )
        agents = self._start_refplat(
            "agent",
            self.topology.node_agents,
            redis_url,
            lambda name: ["--node", name, "--address", HOST],
        )
        prometheus_url, sd_file = self._start_observability(
            bins,
            api_url=api_url,
            haproxy_stats=haproxy_stats,
            jobs={"refplat-api": apis, "refplat-controller": controllers, "refplat-agent": agents},
        )
        self._endpoints = Endpoints(
            run_id=self.run_id,
            target=self.name,
            run_dir=str(self.run_dir),
            api_url=api_url,
            admin_token_file=str(admin_token_file),
            redis_url=redis_url,
            prometheus_url=prometheus_url,
            timeline_file=str(self.run_dir / "timeline.jsonl"),
            capabilities=tuple(sorted(self.capabilities)),
            processes=tuple(
                ProcessInfo(name=p.name, role=p.role, pid=p.pid, url=self._urls.get(p.name, ""))
                for p in self.supervisor.processes.values()
            ),
            extra={"gameservers_sd_file": str(sd_file)},
        )
        return self._endpoints

    # --- components -------------------------------------------------------------------------

    def _start_redis(self, binary: str) -> str:
        port = free_port(HOST)
        data = self.run_dir / "redis"
        data.mkdir(exist_ok=True)
        # Append-only with fsync per write: an acknowledged write survives a crash of Redis.
        argv = [
            binary,
            "--bind",
            HOST,
            "--port",
            str(port),
            "--dir",
            str(data),
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--save",
            "",
        ]
        self.supervisor.start("redis", argv, role="redis")
        self._await_port("redis", port)
        return f"redis://{HOST}:{port}/0"

    def _start_refplat(
        self, role: str, count: int, redis_url: str, extra: Callable[[str], list[str]]
    ) -> list[str]:
        addrs = []
        for i in range(1, count + 1):
            name = f"{role}-{i}"
            port = free_port(HOST)
            argv = [
                sys.executable,
                "-m",
                "refplat",
                role,
                "--redis-url",
                redis_url,
                "--listen",
                f"{HOST}:{port}",
                *extra(name),
            ]
            self.supervisor.start(name, argv, role=role)
            self._urls[name] = f"http://{HOST}:{port}"
            addrs.append(f"{HOST}:{port}")
        for i, addr in enumerate(addrs, start=1):
            self._await_http(f"{role}-{i}", f"http://{addr}/healthz")
        return addrs

    def _start_haproxy(self, binary: str, apis: list[str]) -> tuple[str, str]:
        front, stats = free_port(HOST), free_port(HOST)
        cfg = self.run_dir / "haproxy.cfg"
        cfg.write_text(
            _configs.haproxy_cfg(
                frontend=f"{HOST}:{front}",
                stats=f"{HOST}:{stats}",
                backends=[(f"api-{i}", a) for i, a in enumerate(apis, start=1)],
            )
        )
        self.supervisor.start("haproxy", [binary, "-db", "-f", str(cfg)], role="loadbalancer")
        self._urls["haproxy"] = f"http://{HOST}:{stats}"
        api_url = f"http://{HOST}:{front}"
        # Ready through the balancer means at least one API replica passed its health check.
        self._await_http("haproxy", f"{api_url}/readyz")
        return api_url, f"{HOST}:{stats}"

    def _start_observability(
        self,
        bins: dict[str, str],
        *,
        api_url: str,
        haproxy_stats: str,
        jobs: dict[str, list[str]],
    ) -> tuple[str, Path]:
        bb_port, prom_port = free_port(HOST), free_port(HOST)
        bb_cfg = self.run_dir / "blackbox.yml"
        bb_cfg.write_text(_configs.blackbox_yml())
        self.supervisor.start(
            "blackbox",
            [
                bins["prometheus-blackbox-exporter"],
                f"--config.file={bb_cfg}",
                f"--web.listen-address={HOST}:{bb_port}",
            ],
            role="blackbox",
        )
        self._urls["blackbox"] = f"http://{HOST}:{bb_port}"
        sd_file = self.run_dir / "gameservers.json"
        sd_file.write_text("[]")
        prom_cfg = self.run_dir / "prometheus.yml"
        prom_cfg.write_text(
            _configs.prometheus_yml(
                jobs={**jobs, "haproxy": [haproxy_stats]},
                blackbox=f"{HOST}:{bb_port}",
                api_health_url=f"{api_url}/healthz",
                gameservers_sd_file=str(sd_file),
            )
        )
        (self.run_dir / "prometheus").mkdir(exist_ok=True)
        self.supervisor.start(
            "prometheus",
            [
                bins["prometheus"],
                f"--config.file={prom_cfg}",
                f"--storage.tsdb.path={self.run_dir / 'prometheus'}",
                f"--web.listen-address={HOST}:{prom_port}",
                "--web.enable-lifecycle",
                "--storage.tsdb.retention.time=7d",
                "--log.level=warn",
            ],
            role="prometheus",
        )
        prometheus_url = f"http://{HOST}:{prom_port}"
        self._urls["prometheus"] = prometheus_url
        self._await_http("blackbox", f"http://{HOST}:{bb_port}/-/healthy")
        self._await_http("prometheus", f"{prometheus_url}/-/ready")
        return prometheus_url, sd_file

    # --- readiness ----------------------------------------------------------------------------

    def _await_port(self, name: str, port: int) -> None:
        self._await(name, lambda t: wait_for_port(HOST, port, timeout_s=t, what=name))

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
