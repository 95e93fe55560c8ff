"""What every part of the local target's deploy shares: its processes, hosts and waits."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from harness.drivers.process import Supervisor
from harness.model import Endpoints
from harness.targets._localtopo import HOST, LocalTopology, Place, host_of
from harness.targets._netns import Fabric, netns_supported
from harness.util.errors import InfraError
from harness.util.http import wait_http_ok
from harness.util.net import wait_for_port


class LocalBase:
    """The run, its supervisor and its hosts; starting a process on its host; bounded waits."""

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

    def _place(self, process: str) -> Place:
        if self.fabric is None:
            return Place(host="", address=HOST)
        host = self.fabric.hosts[host_of(process)]
        return Place(host=host.name, address=host.address, prefix=tuple(host.prefix()))

    def _start(self, name: str, argv: list[str], *, role: str) -> None:
        self.supervisor.start(name, [*self._place(name).prefix, *argv], role=role)

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
