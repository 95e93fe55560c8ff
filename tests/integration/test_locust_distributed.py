"""Locust distributed: a real master and two real workers against a real HTTP endpoint, their
metrics scraped by a real Prometheus, a worker killed mid-run and a broken locustfile."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.drivers.locust import LocustRun, LocustSpec
from harness.targets import _configs
from harness.util.errors import DriverError
from harness.util.net import free_port, wait_for_port
from harness.util.scratch import stop_process
from tests.integration.conftest import scratch_prometheus
from tests.integration.test_locust_driver import locustfile
from tests.integration.test_refplat_metrics import promtool_problems

pytestmark = [pytest.mark.integration, pytest.mark.load]

STEADY = """
import _harness_stats  # noqa: F401
from locust import HttpUser, constant, task

class Steady(HttpUser):
    wait_time = constant(0.05)

    @task(3)
    def ok(self):
        self.client.get("/ok.txt", name="ok")

    @task
    def missing(self):
        self.client.get("/missing", name="missing")
"""

# The error is on line 4 of the file.
BROKEN = """import _harness_stats  # noqa: F401
from locust import User, task

undefined_name + 1
"""


@dataclass(frozen=True)
class Endpoint:
    url: str
    log: Path

    def served(self) -> int:
        """Requests answered so far (http.server logs each one before it sends the body)."""
        return sum('"GET ' in line for line in self.log.read_text().splitlines())


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[Endpoint]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "ok.txt").write_text("ok\n")
    port = free_port()
    log = tmp_path / "http.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "http.server", str(port), "--bind", "127.0.0.1"],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        wait_for_port("127.0.0.1", port, timeout_s=10, what="http.server")
        yield Endpoint(f"http://127.0.0.1:{port}", log)
    finally:
        stop_process(proc)


def spec(path: Path, endpoint: Endpoint, **kw: int) -> LocustSpec:
    return LocustSpec(
        locustfile=path, host=endpoint.url, users=4, spawn_rate=20, max_runtime_s=60, **kw
    )


def prometheus_config(tmp_path: Path, locust: str) -> str:
    sd = tmp_path / "gameservers.json"
    sd.write_text("[]")
    return _configs.prometheus_yml(
        jobs={},
        blackbox="127.0.0.1:9",
        api_health_url="http://127.0.0.1:9/healthz",
        gameservers_sd_file=str(sd),
        locust=locust,
    )


def worker_requests(path: Path) -> int:
    seconds = json.loads(path.read_text())["seconds"]
    return sum(b["n"] for names in seconds.values() for b in names.values())


def test_master_and_workers_count_exactly_what_was_served_and_prometheus_sees_it(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    port = free_port()
    (tmp_path / "prom").mkdir()
    config = prometheus_config(tmp_path, f"127.0.0.1:{port}")
    lf = locustfile(tmp_path, STEADY)
    with scratch_prometheus(tmp_path / "prom", config) as prom:
        run = LocustRun(
            spec(lf, endpoint, workers=2, metrics_port=port), out_dir=tmp_path / "o", env=os.environ
        )
        with run:
            names = [name for name, _, _ in run.started()]
            assert ["locust", "locust-worker-1", "locust-worker-2"] == names
            deadline = time.monotonic() + 25
            seen = 0.0
            while seen < 20 and time.monotonic() < deadline:
                time.sleep(0.5)
                run.check_running()
                answer = prom.instant('sum(locust_requests_total{job="locust"})', time.time())
                seen = answer[0][1] if answer else 0.0
            workers = prom.instant('locust_workers{job="locust"}', time.time())
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
                text = page.read().decode()
            run.stop()
        run.check_running()  # nothing ended before stop()
    assert seen >= 20, "Prometheus never scraped Locust's request counter"
    assert [2.0] == [value for _, value in workers]
    assert (0, "") == promtool_problems(text)
    assert 'locust_request_failures_total{kind="HTTPError",method="GET",name="missing"}' in text
    assert 'locust_cpu_usage_ratio{process="worker-1"}' in text
    served = endpoint.served()
    per_worker = [worker_requests(tmp_path / "o" / f"per-second-worker-{i}.json") for i in (1, 2)]
    assert all(per_worker), per_worker  # both workers made requests
    summary = run.summary()
    assert (served, served) == (sum(per_worker), summary.requests)
    assert {"GET ok", "GET missing"} == set(summary.by_name)
    assert summary.failures == summary.by_name["GET missing"]["requests"]


def test_a_worker_killed_mid_run_makes_the_run_invalid_naming_it(
    tmp_path: Path, endpoint: Endpoint
) -> None:
    lf = locustfile(tmp_path, STEADY)
    with LocustRun(spec(lf, endpoint, workers=2), out_dir=tmp_path / "o", env=os.environ) as run:
        deadline = time.monotonic() + 20
        while endpoint.served() < 20 and time.monotonic() < deadline:
            time.sleep(0.2)
            run.check_running()
        worker = run.processes[2]
        assert worker.popen is not None
        worker.popen.send_signal(signal.SIGKILL)
        worker.popen.wait(timeout=10)
        with pytest.raises(DriverError) as raised:
            run.check_running()
    reason = str(raised.value)
    assert "locust-worker-2" in reason
    assert "signal SIGKILL" in reason
    assert str(worker.log_path) in reason
    assert reason == run.failure()  # still known after stop(), for the run's verdict


def test_a_locustfile_error_names_the_file_and_line(tmp_path: Path, endpoint: Endpoint) -> None:
    lf = locustfile(tmp_path, BROKEN)
    with LocustRun(spec(lf, endpoint, workers=2), out_dir=tmp_path / "o", env=os.environ) as run:
        deadline = time.monotonic() + 30
        with pytest.raises(DriverError) as raised:
            while time.monotonic() < deadline:
                run.check_running()
                time.sleep(0.2)
    assert f"{lf}:4: NameError: name 'undefined_name' is not defined" in str(raised.value)


def test_one_worker_means_one_process_serving_metrics(tmp_path: Path, endpoint: Endpoint) -> None:
    port = free_port()
    lf = locustfile(tmp_path, STEADY)
    run = LocustRun(
        spec(lf, endpoint, workers=1, metrics_port=port), out_dir=tmp_path / "o", env=os.environ
    )
    with run:
        wait_for_port("127.0.0.1", port, timeout_s=20, what="Locust's metrics")
        deadline = time.monotonic() + 20
        while endpoint.served() < 10 and time.monotonic() < deadline:
            time.sleep(0.2)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as page:
            text = page.read().decode()
    assert [run.processes[0].name] == [p.name for p in run.processes]
    assert "locust_workers 0.0" in text
    assert 'locust_cpu_usage_ratio{process="local"}' in text
    assert (0, "") == promtool_problems(text)
    assert endpoint.served() == run.summary().requests
