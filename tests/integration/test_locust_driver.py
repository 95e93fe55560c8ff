"""The Locust driver against real Locust: per-phase statistics and saturation."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.drivers.locust import LocustRun, LocustSpec
from harness.model import PhaseRecord
from harness.util.net import free_port, wait_for_port
from harness.util.scratch import stop_process
from tests.conftest import REPO_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.load]

# Requests /a for 3 s from its first request, then /b; it writes when that first request was,
# so the test knows the phases however long Locust took to start.
PHASED = """
import os
import time
import _harness_stats  # noqa: F401
from locust import HttpUser, constant, task

FIRST = []

class Phased(HttpUser):
    wait_time = constant(0.05)

    @task
    def hit(self):
        if not FIRST:
            FIRST.append(time.time())
            with open(os.environ["PHASED_FIRST_FILE"], "w") as out:
                out.write(repr(FIRST[0]))
        path = "/a" if time.time() - FIRST[0] < 3 else "/b"
        self.client.get(path, name=path)
"""

BURNER = """
import _harness_stats  # noqa: F401
from locust import User, constant, task

class Burner(User):
    wait_time = constant(0)

    @task
    def burn(self):
        sum(i * i for i in range(200_000))
"""


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout_s=10, what="http.server")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)


def locustfile(tmp_path: Path, text: str) -> Path:
    shutil.copy(REPO_ROOT / "loadtests" / "_harness_stats.py", tmp_path / "_harness_stats.py")
    path = tmp_path / "locustfile.py"
    path.write_text(text)
    return path


def test_statistics_are_cut_by_phase(tmp_path: Path, http_server: str) -> None:
    spec = LocustSpec(
        locustfile=locustfile(tmp_path, PHASED),
        host=http_server,
        users=2,
        spawn_rate=10,
        max_runtime_s=30,
    )
    first_file = tmp_path / "first-request"
    env = {**os.environ, "PHASED_FIRST_FILE": str(first_file)}
    with LocustRun(spec, out_dir=tmp_path / "out", env=env) as run:
        deadline = time.monotonic() + 30
        while not first_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)  # the file is written, then read whole
        started = float(first_file.read_text())
        time.sleep(max(0.0, started + 6.5 - time.time()))
        run.stop()
    # A margin on each side of the switch at 3 s.
    first = PhaseRecord("first", started, started + 2.5)
    second = PhaseRecord("second", started + 4.0, started + 6.5)
    phases = run.phase_summaries([first, second])
    assert {"GET /a"} == set(phases["first"].by_name)
    assert {"GET /b"} == set(phases["second"].by_name)
    whole = run.summary()
    assert phases["first"].requests + phases["second"].requests <= whole.requests
    assert "" == run.saturated()


def test_a_cpu_bound_load_generator_reports_saturation(tmp_path: Path) -> None:
    spec = LocustSpec(
        locustfile=locustfile(tmp_path, BURNER),
        host="http://127.0.0.1:9",
        users=4,
        spawn_rate=10,
        max_runtime_s=60,
    )
    with LocustRun(spec, out_dir=tmp_path / "out", env=dict(os.environ)) as run:
        deadline = time.monotonic() + 40
        while not run.saturated() and time.monotonic() < deadline:
            time.sleep(1)
            run.check_running()  # samples each process's CPU demand
    # Locust's own warning (a worker burning a core) or our sampling (a worker that burns or
    # waits for a core: on a busy machine it cannot burn one)
    assert any(
        sign in run.saturated()
        for sign in ("CPU usage above", "exceeded cpu threshold", "could not keep up")
    ), run.saturated()
