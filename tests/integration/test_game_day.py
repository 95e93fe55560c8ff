"""Game day: `harness up`, then the plain upstream tools on our content, then `harness down`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BIN = Path(sys.executable).parent


def run(argv: list[str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def test_plain_chaos_and_locust_run_against_a_target_brought_up_by_harness(workdir: Path) -> None:
    up = run([sys.executable, "-m", "harness.cli", "up"], cwd=workdir)
    try:
        assert 0 == up.returncode, up.stdout + up.stderr[-3000:]
        assert (workdir / ".harness" / "target.json").is_file()

        chaos = run(
            [
                str(BIN / "chaos"),
                "run",
                "--journal-path",
                "journal.json",
                "experiments/controller-leader-kill.yaml",
            ],
            cwd=workdir,
        )
        assert 0 == chaos.returncode, chaos.stdout + chaos.stderr[-3000:]
        journal = json.loads((workdir / "journal.json").read_text())
        assert "completed" == journal["status"]
        assert not journal["deviated"]

        locust = run(
            [
                str(BIN / "locust"),
                "-f",
                "loadtests/tenant.py",
                "--headless",
                "-u",
                "2",
                "-r",
                "2",
                "-t",
                "4s",
                "--only-summary",
            ],
            cwd=workdir,
        )
        assert 0 == locust.returncode, locust.stderr[-3000:]
        assert "Aggregated" in locust.stdout + locust.stderr
    finally:
        down = run([sys.executable, "-m", "harness.cli", "down"], cwd=workdir)
    assert 0 == down.returncode, down.stderr
    assert not (workdir / ".harness" / "target.json").exists()
    leftovers = run(["pgrep", "-f", str(workdir)], cwd=workdir, timeout=10)
    assert "" == leftovers.stdout


def test_down_with_nothing_up_is_harmless(workdir: Path) -> None:
    down = run([sys.executable, "-m", "harness.cli", "down"], cwd=workdir)
    assert 0 == down.returncode, down.stderr
    assert "stopped 0 processes" in down.stdout
