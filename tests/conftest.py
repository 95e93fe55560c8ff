"""Fixtures shared by every tier: real services started on loopback, torn down on every path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.util.scratch import scratch_redis

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    """A real, empty redis-server on a free loopback port, for one test."""
    with scratch_redis(tmp_path) as url:
        yield url
