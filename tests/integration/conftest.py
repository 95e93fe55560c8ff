"""Fixtures of the integration tier."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from harness.drivers.prometheus import PrometheusClient
from harness.targets._kindhost import FEDERATED_JOBS
from harness.util.net import free_port
from harness.util.scratch import stop_process
from tests.conftest import REPO_ROOT
from tests.integration.test_refplat_platform import Launcher

CONTENT = ("profiles", "slos", "experiments", "loadtests")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory holding a copy of the repository's content (profiles, SLOs, experiments,
    locustfiles), to run `harness` in without touching the repository's `.harness/` or
    `reports/`, and to break a copy on purpose."""
    for name in CONTENT:
        shutil.copytree(REPO_ROOT / name, tmp_path / name)
    return tmp_path


def run_harness(
    *args: str, cwd: Path = REPO_ROOT, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run the real `harness` command (as `python -m harness.cli`) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def only_run(reports: Path) -> tuple[Path, dict[str, Any]]:
    """The single run directory under ``reports`` and its run.json."""
    (run_dir,) = [p for p in reports.iterdir() if p.is_dir()]
    return run_dir, json.loads((run_dir / "run.json").read_text())


@pytest.fixture
def launcher(redis_url: str, tmp_path: Path) -> Iterator[Launcher]:
    """Starts refplat processes for one test and stops every one of them afterwards."""
    launch = Launcher(redis_url=redis_url, tmp_path=tmp_path)
    try:
        yield launch
    finally:
        launch.close()


# The in-cluster Prometheus of the kind overlay, stood in for by one scraping itself under the
# platform's job names (two "Pods" of the API), as the host reaches it through its NodePort or
# a tunnel (the kind and in-cluster targets federate it).
IN_CLUSTER = """
global: {scrape_interval: 1s, scrape_timeout: 1s}
scrape_configs:
  - job_name: refplat-api
    static_configs:
      - {targets: ["127.0.0.1:{port}"], labels: {instance: refplat-api-0}}
      - {targets: ["127.0.0.1:{port}"], labels: {instance: refplat-api-1}}
  - job_name: refplat-controller
    static_configs: [{targets: ["127.0.0.1:{port}"], labels: {instance: refplat-controller-0}}]
  - job_name: refplat-agent
    static_configs: [{targets: ["127.0.0.1:{port}"], labels: {instance: refplat-node-0}}]
"""


def federated_ups(prom: PrometheusClient, *, want: int = 4, timeout_s: float = 10.0) -> Any:
    """The federated ``up`` samples of the in-cluster jobs, once there are ``want`` of them (or
    what there is after ``timeout_s``). A target waits for one up Pod per job; the in-cluster
    Prometheus spreads its first scrapes over an interval, so another "Pod" of a job may arrive
    a scrape later."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = prom.instant(f'up{{job=~"{"|".join(FEDERATED_JOBS)}"}}', time.time())
        if len(found) >= want or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


@contextmanager
def scratch_prometheus(work_dir: Path, config: str) -> Iterator[PrometheusClient]:
    """A real /usr/bin/prometheus with ``config`` (``{port}`` is its own port) on a free
    loopback port, storing in ``work_dir``; ready when entered, always stopped."""
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    if not Path(binary).exists():
        pytest.fail("prometheus is not installed; run scripts/setup.sh (make test does).")
    port = free_port()
    (work_dir / "prometheus.yml").write_text(config.replace("{port}", str(port)))
    with (work_dir / "prometheus.log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, f"--config.file={work_dir / 'prometheus.yml'}",
             f"--storage.tsdb.path={work_dir / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        client = PrometheusClient(f"http://127.0.0.1:{port}", timeout_s=5)
        try:
            client.wait_ready(30)
            yield client
        finally:
            client.close()
            stop_process(proc)
