"""The process supervisor against real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.drivers.process import Supervisor, alive, stop_ledger
from harness.util.errors import InfraError

pytestmark = pytest.mark.integration

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]
STUBBORN = [
    sys.executable,
    "-c",
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)",
]


def test_leaving_the_context_stops_every_process(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as sup:
        procs = [sup.start(f"p{i}", SLEEPER, role="test") for i in range(3)]
    assert [False, False, False] == [alive(p.pid, p.start_ticks) for p in procs]


def test_a_process_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as sup:
        proc = sup.start("stubborn", STUBBORN, role="test")
        time.sleep(0.3)  # let it install its handler
    assert not alive(proc.pid, proc.start_ticks)


def test_a_process_that_dies_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as sup:
        proc = sup.start(
            "bad", [sys.executable, "-c", "print('no config'); raise SystemExit(4)"], role="test"
        )
        proc.popen.wait(timeout=10)  # type: ignore[union-attr]
        with pytest.raises(InfraError, match="no config"):
            sup.check_alive("bad")


def test_the_ledger_lets_another_process_stop_what_a_killed_run_left(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path, detach=True)
    proc = sup.start("orphan", SLEEPER, role="test")
    ledger = json.loads((tmp_path / "ledger.json").read_text())
    assert ["orphan"] == [p["name"] for p in ledger["processes"]]
    assert ["orphan"] == stop_ledger(tmp_path / "ledger.json")
    proc.popen.wait(timeout=10)  # type: ignore[union-attr]
    assert not alive(proc.pid, proc.start_ticks)


def test_a_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    other = subprocess.Popen(SLEEPER, start_new_session=True)
    try:
        entry = {"name": "ghost", "pid": other.pid, "start_ticks": 1, "argv": ["x"]}
        (tmp_path / "ledger.json").write_text(json.dumps({"processes": [entry]}))
        assert [] == stop_ledger(tmp_path / "ledger.json")
        assert other.poll() is None
    finally:
        os.killpg(other.pid, signal.SIGKILL)
        other.wait(timeout=10)
