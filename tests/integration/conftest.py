"""Fixtures of the integration tier."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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
