"""Off-the-shelf services as containers, for machines with a container engine but without the
Debian packages (``redis-server``, ``prometheus``) the local target runs.

A thin layer over testcontainers: start a pinned image with the same arguments the local target
gives the installed binary, on the host network (so the service listens on the loopback address
and port the local target chose, and Prometheus reaches the loopback scrape targets), as the
calling user, with the run directory mounted at its own path (config files, data and file_sd
files keep their paths). Stop every container at teardown; testcontainers' reaper (Ryuk) removes
the containers of a run that was killed. Host networking needs a Linux engine (Docker or Podman's
Docker-compatible socket); Docker Desktop's VM does not share the host's loopback.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from harness.util.errors import InfraError
from harness.util.net import wait_for_port

if TYPE_CHECKING:
    from testcontainers.core.container import DockerContainer

log = logging.getLogger(__name__)
# docker-py and testcontainers are imported when first used: they take a second to import and
# most runs never need them.

HOST = "127.0.0.1"
# Pinned images; the Debian packages are Redis 7.0 and Prometheus 2.42, these are their peers.
IMAGES = {"redis": "redis:7.0.15", "prometheus": "prom/prometheus:v2.53.4"}
ENGINE_TIMEOUT_S = 5
NO_ENGINE = "no container engine on this machine"
DEFAULT_SOCKET = "unix:///var/run/docker.sock"


def container_engine_problem() -> str | None:
    """None when a Docker-API engine answers (what testcontainers needs); else why not, as a
    sentence starting with "no container engine on this machine"."""
    # DOCKER_HOST is the engine's own setting (docker-py reads it too); a unix socket that does
    # not exist is answered without opening a client, which would leak its socket on failure.
    host = os.environ.get("DOCKER_HOST", DEFAULT_SOCKET)
    if host.startswith("unix://") and not Path(host.removeprefix("unix://")).exists():
        cli = shutil.which("docker") or shutil.which("podman")
        found = f"{cli} is installed but no daemon" if cli else "no docker or podman"
        return f"{NO_ENGINE} ({found}: {host} does not exist)"
    import docker  # type: ignore[import-untyped]
    from docker.errors import DockerException  # type: ignore[import-untyped]

    try:
        client = docker.from_env(timeout=ENGINE_TIMEOUT_S)
    except DockerException as exc:
        return f"{NO_ENGINE} ({_first_line(exc)})"
    try:
        client.ping()
    except DockerException as exc:
        return f"{NO_ENGINE} ({_first_line(exc)})"
    finally:
        client.close()
    return None


class ContainerProvider:
    """Starts services as containers for one run; ``stop_all`` (or ``__exit__``) stops them."""

    def __init__(self, *, run_id: str, run_dir: Path, ready_timeout_s: float = 60.0) -> None:
        self.run_id = run_id
        self.run_dir = run_dir
        self.ready_timeout_s = ready_timeout_s
        self.containers: dict[str, DockerContainer] = {}

    def __enter__(self) -> ContainerProvider:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def redis(self, args: list[str], *, port: int, name: str = "redis") -> str:
        """Run ``redis-server <args>`` (``args`` must bind ``127.0.0.1:<port>``); its URL."""
        self.start(name, IMAGES["redis"], ["redis-server", *args], port=port)
        return f"redis://{HOST}:{port}"

    def prometheus(self, args: list[str], *, port: int, name: str = "prometheus") -> str:
        """Run ``prometheus <args>`` (``args`` must listen on ``127.0.0.1:<port>``); its URL."""
        self.start(name, IMAGES["prometheus"], args, port=port)
        return f"http://{HOST}:{port}"

    def start(
        self, name: str, image: str, command: list[str], *, port: int, mounts: Iterable[Path] = ()
    ) -> None:
        """Start ``image`` with ``command`` and wait until ``127.0.0.1:port`` accepts."""
        if name in self.containers:
            raise InfraError(f"A container named {name!r} already runs for run {self.run_id}.")
        problem = container_engine_problem()
        if problem is not None:
            raise InfraError(
                f"Could not start {name} from image {image}: {problem}; install {name} with "
                "scripts/setup.sh instead, or start a container engine."
            )
        from docker.errors import DockerException
        from testcontainers.core.container import DockerContainer

        try:
            container = (
                DockerContainer(image)  # connects to the engine already
                .with_command(command)
                .with_name(f"gsh-{self.run_id}-{name}")
                .with_kwargs(network_mode="host", user=f"{os.getuid()}:{os.getgid()}")
            )
            for path in (self.run_dir, *mounts):
                container = container.with_volume_mapping(str(path), str(path), "rw")
            container.start()
        except DockerException as exc:
            raise InfraError(
                f"Could not start {name} from image {image}: {_first_line(exc)}; install "
                f"{name} with scripts/setup.sh instead, or check the container engine."
            ) from exc
        self.containers[name] = container
        try:
            wait_for_port(HOST, port, timeout_s=self.ready_timeout_s, what=f"{name} ({image})")
        except TimeoutError as exc:
            out, err = container.get_logs()
            tail = (out + err).decode(errors="replace").strip().splitlines()[-10:]
            raise InfraError(f"{exc}; the end of its log:\n" + "\n".join(tail)) from exc
        log.info("%s runs in container %s from %s", name, container.get_container_id(), image)

    def stop_all(self) -> None:
        """Stop and remove every container of the run; report, not raise, what would not stop."""
        if not self.containers:
            return
        from docker.errors import DockerException

        while self.containers:
            name, container = self.containers.popitem()
            try:
                container.stop()
            except DockerException as exc:
                log.warning("container of %s did not stop cleanly: %s", name, _first_line(exc))


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
