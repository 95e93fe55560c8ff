"""Fixtures of the integration tier."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

CONTENT = ("profiles", "slos", "experiments", "loadtests")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    """A directory holding a copy of the repository's content (profiles, SLOs, experiments,
    locustfiles), to run `harness` in without touching the repository's `.harness/` or
    `reports/`, and to break a copy on purpose."""
    for name in CONTENT:
        shutil.copytree(REPO_ROOT / name, tmp_path / name)
    return tmp_path
