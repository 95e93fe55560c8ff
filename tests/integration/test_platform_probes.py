"""The platform-wide probes (harness.chaos.platform.probes) on a real refplat and a real
Prometheus: each holds on a healthy platform and fails on a real breach of what it checks."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from harness.chaos._target import ActivityFailed
from harness.chaos.platform import probes
from harness.drivers.platform_api import PlatformApi
from harness.drivers.prometheus import PrometheusClient
from harness.model import Endpoints
from tests.integration.conftest import scratch_prometheus
from tests.integration.test_local_catalogue import seeded_target
from tests.integration.test_refplat_platform import Launcher

PROMETHEUS = """
global: {scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: refplat-api
    static_configs: [{targets: ["API"]}]
"""


@pytest.fixture
def platform(launcher: Launcher, redis_url: str, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A target file of a platform with two Active sessions, scraped by a real Prometheus."""
    api_url = launcher.start_with_data_dir(tmp_path / "data")
    target_file = seeded_target(launcher, tmp_path, api_url=api_url, redis_url=redis_url)
    endpoints = Endpoints.read(target_file)
    tenant = PlatformApi(api_url, token=endpoints.tenant_token())
    tenant.create_server(region="local")
    tenant.wait_servers_ready(2, timeout_s=30)
    for i in range(2):
        tenant.allocate(key=f"probe-{i}")
    config = PROMETHEUS.replace("API", api_url.removeprefix("http://"))
    (tmp_path / "prom").mkdir()
    with scratch_prometheus(tmp_path / "prom", config) as prom:
        dataclasses.replace(endpoints, prometheus_url=prom.url).write(target_file)
        _await_scraped(prom)
        yield target_file, redis_url


def _await_scraped(prom: PrometheusClient) -> None:
    deadline = time.monotonic() + 30
    while not prom.instant('up{job="refplat-api"} == 1', time.time()):
        assert time.monotonic() < deadline, "Prometheus did not scrape the api within 30 s"
        time.sleep(0.5)


def test_promql_within_holds_inside_the_bounds_and_fails_outside_or_without_series(
    platform: tuple[Path, str],
) -> None:
    target_file = str(platform[0])
    up = 'sum(up{job="refplat-api"})'

    assert probes.promql_within(target_file, up, minimum=1)
    assert probes.promql_within(target_file, up, minimum=1, maximum=1)
    assert not probes.promql_within(target_file, up, minimum=2)
    assert not probes.promql_within(target_file, up, maximum=0.5)
    assert not probes.promql_within(target_file, "refplat_no_such_metric", minimum=0)
    with pytest.raises(ActivityFailed, match="needs a minimum, a maximum or both"):
        probes.promql_within(target_file, up)


def test_two_active_sessions_on_one_server_are_a_double_allocation(
    platform: tuple[Path, str],
) -> None:
    target_file, redis_url = platform
    assert probes.no_server_allocated_twice(str(target_file))

    endpoints = Endpoints.read(target_file)
    first, second = PlatformApi(endpoints.api_url, token=endpoints.admin_token()).sessions("Active")
    with redis.Redis.from_url(redis_url, decode_responses=True) as conn:
        conn.hset(f"refplat:session:{second['id']}", "server_id", first["server_id"])

    assert not probes.no_server_allocated_twice(str(target_file))


def test_each_kind_of_double_allocation_is_named() -> None:
    sessions = [
        {"id": "s1", "server_id": "gs-1"},
        {"id": "s2", "server_id": "gs-1"},
        {"id": "s3", "server_id": "gs-3"},
    ]
    servers = [
        {"id": "gs-1", "state": "Allocated", "session": "s1"},
        {"id": "gs-2", "state": "Allocated", "session": "s9"},
        {"id": "gs-3", "state": "Allocated", "session": "s1"},
        {"id": "gs-4", "state": "Ready", "session": None},
    ]

    assert [
        "server gs-1 held by 2 Active sessions",
        "server gs-2 Allocated to s9, which is not an Active session",
        "server gs-3 Allocated to session s1, which is on server gs-1",
    ] == probes.double_allocations(sessions, servers)
    assert [] == probes.double_allocations(sessions[:1], servers[:1])
