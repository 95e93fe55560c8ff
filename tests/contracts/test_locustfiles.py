"""Every locustfile loads in plain upstream Locust (in a subprocess: locust patches the process)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from harness.drivers.locust import locust_binary
from tests.conftest import REPO_ROOT

LOCUSTFILES = sorted(
    p for p in (REPO_ROOT / "loadtests").glob("*.py") if not p.name.startswith("_")
)


def test_there_are_locustfiles_to_check() -> None:
    assert LOCUSTFILES


@pytest.mark.parametrize("path", LOCUSTFILES, ids=[p.stem for p in LOCUSTFILES])
def test_locustfile_loads_and_lists_its_users(path: Path) -> None:
    out = subprocess.run(
        [locust_binary(), "-f", str(path), "--list"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO_ROOT,
    )
    assert 0 == out.returncode, out.stderr
    assert "User" in out.stdout
