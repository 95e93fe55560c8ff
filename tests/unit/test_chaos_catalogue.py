"""Pure parts of the catalogue's activities: HAProxy's view, metric sums, judging saved results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.chaos._target import ActivityFailed
from harness.chaos.deploy import actions as deploy
from harness.chaos.deploy._replicas import parse_lb_states
from harness.chaos.resources import actions as resources
from harness.chaos.resources import probes
from harness.chaos.resources._tenants import metric_sum, save_result
from harness.model import Endpoints

HAPROXY = """\
# HELP haproxy_server_status Current status of the service.
haproxy_server_status{proxy="api_replicas",server="api-1",state="DOWN"} 0
haproxy_server_status{proxy="api_replicas",server="api-1",state="UP"} 1
haproxy_server_status{proxy="api_replicas",server="api-2",state="DOWN"} 1
haproxy_server_status{proxy="api_replicas",server="api-2",state="UP"} 0
haproxy_server_status{proxy="other",server="x",state="UP"} 1
haproxy_backend_agg_server_status{proxy="api_replicas",state="UP"} 1
"""


def test_haproxy_view_gives_each_api_replica_its_current_state() -> None:
    assert {"api-1": "UP", "api-2": "DOWN"} == parse_lb_states(HAPROXY)


def test_metric_sum_adds_every_labelled_sample_of_one_metric_only() -> None:
    text = (
        "# TYPE refplat_api_quota_rejections_total counter\n"
        "refplat_api_quota_rejections_total 3.0\n"
        'refplat_api_rate_limited_total{scope="token"} 5.0\n'
        'refplat_api_rate_limited_total{scope="session"} 7.0\n'
    )
    assert 12.0 == metric_sum(text, "refplat_api_rate_limited_total")
    assert 3.0 == metric_sum(text, "refplat_api_quota_rejections_total")
    assert 0.0 == metric_sum(text, "refplat_nothing_total")


@pytest.fixture
def target_file(tmp_path: Path) -> str:
    endpoints = Endpoints(
        run_id="unit",
        target="local",
        run_dir=str(tmp_path),
        api_url="http://127.0.0.1:9",
        admin_token_file=str(tmp_path / "admin-token"),
        redis_url="",
        prometheus_url="",
        timeline_file=str(tmp_path / "timeline.jsonl"),
    )
    path = tmp_path / "target.json"
    endpoints.write(path)
    return str(path)


def save(target_file: str, fault: str, result: dict[str, Any]) -> None:
    save_result(Endpoints.read(Path(target_file)), fault, result)


STORM = {
    "statuses": {"200": 300, "429": 700},
    "throttled_without_retry_after": 0,
    "bystander_statuses": {"200": 40},
}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, True),
        ({"statuses": {"200": 1000}}, False),
        ({"throttled_without_retry_after": 3}, False),
        ({"statuses": {"200": 300, "429": 690, "502": 10}}, False),
        ({"bystander_statuses": {"200": 39, "429": 1}}, False),
        ({"bystander_statuses": {}}, False),
    ],
    ids=["clean", "never-throttled", "no-retry-after", "server-errors", "bystander-hit", "idle"],
)
def test_a_storm_is_clean_only_when_throttled_with_retry_after_and_nobody_else_hit(
    target_file: str, change: dict[str, Any], expected: bool
) -> None:
    save(target_file, "rate-limit-storm", {**STORM, **change})
    assert expected == probes.storm_refused_cleanly(target_file)


FILL = {
    "statuses": {"201": 4, "507": 2},
    "refused_at_quota": 507,
    "used_bytes": 100,
    "quota_bytes": 100,
    "counted_rejections": 2.0,
}


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({}, True),
        ({"used_bytes": 99}, False),
        ({"refused_at_quota": 201}, False),
        ({"statuses": {"201": 4, "500": 1, "507": 1}}, False),
        ({"counted_rejections": 1.0}, False),
    ],
    ids=["clean", "not-full", "over-quota-accepted", "server-error", "not-counted"],
)
def test_a_quota_fill_is_clean_only_when_exact_refused_with_507_and_counted(
    target_file: str, change: dict[str, Any], expected: bool
) -> None:
    save(target_file, "disk-quota-fill", {**FILL, **change})
    assert expected == probes.quota_refused_cleanly(target_file)


def test_before_any_fault_the_result_probes_hold(target_file: str) -> None:
    assert probes.storm_refused_cleanly(target_file)
    assert probes.quota_refused_cleanly(target_file)


@pytest.mark.parametrize(
    "call",
    [
        lambda f: resources.cpu_hog(f, duration_s=0),
        lambda f: resources.cpu_hog(f, duration_s=1, cores=0),
        lambda f: resources.fill_disk(f, file_bytes=2, max_bytes=1),
        lambda f: resources.rate_limit_storm(f, duration_s=3600),
        lambda f: deploy.rolling_restart(f, ready_timeout_s=0),
        lambda f: deploy.rollback_on_failed_readiness(f, readiness_budget_s=-1),
    ],
    ids=["hog-duration", "hog-cores", "fill-sizes", "storm-duration", "restart-timeout", "budget"],
)
def test_unbounded_or_empty_faults_are_refused_before_anything_starts(
    target_file: str, call: Any
) -> None:
    with pytest.raises(ActivityFailed):
        call(target_file)
    assert not Path(json.loads(Path(target_file).read_text())["timeline_file"]).exists()
