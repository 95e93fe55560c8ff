"""Teardown on every path: Ctrl-C mid-run, and `kill -9` of the harness then another command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def start_certify(workdir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "certify", "--target", "local"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_deploy(workdir: Path, proc: subprocess.Popen[str], timeout_s: float = 120) -> Path:
    """Wait until the run has deployed its target (its target.json exists); return the run dir."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = list((workdir / "reports").glob("*/target.json"))
        if found:
            return found[0].parent
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    proc.kill()
    pytest.fail(f"the run did not deploy within {timeout_s} s")


def leftovers(run_dir: Path) -> str:
    out = subprocess.run(["pgrep", "-af", str(run_dir)], capture_output=True, text=True, timeout=10)
    return out.stdout


def test_ctrl_c_mid_run_stops_everything_and_reports_invalid(workdir: Path) -> None:
    proc = start_certify(workdir)
    run_dir = wait_for_deploy(workdir, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert 2 == proc.returncode, stderr[-3000:]
    assert "" == leftovers(run_dir)
    assert "interrupted" in (run_dir / "run.json").read_text()


def test_processes_of_a_killed_harness_are_stopped_by_the_next_command(workdir: Path) -> None:
    proc = start_certify(workdir)
    run_dir = wait_for_deploy(workdir, proc)
    deadline = time.monotonic() + 60
    while '"locust"' not in (run_dir / "ledger.json").read_text():  # load is running too
        assert time.monotonic() < deadline, "Locust never started"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    assert "" != leftovers(run_dir)  # the platform outlived its harness
    down = subprocess.run(
        [sys.executable, "-m", "harness.cli", "down"],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert 0 == down.returncode, down.stderr
    assert "" == leftovers(run_dir)
