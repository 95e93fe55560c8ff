"""The platform-wide probes (harness.chaos.platform.probes) on a real refplat (writing its
audit log, as a target with ``topology.audit`` does) and a real Prometheus: each holds on a
healthy platform and fails on a real breach of what it checks."""

from __future__ import annotations

import dataclasses
import logging
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
from refplat.auditlog import LOG_KEY
from refplat.cli import main as refplat_main
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
    """A target file of a platform with two Active sessions, scraped by a real Prometheus; its
    api and controller write the audit log with the run's key, as the local target's do."""
    key_file = tmp_path / "secrets" / "audit-keys"
    key_file.parent.mkdir()
    assert 0 == refplat_main(["audit", "keygen", "--out", str(key_file)])
    api_url = _start_audited(launcher, tmp_path / "data", key_file)
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
        extra = {"audit_key_file": str(key_file)}
        dataclasses.replace(endpoints, prometheus_url=prom.url, extra=extra).write(target_file)
        _await_scraped(prom)
        yield target_file, redis_url


def _start_audited(launcher: Launcher, data_dir: Path, key_file: Path) -> str:
    """An agent, a controller and an api sharing ``data_dir``, auditing with ``key_file``."""
    audit = ["--audit-key-file", str(key_file), "--data-dir", str(data_dir)]
    agent = launcher.start("agent", "agent", "--node", "node-1")[1]
    ctl = launcher.start("ctl", "controller", "--id", "a", *audit)[1]
    args = ["--instance", "api-0", "--admin-token-file", str(launcher.token_file)]
    api = launcher.start("api", "api", *args, *audit)[1]
    launcher.wait_healthy(agent, ctl, api)
    return api


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


def test_two_active_sessions_on_one_server_are_a_double_allocation_a_raced_listing_is_not(
    platform: tuple[Path, str],
) -> None:
    target_file, redis_url = platform
    assert probes.no_server_allocated_twice(str(target_file))
    endpoints = Endpoints.read(target_file)
    admin = PlatformApi(endpoints.api_url, token=endpoints.admin_token())
    tenant = admin.as_token(endpoints.tenant_token())

    # A session allocated between the two listings: its server names a session not listed.
    tenant.end_session(admin.sessions("Active")[0]["id"])
    listed = admin.sessions("Active")
    raced = tenant.allocate(key="raced")
    flagged = probes.suspects(listed, admin.servers())
    assert {raced["server_id"]: {raced["id"]}} == flagged
    assert [] == probes.read_again(admin, raced["server_id"], flagged[raced["server_id"]])

    first, second = admin.sessions("Active")
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


def test_the_audit_chain_is_valid_until_a_stored_record_is_altered_or_removed(
    platform: tuple[Path, str], caplog: pytest.LogCaptureFixture
) -> None:
    target_file, redis_url = platform
    endpoints = Endpoints.read(target_file)
    tenant = PlatformApi(endpoints.api_url, token=endpoints.tenant_token())
    tenant.end_session(tenant.sessions("Active")[0]["id"])
    assert probes.audit_chain_valid(str(target_file))

    with redis.Redis.from_url(redis_url, decode_responses=True) as conn:
        lines = conn.lrange(LOG_KEY, 0, -1)
        assert len(lines) >= 5  # tenant, servers, sessions: each mutation one record
        middle = len(lines) // 2
        original = lines[middle]
        at = original.index('"ct"') + 10  # a character inside the sealed ciphertext
        changed = original[:at] + ("A" if original[at] != "A" else "B") + original[at + 1 :]
        conn.lset(LOG_KEY, middle, changed)
        with caplog.at_level(logging.WARNING, logger=probes.__name__):
            assert not probes.audit_chain_valid(str(target_file))
        assert any("altered" in r.getMessage() for r in caplog.records)

        conn.lset(LOG_KEY, middle, original)
        assert probes.audit_chain_valid(str(target_file))

        conn.lrem(LOG_KEY, 1, original)
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger=probes.__name__):
            assert not probes.audit_chain_valid(str(target_file))
        assert any("removed" in r.getMessage() for r in caplog.records)
