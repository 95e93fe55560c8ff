"""Fixtures shared by every tier: real services started on loopback, torn down on every path."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from harness.util.scratch import scratch_redis

REPO_ROOT = Path(__file__).resolve().parent.parent
# What `harness` reads from its working directory.
CONTENT = ("profiles", "slos", "experiments", "loadtests", "platform")


def link_content(work: Path, names: Iterable[str] = CONTENT) -> Path:
    """``work`` holding links to the repository's ``names`` (no copies): a checkout without
    state (.harness, reports) for `harness` to run in; returns ``work``."""
    for name in names:
        (work / name).symlink_to(REPO_ROOT / name)
    return work


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real, empty redis-server on a free loopback port, for one test."""
    with scratch_redis(tmp_path) as url:
        yield url
